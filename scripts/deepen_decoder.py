"""Deepen and widen a trained decoder without changing what it computes: a warm start for a larger decoder.

    python scripts/deepen_decoder.py runs/cae-bin/last.pt --add 1 --out runs/cae-L2-init.pt
    python scripts/deepen_decoder.py nanolink/common/weights/ae/ae.pt --add 4 --width 32 --out runs/ae-q-init.pt
    nanolink-train --model cae-bin --init runs/cae-L2-init.pt --arch dec_layers=2 ...
    python scripts/deepen_decoder.py runs/cae/last.pt --dec-widths 192,128,96 --out runs/cae-q-init.pt
    nanolink-train --model cae --init runs/cae-q-init.pt --arch dec_widths=192,128,96 --train-only decoder ...
    python scripts/deepen_decoder.py common/weights/cae/cae.pt --dec-res 3,2 --out runs/cae-res-init.pt

The decoders of ``cae-bin`` and ``ae`` are ``conv 3x3 -> ReLU -> [conv 3x3 -> ReLU] x dec_layers -> rest``;
``cae``'s (export/models/cae.py, Synthesis) has three widths, at H/16, H/8 and H/4, and ``--dec-widths`` widens them
(convolutions, transposed convolutions and the depthwise layer alike; its linear block path is copied) and
``--dec-res`` adds residual blocks at H/16 and H/8, each starting as the identity (its second convolution is zero).

- ``--add N``: each added 3x3 convolution is the identity (a Dirac kernel, zero bias) inserted after the existing
  middle layers; its input is a ReLU output (>= 0), so conv + ReLU returns its input unchanged (Net2DeeperNet).
- ``--width W``: every hidden layer gets W - dec_width new units. The old units keep their weights and get zero
  weights from the new units; the new units start from the usual random initialisation, and the layers after
  them (the output layer included) read them with zero weights. So the new units change nothing until training
  moves those zero weights, and their gradients are not zero from the first step (their activations are not).

The deepened and widened model decodes exactly as the old one (checked here on random symbols before the file is
written). The encoder is copied unchanged. Training then starts from the old model's quality instead of from
scratch (Net2Net, Chen et al. 2016).
"""
import argparse
import dataclasses
import sys

import torch
from torch import nn

from nanolink.export.models import build_model
from nanolink.export.models.layers import ResBlock
from nanolink.export.model_io import load_checkpoint, save_checkpoint


def _convs(decoder):
    return [m for m in decoder.children() if isinstance(m, nn.Conv2d)]


def _copy_into(dst, src):
    """dst (a wider conv) computes src's outputs in its first outputs and ignores its extra inputs there; its extra
    outputs keep their initialisation."""
    o, i = src.weight.shape[:2]
    with torch.no_grad():
        dst.weight[:o, :i] = src.weight
        dst.weight[:o, i:] = 0
        dst.bias[:o] = src.bias


def _widen_into(dst, src):
    """Like _copy_into for any layer of cae's Synthesis: Conv2d weights are (out, in, k, k), ConvTranspose2d ones
    (in, out, k, k), a depthwise conv's (channels, 1, k, k)."""
    with torch.no_grad():
        if isinstance(dst, nn.ConvTranspose2d):
            i, o = src.weight.shape[:2]
            dst.weight[:i, :o] = src.weight
            dst.weight[i:, :o] = 0
        elif dst.groups > 1:
            dst.weight[:src.weight.shape[0]] = src.weight
        else:
            _copy_into(dst, src)
            return
        dst.bias[:src.bias.shape[0]] = src.bias


def widen_cae(model, widths=None, res=None):
    """-> a cae model whose decoder has ``widths`` (d16, d8, d4) units and ``res`` (r16, r8) residual blocks,
    decoding exactly like ``model``; encoder, gains and priors copied (the same bits on the wire). The old layers
    keep their place in the new body; the new residual blocks start as the identity (ResBlock's zero second
    convolution)."""
    old, old_res = tuple(model.config.dec_widths), tuple(model.config.dec_res)
    widths = old if widths is None else tuple(widths)
    res = old_res if res is None else tuple(res)
    if len(widths) != len(old) or any(w < o for w, o in zip(widths, old)):
        raise ValueError('--dec-widths must be 3 widths, each at least the current {}, got {}'.format(
            ','.join(map(str, old)), ','.join(map(str, widths))))
    if len(res) != 2 or any(r < o for r, o in zip(res, old_res)):
        raise ValueError('--dec-res must be 2 counts, each at least the current {}, got {}'.format(
            ','.join(map(str, old_res)), ','.join(map(str, res))))
    if widths == old and res == old_res:
        raise ValueError('give --dec-widths or --dec-res larger than the current {} / {}'.format(
            ','.join(map(str, old)), ','.join(map(str, old_res))))
    new = build_model('cae', **dict(dataclasses.asdict(model.config), dec_widths=widths, dec_res=res))
    new.eval()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith('decoder.body.')}
    missing = new.load_state_dict(state, strict=False).missing_keys
    assert all(k.startswith('decoder.body.') for k in missing), missing
    olds = [m for m in model.decoder.body if not isinstance(m, ResBlock)]
    for src, dst in zip(olds, [m for m in new.decoder.body if not isinstance(m, ResBlock)]):
        if isinstance(src, (nn.Conv2d, nn.ConvTranspose2d)):
            _widen_into(dst, src)
    for scale in (0, 1):                              # a scale's old blocks become its first new ones
        for src, dst in zip(_blocks(model.decoder.body, scale), _blocks(new.decoder.body, scale)):
            _widen_into(dst.conv1, src.conv1)
            _widen_into(dst.conv2, src.conv2)
    return new


