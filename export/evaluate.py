"""codec-eval: rate-distortion of nanolink models and classical baselines on a folder of images.

    codec-eval --images ../shared/data/kodak --model cae --baselines jpeg,webp --out results.json --plot rd.png
    codec-eval --images DIR --model cae --model cae-bin:quality ...     # also the quality decoder of cae-bin's bits

For every image (any size: padded to the model's multiple by the edge code, cropped back by the host code)
and every rate point of each model, the frame goes through the real edge encoder (ONNX Runtime), the real
wire message and the real host decoder; bpp = wire-message bytes x 8 / original pixels (cae's symbols rANS-coded,
cae-bin's binary codes zlib-coded, as edge-sender sends them, unless --entropy none). Baselines are
OpenCV JPEG (4:2:0) and WebP swept over their quality settings, bpp from the file bytes. PSNR is on 8-bit
RGB after rounding; MS-SSIM is pytorch-msssim's (null for images with a side <= 160 px). A PSNR is null where it is
infinite: the decoded image equals the original (flat images, say); a mean over the images is then null too, and so
is JPEG's PSNR at the same bpp when the sweep is exact there. results.json is strict JSON (no Infinity / NaN).
Needs the training extras (torch, pytorch-msssim): pip install ".[train]".

results.json::

    {"images": "DIR", "count": N,
     "results": [{"model": "cae", "decoder": "fast", "rate_point": 3, "rate": "quality", "bpp": f, "psnr": f|null,
                  "ms_ssim": f|null,                            # "model" is the --model spec: "cae:quality"
                                                                # has "decoder": "quality"
                  "per_image": [{"image": "kodim01.png", "bpp": f, "psnr": f|null, "ms_ssim": f|null}, ...],
                  "jpeg_same_bpp": {"psnr": f|null, "ms_ssim": f|null}|null},  # with the jpeg baseline: its curve at
                                                # this bpp, linear in log-rate; null outside the sweep
                 {"model": "ae", "rate_point": 75, "rate": "jpeg_quality", ...},
                 {"model": "cae-bin", "rate_point": 8, "rate": "channels", ...},
                 {"model": "jpeg", "quality": 50, ...}, ...],
     "bd_rate_vs_jpeg": {"cae": f|null, ...}}     # percent bitrate change at equal PSNR, < 0 is better (null:
                                                  # no PSNR range both curves cover, exact points left out)
"""
import argparse
import json
import math
import os
import sys
import time

import cv2
import numpy as np
from nanolink.common import cli as cliutil
from nanolink.common import wire, zoo
from nanolink.common.codec import EdgeEncoder, HostDecoder
from nanolink.common.errors import NanolinkError, UsageError
from nanolink.common.imageproc import read_image
from nanolink.common.metrics import psnr
from nanolink.edge.sources import IMAGE_EXTS, image_paths

QUALITIES = (5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 95)
RATES = {'rans': ('quality', 'rate'), 'jpeg': ('jpeg_quality', 'quality'), 'bits': ('channels', 'channels')}
BASELINES = {'jpeg': ('.jpg', cv2.IMWRITE_JPEG_QUALITY), 'webp': ('.webp', cv2.IMWRITE_WEBP_QUALITY)}


def msssim_or_none(a, b):
    import torch
    from pytorch_msssim import ms_ssim as torch_ms_ssim
    if min(a.shape[:2]) <= 160:
        return None
    t = lambda x: torch.from_numpy(np.ascontiguousarray(x[..., ::-1])).permute(2, 0, 1)[None].double()
    return float(torch_ms_ssim(t(a), t(b), data_range=255).item())


def parse_model(spec):
    """'cae' -> (cae's ModelInfo, 'fast'); 'cae:quality' -> (.., 'quality'); NanolinkError for an unknown one, with
    the list codec-eval takes (edge-sender's raw is no baseline here)."""
    name, colon, variant = spec.partition(':')
    if colon and not variant:
        raise NanolinkError('no decoder variant after ":"')
    models = zoo.bundled_models()
    if name not in models:
        raise NanolinkError('{}; --model takes a bundled model: {}; the baselines go in --baselines: {}'.format(
            '{} is a baseline, not a model'.format(name) if name in BASELINES else 'no bundled model "{}"'.format(name),
            ', '.join(sorted(models)) or 'none', ', '.join(BASELINES)))
    info = models[name]
    info.decoder_file(variant or zoo.FAST)
    return info, variant or zoo.FAST


