"""Deepen a trained decoder without changing what it computes: a warm start for a larger fast decoder.

    python scripts/deepen_decoder.py runs/cae/last.pt --add 1 --out runs/cae-L2-init.pt
    nanolink-train --model cae --init runs/cae-L2-init.pt --arch dec_layers=2 ...

The decoders of ``cae`` and ``ae`` are ``conv 3x3 -> ReLU -> [conv 3x3 -> ReLU] x dec_layers -> rest``. Each added
3x3 convolution is the identity (a Dirac kernel, zero bias) inserted after the existing middle layers; its input is
a ReLU output (>= 0), so conv + ReLU returns its input unchanged and the deepened model decodes exactly as the old
one (checked here on random symbols before the file is written). The encoder is copied unchanged. Training then
starts from the old model's quality instead of from scratch (Net2Net, Chen et al. 2016).
"""
import argparse
import dataclasses
import sys

import torch
from torch import nn

from nanolink.export.models import build_model
from nanolink.export.onnx_export import load_checkpoint, save_checkpoint


def deepen(model, add):
    """-> a new model with ``add`` more identity 3x3 layers in its decoder, same outputs as ``model``."""
    if add < 1:
        raise ValueError('--add must be at least 1, got {}'.format(add))
    cfg = dataclasses.replace(model.config, dec_layers=model.config.dec_layers + add)
    new = build_model(model.model_name, **dataclasses.asdict(cfg))
    new.eval()
    new.encoder.load_state_dict(model.encoder.state_dict())
    old = list(model.decoder.children())
    keep = 2 + 2 * model.config.dec_layers                 # first conv + ReLU, then (conv, ReLU) per middle layer
    layers = list(new.decoder.children())
    for src, dst in zip(old[:keep], layers[:keep]):
        dst.load_state_dict(src.state_dict())
    for conv in layers[keep:keep + 2 * add:2]:
        nn.init.dirac_(conv.weight)
        nn.init.zeros_(conv.bias)
    for src, dst in zip(old[keep:], layers[keep + 2 * add:]):
        dst.load_state_dict(src.state_dict())
    return new


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('checkpoint', help='a nanolink-train checkpoint (last.pt)')
    p.add_argument('--add', type=int, default=1, help='3x3 layers to add to the decoder')
    p.add_argument('--out', required=True, help='where to write the deepened checkpoint (for nanolink-train --init)')
    args = p.parse_args(argv)
    model, _ = load_checkpoint(args.checkpoint)
    try:
        new = deepen(model, args.add)
    except ValueError as e:
        p.error(str(e))
    torch.manual_seed(0)
    s = torch.randn(2, model.config.channels, 24, 24)
    s = torch.sign(s) if model.model_name == 'cae' else s.sigmoid()
    with torch.no_grad():
        a = model.synthesis(s) if hasattr(model, 'synthesis') else model.decode_symbols(s)
        b = new.synthesis(s) if hasattr(new, 'synthesis') else new.decode_symbols(s)
    diff = (a - b).abs().max().item()
    if diff > 1e-5:
        raise SystemExit('deepen_decoder: the deepened decoder differs by {:.3g}; not written'.format(diff))
    save_checkpoint(new, args.out)
    print('{}: decoder {} -> {} middle layers, same output (max diff {:.1e}); wrote {}'.format(
        args.checkpoint, model.config.dec_layers, new.config.dec_layers, diff, args.out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