def _blocks(body, scale):
    """The residual blocks of a cae decoder body at a scale: 0 before the first transposed convolution (H/16), 1
    after it (H/8)."""
    out, ups = [], 0
    for layer in body:
        ups += isinstance(layer, nn.ConvTranspose2d)
        if isinstance(layer, ResBlock) and ups == scale:
            out.append(layer)
    return out


def deepen(model, add, width=None):
    """-> a new model with ``add`` more identity 3x3 layers in its decoder and ``width`` hidden units per layer
    (default: unchanged), decoding exactly like ``model``."""
    old_width = model.config.dec_width
    width = old_width if width is None else width
    if width < old_width:
        raise ValueError('--width must be at least the current decoder width {}, got {}'.format(old_width, width))
    if add < 0 or (add == 0 and width == old_width):
        raise ValueError('--add must be at least 1 (or give --width above the current {}), got --add {}'.format(
            old_width, add))
    cfg = dataclasses.replace(model.config, dec_layers=model.config.dec_layers + add, dec_width=width)
    new = build_model(model.model_name, **dataclasses.asdict(cfg))
    new.eval()
    new.encoder.load_state_dict(model.encoder.state_dict())
    old, fresh = _convs(model.decoder), _convs(new.decoder)
    keep = 1 + model.config.dec_layers                  # the first conv and the old middle convs
    for src, dst in zip(old[:keep], fresh[:keep]):
        _copy_into(dst, src)
    for conv in fresh[keep:keep + add]:
        nn.init.dirac_(conv.weight)
        nn.init.zeros_(conv.bias)
    for src, dst in zip(old[keep:], fresh[keep + add:]):
        _copy_into(dst, src)
    return new


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('checkpoint', help='a nanolink-train checkpoint (last.pt)')
    p.add_argument('--add', type=int, default=1, help='3x3 layers to add to the decoder (0 with --width)')
    p.add_argument('--width', type=int, default=None, help='new decoder width (default: unchanged)')
    p.add_argument('--dec-widths', metavar='D16,D8,D4', help='cae: the new decoder widths at H/16, H/8, H/4')
    p.add_argument('--dec-res', metavar='R16,R8', help='cae: residual blocks in the decoder at H/16, H/8')
    p.add_argument('--out', required=True, help='where to write the new checkpoint (for nanolink-train --init)')
    args = p.parse_args(argv)
    model, _ = load_checkpoint(args.checkpoint)
    if (model.model_name == 'cae') != (args.dec_widths is not None or args.dec_res is not None):
        p.error('--dec-widths / --dec-res are for cae checkpoints, --add / --width for cae-bin and ae; {} is {}'
                .format(args.checkpoint, model.model_name))
    try:
        if model.model_name == 'cae':
            new = widen_cae(model, [int(w) for w in args.dec_widths.split(',')] if args.dec_widths else None,
                            [int(r) for r in args.dec_res.split(',')] if args.dec_res else None)
        else:
            new = deepen(model, args.add, args.width)
    except ValueError as e:
        p.error(str(e))
    torch.manual_seed(0)
    s = torch.randn(2, model.config.channels, 24, 24)
    s = torch.sign(s) if model.model_name == 'cae-bin' else (torch.round(s * 4) if model.model_name == 'cae'
                                                             else s.sigmoid())
    with torch.no_grad():
        a = model.synthesis(s) if hasattr(model, 'synthesis') else model.decode_symbols(s)
        b = new.synthesis(s) if hasattr(new, 'synthesis') else new.decode_symbols(s)
    diff = (a - b).abs().max().item()
    if diff > 1e-5:
        raise SystemExit('deepen_decoder: the new decoder differs by {:.3g}; not written'.format(diff))
    save_checkpoint(new, args.out)
    if model.model_name == 'cae':
        print('{}: decoder widths {} -> {}, residual blocks {} -> {}, same output (max diff {:.1e}); wrote {}'.format(
            args.checkpoint, model.config.dec_widths, new.config.dec_widths, model.config.dec_res,
            new.config.dec_res, diff, args.out))
        return 0
    print('{}: decoder {} -> {} middle layers, width {} -> {}, same output (max diff {:.1e}); wrote {}'.format(
        args.checkpoint, model.config.dec_layers, new.config.dec_layers, model.config.dec_width,
        new.config.dec_width, diff, args.out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