def eval_model(spec, images, progress, entropy='zlib'):
    info, variant = parse_model(spec)
    name = info.name
    dec = HostDecoder.open(info, variant=variant)
    decoders = {name: {info.fingerprint: dec}}
    rows = []
    rate, option = RATES[info.dtype]
    for k in info.rate_points:                     # qualities (cae), JPEG qualities (ae) or binary channels (cae-bin)
        enc = EdgeEncoder.open(name, **{option: k})
        per = []
        for fn, img in images:
            blob, size = enc.preprocess(img)
            payload, shape = enc.fetch(enc.backend.forward(blob))
            payload, dtype = enc.entropy_code(payload, entropy)                  # as edge-sender sends it
            msg = wire.pack(wire.Frame(stream='eval', seq=0, t_cap=time.time(), model=name, fp=info.fingerprint,
                                       dtype=dtype, shape=shape, size=size, payload=payload, stages={}))
            f = wire.unpack(msg, decoders)
            out = dec.postprocess(dec.decode(f), f)
            per.append({'image': fn, 'bpp': len(msg) * 8.0 / (img.shape[0] * img.shape[1]), 'psnr': psnr(img, out),
                        'ms_ssim': msssim_or_none(img, out)})
        rows.append(summarise_rows({'model': spec, 'decoder': variant, 'rate_point': k, 'rate': rate}, per))
        progress('{} {}={}: {:.3f} bpp, {:.2f} dB'.format(spec, rate, k, rows[-1]['bpp'], rows[-1]['psnr']))
    return rows


def eval_baseline(name, images, progress):
    ext, flag = BASELINES[name]
    rows = []
    for q in QUALITIES:
        per = []
        for fn, img in images:
            ok, buf = cv2.imencode(ext, img, [flag, q])
            if not ok:
                raise NanolinkError('this OpenCV cannot encode {}: drop it from --baselines'.format(name))
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
            per.append({'image': fn, 'bpp': len(buf) * 8.0 / (img.shape[0] * img.shape[1]), 'psnr': psnr(img, out),
                        'ms_ssim': msssim_or_none(img, out)})
        rows.append(summarise_rows({'model': name, 'quality': q}, per))
    progress('{}: {} qualities'.format(name, len(QUALITIES)))
    return rows


def summarise_rows(head, per):
    ms = [p['ms_ssim'] for p in per if p['ms_ssim'] is not None]
    head.update({'bpp': float(np.mean([p['bpp'] for p in per])), 'psnr': float(np.mean([p['psnr'] for p in per])),
                 'ms_ssim': float(np.mean(ms)) if ms else None, 'per_image': per})
    return head


def bd_rate(anchor, test):
    """Bjontegaard delta rate (percent) of test vs anchor, each a list of (bpp, psnr); None without overlap.

    log-rate is fitted as a polynomial of PSNR (cubic, or lower with fewer points) and integrated over the
    PSNR range both curves cover.
    """
    finite = lambda pts: sorted((p for p in pts if p[1] is not None and math.isfinite(p[1])), key=lambda p: p[1])
    a, t = finite(anchor), finite(test)          # exact points (infinite PSNR; null in results.json) left out
    if not a or len(t) < 2:
        return None
    lo, hi = max(a[0][1], t[0][1]), min(a[-1][1], t[-1][1])
    if hi <= lo:
        return None
    fits = []
    for pts in (a, t):
        d = min(3, len(pts) - 1)
        fits.append(np.polyint(np.polyfit([p[1] for p in pts], np.log([p[0] for p in pts]), d)))
    ia, it = [np.polyval(f, hi) - np.polyval(f, lo) for f in fits]
    return float((np.exp((it - ia) / (hi - lo)) - 1) * 100)


