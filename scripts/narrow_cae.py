"""Narrow a trained ``cae``: drop the encoder's units that never fire, and the decoder's that carry least.

    python scripts/narrow_cae.py common/weights/cae/cae.pt --enc-e8 64 --dec-widths 96,40,40 \
        --data ../shared/data/train --out runs/cae-narrow-init.pt
    nanolink-train --model cae --init runs/cae-narrow-init.pt --arch enc_widths=64,64 --arch dec_widths=96,40,40 \
        --train-only decoder ...
    python scripts/narrow_cae.py common/weights/cae/cae.pt --dec-widths 96,32,32 ...    (the bundle's second step)

Trained ReLU networks carry dead units: in the bundled cae of 2026-12-07, 48 of the encoder's 112 units at H/8 never
fired on 32 training crops, 41 of them on nothing tried (192 more crops, Kodak, noise, sine gratings, flat colours)
and the other 7 barely, yet they cost 43 % of its two largest convolutions. ``--enc-e8`` keeps the e8 most active units of that layer (scored as below);
when the dropped ones never fire, the latents and so the symbols on the wire are the same (the script counts the
symbols that differ on the crops it scored).

The decoder (export/models/cae.py, Synthesis) has three widths, d16 at H/16, d8 at H/8, d4 at H/4 (the opposite of
deepen_decoder.py's ``--dec-widths``). Each hidden unit set loses the units that carry least to the next layer,
scored on real latents of training crops (at every rate point) as

    score(unit) = RMS of its ReLU output  x  L2 norm of the next layer's weights that read it

and the mean output of each dropped unit is folded into the next layer's bias, so the narrowed decoder starts near
the old one's picture rather than from noise. The fold is exact for a unit that never fires; for a constant unit it
is exact through a 1x1 convolution, and through a 3x3 one away from the image border, while a transposed
convolution's output phases each weigh it by a different tap and share one bias, which gets the taps' mean. The encoder, gains, priors and the linear block path are copied: the same bits on the wire, the same
symbols. Narrowing the decoder changes the picture, so the script prints the PSNR of both models on the crops it
scored, and training (--train-only decoder, the encoder frozen) recovers the rest. Context tables (nanolink-fit-
context) are carried over: they count symbols, which an exact encoder narrowing leaves as they were.
"""
import argparse
import dataclasses
import os
import random
import sys

import torch
from torch import nn

from nanolink.common.errors import NanolinkError
from nanolink.export.models import build_model
from nanolink.export.model_io import load_checkpoint, save_checkpoint
from nanolink.export.train_data import CropSampler, list_images, load_rgb
from nanolink.export.validation import psnr_8bit

# cae's fast decoder body (res = (0, 0), no post-filter), by index, with the unit sets each layer reads and writes:
#   0 conv 3x3 (M -> d16a)   2 conv 3x3 (d16a -> d16b)   4 convT 2x2/2 (d16b -> d8a)   6 conv 3x3 (d8a -> d8b)
#   8 convT 2x2/2 (d8b -> d4)   10 depthwise 3x3 (d4 -> d4)   12 conv 1x1 (d4 -> 48); odd indices are ReLUs.
LAYERS = {0: (None, 'd16a'), 2: ('d16a', 'd16b'), 4: ('d16b', 'd8a'), 6: ('d8a', 'd8b'), 8: ('d8b', 'd4'),
          10: ('d4', 'd4'), 12: ('d4', None)}
UNITS = {'d16a': (1, 0), 'd16b': (3, 0), 'd8a': (5, 1), 'd8b': (7, 1), 'd4': (11, 2)}   # (its ReLU, width index)
READER = {'d16a': 2, 'd16b': 4, 'd8a': 6, 'd8b': 8, 'd4': 12}         # the layer that weighs each set's outputs


def _in_dim(layer):
    """The weight dimension of a layer's input units: Conv2d (out, in, k, k), ConvTranspose2d (in, out, k, k)."""
    return 0 if isinstance(layer, nn.ConvTranspose2d) else 1


def _read_only(layer, keep, dropped, dropped_mean):
    """(weight, bias) of ``layer`` reading only its input units ``keep``: the ``dropped`` ones' mean outputs
    (dropped_mean) join the bias. A conv's output sums its taps; a transposed conv's output phases each take one
    tap and share the bias, which gets the taps' mean."""
    dim = _in_dim(layer)
    w, b = layer.weight.detach(), layer.bias.detach()
    shape = [1, 1, 1, 1]
    shape[dim] = -1
    extra = (w.index_select(dim, dropped) * dropped_mean.view(shape)).sum(dim=dim)        # (out, k, k)
    return w.index_select(dim, keep), b + (extra.sum(dim=(1, 2)) if dim == 1 else extra.mean(dim=(1, 2)))


