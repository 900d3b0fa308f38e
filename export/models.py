"""Torch definitions of nanolink's learned codecs.

The contract (after CompressAI): ``forward(x, keep)`` returns a dict for training;
``encode_bits(x)`` returns the binary code the edge sends; ``decode_symbols(s)`` returns the image the
host shows. The edge only ever runs the encoder half and the host only the decoder half.

Run ``python -m nanolink.export.models`` to print each registered model's size and MAC budget.
"""
import argparse
import dataclasses
import sys
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

MODELS = {}


def register_model(name):
    """Class decorator: make a model available by name to the CLIs (``--model NAME``)."""
    def wrap(cls):
        MODELS[name] = cls
        cls.model_name = name
        return cls
    return wrap


def build_model(name, **config):
    if name not in MODELS:
        raise ValueError('unknown model "{}", should be one of {}'.format(name, sorted(MODELS)))
    cls = MODELS[name]
    return cls(cls.Config(**config))


def _conv(cin, cout, k, stride=1):
    pad = (k - 1) // 2 if stride == 1 else (k - stride) // 2
    return nn.Conv2d(cin, cout, k, stride, pad)


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


def jpeg_round_trip(code, quality, sizes=None):
    """Real OpenCV JPEG of each (3, h, w) RGB code image in [0, 1] at quality[b]; 8-bit rounding included.
    sizes: a list that receives each JPEG's byte count."""
    import cv2
    import numpy as np
    out = []
    for img, q in zip(code.detach().clamp(0, 1).cpu().numpy(), quality):
        bgr = np.ascontiguousarray((img[::-1].transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8))
        buf = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(q)])[1]
        if sizes is not None:
            sizes.append(len(buf))
        dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        out.append(torch.from_numpy(dec[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255.0))
    return torch.stack(out).to(code.device)


@register_model('ae')
class CodeImageAE(nn.Module):
    """Autoencoder whose code is a small 8-bit RGB image, coded with JPEG (ComCNN -> codec -> RecCNN,
    Jiang et al. 2017, seeds 000/002).

    Encoder (edge, <= 2.3 kMAC per input pixel): x (B, 3, H, W) in [0, 1]
        code = clamp(avgpool2(x) + [conv 4x4/2 -> ReLU -> conv 3x3 -> ReLU -> conv 3x3](x), 0, 1)
        -> (B, 3, H/2, W/2), sent as an 8-bit image coded with JPEG at quality q (the rate control).
        The correction starts at zero (code = average pool). Trained jointly through JPEG's straight-through
        gradient it made the codes costlier and the pictures worse (README), so the bundled ae trains the
        decoder only (--train-only decoder, step one of Jiang et al.'s alternating optimisation); while the
        correction is zero the exported encoder is the average pool alone.
    Decoder (host), on the JPEG-decoded code c:
        x_hat = bilinear_up2(c) + PixelShuffle(2)(conv 3x3 -> ReLU -> [conv 3x3 -> ReLU] x dec_layers
                -> conv 1x1 -> ReLU -> conv 3x3)(c)
    Trained end to end through the real JPEG codec (straight-through gradient), with q drawn at random from
    the training range, so one decoder serves every quality.

    ``code_scale=1`` (the bundled ``ae-full``, class FullCodeAE) keeps the code at full size: the encoder is the
    identity (the edge sends the frame as JPEG) and the decoder removes JPEG's artifacts at half resolution:
        x_hat = c + PixelShuffle(2)(conv 4x4/2 -> ReLU -> [conv 3x3 -> ReLU] x dec_layers -> conv 1x1 -> ReLU
                -> conv 3x3)(c)
    The half-size code wins at low rates, where JPEG of the full frame falls apart; the full-size code wins above
    ~0.4 bpp on Kodak, where the half-size picture's lost detail costs more than JPEG's artifacts (README).
    """

    @dataclasses.dataclass
    class Config:
        enc_widths: Tuple[int, int] = (32, 24)
        dec_width: int = 16                           # 16 = ONNX Runtime's CPU conv block (AVX-512): no padding
        dec_layers: int = 2                           # 3x3 (dec_width -> dec_width) convolutions after the first
        rate_points: Tuple[int, ...] = (50, 75, 85, 95)   # JPEG qualities of the code image
        default_channels: int = 75                    # the default quality (the name is the manifest's)
        train_quality: Tuple[int, int] = (35, 95)     # qualities drawn in training
        channels: int = 3                             # the code image's channels
        code_scale: int = 2                           # frame side / code side: 2 (half-size code) or 1

    # values of fields that checkpoints written before the field existed were trained with
    legacy_config = {'dec_layers': 1}

    multiple = 2
    rate_prefix = 'q'   # rate points are JPEG qualities
    wire_dtype = 'jpeg'

    def __init__(self, config=None):
        super().__init__()
        self.config = config or self.Config()
        c = self.config
        if c.code_scale not in (1, 2):
            raise ValueError('code_scale must be 1 or 2, got {}'.format(c.code_scale))
        self.stride = c.code_scale
        e0, e1 = c.enc_widths
        if c.code_scale == 1:
            self.encoder = nn.Sequential()               # the code is the frame itself
        else:
            self.encoder = nn.Sequential(
                _conv(3, e0, 4, 2), nn.ReLU(inplace=True),
                _conv(e0, e1, 3), nn.ReLU(inplace=True),
                _conv(e1, 3, 3),
            )
            nn.init.zeros_(self.encoder[-1].weight)      # start from code = avgpool2(x): a plain half-size picture
            nn.init.zeros_(self.encoder[-1].bias)
        d = c.dec_width
        mid = []
        for _ in range(c.dec_layers):
            mid += [_conv(d, d, 3), nn.ReLU(inplace=True)]
        self.decoder = nn.Sequential(
            _conv(3, d, 3) if c.code_scale == 2 else _conv(3, d, 4, 2), nn.ReLU(inplace=True),
            *mid,
            _conv(d, d, 1), nn.ReLU(inplace=True),
            _conv(d, 3 * 4, 3),
            nn.PixelShuffle(2),
        )

    def correction_is_zero(self):
        """True while the encoder's learned correction is exactly zero (its last conv is all zeros): the code
        is then the 2x2 average pool, and exported graphs skip the convolutions that add nothing."""
        if self.stride == 1:
            return True
        last = self.encoder[-1]
        return not (last.weight.detach().any() or last.bias.detach().any())

    def analysis(self, x):
        """Code image (B, 3, H/s, W/s) in [0, 1], before 8-bit rounding and JPEG (s = code_scale)."""
        if self.stride == 1:
            return x.clamp(0, 1)
        if not self.training and self.correction_is_zero():
            return F.avg_pool2d(x, 2).clamp(0, 1)
        return (F.avg_pool2d(x, 2) + self.encoder(x - 0.5)).clamp(0, 1)

    def synthesis(self, c):
        """Decoded code image (B, 3, h, w) in [0, 1] -> image (B, 3, s h, s w), unclamped (s = code_scale)."""
        up = c if self.stride == 1 else F.interpolate(c, scale_factor=2, mode='bilinear', align_corners=False)
        return up + self.decoder(c - 0.5)

    def forward(self, x, quality):
        c = self.analysis(x)
        c_hat = c + (jpeg_round_trip(c, quality) - c).detach()     # real codec forward, identity backward
        return {'x_hat': self.synthesis(c_hat), 'code': c}

    def train_output(self, x, progress, stochastic_frac=None):
        lo, hi = self.config.train_quality
        return self(x, torch.randint(lo, hi + 1, (x.shape[0],)).tolist())['x_hat']

    @torch.no_grad()
    def rate_outputs(self, x):
        """{quality: x_hat} and {'bpp': {quality: JPEG bits per input pixel}} for one padded image."""
        c = self.analysis(x)
        out, bpp = {}, {}
        for q in self.config.rate_points:
            sizes = []
            out[q] = self.synthesis(jpeg_round_trip(c, [q], sizes))
            bpp[q] = sizes[0] * 8.0 / (x.shape[-2] * x.shape[-1])
        return out, {'bpp': bpp}

    def decoder_module(self):
        return CodeDecoder(self)

    def encoder_module(self, k=None, code_dtype=torch.uint8):
        return CodeEncoder(self, code_dtype)


@register_model('ae-full')
class FullCodeAE(CodeImageAE):
    """``ae`` with a full-size code (code_scale=1): JPEG of the frame itself and a decoder that removes JPEG's
    block and ringing artifacts. For rates above ~0.4 bpp, where ``ae``'s half-size code loses to JPEG."""

    @dataclasses.dataclass
    class Config(CodeImageAE.Config):
        dec_layers: int = 3
        rate_points: Tuple[int, ...] = (10, 20, 30, 50)
        default_channels: int = 20
        train_quality: Tuple[int, int] = (5, 60)
        code_scale: int = 1

    legacy_config = {}


def swap_rb(x):
    """RGB <-> BGR on dim 1 with positive-step slices and a concat (TensorRT 8.2 parses these; negative-step
    slices it may not)."""
    return torch.cat([x[:, 2:3], x[:, 1:2], x[:, 0:1]], 1)


class CodeEncoder(nn.Module):
    """What the edge runs for ``ae``: image (1, 3, H, W) RGB in [0, 1] -> code (1, H/s, W/s, 3) BGR bytes (s: the
    code scale, 2 or 1), ready for JPEG (cv2.imencode). code_dtype float16 for TensorRT 8.2 (0..255 are exact)."""

    def __init__(self, model, code_dtype=torch.uint8):
        super().__init__()
        self.model, self.code_dtype = model, code_dtype

    def forward(self, x):
        c = self.model.analysis(x)                                       # (1, 3, h, w) RGB
        c = torch.floor(c * 255.0 + 0.5)
        return swap_rb(c).permute(0, 2, 3, 1).to(self.code_dtype)        # (1, h, w, 3) BGR


class CodeDecoder(nn.Module):
    """What the host runs for ``ae``: code (1, h, w, 3) BGR bytes as float32 -> display-ready image (1, s h, s w, 3)
    BGR uint8 (s: the code scale, 2 or 1).

    The same function as ``model.synthesis`` followed by rounding to bytes, rearranged for a CPU host: the BGR
    order and the 0..255 scale are folded into the first and last convolutions, and the skip (bilinear x2 for a
    half-size code, the code itself for a full-size one) is added before the pixel shuffle, at half resolution,
    as a fixed convolution (DisplayBytes has the shuffle)."""

    def __init__(self, model):
        super().__init__()
        layers = list(model.decoder.children())          # conv (3 -> d), ..., conv 3x3 (d -> 12), PixelShuffle(2)
        first = layers[0]
        bgr_first = nn.Conv2d(first.in_channels, first.out_channels, first.kernel_size, first.stride, first.padding)
        bgr_first.weight.data.copy_(first.weight.data[:, [2, 1, 0]])     # takes BGR instead of RGB
        bgr_first.bias.data.copy_(first.bias.data)
        self.body = nn.Sequential(bgr_first, *layers[1:-2])
        self.head = display_conv(layers[-2], 2)
        self.full_size = model.stride == 1
        self.register_buffer('skip', space_to_depth_stencils() if self.full_size else bilinear_up2_stencils())
        self.out = DisplayBytes(2)

    def forward(self, code):
        c = code.permute(0, 3, 1, 2)                                        # (1, 3, h, w) BGR byte values
        if self.full_size:
            skip = F.conv2d(c, self.skip, stride=2)                         # the code itself, in output order
        else:
            skip = F.conv2d(F.pad(c, (1, 1, 1, 1), mode='replicate'), self.skip)  # bilinear x2, byte scale
        return self.out(self.head(self.body(c / 255.0 - 0.5)) + skip)


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


def display_order(r):
    """Channel permutation from PixelShuffle(r)'s order (c, a, b) over RGB to DisplayBytes' order (a, b, c') over
    BGR, where a and b are the row and column phase of the output pixel."""
    return [(2 - cb) * r * r + a * r + b for a in range(r) for b in range(r) for cb in range(3)]


def display_conv(conv, r, offset=0.0):
    """A copy of ``conv`` (the layer before PixelShuffle(r), output ~[0, 1] RGB after adding ``offset``) whose
    outputs are byte values + 0.5 in DisplayBytes' order, so that truncation rounds to the nearest byte."""
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding)
    order = display_order(r)
    out.weight.data.copy_(conv.weight.data[order] * 255.0)
    out.bias.data.copy_((conv.bias.data[order] + offset) * 255.0 + 0.5)
    return out


