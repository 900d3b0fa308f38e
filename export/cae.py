"""``cae``: the entropy-coded Lossy compressive autoencoder (Theis et al. 2017; Ballé et al. 2017/2018).

Integer latents at H/16 with a learned factorized prior per channel, coded with rANS (nanolink.common.rans) from
integer CDF tables. One network serves every rate point through per-channel gain vectors ("gain units", Cui et
al. 2021): at quality q the latents are scaled by exp(gain[q]) before rounding and by exp(inv_gain[q]) after, and
each quality has its own prior (a scaled channel has a differently scaled density), so the edge picks a rate
without another network.

Encoder (edge, about 2.0 kMAC per input pixel, ReLU only: ONNX Runtime on a CPU and TensorRT both fuse it)::

    x (B, 3, H, W) in [0, 1], centred
    -> conv 4x4/4 (3 -> 64) -> ReLU         (B, 64, H/4, W/4)    first layer from a PCA of 4x4 patches
    -> conv 3x3/2 (64 -> 128) -> ReLU       (B, 128, H/8, W/8)
    -> conv 3x3/2 (128 -> M)                (B, M, H/16, W/16)   y
    -> * exp(gain[q]), round, clip to the table range of each channel -> uint8 symbol index

Decoder (host, about 2.7 kMAC per output pixel, sized for <= 50 ms at 1008^2 on a 2-core CPU)::

    y_hat = (index + lo) * exp(inv_gain[q])  (B, M, H/16, W/16)
    -> conv 3x3 (M -> d16) -> ReLU -> conv 3x3 (d16 -> d16) -> ReLU
    -> convT 2x2/2 (d16 -> d8) -> ReLU -> conv 3x3 (d8 -> d8) -> ReLU       (B, d8, H/8, W/8)
    -> convT 2x2/2 (d8 -> d4) -> ReLU -> conv 3x3 (d4 -> 48)                (B, 48, H/4, W/4)
    -> PixelShuffle(4)                                                       (B, 3, H, W)

Loss: lambda[q] * 255^2 * MSE + bits per pixel, with q drawn per sample. Rounding in training is ``mixed`` (the
rate sees additive uniform noise, the decoder the rounded latents through a straight-through gradient) or
``noise`` (both see the noise, Ballé 2017): --arch quant=noise.
"""
import dataclasses
from typing import Tuple

import torch
import torch.nn as nn

from nanolink.export.entropy_model import FactorizedPrior, integer_tables, table_bits
from nanolink.export.models import DisplayBytes, display_conv, register_model


