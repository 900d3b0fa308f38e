"""Where a training run stands against JPEG and WebP on its validation set, from its val.jsonl.

    python scripts/rd_progress.py runs/cae/val.jsonl [--baselines docs/kodak-results.json]

For each validation row: PSNR at 0.5 bpp (interpolated in log-rate between the run's rate points), the gap to
OpenCV JPEG and WebP there, and BD-rates against both (export.evaluate.bd_rate), with the baselines' curves from a
committed codec-eval results.json of the same images. bpp in val.jsonl is the ideal code length under the integer
tables (rANS spends within bytes of it; the wire adds ~25 bytes a frame), so codec-eval's figures are the real ones.
"""
import argparse
import json

import numpy as np

from nanolink.export.evaluate import bd_rate


def psnr_at(points, bpp):
    """PSNR at bpp, linear in log-rate between the two points around it; None outside."""
    pts = sorted(points)
    for (b0, p0), (b1, p1) in zip(pts, pts[1:]):
        if b0 <= bpp <= b1:
            t = (np.log(bpp) - np.log(b0)) / (np.log(b1) - np.log(b0))
            return p0 + t * (p1 - p0)
    return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('val')
    p.add_argument('--baselines', default='docs/kodak-results.json')
    p.add_argument('--prefix', default='q')
    args = p.parse_args(argv)
    res = json.load(open(args.baselines))['results']
    base = {n: [(r['bpp'], r['psnr']) for r in res if r['model'] == n and r['psnr'] is not None]   # null: exact
            for n in ('jpeg', 'webp')}
    print('{:>8} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9}   rate points (bpp, dB)'.format(
        'step', 'dB@0.5', 'vs JPEG', 'vs WebP', 'bpp', 'BD JPEG', 'BD WebP'))
    for line in open(args.val):
        row = json.loads(line)
        qs = sorted(int(k[len('psnr_' + args.prefix):]) for k in row if k.startswith('psnr_' + args.prefix))
        pts = [(row['bpp_{}{}'.format(args.prefix, q)], row['psnr_{}{}'.format(args.prefix, q)]) for q in qs]
        at = psnr_at(pts, 0.5)
        gaps = ['{:+8.2f}'.format(at - psnr_at(base[n], 0.5)) if at is not None else '       -' for n in base]
        bds = ['{:+8.1f}%'.format(bd_rate(base[n], pts)) if bd_rate(base[n], pts) is not None else '        -'
               for n in base]
        print('{:8d} {:>9} {} {} {:8.3f} {} {}   {}'.format(
            row['step'], '{:.2f}'.format(at) if at is not None else '-', gaps[0], gaps[1],
            min(b for b, _ in pts), bds[0], bds[1], ' '.join('({:.3f}, {:.2f})'.format(b, q) for b, q in pts)))
    return 0


if __name__ == '__main__':
    main()
