"""Growing a trained ``cae`` (``nanolink-train --init CKPT`` with a larger ``--arch``): more rate points, forked
from the checkpoint's last two, and more latent channels, linear-only, started from the block components the old
ones miss. Everything the checkpoint has is kept, so training starts from its picture."""
import math

import torch
import torch.nn.functional as F

from nanolink.export.entropy_model import FactorizedPrior
from nanolink.export.models.cae import _top_components


def load_init(model, state, config, sample=None):
    """Start from a checkpoint's weights (``nanolink-train --init``), growing what this model has more of.

    * More rate points (this model's lambdas must start with the checkpoint's, at least two of them): each new
      point is forked from the last: its log gains continue the last two points' per-channel line, in log
      lambda, and its prior is the last one's density stretched by the gain ratio.
    * More latent channels (this model's non-linear branch must feed exactly the checkpoint's channels): the
      new channels are linear-only, their encoder rows the top block components of ``sample()`` (a batch of
      crops) outside the span of the old rows; the decoder starts with zero weights on them, so the picture
      is the checkpoint's until training teaches it to use them; their gains are each rate point's median,
      their priors fitted to the sample's latents (a fresh prior at the training learning rate would take
      thousands of steps to reach their scale, while its rate term pushed the new channels to zero).
    * A post-filter (``--arch post=W,B``, a quality decoder) the checkpoint lacks: it starts as built, adding
      nothing to the picture (its last convolution is zero). One the checkpoint has and this model does not
      (``--arch post=0,0``): left out.
    Training then fits everything jointly."""
    config = config or {}
    with torch.no_grad():
        state = dict(state)
        if model.decoder.post is not None and not any(k.startswith('decoder.post.') for k in state):
            state.update((k, v) for k, v in model.state_dict().items() if k.startswith('decoder.post.'))
        if model.decoder.post is None:
            state = {k: v for k, v in state.items() if not k.startswith('decoder.post.')}
        state = _fork_rate_points(model, state, tuple(config.get('lambdas', ())))
        old_m = state['gain'].shape[1]
        if old_m == model.config.channels:
            model.load_state_dict(state)
            return
        x = sample() if sample is not None else None
        state = _widen(model, state, old_m, x)
        model.load_state_dict(state)
    _fit_priors(model, x, range(old_m, model.config.channels))


def _fork_rate_points(model, state, old):
    new = tuple(model.config.lambdas)
    n = state['gain'].shape[0]
    if n == len(new):
        return state
    if n < 2 or old[:n] != new[:n] or len(old) != n:
        raise ValueError('cannot fork rate points: the checkpoint has lambdas {}, this model {}; the new lambdas '
                         'must start with the checkpoint\'s (at least two of them)'.format(old, new))
    gain, inv = state['gain'], state['inv_gain']
    step = math.log(new[n - 1] / new[n - 2])
    rows, inv_rows = [gain], [inv]
    prefix = 'priors.{}.'.format(n - 1)
    last_prior = [(key[len(prefix):], value) for key, value in state.items() if key.startswith(prefix)]
    for j in range(n, len(new)):
        t = math.log(new[j] / new[n - 1]) / step
        rows.append((gain[n - 1] + t * (gain[n - 1] - gain[n - 2]))[None])
        inv_rows.append((inv[n - 1] + t * (inv[n - 1] - inv[n - 2]))[None])
        shift = rows[-1][0] - gain[n - 1]                               # log of the per-channel stretch
        for name, value in last_prior:
            v = value.clone()
            if name == 'matrices.0':                                        # (C, f, 1): cdf(v) -> cdf(v / s)
                v = torch.log(torch.expm1(F.softplus(v) / shift.exp().view(-1, 1, 1)).clamp_min(1e-12))
            state['priors.{}.{}'.format(j, name)] = v
    state['gain'], state['inv_gain'] = torch.cat(rows), torch.cat(inv_rows)
    return state


def _widen(model, state, old_m, x):
    m, body_m = model.config.channels, model.encoder.body_m
    if old_m > m or body_m != old_m or state['encoder.body.4.weight'].shape[0] != old_m:
        raise ValueError('cannot widen {} latent channels to {}: the non-linear branch must feed exactly the '
                         'checkpoint\'s channels (--arch body_channels={})'.format(old_m, m, old_m))
    if x is None:
        raise ValueError('widening the latents needs training images for the new channels\' block components')
    fresh = model.state_dict()
    old_rows = state['encoder.linear.weight'].reshape(old_m, -1).double()       # (old_m, 768)
    blocks = F.unfold(x - 0.5, 16, stride=16).permute(0, 2, 1).reshape(-1, old_rows.shape[1]).double()
    q, _ = torch.linalg.qr(old_rows.T)                                          # orthonormal basis of the rows
    rest = blocks - (blocks @ q) @ q.T
    new_rows = _top_components(rest, m - old_m)                                 # unit rows outside that span
    scale = old_rows.norm(dim=1).median()
    lin = torch.cat([old_rows, new_rows * scale]).float().view(m, *state['encoder.linear.weight'].shape[1:])
    state['encoder.linear.weight'] = lin
    state['encoder.linear.bias'] = torch.cat([state['encoder.linear.bias'], torch.zeros(m - old_m)])
    for key in ('decoder.body.0.weight', 'decoder.linear.weight'):              # zero weights on the new inputs
        w = fresh[key].clone().zero_()
        dim = 1 if key.startswith('decoder.body') else 0
        w.narrow(dim, 0, old_m).copy_(state[key])
        state[key] = w
    for key in ('gain', 'inv_gain'):
        g = state[key]
        state[key] = torch.cat([g, g.median(dim=1, keepdim=True).values.expand(-1, m - old_m)], 1)
    for key, value in fresh.items():
        if key.startswith('priors.'):
            state[key] = torch.cat([state[key], value[old_m:]])
    return state


def _fit_priors(model, x, channels, steps=300, lr=1e-2, values=4096):
    """Fit the priors of ``channels`` (at every rate point) to the noisy latents of the crops x by maximum
    likelihood (up to ``values`` latents a channel), through a prior of those channels alone; the others'
    parameters are not touched."""
    channels = list(channels)
    with torch.no_grad():
        y = model.analysis(x)[:, channels]
        y = y.permute(1, 0, 2, 3).reshape(len(channels), -1)[:, :values]     # (k, n)
        y = y.T.reshape(-1, len(channels), 1, 1)                               # (n, k, 1, 1)
    for i, prior in enumerate(model.priors):
        with torch.no_grad():
            v = y * model.gain[i, channels].exp().view(1, -1, 1, 1)
        part = FactorizedPrior(len(channels))
        opt = torch.optim.Adam(part.parameters(), lr=lr)
        for _ in range(steps):
            loss = -torch.log2(part.likelihood(v + torch.empty_like(v).uniform_(-0.5, 0.5))).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            for dst, src in zip(prior.parameters(), part.parameters()):
                dst[channels] = src
