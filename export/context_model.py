"""Context tables for an entropy-coded model (``cae``): nanolink-fit-context.

    nanolink-fit-context runs/cae/last.pt --data ../shared/data/train --out runs/cae/ctx.pt
    nanolink-export --checkpoint runs/cae/ctx.pt --out my-cae --with-float16

The learned factorized prior gives one table per channel. The coder can do better by choosing, for every symbol,
one of ks * ka tables of its channel from what the decoder already knows (csrc/rans.h): how far the channel's
left and upper neighbours are from its most probable symbol (``ks`` buckets), and how active the left, upper and
upper-left positions are over all channels plus, weighted by ``mix``, how active this position's channels before
it are (``ka`` buckets, each channel's thresholds at quantiles of the training images). That is a cheap,
backward-adaptive stand-in for a hyperprior: the local scale of the latents is predicted from decoded ones, at no
cost to the encoder network. (``--mix 0`` fits the first rule: the neighbours alone, one threshold list for all
channels.)

The tables are symbol frequencies counted over the training images at every rate point (the symbols exactly as the
exported encoders make them), smoothed towards the factorized prior (``alpha`` pseudo-counts), then quantised to
integers summing to 2^15 as the factorized tables are. They are written into the checkpoint (key ``context``),
from which nanolink-export puts them into the manifest and the encoders' metadata; the fingerprint covers them.
"""
import argparse
import sys

import numpy as np

from nanolink.common import cli as cliutil
from nanolink.common.errors import NanolinkError
from nanolink.common.rans import CTX_DCLIP, CTX_MAX_MIX, RansTables, pack_context

KS, KA, ALPHA, MIX = 4, 6, 20.0, 50
QUANTILE_POSITIONS = 100000    # positions the per-channel thresholds are quantiles over (a fixed random subset)
MAX_SIDE = 1024


def symbols_of(model, image, i, tables=None, y=None):
    """uint8 (C, h, w) symbol indices of rate index i (0-based) for an RGB float image tensor (1, 3, H, W), as the
    exported encoder computes them (gain, round, clip to the table range). tables: model.tables(i), and y:
    model.analysis(image), where the caller has them already (both cost more than the rest)."""
    import torch
    t = model.tables(i) if tables is None else tables
    with torch.no_grad():
        y = model.analysis(image) if y is None else y
        lo = torch.tensor(t['lo'], dtype=y.dtype).view(1, -1, 1, 1)
        hi = lo + torch.tensor([len(f) - 1 for f in t['freqs']], dtype=y.dtype).view(1, -1, 1, 1)
        g, _ = model.gains(torch.tensor([i]))
        sym = torch.max(torch.min(torch.round(y * g), hi), lo) - lo
    return sym[0].numpy().astype(np.uint8)


def activity_terms(sym, fill):
    """2 A(left) + 2 A(up) + A(up-left) of every position (h, w) of symbols (C, h, w): what ka buckets."""
    d = np.minimum(np.abs(sym.astype(np.int32) - fill.astype(np.int32)[:, None, None]), CTX_DCLIP).sum(0)
    t = np.zeros_like(d)
    t[:, 1:] += 2 * d[:, :-1]
    t[1:, :] += 2 * d[:-1, :]
    t[1:, 1:] += d[:-1, :-1]
    return t


def position_terms(sym, fill, mix):
    """N(p) + mix * P(c, p) of rans.h for every symbol of (C, h, w): the neighbours' activity plus the weighted
    activity of the channels before c at the same position; what a channel's ka thresholds bucket."""
    d = np.minimum(np.abs(sym.astype(np.int32) - fill.astype(np.int32)[:, None, None]), CTX_DCLIP)
    return activity_terms(sym, fill)[None] + mix * (np.cumsum(d, 0) - d)