def _conv(cin, cout, k, stride=1):
    """k x k convolution that maps n to n / stride (odd k: 'same' padding)."""
    return nn.Conv2d(cin, cout, k, stride, (k - 1) // 2 if k % 2 else (k - stride) // 2)


@register_model('cae')
class EntropyCAE(nn.Module):
    @dataclasses.dataclass
    class Config:
        channels: int = 160                               # latent channels M at H/16
        enc_widths: Tuple[int, int] = (64, 128)           # encoder widths at H/4, H/8
        dec_widths: Tuple[int, int, int] = (128, 64, 24)  # decoder widths at H/16, H/8, H/4
        lambdas: Tuple[float, ...] = (0.0035, 0.0067, 0.013, 0.025, 0.0483)   # one per quality 1..5
        default_channels: int = 3                         # default quality (the field name is the manifest's)
        quant: str = 'mixed'                              # training rounding: mixed | noise

        @property
        def rate_points(self):
            return tuple(range(1, len(self.lambdas) + 1))

    stride = 16
    multiple = 16
    rate_prefix = 'q'
    wire_dtype = 'rans'

    def __init__(self, config=None):
        super().__init__()
        self.config = c = config or self.Config()
        if c.quant not in ('mixed', 'noise'):
            raise ValueError('quant must be mixed or noise, got {}'.format(c.quant))
        e4, e8 = c.enc_widths
        self.encoder = nn.Sequential(
            nn.Conv2d(3, e4, 4, 4), nn.ReLU(inplace=True),
            _conv(e4, e8, 3, 2), nn.ReLU(inplace=True),
            _conv(e8, c.channels, 3, 2),
        )
        d16, d8, d4 = c.dec_widths
        self.decoder = nn.Sequential(
            _conv(c.channels, d16, 3), nn.ReLU(inplace=True),
            _conv(d16, d16, 3), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(d16, d8, 2, 2), nn.ReLU(inplace=True),
            _conv(d8, d8, 3), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(d8, d4, 2, 2), nn.ReLU(inplace=True),
            _conv(d4, 48, 3),
            nn.PixelShuffle(4),
        )
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
        return {'x_hat': self.synthesis(y_hat * ig), 'likelihoods': lik}

    # -- the trainer's interface (nanolink.export.train) --
    def train_loss(self, x, progress):
        q = torch.randint(len(self.config.lambdas), (x.shape[0],))
        out = self(x, q)
        px = x.shape[-2] * x.shape[-1]
        bpp = -torch.log2(out['likelihoods']).sum(dim=(1, 2, 3)) / px              # (B,)
        mse = ((out['x_hat'] - x) ** 2).mean(dim=(1, 2, 3))                        # (B,)
        lam = torch.tensor(self.config.lambdas, dtype=x.dtype)[q]
        loss = (lam * 255.0 ** 2 * mse + bpp).mean()
        return loss, {'bpp': bpp.mean().item(), 'mse': mse.mean().item()}

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

    def tables(self, i):
        """Integer tables {'lo', 'freqs'} of quality index i (0-based) from its prior as it is now."""
        return integer_tables(self.priors[i])

    @torch.no_grad()
    def data_init(self, x):
        """Start the first layer from a PCA of 4x4 patches of a batch x (B, 3, S, S): the top 32 components
        (orthonormal, scaled so that the first has unit variance) and their negatives (a ReLU keeps one sign)."""
        conv = self.encoder[0]
        n = conv.out_channels // 2
        patches = nn.functional.unfold(x - 0.5, 4, stride=4).permute(0, 2, 1).reshape(-1, 48).double()
        patches = patches - patches.mean(0)
        evals, evecs = torch.linalg.eigh(patches.T @ patches / len(patches))
        top = evecs[:, -n:].flip(1).T / evals[-1].clamp_min(1e-6).sqrt()                      # (n, 48)
        w = torch.cat([top, -top]).float().view(2 * n, 3, 4, 4)
        conv.weight.data[:2 * n].copy_(w)
        conv.bias.data.zero_()

    def decoder_module(self):
        return LatentDecoder(self)

    def encoder_module(self, k=None, code_dtype=torch.uint8):
        q = k or self.config.default_channels
        return SymbolEncoder(self, q - 1, code_dtype)


class SymbolEncoder(nn.Module):
    """What the edge runs for ``cae`` at one quality: image (1, 3, H, W) RGB in [0, 1] -> symbol indices
    (1, M, H/16, W/16), uint8 (float16 holding the same integers for TensorRT 8.2, which has no UINT8 I/O).

    The gain is folded into the last convolution; rounding and the per-channel clip to [lo, hi] are Round, Max,
    Min and Sub nodes (all in TensorRT 8.2's ONNX operator list). Index = clip(round(y * gain)) - lo."""

    def __init__(self, model, i, code_dtype=torch.uint8):
        super().__init__()
        layers = list(model.encoder.children())
        last = layers[-1]
        g = model.gain[i].detach().exp()
        head = nn.Conv2d(last.in_channels, last.out_channels, last.kernel_size, last.stride, last.padding)
        head.weight.data.copy_(last.weight.data * g.view(-1, 1, 1, 1))
        head.bias.data.copy_(last.bias.data * g)
        self.body = nn.Sequential(*layers[:-1], head)
        t = model.tables(i)
        lo = torch.tensor(t['lo'], dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer('lo', lo)
        self.register_buffer('hi', lo + torch.tensor([len(f) - 1 for f in t['freqs']], dtype=torch.float32).view(
            1, -1, 1, 1))
        self.code_dtype = code_dtype

    def forward(self, x):
        y = torch.round(self.body(x - 0.5))
        return (torch.min(torch.max(y, self.lo), self.hi) - self.lo).to(self.code_dtype)


class LatentDecoder(nn.Module):
    """What the host runs for ``cae``: dequantised latents (1, M, h, w) float32 -> display-ready image
    (1, 16h, 16w, 3) BGR uint8 (the + 0.5, BGR order and 0..255 scale folded into the last convolution)."""

    def __init__(self, model):
        super().__init__()
        layers = list(model.decoder.children())          # ..., conv 3x3 (d4 -> 48), PixelShuffle(4)
        self.body = nn.Sequential(*layers[:-2])
        self.head = display_conv(layers[-2], 4, offset=0.5)
        self.out = DisplayBytes(4)

    def forward(self, y_hat):
        return self.out(self.head(self.body(y_hat)))
