"""A learned factorized prior (Ballé et al. 2018, appendix 6.1) and its integer CDF tables.

Training sees a smooth density per latent channel: ``FactorizedPrior(C).likelihood(y)`` is the probability mass of
the unit interval around each value, P(y - 1/2 < Y < y + 1/2), from a small monotone network per channel (the
"univariate non-parametric density model" of Ballé et al., filters (3, 3, 3)). The rate term of the loss is
``-log2(likelihood).sum()``.

For the wire, ``integer_tables`` turns each channel's density into what nanolink.common.rans codes with: the integer
range [lo, hi] of symbols it allows (values outside are clipped onto it, inside the exported encoder graph) and
integer frequencies summing to 2**15. Both sides code from these integers only, so they agree bit for bit whatever
float precision the encoder ran in (fp16 TensorRT on a Nano, fp32 on a PC).

Why not CompressAI's EntropyBottleneck: ``import compressai`` imports its datasets, point-cloud and video models
(torchvision, torch-geometric, pandas, einops; numpy < 2) and it needs Python >= 3.8, torch >= 1.13, so neither the
Nano nor our test environment can take it lightly (README, docs/development.md). The density model is ~60 lines.
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nanolink.common.rans import MAX_SYMBOLS, PROB_BITS   # frequencies sum to 2**15; symbols are uint8 indices

TAIL_MASS = 1e-5            # probability mass per channel left outside [lo, hi] (and clipped onto its ends)
LIKELIHOOD_BOUND = 1e-9


class _LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient still flows where it pushes x up (CompressAI's LowerBound)."""

    @staticmethod
    def forward(ctx, x, bound):
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        return grad * ((x >= ctx.bound) | (grad < 0)).to(grad.dtype), None