def bilinear_up2_stencils():
    """x2 bilinear upsampling (align_corners=False, edge pixels repeated) of a 3-channel image as a conv of its
    1-pixel replicate-padded input: 12 3x3 filters, one per output phase and channel in DisplayBytes' order."""
    taps = {0: torch.tensor([0.25, 0.75, 0.0]), 1: torch.tensor([0.0, 0.75, 0.25])}   # out[2i + a] from x[i-1..i+1]
    w = torch.zeros(12, 3, 3, 3)
    for n, (a, b, c) in enumerate((a, b, c) for a in range(2) for b in range(2) for c in range(3)):
        w[n, c] = torch.outer(taps[a], taps[b])
    return w


def space_to_depth_stencils():
    """A full-size 3-channel image as 12 channels at half size in DisplayBytes' order (row phase, column phase,
    channel): one-hot 2x2 filters applied with stride 2 (ONNX Runtime's CPU SpaceToDepth is a 6-D transpose)."""
    w = torch.zeros(12, 3, 2, 2)
    for n, (a, b, c) in enumerate((a, b, c) for a in range(2) for b in range(2) for c in range(3)):
        w[n, c, a, b] = 1.0
    return w


class DisplayBytes(nn.Module):
    """(1, 3 r^2, h, w) byte values + 0.5 in display_order(r) -> (1, r h, r w, 3) BGR uint8: clip, truncate, and
    the pixel shuffle done as r row phases, each a channels-last transpose, interleaved by one concat of whole
    rows. ONNX Runtime's CPU DepthToSpace and 6-D transposes cost 2-3x more at 1008^2 (measured, README)."""

    def __init__(self, r):
        super().__init__()
        self.r = r

    def forward(self, z):
        r = self.r
        y = z.clamp(0, 255).to(torch.uint8)
        n, _, h, w = y.shape
        rows = [y[:, 3 * r * a:3 * r * (a + 1)].permute(0, 2, 3, 1).reshape(n, h, 1, r * w, 3) for a in range(r)]
        return torch.cat(rows, 2).reshape(n, r * h, r * w, 3)


