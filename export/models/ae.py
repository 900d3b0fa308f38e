"""``ae`` and ``ae-full``: autoencoders whose code is an 8-bit image coded with JPEG (ComCNN -> codec -> RecCNN)."""
import dataclasses
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from nanolink.export.models.layers import (DisplayBytes, _conv, bilinear_up2_stencils, display_conv,
                                           space_to_depth_stencils, swap_rb)
from nanolink.export.models.registry import register_model


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
    run_fields = ('train_quality',)       # how a run trains, not the tensors: --init does not carry it over

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
