"""``cae``: the entropy-coded Lossy compressive autoencoder (Theis et al. 2017; Ballé et al. 2017/2018).

Integer latents at H/16 with a learned factorized prior per channel, coded with rANS (nanolink.common.rans) from
integer CDF tables. One network serves every rate point through per-channel gain vectors ("gain units", Cui et
al. 2021): at quality q the latents are scaled by exp(gain[q]) before rounding and by exp(inv_gain[q]) after, and
each quality has its own prior (a scaled channel has a differently scaled density), so the edge picks a rate
without another network.

Encoder (edge, ReLU only: ONNX Runtime on a CPU and TensorRT both fuse it)::

    x (B, 3, H, W) in [0, 1], centred
    -> conv 4x4/4 (3 -> e4) -> ReLU         (B, e4, H/4, W/4)    first layer from a PCA of 4x4 patches
    -> conv 3x3/2 (e4 -> e8) -> ReLU        (B, e8, H/8, W/8)
    -> conv 3x3/2 (e8 -> Mb)                (B, Mb, H/16, W/16)  plus a linear 16x16/16 block path (Analysis)
    -> * exp(gain[q]), round, clip to the table range of each channel -> uint8 symbol index

Decoder (host, sized for <= 50 ms at 1008^2 on a 2-core CPU)::

    y_hat = (index + lo) * exp(inv_gain[q])  (B, M, H/16, W/16)
    -> conv 3x3 (M -> d16) -> ReLU -> conv 3x3 (d16 -> d16) -> ReLU
    -> convT 2x2/2 (d16 -> d8) -> ReLU -> conv 3x3 (d8 -> d8) -> ReLU       (B, d8, H/8, W/8)
    -> convT 2x2/2 (d8 -> d4) -> ReLU -> depthwise 3x3 (d4) -> ReLU
    -> conv 1x1 (d4 -> 48)                                                   (B, 48, H/4, W/4)
    -> PixelShuffle(4)                                                       (B, 3, H, W)   plus a linear path

Trained with (e4, e8) = (64, 112) and (d16, d8, d4) = (96, 64, 64): 2478 and 2857 MAC/px. The bundled model is
that network narrowed by scripts/narrow_cae.py to (64, 64) and (96, 40, 40), then (96, 32, 32): 1776 and 2071
MAC/px: the encoder's 48 dropped units never fired (the same symbols), and the decoder was trained on after losing
its weakest units each time.

Each 4 x 4 x 3 output block comes from d4 features (a 24-wide 3x3 layer there capped the first run's picture at
~25 dB even without quantisation), mixed with its neighbours by the depthwise 3x3.

Loss: lambda[q] * 255^2 * MSE + bits per pixel (+ any scaled latent's excess over +-SYMBOL_REACH, so that each
channel fits the 256 symbols of its table), with q drawn per sample. Rounding in training is ``mixed`` (the
rate sees additive uniform noise, the decoder the rounded latents through a straight-through gradient) or
``noise`` (both see the noise, Ballé 2017): --arch quant=noise.
"""
import dataclasses
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from nanolink.export.entropy_model import MAX_SYMBOLS, FactorizedPrior, integer_tables, table_bits
from nanolink.export.models.cae_post import PostFilter, RefinedDecoder
from nanolink.export.models.layers import DisplayBytes, ResBlock, display_conv, display_order
from nanolink.export.models.registry import register_model