class FactorizedPrior(nn.Module):
    """One learned univariate density per channel: ``likelihood(y)`` for y (B, C, h, w)."""

    def __init__(self, channels, filters=(3, 3, 3), init_scale=10.0):
        super().__init__()
        self.channels = channels
        dims = (1,) + tuple(filters) + (1,)
        scale = init_scale ** (1.0 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def logits_cdf(self, v):
        """v (C, 1, N) -> logit of each channel's CDF at v, (C, 1, N)."""
        for i, (m, b) in enumerate(zip(self.matrices, self.biases)):
            v = torch.matmul(F.softplus(m), v) + b
            if i < len(self.factors):
                v = v + torch.tanh(self.factors[i]) * torch.tanh(v)
        return v

    def likelihood(self, y):
        """P(y - 1/2 < Y < y + 1/2) per element of y (B, C, h, w), bounded below by 1e-9."""
        b, c, h, w = y.shape
        v = y.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self.logits_cdf(v - 0.5)
        upper = self.logits_cdf(v + 0.5)
        sign = -torch.sign(lower + upper).detach()          # compute in the tail that is far from 1 (precision)
        lik = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        lik = _LowerBound.apply(lik, LIKELIHOOD_BOUND)
        return lik.reshape(c, b, h, w).permute(1, 0, 2, 3)

    @torch.no_grad()
    def pmf(self, lo=-MAX_SYMBOLS, hi=MAX_SYMBOLS):
        """(C, hi - lo + 1) float64 probability of each integer in [lo, hi], plus (C, 2) mass below and above."""
        v = torch.arange(lo, hi + 2, dtype=torch.float32) - 0.5                  # interval edges
        logits = self.logits_cdf(v.view(1, 1, -1).repeat(self.channels, 1, 1))[:, 0].double()
        cdf = torch.sigmoid(logits)
        p = (cdf[:, 1:] - cdf[:, :-1]).clamp_min(0)
        tails = torch.stack([cdf[:, 0], 1 - cdf[:, -1]], 1)
        return p.numpy(), tails.numpy()


def quantize_pmf(p, total=1 << PROB_BITS):
    """Probabilities (n,) -> integer frequencies (n,) >= 1 summing to ``total``; deterministic.

    Each symbol gets round(p * total) but at least 1; the difference to ``total`` is then taken from (or given
    to) the symbols with the largest frequencies, one unit at a time, so no frequency drops below 1."""
    p = np.asarray(p, dtype=np.float64)
    n = len(p)
    if not 1 <= n <= min(MAX_SYMBOLS, total):
        raise ValueError('cannot give {} symbols a frequency of at least 1 out of {}'.format(n, total))
    p = p / p.sum()
    f = np.maximum(1, np.round(p * total)).astype(np.int64)
    diff = int(total - f.sum())
    order = np.argsort(-f, kind='stable')                   # largest first
    i = 0
    while diff != 0:
        j = order[i % n]
        if diff > 0:
            f[j] += 1
            diff -= 1
        elif f[j] > 1:
            f[j] -= 1
            diff += 1
        i += 1
    return f


def integer_tables(prior, tail_mass=None, max_symbols=MAX_SYMBOLS, cover=None, window='mass'):
    """The prior as integer tables: {'lo': [C], 'freqs': [[...] per channel]}.

    A channel's symbols are the integers lo..lo + len(freqs) - 1, the narrowest range holding all but
    ``tail_mass`` of its probability and the integers ``cover`` gives it ((lo, hi) arrays of C: values the encoder
    is known to reach, such as a flat white area's), or, where that takes more than ``max_symbols``, the
    ``max_symbols`` wide window holding the most probability among those that hold ``cover``'s range (any, if none
    can); the mass outside goes to the end symbols, since the encoder clips onto them. A channel left with one
    symbol is constant: the coder skips it. ``window='mode'`` centres a too-wide channel's window on its most
    probable integer instead (how tables were made before 2026-12-07; kept for the checkpoints exported then)."""
    tail_mass = TAIL_MASS if tail_mass is None else tail_mass
    p, tails = prior.pmf()
    base = -MAX_SYMBOLS
    los, freqs = [], []
    for c in range(prior.channels):
        cdf = np.cumsum(p[c]) + tails[c, 0]
        lo_i = int(np.searchsorted(cdf, tail_mass / 2))                  # first index with cdf >= tail/2
        hi_i = int(np.searchsorted(cdf, 1 - tail_mass / 2))
        hi_i = min(hi_i, len(cdf) - 1)
        must = None
        if cover is not None:
            must = [min(max(int(v) - base, 0), len(cdf) - 1) for v in (cover[0][c], cover[1][c])]
            lo_i, hi_i = min(lo_i, must[0]), max(hi_i, must[1])
        if hi_i - lo_i + 1 > max_symbols and window == 'mode':
            lo_i = max(0, min(int(np.argmax(p[c])) - max_symbols // 2, len(cdf) - max_symbols))
            hi_i = lo_i + max_symbols - 1
        elif hi_i - lo_i + 1 > max_symbols:                              # keep the window of most probability
            mass = np.convolve(p[c], np.ones(max_symbols), mode='valid')     # mass of p[c][i : i + max_symbols]
            if must is not None and must[1] - must[0] < max_symbols:     # ... of those holding cover's range
                starts = np.arange(len(mass))
                mass = np.where((starts <= must[0]) & (starts + max_symbols - 1 >= must[1]), mass, -1.0)
            lo_i = int(np.argmax(mass))
            hi_i = lo_i + max_symbols - 1
        q = p[c, lo_i:hi_i + 1].copy()
        q[0] += tails[c, 0] + p[c, :lo_i].sum()
        q[-1] += tails[c, 1] + p[c, hi_i + 1:].sum()
        los.append(base + lo_i)
        freqs.append([int(v) for v in quantize_pmf(q)])
    return {'lo': los, 'freqs': freqs}


def clipped_mass(prior, tables):
    """(C,) probability, under each channel's density, of a latent outside its table's [lo, hi]: what the encoder
    clips. TAIL_MASS by design; more where a channel's values spread over more than the 256 symbols a table holds."""
    p, tails = prior.pmf()
    base = -MAX_SYMBOLS
    out = np.zeros(prior.channels)
    for c in range(prior.channels):
        lo_i = tables['lo'][c] - base
        hi_i = lo_i + len(tables['freqs'][c]) - 1
        out[c] = tails[c].sum() + p[c, :lo_i].sum() + p[c, hi_i + 1:].sum()
    return out


CLIP_WARNING = 1e-4           # nanolink-export warns when a channel's table clips more of its latents than this


def clip_warnings(model):
    """One line per (rate point, channel) whose table clips more than CLIP_WARNING of the channel's latents (its
    values span more than the 256 symbols of a table): the picture suffers wherever the encoder clips them."""
    lines = []
    for i, q in enumerate(model.config.rate_points):
        mass = clipped_mass(model.priors[i], model.tables(i))
        for c in (int(c) for c in np.nonzero(mass > CLIP_WARNING)[0]):
            lines.append('rate point {}: channel {}\'s table clips {:.2%} of its latents (its values span more than '
                         '256 symbols); train on with nanolink-train, whose loss keeps latents within reach'.format(
                             q, c, mass[c]))
    return lines


def table_bits(freqs, symbols):
    """Ideal code length in bits of integer symbol indices (C, n) under integer tables (what rANS spends, to
    within a few bytes)."""
    total = float(1 << PROB_BITS)
    bits = 0.0
    for c, f in enumerate(freqs):
        if len(f) > 1:
            counts = np.bincount(symbols[c], minlength=len(f))
            bits -= float(np.sum(counts * np.log2(np.asarray(f) / total)))
    return bits
