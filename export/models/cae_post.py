"""``cae``'s quality decoder: the fast decoder plus a post-filter of its picture (``--arch post=W,B``).

A post-filter trained alone on the frozen fast decoder (``nanolink-train --train-only post``) leaves the fast
decoder's weights as they are, so the exported quality decoder holds them unchanged: RefinedDecoder runs the fast
decoder's very modules (LatentDecoder's, byte scale and BGR order folded in), and nanolink-export stores those
weights once for both decoders (nanolink.export.onnx_graph.share_by_value). The bundle grows by the filter alone.
"""
import copy

import torch
import torch.nn as nn

from nanolink.export.models.layers import ResBlock, _conv, display_layout

BYTE_OFFSET = 128.0       # LatentDecoder's bytes before truncation: 255 * centred picture + 127.5 + 0.5


class PostFilter(nn.Module):
    """A quality decoder's refinement of the picture (B, 3, H, W), centred, at half resolution: space-to-depth 2
    -> conv 3x3 (12 -> width) -> ReLU -> blocks x ResBlock (width) -> conv 3x3 (width -> 12) -> depth-to-space 2;
    its output is added to the picture. Half resolution sees twice as far per MAC (the linear path's block edges
    and the ringing of coarse latents are wider than a pixel). Its last convolution starts at zero: added to a
    trained decoder, it changes nothing until trained."""

    def __init__(self, width, blocks):
        super().__init__()
        self.net = nn.Sequential(nn.PixelUnshuffle(2), _conv(12, width, 3), nn.ReLU(inplace=True),
                                 *[ResBlock(width) for _ in range(blocks)], _conv(width, 12, 3), nn.PixelShuffle(2))
        nn.init.zeros_(self.net[-2].weight)
        nn.init.zeros_(self.net[-2].bias)

    def forward(self, x):
        return self.net(x)


def _bgr_phases():
    """PixelUnshuffle(2) channel c * 4 + k of a BGR picture holds RGB channel (2 - c) * 4 + k."""
    return torch.tensor([(2 - c) * 4 + k for c in range(3) for k in range(4)])


class RefinedDecoder(nn.Module):
    """What the host runs for a quality decoder: dequantised latents (1, M, h, w) -> (1, 16h, 16w, 3) BGR uint8.

    fast: the model's LatentDecoder; its head and linear path give the picture's bytes (+ 0.5), which are laid out
    as pixels in float, shifted to centred (x 255), filtered, added, clipped and truncated. The filter works on the
    centred RGB picture in [-0.5, 0.5] as in training: the / 255 and the BGR order are folded into its first
    convolution, the x 255 and the order back into its last (zero padding stays zero under both)."""

    def __init__(self, fast, post):
        super().__init__()
        self.body, self.head, self.linear = fast.body, fast.head, fast.linear
        self.post = copy.deepcopy(post.net)
        first, last = self.post[1], self.post[-2]
        order = _bgr_phases()
        with torch.no_grad():
            first.weight.copy_(first.weight[:, order] / 255.0)
            last.weight.copy_(last.weight[order] * 255.0)
            last.bias.copy_(last.bias[order] * 255.0)

    def forward(self, y_hat):
        full = display_layout(self.head(self.body(y_hat)) + self.linear(y_hat), 4)      # (1, H, W, 3) bytes + 0.5
        fix = self.post(full.permute(0, 3, 1, 2) - BYTE_OFFSET).permute(0, 2, 3, 1)
        return (full + fix).clamp(0, 255).to(torch.uint8)                               # truncation rounds
