"""Would the rANS context rule gain from this position's already-coded channels? Ideal code lengths, no coder.

    python scripts/probe_context_rule.py --data ../shared/data/train --quality 3 [--weights 10]

The shipped rule (common/csrc/rans.h) picks a channel's table from ks (its left and upper neighbours' distance from
the most probable symbol) and ka (the activity of the left, upper and upper-left positions over all channels,
global thresholds). The coder goes position by position over the coded channels, so when channel j of position p
is coded the decoder also knows channels 0..j-1 of p. This probe replaces ka by buckets of

    v = (neighbours' activity / 5 + W * m) / (1 + W * j / Cc),  m = (their summed distance) * Cc / j

(the position's own activity, extrapolated from its earlier channels, weighted in as more of them are known), with
per-channel quantile thresholds, and keeps ks. Tables are counted on the first 150 training images (centre crops up
to 512 x 512, shuffled with seed 0), smoothed towards the factorized prior with 20 pseudo-counts as
nanolink-fit-context does, and measured as ideal code lengths on the next 50. W = 0 with per-channel thresholds is
the shipped rule's information, as a check. The bundled cae weights (or --checkpoint); no Kodak image is used.
"""
import argparse
import glob
import os

import cv2
import numpy as np
import torch

from nanolink.common import zoo
from nanolink.common.rans import CTX_DCLIP, RansTables
from nanolink.export import model_io
from nanolink.export.context_model import activity_terms, symbols_of

KS, KA, ALPHA = 4, 6, 20.0


def crops(paths, side=512):
    for p in paths:
        img = cv2.imread(p)
        if img is None:
            continue
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        h, w = (min(s, side) // 16 * 16 for s in img.shape[:2])
        y0, x0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        yield torch.from_numpy(np.ascontiguousarray(img[y0:y0 + h, x0:x0 + w])).permute(2, 0, 1)[None].float() / 255


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', required=True, help='training images (never the test set)')
    p.add_argument('--quality', type=int, default=3)
    p.add_argument('--checkpoint', help='a cae checkpoint or exported cae.pt (default: the bundled weights)')
    p.add_argument('--weights', type=float, nargs='+', default=[0.0, 10.0], help='W values to try')
    args = p.parse_args()
    torch.set_num_threads(1)
    model, _ = model_io.load_checkpoint(args.checkpoint or zoo.bundled_model('cae').torch)
    model.eval()
    qi = args.quality - 1
    paths = sorted(f for f in glob.glob(os.path.join(args.data, '**', '*'), recursive=True)
                   if f.lower().endswith(('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp')))
    np.random.RandomState(0).shuffle(paths)
    t = model.tables(qi)
    base = RansTables(t['lo'], t['freqs'])
    coded = np.nonzero(~base.constant)[0]
    nc = len(coded)

    def features(s):
        d = np.minimum(np.abs(s.astype(np.int32) - base.fill.astype(np.int32)[:, None, None]), CTX_DCLIP)
        left = np.zeros_like(d)
        left[:, :, 1:] = d[:, :, :-1]
        up = np.zeros_like(d)
        up[:, 1:, :] = d[:, :-1, :]
        dc = d[coded]
        return {'ks': np.minimum(left + up, KS - 1)[coded], 'nb': activity_terms(s, base.fill),
                'part': np.cumsum(dc, 0) - dc, 'n': np.arange(nc)[:, None, None], 's': s[coded]}

    fit = [features(symbols_of(model, x, qi)) for x in crops(paths[:150])]
    test = [features(symbols_of(model, x, qi)) for x in crops(paths[150:200])]
    px = sum(f['s'].shape[1] * f['s'].shape[2] * 256 for f in test)

    def bits(ctx_fn, k):
        counts = [np.zeros((k, len(t['freqs'][c]))) for c in coded]
        for f in fit:
            ctx = ctx_fn(f)
            for j in range(nc):
                np.add.at(counts[j], (ctx[j].ravel(), f['s'][j].ravel()), 1)
        total = 0.0
        for f in test:
            ctx = ctx_fn(f)
            for j, c in enumerate(coded):
                prior = np.asarray(t['freqs'][c], float)
                prior /= prior.sum()
                pr = (counts[j] + ALPHA * prior) / (counts[j].sum(1, keepdims=True) + ALPHA)
                total -= np.log2(pr[ctx[j].ravel(), f['s'][j].ravel()]).sum()
        return total / px

    fact = bits(lambda f: np.zeros_like(f['ks']), 1)
    th = np.unique(np.quantile(np.concatenate([f['nb'].ravel() for f in fit]), np.linspace(0, 1, KA + 1)[1:-1]).round())
    th = th[th > 0]
    shipped = bits(lambda f: np.searchsorted(th, f['nb'], side='right')[None] * KS + f['ks'], KS * (len(th) + 1))
    print('quality {}: factorized tables {:.4f} bpp, shipped context rule {:.4f} bpp ({:+.1f} %)'.format(
        args.quality, fact, shipped, 100 * (shipped / fact - 1)))
    for w in args.weights:
        def value(f, w=w):
            own = np.where(f['n'] > 0, f['part'] * nc / np.maximum(f['n'], 1), 0)
            wt = w * f['n'] / float(nc)
            return (f['nb'][None] / 5.0 + wt * own) / (1 + wt)
        ths = [np.unique(np.quantile(np.concatenate([value(f)[j].ravel() for f in fit]), np.linspace(0, 1, KA + 1)[1:-1]))
               for j in range(nc)]
        v = bits(lambda f: np.stack([np.searchsorted(ths[j], value(f)[j], side='right') for j in range(nc)]) * KS
                 + f['ks'], KS * KA)
        print('  with this position\'s earlier channels, W = {:g}, per-channel thresholds: {:.4f} bpp ({:+.1f} % '
              'against the shipped rule)'.format(w, v, 100 * (v / shipped - 1)))


if __name__ == '__main__':
    main()