def _conv(cin, cout, k, stride=1):
    """k x k convolution that maps n to n / stride (odd k: 'same' padding)."""
    return nn.Conv2d(cin, cout, k, stride, (k - 1) // 2 if k % 2 else (k - stride) // 2)


@register_model('cae')
class EntropyCAE(nn.Module):
    @dataclasses.dataclass
    class Config:
        channels: int = 216                               # latent channels M at H/16
        body_channels: int = 160                          # of them, fed by the non-linear branch too (0: all M)
        enc_widths: Tuple[int, int] = (64, 112)           # encoder widths at H/4, H/8
        dec_widths: Tuple[int, int, int] = (96, 64, 64)   # decoder widths at H/16, H/8, H/4
        dec_res: Tuple[int, int] = (0, 0)                 # decoder residual blocks at H/16, H/8 (a quality decoder)
        post: Tuple[int, int] = (0, 0)                    # quality decoder: picture refinement at H/2 (width, blocks)
        lambdas: Tuple[float, ...] = (0.001, 0.0022, 0.0049, 0.011, 0.024, 0.05)   # quality 1..6: ~0.15..1.3 bpp
        default_channels: int = 3                         # default quality (the field name is the manifest's)
        quant: str = 'mixed'                              # training rounding: mixed | noise
        train_rates: Tuple[int, ...] = ()                 # train at these qualities only (a single-lambda fork)
        table_cover: bool = True                          # tables hold flat saturated areas' symbols (tables())

        @property
        def rate_points(self):
            return tuple(range(1, len(self.lambdas) + 1))

    legacy_config = {'table_cover': False,        # checkpoints from before these fields: their tables, as exported,
                     'body_channels': 0}          # and every latent fed by the non-linear branch
    run_fields = ('quant', 'train_rates', 'table_cover')   # how a run trains and exports, not the tensors: a new
                                                            # run (--init) takes them from its own --arch
    stride = 16
    multiple = 16
    rate_prefix = 'q'
    wire_dtype = 'rans'

    def __init__(self, config=None):
        super().__init__()
        self.config = c = config or self.Config()
        if c.quant not in ('mixed', 'noise'):
            raise ValueError('quant must be mixed or noise, got {}'.format(c.quant))
        if not 0 <= c.body_channels <= c.channels:
            raise ValueError('body_channels must be 0..channels ({}), got {}'.format(c.channels, c.body_channels))
        self.encoder = Analysis(c.channels, *c.enc_widths, body_m=c.body_channels or c.channels)
        self.decoder = Synthesis(c.channels, *c.dec_widths, res=c.dec_res, post=c.post)
        n = len(c.lambdas)
        mid = n // 2
        init = torch.tensor([0.5 * torch.log(torch.tensor(l / c.lambdas[mid])).item() for l in c.lambdas])
        self.gain = nn.Parameter(init.view(n, 1).repeat(1, c.channels))           # log gains (Q, M)
        self.inv_gain = nn.Parameter(-init.view(n, 1).repeat(1, c.channels))
        self.priors = nn.ModuleList([FactorizedPrior(c.channels) for _ in range(n)])

    # -- halves --
    def analysis(self, x):
        """x (B, 3, H, W) in [0, 1] -> y (B, M, H/16, W/16), before gain and rounding."""
        return self.encoder(x - 0.5)

    def synthesis(self, y_hat):
        """Dequantised latents (B, M, h, w) -> image (B, 3, 16h, 16w), unclamped."""
        return self.decoder(y_hat) + 0.5

    def gains(self, q):
        """(gain, inverse gain) of quality index tensor q (B,) as (B, M, 1, 1)."""
        return self.gain[q].exp()[:, :, None, None], self.inv_gain[q].exp()[:, :, None, None]

    def forward(self, x, q):
        """Training pass at quality indices q (B,) (0-based): x_hat and the likelihoods of the noisy latents."""
        g, ig = self.gains(q)
        y = self.analysis(x) * g
        noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        y_hat = noisy if self.config.quant == 'noise' else y + (torch.round(y) - y).detach()
        lik = torch.empty_like(y)
        for r in torch.unique(q).tolist():
            sel = q == r
            lik[sel] = self.priors[r].likelihood(noisy[sel])
        return {'x_hat': self.synthesis(y_hat * ig), 'likelihoods': lik, 'y': y}

    # -- the trainer's interface (nanolink.export.train) --
    def train_loss(self, x, progress):
        rates = self.config.train_rates or self.config.rate_points
        q = torch.tensor(rates)[torch.randint(len(rates), (x.shape[0],))] - 1
        out = self(x, q)
        px = x.shape[-2] * x.shape[-1]
        bpp = -torch.log2(out['likelihoods']).sum(dim=(1, 2, 3)) / px              # (B,)
        mse = ((out['x_hat'] - x) ** 2).mean(dim=(1, 2, 3))                        # (B,)
        lam = torch.tensor(self.config.lambdas, dtype=x.dtype)[q]
        # symbols are bytes: a channel whose scaled latents spread over more than 256 integers gets clipped by its
        # table (on Kodak at q6, clipping the block-mean channel cost 1.1 dB on average and 13 dB on one bright
        # image), which the rounding above never shows the loss; so a latent past +-SYMBOL_REACH costs REACH_COST
        # bits per unit of excess (about what clipping the block mean by as much costs in distortion at q6)
        over = REACH_COST * F.relu(out['y'].abs() - SYMBOL_REACH).sum(dim=(1, 2, 3)) / px       # (B,)
        # ... and since saturated areas (a white sky, a black shadow) are rare in training crops but common in
        # camera frames, flat areas of the RGB cube's 8 corner colours must fit at every rate point too
        scaled = self.flat_latents()[:, None] * self.gain.exp()[None]        # (8, Q, M)
        over = over + REACH_COST * F.relu(scaled.abs() - SYMBOL_REACH).sum() / px
        loss = (lam * 255.0 ** 2 * mse + bpp + over).mean()
        return loss, {'bpp': bpp.mean().item(), 'mse': mse.mean().item(), 'over': over.mean().item()}

    @torch.no_grad()
    def rate_outputs(self, x):
        """{quality: x_hat} and {'bpp': {quality: bits per pixel}} for one padded image, coded as the wire codes
        it: rounded, clipped to the table range, bits from the integer tables (rANS spends within bytes of it)."""
        y = self.analysis(x)
        px = x.shape[-2] * x.shape[-1]
        out, bpp = {}, {}
        for i, qual in enumerate(self.config.rate_points):
            t = self.tables(i)                  # ~10 ms each: cheaper than keeping them in step with training
            lo = torch.tensor(t['lo'], dtype=y.dtype).view(1, -1, 1, 1)
            hi = lo + torch.tensor([len(f) - 1 for f in t['freqs']], dtype=y.dtype).view(1, -1, 1, 1)
            g, ig = self.gains(torch.tensor([i]))
            sym = torch.max(torch.min(torch.round(y * g), hi), lo)
            idx = (sym - lo)[0].reshape(y.shape[1], -1).long().numpy()
            bpp[qual] = table_bits(t['freqs'], idx) / px
            out[qual] = self.synthesis(sym * ig)
        return out, {'bpp': bpp}

    def load_init(self, state, config, sample=None):
        """Start from a checkpoint's weights (``nanolink-train --init``), growing the rate points and the latent
        channels it has fewer of (nanolink.export.models.cae_grow; ``sample()`` gives a batch of training crops)."""
        from nanolink.export.models import cae_grow
        cae_grow.load_init(self, state, config, sample)

    def tables(self, i):
        """Integer tables {'lo', 'freqs'} of quality index i (0-based) from its prior as it is now, covering the
        symbols of flat areas of the RGB cube's corner colours (saturated skies and shadows, which the learned
        density may put in a tail that a 256-symbol table cuts off)."""
        if not self.config.table_cover:             # a checkpoint from before: the window around the mode
            return integer_tables(self.priors[i], window='mode')
        with torch.no_grad():
            sym = torch.round(self.flat_latents() * self.gain[i].exp()[None])               # (8, M)
        return integer_tables(self.priors[i], cover=(sym.min(0).values.numpy(), sym.max(0).values.numpy()))

    def flat_latents(self):
        """(8, M) latents, before gain, of flat areas of the RGB cube's 8 corner colours (FLAT_CORNERS): the centre
        of a 3 x 3 block area, clear of the padding."""
        return self.analysis(FLAT_CORNERS.expand(-1, -1, 3 * self.stride, 3 * self.stride))[:, :, 1, 1]

    @torch.no_grad()
    def data_init(self, x):
        """Start from a linear block codec: the linear paths as the top M components of 16 x 16 blocks of a batch x
        (B, 3, S, S) (an uncentred PCA, so the DC is one of them), the encoder's first layer as the top 32 components
        of 4 x 4 patches and their negatives (a ReLU keeps one sign of each); the non-linear branches start at zero."""
        self.encoder.init_from(x - 0.5)
        self.decoder.init_from(self.encoder.linear.weight.detach() / LINEAR_SCALE ** 2)

    def decoder_module(self):
        fast = LatentDecoder(self)
        return fast if self.decoder.post is None else RefinedDecoder(fast, self.decoder.post)

    def encoder_module(self, k=None, code_dtype=torch.uint8):
        q = k or self.config.default_channels
        return SymbolEncoder(self, q - 1, code_dtype)


SYMBOL_REACH = MAX_SYMBOLS // 2 - 8   # |scaled latent| beyond this costs in training: a table's 256 symbols cover it
REACH_COST = 1000.0                   # ... this many bits per unit past it (it is rare in training crops: a weak
                                      # charge, 1 bit a unit, left the q6 block-mean gain where it was for 4000 steps)
FLAT_CORNERS = torch.tensor([[(c >> 2) & 1, (c >> 1) & 1, c & 1] for c in range(8)], dtype=torch.float32).view(
    8, 3, 1, 1)                       # black, blue, green, cyan, red, magenta, yellow, white
LINEAR_SCALE = 4.0      # the linear path codes block components x 4: a quantisation step of 1/4 (~30 dB) at init


def _top_components(patches, n):
    """The top n right singular vectors (n, D) of patches (N, D): an uncentred PCA."""
    cov = patches.T @ patches / len(patches)
    evals, evecs = torch.linalg.eigh(cov)
    return evecs[:, -n:].flip(1).T


class Analysis(nn.Module):
    """The encoder transform: a non-linear branch plus a linear 16 x 16 block transform, summed.

        body:   conv 4x4/4 (3 -> e4) -> ReLU -> conv 3x3/2 (e4 -> e8) -> ReLU -> conv 3x3/2 (e8 -> Mb)
        linear: conv 16x16/16 (3 -> M)       (a learned block transform, started as a PCA)
    The branch feeds the first Mb <= M channels; the others are linear only (3 MAC/px a channel against 6.9 for
    one fed by both, so more channels fit the encoder budget: fine detail that a block transform codes well).
    The linear path makes the network a working block codec from its first step; the branch learns what a linear
    transform cannot (a deep ReLU stack alone trained ~10x slower here: 21.7 dB after 1000 steps of pure
    autoencoding, against 30.9 dB for the block transform alone)."""

    def __init__(self, m, e4, e8, body_m=None):
        super().__init__()
        self.body_m = body_m or m
        self.body = nn.Sequential(
            nn.Conv2d(3, e4, 4, 4), nn.ReLU(inplace=True),
            _conv(e4, e8, 3, 2), nn.ReLU(inplace=True),
            _conv(e8, self.body_m, 3, 2),
        )
        self.linear = nn.Conv2d(3, m, 16, 16)

    def forward(self, x):
        lin = self.linear(x)
        if self.body_m == lin.shape[1]:
            return self.body(x) + lin
        return torch.cat([self.body(x) + lin[:, :self.body_m], lin[:, self.body_m:]], 1)

    def init_from(self, x):
        first = self.body[0]
        n = first.out_channels // 2
        p4 = nn.functional.unfold(x, 4, stride=4).permute(0, 2, 1).reshape(-1, 48).double()
        top = _top_components(p4 - p4.mean(0), n)
        scale = (p4 @ top[0]).std().clamp_min(1e-6)
        first.weight.data[:2 * n].copy_(torch.cat([top, -top]).float().view(2 * n, 3, 4, 4) / scale)
        first.bias.data.zero_()
        m = self.linear.out_channels
        p16 = nn.functional.unfold(x, 16, stride=16).permute(0, 2, 1).reshape(-1, 768).double()
        self.linear.weight.data.copy_(_top_components(p16, m).float().view(m, 3, 16, 16) * LINEAR_SCALE)
        self.linear.bias.data.zero_()
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)