def count_macs(module, x):
    """Multiply-accumulates of every Conv2d in module for input x (batch 1)."""
    total = [0]

    def hook(mod, inputs, out):
        k = mod.kernel_size[0] * mod.kernel_size[1]
        total[0] += out.numel() // out.shape[0] * mod.in_channels * k // mod.groups

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        module(x)
    for h in handles:
        h.remove()
    return total[0]


def budget(model, size=1008):
    """MACs per input pixel of the encoder and the decoder at size x size, and parameter counts."""
    x = torch.zeros(1, 3, size, size)
    enc = count_macs(model.encoder, x - 0.5)
    s = torch.zeros(1, model.config.channels, size // model.stride, size // model.stride)
    dec = count_macs(model.decoder, s)           # convolutions only (ae's bilinear upsampling is not counted)
    px = size * size
    return {
        'encoder_mac_per_px': enc / px, 'decoder_mac_per_px': dec / px,
        'encoder_params': sum(p.numel() for p in model.encoder.parameters()),
        'decoder_params': sum(p.numel() for p in model.decoder.parameters()),
    }


def main(argv=None):
    p = argparse.ArgumentParser(prog='python -m nanolink.export.models', description=__doc__.split('\n')[0])
    p.add_argument('--size', type=int, default=1008, help='square frame side for the MAC count')
    args = p.parse_args(argv)
    for name in sorted(MODELS):
        b = budget(build_model(name), args.size)
        print('{:6s} encoder {:7.0f} MAC/px {:8d} params | decoder {:7.0f} MAC/px {:8d} params'.format(
            name, b['encoder_mac_per_px'], b['encoder_params'], b['decoder_mac_per_px'], b['decoder_params']))
    return 0


from nanolink.export import cae  # noqa: E402,F401  (registers 'cae'; it builds on the helpers above)

if __name__ == '__main__':
    sys.exit(main())