def at_bpp(curve, bpp):
    """(psnr, ms_ssim) of a baseline sweep at ``bpp``, linear in log-rate between the two sweep points around it;
    None outside the sweep. curve: result rows of one baseline (means over the folder)."""
    pts = sorted(curve, key=lambda r: r['bpp'])
    for r in pts:
        if r['bpp'] == bpp:
            return r['psnr'], r['ms_ssim']
    for lo, hi in zip(pts, pts[1:]):
        if lo['bpp'] <= bpp <= hi['bpp'] and hi['bpp'] > lo['bpp']:
            t = (math.log(bpp) - math.log(lo['bpp'])) / (math.log(hi['bpp']) - math.log(lo['bpp']))
            pl, ph = lo['psnr'], hi['psnr']           # an exact (infinite) end makes it infinite, not NaN
            p = pl + t * (ph - pl) if math.isfinite(pl) and math.isfinite(ph) else math.inf
            ms = (None if lo['ms_ssim'] is None or hi['ms_ssim'] is None
                  else lo['ms_ssim'] + t * (hi['ms_ssim'] - lo['ms_ssim']))
            return p, ms
    return None


def plot(results, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in sorted(set(r['model'] for r in results)):
        rows = sorted((r for r in results if r['model'] == name), key=lambda r: r['bpp'])
        style = '-o' if 'rate_point' in rows[0] else '--.'
        axes[0].plot([r['bpp'] for r in rows], [r['psnr'] for r in rows], style, label=name)
        axes[1].plot([r['bpp'] for r in rows], [r['ms_ssim'] for r in rows], style, label=name)
    # the x range shows every rate point of the models (the baselines' sweeps may run past it)
    learned = [r['bpp'] for r in results if 'rate_point' in r] or [r['bpp'] for r in results]
    for ax, yl in zip(axes, ('PSNR (dB, 8-bit RGB)', 'MS-SSIM')):
        ax.set_xlabel('bits per pixel (bytes sent)'); ax.set_ylabel(yl); ax.set_xlim(0, 1.1 * max(learned))
        ax.grid(alpha=.3)
        ax.legend()
    if all(r['ms_ssim'] is None for r in results):
        axes[1].text(0.5, 0.5, 'no MS-SSIM: it needs images over 160 px on the short side',
                     ha='center', va='center', transform=axes[1].transAxes)
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)