def score_units(model, crops):
    """{unit set: (scores (units,), mean ReLU output (units,))} over crops (B, 3, S, S) at every rate point."""
    body = model.decoder.body
    acts = {}
    hooks = [body[relu].register_forward_hook(
        lambda mod, inp, out, name=name: acts.setdefault(name, []).append(out.detach()))
        for name, (relu, _) in UNITS.items()]
    with torch.no_grad():
        y = model.analysis(crops)
        for i in range(len(model.config.lambdas)):
            g, ig = model.gains(torch.full((crops.shape[0],), i, dtype=torch.long))
            model.synthesis(torch.round(y * g) * ig)
    for h in hooks:
        h.remove()
    out = {}
    for name in UNITS:
        a = torch.cat(acts[name])                                        # (N, units, h, w)
        out[name] = (_score(a, body[READER[name]]), a.mean(dim=(0, 2, 3)))
    return out


def _score(a, reader):
    """Per unit: RMS of its ReLU outputs a (N, units, h, w) x L2 norm of the reader's weights on it."""
    w = reader.weight.detach().transpose(0, _in_dim(reader))             # (units, ...)
    return a.pow(2).mean(dim=(0, 2, 3)).sqrt() * w.reshape(w.shape[0], -1).norm(dim=1)


def narrow_cae(model, widths, crops):
    """-> a cae model whose fast decoder has ``widths`` (d16, d8, d4) <= the current ones, the units kept chosen by
    score_units on crops; everything but decoder.body copied."""
    old = tuple(model.config.dec_widths)
    widths = tuple(widths)
    if tuple(model.config.dec_res) != (0, 0) or tuple(model.config.post) != (0, 0):
        raise ValueError('narrowing is for the fast decoder (no residual blocks, no post-filter); this model has '
                         'dec_res={} post={}'.format(model.config.dec_res, model.config.post))
    if len(widths) != 3 or any(w > o or w < 1 for w, o in zip(widths, old)) or widths == old:
        raise ValueError('--dec-widths must be 3 widths, each at most the current {} and one smaller, got {}'.format(
            ','.join(map(str, old)), ','.join(map(str, widths))))
    scores = score_units(model, crops)
    keep, dropped = {}, {}
    for name, (_, w) in UNITS.items():
        order = torch.argsort(scores[name][0], descending=True)
        keep[name], dropped[name] = order[:widths[w]].sort().values, order[widths[w]:]
    new = build_model('cae', **dict(dataclasses.asdict(model.config), dec_widths=widths))
    new.eval()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith('decoder.body.')}
    missing = new.load_state_dict(state, strict=False).missing_keys
    assert all(k.startswith('decoder.body.') for k in missing), missing
    with torch.no_grad():
        for i, (src_set, dst_set) in LAYERS.items():
            old_layer, layer = model.decoder.body[i], new.decoder.body[i]
            w, b = old_layer.weight.detach(), old_layer.bias.detach()
            out_dim = 1 - _in_dim(old_layer)
            if i == 10:                                      # depthwise: (channels, 1, k, k), units pass through
                layer.weight.copy_(w[keep['d4']])
                layer.bias.copy_(b[keep['d4']])
                continue
            if src_set is not None:
                w, b = _read_only(old_layer, keep[src_set], dropped[src_set], scores[src_set][1][dropped[src_set]])
            if dst_set is not None:
                w, b = w.index_select(out_dim, keep[dst_set]), b[keep[dst_set]]
            layer.weight.copy_(w)
            layer.bias.copy_(b)
    _carry_context(new, model)
    return new