def fit(model, images, ks=KS, ka=KA, alpha=ALPHA, mix=MIX, progress=None):
    """{rate point: context section (nanolink.common.rans.pack_context)} from RGB uint8 images (H, W, 3).

    Each channel's ka - 1 thresholds are quantiles of its N + mix * P over the images (so each activity bucket
    holds about as many of that channel's symbols); with mix 0 the first rule's global thresholds are fitted."""
    import torch
    from nanolink.export.entropy_model import quantize_pmf
    tensors = []
    for img in images:
        h, w = (min(s, MAX_SIDE) // model.multiple * model.multiple for s in img.shape[:2])
        if h < model.multiple or w < model.multiple:
            continue
        y0, x0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        crop = np.ascontiguousarray(img[y0:y0 + h, x0:x0 + w])
        tensors.append(torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255)
    if not tensors:
        raise NanolinkError('no image of at least {0}x{0} pixels to fit context tables on'.format(model.multiple))
    with torch.no_grad():                   # the same latents at every rate point: the gains differ
        latents = [model.analysis(x) for x in tensors]
    del tensors
    out = {}
    for i, q in enumerate(model.config.rate_points):
        t = model.tables(i)
        base = RansTables(t['lo'], t['freqs'])
        syms = [symbols_of(model, None, i, t, y) for y in latents]
        if mix:                             # per channel: ka - 1 quantiles of N + mix * P (repeats allowed)
            terms = np.concatenate([position_terms(s, base.fill, mix).reshape(len(base.fill), -1) for s in syms], 1)
            if terms.shape[1] > QUANTILE_POSITIONS:     # C x positions would not fit memory for a large set
                terms = terms[:, np.random.RandomState(0).choice(terms.shape[1], QUANTILE_POSITIONS, replace=False)]
            thresholds = np.quantile(terms, np.linspace(0, 1, ka + 1)[1:-1], axis=1).T.round().astype(np.int64)
            kk = ka
        else:                               # the first rule: one list of N thresholds, repeats dropped
            terms = np.concatenate([activity_terms(s, base.fill).ravel() for s in syms])
            thresholds = np.unique(np.quantile(terms, np.linspace(0, 1, ka + 1)[1:-1]).round().astype(np.int64))
            thresholds = thresholds[thresholds > 0]
            kk = len(thresholds) + 1
        k = ks * kk
        counts = [np.zeros((k, n)) for n in base.channel_nsym]
        probe = RansTables(t['lo'], t['freqs'], {'ks': ks, 'ka': kk, 'thresholds': thresholds, 'mix': mix,
                                                 'freqs': np.concatenate([np.tile(f, k) for f in t['freqs']])})
        for s in syms:
            c_, h, w = s.shape
            flat = s.reshape(c_, h * w)
            ctx = probe.contexts(flat, w)
            for c in np.nonzero(~base.constant)[0]:
                n = counts[c].shape[1]
                counts[c] += np.bincount(ctx[c].astype(np.int64) * n + flat[c], minlength=k * n).reshape(k, n)
        freqs = []
        for c, f in enumerate(t['freqs']):
            prior = np.asarray(f, dtype=np.float64) / float(sum(f))
            for j in range(k):
                if len(f) == 1:
                    freqs.append(np.asarray(f))
                else:
                    freqs.append(quantize_pmf((counts[c][j] + alpha * prior) / (counts[c][j].sum() + alpha)))
        out[q] = pack_context(ks, kk, thresholds, np.concatenate(freqs), mix)
        if progress:
            progress('rate point {}: {} activity buckets ({}), {} tables'.format(
                q, kk, 'thresholds {}'.format([int(v) for v in thresholds]) if not mix else
                'per-channel thresholds, mix {}'.format(mix), len(freqs)))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog='nanolink-fit-context', description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('checkpoint', help='a cae checkpoint: runs/NAME/last.pt from nanolink-train, or an exported NAME.pt')
    p.add_argument('--data', required=True, help='folder of training images (searched recursively)')
    p.add_argument('--out', required=True, help='the checkpoint with context tables to write (give it to '
                                                'nanolink-export --checkpoint)')
    p.add_argument('--ks', type=int, default=KS, help='buckets of the channel\'s own neighbours (default %(default)s)')
    p.add_argument('--ka', type=int, default=KA, help='activity buckets (default %(default)s)')
    p.add_argument('--mix', type=int, default=MIX,
                   help='weight of this position\'s earlier channels in the activity a symbol\'s table is chosen by '
                        '(0: the neighbours alone, one threshold list for all channels; default %(default)s)')
    p.add_argument('--alpha', type=float, default=ALPHA,
                   help='pseudo-counts of the factorized prior in each table (default %(default)s)')
    p.add_argument('--limit', type=int, default=0, help='use only the first N images (0: all)')
    args = p.parse_args(argv)
    if not 1 <= args.ks * args.ka <= 256 or args.ks < 1 or args.ka < 1:
        p.error('--ks and --ka must be >= 1 with ks * ka <= 256')
    if args.alpha <= 0:
        p.error('--alpha must be > 0')
    if not 0 <= args.mix <= CTX_MAX_MIX:
        p.error('--mix must be in 0..{}'.format(CTX_MAX_MIX))
    if args.limit < 0:
        p.error('--limit must be >= 0 (0: every image), got {}'.format(args.limit))
    try:
        cliutil.check_output_file('--out', args.out)        # before the fit, not after it
        return _run(args)
    except NanolinkError as e:
        return cliutil.fail('nanolink-fit-context', e)


def _run(args):
    try:
        import torch
    except ImportError:
        return cliutil.torch_missing('nanolink-fit-context', 'torch')
    from nanolink.export.model_io import load_checkpoint, save_checkpoint
    from nanolink.export.train_data import list_images, load_rgb
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, ident = load_checkpoint(args.checkpoint, trusted=True)
    if model.wire_dtype != 'rans':
        raise NanolinkError('{} is model {}: context tables are for entropy-coded models (cae)'.format(
            args.checkpoint, ident['name']))
    paths = list_images(args.data)
    if args.limit:
        paths = paths[:args.limit]
    images = [load_rgb(path) for path in paths]
    print('fitting context tables on {} images from {}'.format(len(images), args.data), file=sys.stderr)
    model.context = fit(model, images, args.ks, args.ka, args.alpha, args.mix, lambda s: print(s, file=sys.stderr))
    save_checkpoint(model, args.out)
    print('wrote {} (ks {}, ka up to {}, mix {}, alpha {})'.format(args.out, args.ks, args.ka, args.mix, args.alpha))
    return 0


if __name__ == '__main__':
    sys.exit(main())