def strict_json(value):
    """value with every infinite or NaN float as None: results.json is strict JSON (json.dump writes Infinity,
    which JSON parsers other than Python's refuse); an infinite PSNR is an exact match."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strict_json(v) for v in value]
    return value


def _unique(items):
    """Items in order, each once (--model ae --model ae evaluates ae once)."""
    out = []
    for x in items:
        if x not in out:
            out.append(x)
    return out


def _check_output(parser, option, path, exts=None):
    """Refuse an output path that cannot be written before the (long) evaluation starts."""
    try:
        cliutil.check_output_file(option, path, exts)
    except UsageError as e:
        parser.error(str(e))


def image_list(folder):
    """The images directly in --images, sorted; a NanolinkError when it is not a folder or holds none."""
    if not os.path.isdir(folder):
        raise NanolinkError('--images {}: no such folder; give a folder of images'.format(folder))
    paths = image_paths(folder)
    if not paths:
        raise NanolinkError('--images {}: no images in it ({})'.format(folder, ', '.join(IMAGE_EXTS)))
    return paths


def load_images(paths):
    out = []
    for path in paths:
        img = read_image(path)
        if img is None:
            raise NanolinkError('cannot read {}: not an image OpenCV can decode; move it out of --images (the means '
                                'must cover every image, so none is skipped)'.format(path))
        out.append((os.path.basename(path), img))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog='codec-eval', description=__doc__.split('\n')[0])
    p.add_argument('--images', required=True, help='folder of images (any size)')
    p.add_argument('--model', action='append', default=[], metavar='NAME[:DECODER]',
                   help='bundled model, optionally with a decoder variant (cae:quality; default: its fast decoder); '
                        'repeatable')
    p.add_argument('--baselines', default='jpeg,webp', help='comma-separated: jpeg, webp, or none (default: '
                                                             '%(default)s)')
    p.add_argument('--entropy', choices=('zlib', 'none'), default='zlib',
                   help='lossless coding of binary codes, as edge-sender --entropy (default: %(default)s)')
    p.add_argument('--out', required=True, help='results.json path')
    p.add_argument('--plot', help='RD plot PNG path')
    args = p.parse_args(argv)
    baselines = _unique(b.strip() for b in args.baselines.split(',') if b.strip() and b.strip() != 'none')
    args.model = _unique(args.model)
    _check_output(p, '--out', args.out)
    if args.plot:
        _check_output(p, '--plot', args.plot, ('.png', '.pdf', '.svg'))
    bad = [b for b in baselines if b not in BASELINES]
    if bad:
        p.error('unknown baseline(s) {}, should be among {}'.format(','.join(bad), ','.join(BASELINES)))
    if not args.model and not baselines:
        p.error('nothing to evaluate: give --model and/or --baselines')
    for spec in args.model:                             # an unknown model or decoder fails before any work
        try:
            parse_model(spec)
        except NanolinkError as e:
            p.error('--model {}: {}; write NAME or NAME:DECODER'.format(spec, e))
    try:
        paths = image_list(args.images)                 # the arguments first, then what the run needs
        try:
            import torch  # noqa: F401  (MS-SSIM is pytorch-msssim's)
            import pytorch_msssim  # noqa: F401
        except ImportError as e:
            return cliutil.torch_missing('codec-eval', e)
        return _run(args, baselines, load_images(paths))
    except NanolinkError as e:
        return cliutil.fail('codec-eval', e)


def _run(args, baselines, images):
    progress = lambda s: print('codec-eval: ' + s, file=sys.stderr, flush=True)
    results = []
    for name in args.model:
        results += eval_model(name, images, progress, args.entropy)
    for name in baselines:
        results += eval_baseline(name, images, progress)
    bd = {}
    if 'jpeg' in baselines:
        jpeg = [r for r in results if r['model'] == 'jpeg']
        anchor = [(r['bpp'], r['psnr']) for r in jpeg]
        for name in args.model:
            bd[name] = bd_rate(anchor, [(r['bpp'], r['psnr']) for r in results if r['model'] == name])
        for r in results:
            if 'rate_point' in r:
                same = at_bpp(jpeg, r['bpp'])
                r['jpeg_same_bpp'] = None if same is None else {'psnr': same[0], 'ms_ssim': same[1]}
    with open(args.out, 'w') as f:
        json.dump(strict_json({'images': args.images, 'count': len(images), 'results': results,
                               'bd_rate_vs_jpeg': bd}), f, indent=1, allow_nan=False)
    if args.plot:
        plot(results, args.plot)
    for line in table(results, bd, 'jpeg' in baselines):
        print(line)
    return 0


def table(results, bd, vs_jpeg):
    """The printed summary: one line per rate point and baseline quality (with the difference to JPEG at the same
    bpp when ``vs_jpeg``), then the BD-rates."""
    width = max([12] + [len(r['model']) for r in results])
    lines = ['{:<{w}} {:>7} {:>7} {:>8} {:>8}'.format('codec', 'setting', 'bpp', 'PSNR', 'MS-SSIM', w=width)
             + ('   vs JPEG at the same bpp: dPSNR  dMS-SSIM' if vs_jpeg else '')]
    for r in results:
        if 'rate_point' in r:
            setting = '{}={}'.format('q' if r.get('rate') == 'jpeg_quality' else 'k', r['rate_point'])
        else:
            setting = 'q={}'.format(r['quality'])
        line = '{:<{w}} {:>7} {:>7.3f} {:>8.2f} {:>8}'.format(r['model'], setting, r['bpp'], r['psnr'],
                                                            '{:.4f}'.format(r['ms_ssim']) if r['ms_ssim'] else '-',
                                                            w=width)
        if vs_jpeg and 'rate_point' in r:
            same = r['jpeg_same_bpp']
            line += '   {:>30}'.format('outside the JPEG sweep' if same is None else '{:+.2f} dB {:>9}'.format(
                r['psnr'] - same['psnr'], '-' if same['ms_ssim'] is None or r['ms_ssim'] is None
                else '{:+.4f}'.format(r['ms_ssim'] - same['ms_ssim'])))
        lines.append(line)
    for name, v in bd.items():
        lines.append('BD-rate of {} vs JPEG (PSNR): {}'.format(name, 'n/a (no overlap)' if v is None
                                                                else '{:+.1f} %'.format(v)))
    return lines

if __name__ == '__main__':
    sys.exit(main())