def narrow_encoder(model, e8, crops):
    """Keep the e8 units of the encoder's H/8 layer (body[2], read by body[4]) that are most active on crops
    (score: RMS of the ReLU output x norm of body[4]'s weights reading it); a dropped unit's mean output joins
    body[4]'s bias. Units that never fire on the crops (trained ReLU units do die) make this exact for images
    like them: the same latents, the same symbols."""
    body = model.encoder.body
    if e8 >= body[2].out_channels or e8 < 1:
        raise ValueError('--enc-e8 must be below the current {}, got {}'.format(body[2].out_channels, e8))
    acts = []
    hook = body[3].register_forward_hook(lambda mod, inp, out: acts.append(out.detach()))
    with torch.no_grad():
        model.analysis(crops)
    hook.remove()
    a = acts[0]
    order = torch.argsort(_score(a, body[4]), descending=True)
    keep, dropped = order[:e8].sort().values, order[e8:]
    new = build_model('cae', **dict(dataclasses.asdict(model.config),
                                    enc_widths=(model.config.enc_widths[0], e8)))
    new.eval()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(('encoder.body.2.', 'encoder.body.4.'))}
    new.load_state_dict(state, strict=False)
    with torch.no_grad():
        nb = new.encoder.body
        nb[2].weight.copy_(body[2].weight[keep])
        nb[2].bias.copy_(body[2].bias[keep])
        w, b = _read_only(body[4], keep, dropped, a.mean(dim=(0, 2, 3))[dropped])
        nb[4].weight.copy_(w)
        nb[4].bias.copy_(b)
    _carry_context(new, model)
    return new, int((a.amax(dim=(0, 2, 3))[dropped] > 0).sum())


def _carry_context(new, model):
    if getattr(model, 'context', None):
        new.context = model.context


def sample_crops(data, n, crop, seed):
    """n random crops (n, 3, crop, crop) in [0, 1] of the images under data."""
    rng = random.Random(seed)
    paths = list_images(data)
    sampler = CropSampler([load_rgb(p) for p in rng.sample(paths, min(n, 64, len(paths)))], crop, 0.5, rng)
    return sampler.batch(n)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('checkpoint', help='a cae checkpoint (common/weights/cae/cae.pt, a nanolink-train last.pt)')
    p.add_argument('--dec-widths', metavar='D16,D8,D4', help='the narrower decoder widths at H/16, H/8, H/4')
    p.add_argument('--enc-e8', type=int, help='the encoder\'s narrower width at H/8 (its units that never fire)')
    p.add_argument('--data', required=True, help='training images to score the units on (not the test set)')
    p.add_argument('--crops', type=int, default=32, help='crops to score on (default 32)')
    p.add_argument('--crop', type=int, default=256, help='crop side (default 256)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', required=True, help='where to write the new checkpoint (for nanolink-train --init)')
    args = p.parse_args(argv)
    if args.dec_widths is None and args.enc_e8 is None:
        p.error('give --dec-widths, --enc-e8 or both')
    if args.crops < 1 or args.crop < 16 or args.crop % 16:
        p.error('--crops must be at least 1 and --crop a multiple of 16 (the latents are at 1/16), got {} and {}'
                .format(args.crops, args.crop))
    if not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        p.error('--out {}: its folder does not exist; create it first'.format(args.out))
    try:
        model, _ = load_checkpoint(args.checkpoint)
    except NanolinkError as e:
        p.error(str(e))
    if model.model_name != 'cae':
        p.error('{} is a {} checkpoint; narrow_cae.py is for cae'.format(args.checkpoint, model.model_name))
    model.eval()
    torch.manual_seed(args.seed)
    try:
        crops = sample_crops(args.data, args.crops, args.crop, args.seed)
    except NanolinkError as e:                  # the --data folder or its images
        sys.exit('{}: error: {}'.format(p.prog, e))
    new = model
    try:
        if args.enc_e8 is not None:
            new, fired = narrow_encoder(new, args.enc_e8, crops)
            print('encoder width at H/8: {} -> {} ({} of the dropped units fired on the scoring crops)'.format(
                model.config.enc_widths[1], args.enc_e8, fired))
        if args.dec_widths is not None:
            new = narrow_cae(new, [int(w) for w in args.dec_widths.split(',')], crops)
    except ValueError as e:
        p.error(str(e))
    with torch.no_grad():
        y, y_new = model.analysis(crops), new.analysis(crops)
        for i, q in enumerate(model.config.rate_points):
            g, ig = model.gains(torch.full((crops.shape[0],), i, dtype=torch.long))
            sym, sym_new = torch.round(y * g), torch.round(y_new * g)
            print('quality {}: {:.2f} dB -> {:.2f} dB on the scoring crops, {} of {} symbols differ'.format(
                q, psnr_8bit(crops, model.synthesis(sym * ig)), psnr_8bit(crops, new.synthesis(sym_new * ig)),
                int((sym != sym_new).sum()), sym.numel()))
    save_checkpoint(new, args.out)
    print('{}: encoder widths {} -> {}, decoder widths {} -> {}; wrote {}'.format(
        args.checkpoint, model.config.enc_widths, new.config.enc_widths, model.config.dec_widths,
        new.config.dec_widths, args.out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
