"""How much a context model could save over zlib on the cae bits: measured bounds, before building one.

    python scripts/cae_entropy_bound.py --images ../shared/data/kodak --channels 8

Encodes each image with the bundled ``cae`` (torch, the same bits as the edge's ONNX encoder) and reports, as bits
per input pixel over the folder:
  * what the edge sends today: the packed bits in wire order, zlib level 1 / 3 (edge-sender's default) / 9;
  * other stdlib compressors (lzma, bz2) and a channel-planar bit order;
  * the empirical conditional entropy of each bit given a context of already-sent neighbours (left, up, and the
    same position in the previous channel), with the probabilities fitted to that very image: an adaptive binary
    arithmetic coder with these contexts cannot beat it by more than its learning cost, so it bounds what a
    per-channel / context probability model of this kind would send. With all previous channels in the context
    (up to 2^9 contexts per channel) the per-image fit is optimistic: it ignores the cost of learning them.
"""
import argparse
import bz2
import lzma
import sys
import zlib

import numpy as np

from nanolink.edge.sources import image_paths


def conditional_entropy(bits, contexts):
    """Bits (n,) in {0, 1} with integer contexts (n,) -> sum over contexts of n_ctx * H(bit | ctx), in bits."""
    total = 0.0
    for v in np.unique(contexts):
        sel = bits[contexts == v]
        p = sel.mean()
        if 0 < p < 1:
            total -= sel.size * (p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return total


def context_bounds(b):
    """b: (k, h, w) uint8 bits of one image -> {name: entropy in bits} for growing contexts."""
    out = {'order 0, per channel': 0.0, 'left + up, per channel': 0.0, 'left + up + previous channel': 0.0,
           'left + up + all previous channels': 0.0}
    for c in range(b.shape[0]):
        ch = b[c].astype(np.int64)
        left = np.pad(ch, ((0, 0), (1, 0)))[:, :-1]
        up = np.pad(ch, ((1, 0), (0, 0)))[:-1]
        prev = b[c - 1].astype(np.int64) if c else np.zeros_like(ch)
        flat = ch.ravel()
        out['order 0, per channel'] += conditional_entropy(flat, np.zeros_like(flat))
        out['left + up, per channel'] += conditional_entropy(flat, (left + 2 * up).ravel())
        out['left + up + previous channel'] += conditional_entropy(flat, (left + 2 * up + 4 * prev).ravel())
        above = sum(b[j].astype(np.int64) << j for j in range(c))            # all earlier channels, same position
        out['left + up + all previous channels'] += conditional_entropy(flat, (left + 2 * up + 4 * above).ravel())
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--images', required=True, help='folder of PNG or JPEG images')
    p.add_argument('--channels', type=int, default=8, help='cae rate point (channels sent, default %(default)s)')
    args = p.parse_args(argv)
    paths = image_paths(args.images)
    if not paths:
        p.error('no PNG or JPEG images in {}'.format(args.images))
    import cv2
    import torch
    from nanolink.common import wire
    from nanolink.common.zoo import bundled_model
    from nanolink.export.model_io import load_checkpoint
    model, ident = load_checkpoint(bundled_model('cae-bin').torch)
    if args.channels not in ident['rate_points']:
        p.error('--channels must be one of {}'.format(ident['rate_points']))
    sums, px = {}, 0
    for path in paths:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        h, w = img.shape[0] // model.multiple * model.multiple, img.shape[1] // model.multiple * model.multiple
        x = torch.from_numpy(np.ascontiguousarray(img[:h, :w, ::-1])).permute(2, 0, 1)[None].float() / 255.0
        with torch.no_grad():
            b = model.encode_bits(x)[0, :args.channels].numpy().astype(np.uint8)      # (k, h/4, w/4)
        px += h * w
        wire_order = wire.pack_bits(b)                                             # the edge's payload order
        planar = np.packbits(b.ravel()).tobytes()
        sizes = {'packed bits (no coding)': len(wire_order) * 8}
        for level in (1, 3, 9):
            sizes['zlib level {}, wire order'.format(level)] = len(zlib.compress(wire_order, level)) * 8
        sizes['zlib level 3, channel-planar'] = len(zlib.compress(planar, 3)) * 8
        sizes['lzma preset 1, wire order'] = len(lzma.compress(wire_order, preset=1)) * 8
        sizes['bz2 level 9, wire order'] = len(bz2.compress(wire_order, 9)) * 8
        for k, v in context_bounds(b).items():
            sizes['entropy bound: ' + k] = v
        for k, v in sizes.items():
            sums[k] = sums.get(k, 0.0) + v
    print('cae (fingerprint {}), {} channels, {} images in {}: bits per input pixel'.format(
        ident['fingerprint'], args.channels, len(paths), args.images))
    ref = sums['zlib level 3, wire order']
    for k, v in sums.items():
        print('  {:<52} {:.4f} bpp  ({:+.1f} % vs zlib level 3)'.format(k, v / px, 100.0 * (v / ref - 1)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