class Synthesis(nn.Module):
    """The decoder transform: a non-linear branch plus a linear block transform, summed before the shuffle.

        body:   conv 3x3 (M -> d16) -> ReLU -> conv 3x3 (d16 -> d16) -> ReLU [-> r16 ResBlocks (d16)]
                -> convT 2x2/2 (d16 -> d8) -> ReLU -> conv 3x3 (d8 -> d8) -> ReLU [-> r8 ResBlocks (d8)]
                -> convT 2x2/2 (d8 -> d4) -> ReLU -> depthwise 3x3 (d4) -> ReLU
                -> conv 1x1 (d4 -> 48)                           (B, 48, H/4, W/4)
        linear: convT 4x4/4 (M -> 48)                            (B, 48, H/4, W/4): a 16 x 16 block per latent
        -> PixelShuffle(4)                                       (B, 3, H, W)
        [-> + PostFilter (picture)]                              a quality decoder's refinement
    Each 4 x 4 x 3 output block comes from d4 >= 48 features (a 24-wide layer there capped a first run at ~25 dB),
    mixed with its neighbours by the depthwise 3x3. The fast decoder has no residual blocks (res = (0, 0)) and no
    post-filter (post = (0, 0))."""

    def __init__(self, m, d16, d8, d4, res=(0, 0), post=(0, 0)):
        super().__init__()
        r16, r8 = res
        self.body = nn.Sequential(
            _conv(m, d16, 3), nn.ReLU(inplace=True),
            _conv(d16, d16, 3), nn.ReLU(inplace=True),
            *[ResBlock(d16) for _ in range(r16)],
            nn.ConvTranspose2d(d16, d8, 2, 2), nn.ReLU(inplace=True),
            _conv(d8, d8, 3), nn.ReLU(inplace=True),
            *[ResBlock(d8) for _ in range(r8)],
            nn.ConvTranspose2d(d8, d4, 2, 2), nn.ReLU(inplace=True),
            nn.Conv2d(d4, d4, 3, 1, 1, groups=d4), nn.ReLU(inplace=True),
            nn.Conv2d(d4, 48, 1),
        )
        self.linear = nn.ConvTranspose2d(m, 48, 4, 4)
        self.shuffle = nn.PixelShuffle(4)
        self.post = PostFilter(*post) if post[0] else None

    def forward(self, y):
        x = self.shuffle(self.body(y) + self.linear(y))
        return x if self.post is None else x + self.post(x)

    def init_from(self, components):
        """components (M, 3, 16, 16): what the linear path puts in a block per unit of each latent."""
        m = components.shape[0]
        # block pixel (4a + u, 4b + v) of colour ch is output channel ch * 16 + 4u + v at H/4 position (a, b)
        w = components.view(m, 3, 4, 4, 4, 4).permute(0, 1, 3, 5, 2, 4).reshape(m, 48, 4, 4)
        self.linear.weight.data.copy_(w)
        self.linear.bias.data.zero_()
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)


