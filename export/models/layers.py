"""Layers and helpers the model families share: convolutions, the display-ready byte output of the decoders, the
BGR swap, fixed stencils, and the MAC count."""
import torch
import torch.nn as nn


def _conv(cin, cout, k, stride=1):
    pad = (k - 1) // 2 if stride == 1 else (k - stride) // 2
    return nn.Conv2d(cin, cout, k, stride, pad)


def swap_rb(x):
    """RGB <-> BGR on dim 1 with positive-step slices and a concat (TensorRT 8.2 parses these; negative-step
    slices it may not)."""
    return torch.cat([x[:, 2:3], x[:, 1:2], x[:, 0:1]], 1)


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


def display_layout(z, r):
    """(n, 3 r^2, h, w) in display_order(r) -> (n, r h, r w, 3), any dtype: the pixel shuffle as r row phases, each a
    channels-last transpose, interleaved by one concat of whole rows. ONNX Runtime's CPU DepthToSpace and 6-D
    transposes cost 2-3x more at 1008^2 (measured, README)."""
    n, _, h, w = z.shape
    rows = [z[:, 3 * r * a:3 * r * (a + 1)].permute(0, 2, 3, 1).reshape(n, h, 1, r * w, 3) for a in range(r)]
    return torch.cat(rows, 2).reshape(n, r * h, r * w, 3)


class DisplayBytes(nn.Module):
    """(1, 3 r^2, h, w) byte values + 0.5 in display_order(r) -> (1, r h, r w, 3) BGR uint8: clip, truncate, and
    display_layout (on bytes, a quarter of the float traffic)."""

    def __init__(self, r):
        super().__init__()
        self.r = r

    def forward(self, z):
        return display_layout(z.clamp(0, 255).to(torch.uint8), self.r)


class ResBlock(nn.Module):
    """x + conv 3x3 (ReLU (conv 3x3 (x))): depth where a decoder's features are few, for a quality decoder. Its
    second convolution starts at zero, so a block added to a trained decoder changes nothing until trained."""

    def __init__(self, width):
        super().__init__()
        self.conv1, self.conv2 = _conv(width, width, 3), _conv(width, width, 3)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x):
        return x + self.conv2(nn.functional.relu(self.conv1(x)))


def count_macs(module, x):
    """Multiply-accumulates of every Conv2d and ConvTranspose2d in module for input x (batch 1)."""
    total = [0]

    def hook(mod, inputs, out):
        k = mod.kernel_size[0] * mod.kernel_size[1]
        if isinstance(mod, nn.ConvTranspose2d):          # each input element feeds Cout / groups x k outputs
            total[0] += inputs[0].numel() // inputs[0].shape[0] * mod.out_channels * k // mod.groups
        else:
            total[0] += out.numel() // out.shape[0] * mod.in_channels * k // mod.groups

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
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
