"""``cae-bin``: the slides' Lossy compressive autoencoder with a progressive binary code at H/4 (bits packed on the
device, zlib on the edge)."""
import dataclasses
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from nanolink.export.models.layers import DisplayBytes, _conv, display_conv
from nanolink.export.models.registry import register_model


class Binarizer(torch.autograd.Function):
    """x in (-1, 1) -> {-1, +1}; gradient passes straight through (identity).

    stochastic=True samples +1 with probability (1 + x) / 2 (Toderici et al. 2016), so the expected
    code equals x; stochastic=False is sign(x) with x == 0 mapped to -1, exactly what the exported
    encoder graph computes with ``x > 0``.
    """

    @staticmethod
    def forward(ctx, x, stochastic):
        if stochastic:
            return torch.where(torch.rand_like(x) < (1 + x) / 2, 1.0, -1.0).to(x.dtype)
        return torch.where(x > 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


@register_model('cae-bin')
class LossyCAE(nn.Module):
    """Lossy compressive autoencoder with a progressive binary code at H/4.

    Encoder (edge, ~1.5 kMAC per input pixel):
        x (B, 3, H, W) in [0, 1]
        -> conv 4x4/2 -> ReLU                      (B, e0, H/2, W/2)
        -> conv 4x4/2 -> ReLU                      (B, e1, H/4, W/4)
        -> conv 1x1 -> ReLU -> conv 3x3 -> tanh    (B, C, H/4, W/4)
        -> binarise                                (B, C, H/4, W/4) in {-1, +1}
    Decoder (host): symbols (B, C, H/4, W/4) in {-1, 0, +1}, 0 = channel not sent
        -> conv 3x3 -> ReLU -> [conv 3x3 -> ReLU] x dec_layers -> conv 1x1 -> ReLU -> conv 1x1 -> PixelShuffle(4)
        -> (B, 3, H, W)
    The first k channels decode on their own (the decoder is trained with random truncation), so one
    model serves every rate point: bpp = k / 16 before entropy coding.
    """

    @dataclasses.dataclass
    class Config:
        channels: int = 16                 # binary channels at H/4 (16 -> 1.0 bpp at full rate)
        enc_widths: Tuple[int, int] = (16, 48)   # encoder widths at H/2 and H/4
        dec_width: int = 64                # decoder width at H/4
        dec_layers: int = 1                # 3x3 (dec_width -> dec_width) convolutions after the first
        rate_points: Tuple[int, ...] = (4, 8, 16)  # channel counts the decoder is trained for
        default_channels: int = 8          # what edge-sender sends unless asked otherwise

    stride = 4       # H / h of the code
    multiple = 8     # frames are padded to a multiple of this (H/4 even, for in-graph bit packing)
    rate_prefix = 'k'   # rate points are channel counts
    wire_dtype = 'bits'

    def __init__(self, config=None):
        super().__init__()
        self.config = config or self.Config()
        c = self.config
        e0, e1 = c.enc_widths
        self.encoder = nn.Sequential(
            _conv(3, e0, 4, 2), nn.ReLU(inplace=True),
            _conv(e0, e1, 4, 2), nn.ReLU(inplace=True),
            _conv(e1, e1, 1), nn.ReLU(inplace=True),
            _conv(e1, c.channels, 3),
        )
        d = c.dec_width
        mid = []
        for _ in range(c.dec_layers):
            mid += [_conv(d, d, 3), nn.ReLU(inplace=True)]
        self.decoder = nn.Sequential(
            _conv(c.channels, d, 3), nn.ReLU(inplace=True),
            *mid,
            _conv(d, d, 1), nn.ReLU(inplace=True),
            _conv(d, 3 * self.stride ** 2, 1),
            nn.PixelShuffle(self.stride),
        )

    def analysis(self, x):
        """Pre-binarisation code in (-1, 1). x: (B, 3, H, W) in [0, 1]."""
        return torch.tanh(self.encoder(x - 0.5))        # (B, C, H/4, W/4)

    def encode_bits(self, x):
        """Deterministic bits {0, 1} as float, (B, C, H/4, W/4): what the edge sends."""
        return (self.analysis(x) > 0).to(x.dtype)

    def decode_symbols(self, s):
        """s: (B, C, h, w) in {-1, 0, +1} (0 = not sent) -> image (B, 3, 4h, 4w), unclamped."""
        return self.decoder(s) + 0.5

    @staticmethod
    def truncation_mask(keep, channels, device):
        """(B, C, 1, 1) mask that keeps the first keep[b] channels of sample b."""
        idx = torch.arange(channels, device=device).view(1, -1, 1, 1)
        return (idx < keep.view(-1, 1, 1, 1)).float()

    def decoder_module(self):
        return SymbolDecoder(self)

    def encoder_module(self, k=None, code_dtype=torch.uint8):
        return PackedEncoder(self, k or self.config.default_channels, code_dtype)

    def forward(self, x, keep=None, stochastic=False):
        """Training pass. keep: (B,) channels kept per sample (default: all)."""
        y = self.analysis(x)
        b = Binarizer.apply(y, stochastic)
        if keep is not None:
            b = b * self.truncation_mask(keep, self.config.channels, x.device)
        return {'x_hat': self.decode_symbols(b), 'y': y, 'bits': b}

    # -- the trainer's interface (nanolink.export.train) --
    def train_output(self, x, progress, stochastic_frac=0.7):
        """x_hat for one training batch: a random rate point per sample; stochastic binariser early on."""
        rates = torch.tensor(self.config.rate_points)
        keep = rates[torch.randint(len(rates), (x.shape[0],))]
        return self(x, keep=keep, stochastic=progress < stochastic_frac)['x_hat']

    @torch.no_grad()
    def rate_outputs(self, x):
        """{rate point: x_hat} for one padded image, and code-health numbers."""
        y = self.analysis(x)
        bits = torch.where(y > 0, 1.0, -1.0)
        health = {'flip_share': ((torch.rand_like(y) < (1 + y) / 2).float() * 2 - 1 != bits).float().mean().item(),
                  'balance': (bits > 0).float().mean(dim=(0, 2, 3))}
        out = {}
        for k in self.config.rate_points:
            s = bits.clone()
            s[:, k:] = 0
            out[k] = self.decode_symbols(s)
        return out, health


class PackedEncoder(nn.Module):
    """What the edge runs: image (1, 3, H, W) in [0, 1] -> wire payload bytes, uint8 (1, h, w * k / 8).

    Only the first k channels are computed (the last conv keeps its first k filters). Bits are packed on
    the device by a fixed convolution of powers of two, in the wire order of nanolink.common.wire
    ((y, x, c) flattened, channel fastest, MSB first), so the device -> host copy is k * h * w / 8 bytes:
      k % 8 == 0: a 1x1 conv folds channels 8j..8j+7 into byte plane j, planes go last;
      8 % k == 0: a 1 x (8/k) conv with stride 8/k folds k channels of 8/k neighbouring columns.
    """

    def __init__(self, model, k, code_dtype=torch.uint8):
        super().__init__()
        self.code_dtype = code_dtype     # uint8; float16 for TensorRT 8.2 (no UINT8 I/O; 0..255 are exact)
        if not (k % 8 == 0 or 8 % k == 0) or not 1 <= k <= model.config.channels:
            raise ValueError('cannot pack {} channels on the device: use a rate point that divides 8 or is a '
                             'multiple of 8, at most {}'.format(k, model.config.channels))
        layers = list(model.encoder.children())
        last = layers[-1]
        head = nn.Conv2d(last.in_channels, k, last.kernel_size, last.stride, last.padding)
        head.weight.data.copy_(last.weight.data[:k])
        head.bias.data.copy_(last.bias.data[:k])
        self.body = nn.Sequential(*layers[:-1], head)
        self.k = k
        if k % 8 == 0:
            w = torch.zeros(k // 8, k, 1, 1)
            for c in range(k):
                w[c // 8, c, 0, 0] = 2.0 ** (7 - c % 8)
            self.pack_stride = (1, 1)
        else:
            g = 8 // k
            w = torch.zeros(1, k, 1, g)
            for t in range(g):
                for c in range(k):
                    w[0, c, 0, t] = 2.0 ** (7 - (t * k + c))
            self.pack_stride = (1, g)
        self.register_buffer('pack_weight', w)

    def forward(self, x):
        bits = (self.body(x - 0.5) > 0).to(x.dtype)                          # (1, k, h, w) in {0, 1}
        packed = F.conv2d(bits, self.pack_weight, stride=self.pack_stride)   # (1, P, h, w') byte values
        packed = packed.permute(0, 2, 3, 1)                                  # (1, h, w', P)
        return packed.reshape(packed.shape[0], packed.shape[1], -1).to(self.code_dtype)   # (1, h, w*k/8)


class SymbolDecoder(nn.Module):
    """What the host runs for ``cae-bin``: symbols (1, C, h, w) in {-1, 0, +1} -> display-ready image (1, 4h, 4w, 3)
    BGR uint8: ``model.decode_symbols`` rounded to bytes, with the + 0.5, the BGR order and the 0..255 scale
    folded into the last 1x1 convolution (DisplayBytes has the shuffle)."""

    def __init__(self, model):
        super().__init__()
        layers = list(model.decoder.children())          # ..., conv 1x1 (d -> 3 * 16), PixelShuffle(4)
        self.body = nn.Sequential(*layers[:-2])
        self.head = display_conv(layers[-2], model.stride, offset=0.5)
        self.out = DisplayBytes(model.stride)

    def forward(self, s):
        return self.out(self.head(self.body(s)))