class SymbolEncoder(nn.Module):
    """What the edge runs for ``cae`` at one quality: image (1, 3, H, W) RGB in [0, 1] -> symbol indices
    (1, M, H/16, W/16), uint8 (float16 holding the same integers for TensorRT 8.2, which has no UINT8 I/O).

    The gain is a Mul by a constant after the transform, so every rate point's graph holds the very same
    convolution weights (nanolink-export stores them once, in one external-data file all encoders share); rounding
    and the per-channel clip to [lo, hi] are Round, Max, Min and Sub nodes (all in TensorRT 8.2's ONNX operator
    list). Index = clip(round(y * gain)) - lo."""

    def __init__(self, model, i, code_dtype=torch.uint8):
        super().__init__()
        self.analysis = model.encoder
        self.register_buffer('gain', model.gain[i].detach().exp().view(1, -1, 1, 1).clone())
        t = model.tables(i)
        lo = torch.tensor(t['lo'], dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer('lo', lo)
        self.register_buffer('hi', lo + torch.tensor([len(f) - 1 for f in t['freqs']], dtype=torch.float32).view(
            1, -1, 1, 1))
        self.code_dtype = code_dtype

    def forward(self, x):
        y = torch.round(self.analysis(x - 0.5) * self.gain)
        return (torch.min(torch.max(y, self.lo), self.hi) - self.lo).to(self.code_dtype)


class LatentDecoder(nn.Module):
    """What the host runs for ``cae``: dequantised latents (1, M, h, w) float32 -> display-ready image
    (1, 16h, 16w, 3) BGR uint8 (the + 0.5, BGR order and 0..255 scale folded into the last convolution)."""

    def __init__(self, model):
        super().__init__()
        layers = list(model.decoder.body.children())     # ..., conv 1x1 (d4 -> 48)
        self.body = nn.Sequential(*layers[:-1])
        self.head = display_conv(layers[-1], 4, offset=0.5)
        lin = model.decoder.linear
        self.linear = nn.ConvTranspose2d(lin.in_channels, lin.out_channels, lin.kernel_size, lin.stride)
        order = display_order(4)                          # the same channel order and byte scale as the head
        self.linear.weight.data.copy_(lin.weight.data[:, order] * 255.0)
        self.linear.bias.data.copy_(lin.bias.data[order] * 255.0)
        self.out = DisplayBytes(4)

    def forward(self, y_hat):
        return self.out(self.head(self.body(y_hat)) + self.linear(y_hat))
