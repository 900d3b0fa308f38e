"""Stream a folder of images through the real CLIs and compare with OpenCV JPEG at the same bytes.

    python scripts/stream_quality.py --images DIR [--model cae --quality 3 | --model cae-bin --channels 8 | --model ae --jpeg-quality 75] [--decoder-variant quality] [--out DIR]

Runs ``host-receiver --save`` and ``edge-sender --camera DIR`` as two processes over loopback, then for
each image: PSNR (8-bit RGB) and MS-SSIM of the decoded frame, bpp from the wire-message bytes, and the same
for OpenCV JPEG at the highest quality whose file is no larger than that image's message (quality 1 where
none is, said in the output). Prints a table and writes it, with the command, to OUT/stream-quality.txt.
"""
import argparse
import json
import os
import subprocess
import sys

import cv2
import numpy as np

from nanolink.host.launch import HostProcess
from nanolink.common.metrics import ms_ssim, psnr
from nanolink.edge.sources import image_paths


def jpeg_at_most(img, nbytes):
    """-> (JPEG bytes, fits): the highest OpenCV quality whose file is no larger than nbytes; where even quality 1
    is larger, quality 1's file and fits False (so JPEG gets more bytes than the message there, not fewer)."""
    best = None
    for q in range(1, 101):
        enc = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, q])[1]
        if len(enc) <= nbytes:
            best = enc
    if best is None:
        return cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, 1])[1], False
    return best, True


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--images', required=True)
    p.add_argument('--model', default='cae')
    p.add_argument('--quality', type=int, help='cae rate point (1..6 for the bundled cae; default: the model\'s)')
    p.add_argument('--channels', type=int, help='cae-bin rate point (default: the model default)')
    p.add_argument('--jpeg-quality', type=int, help='ae rate (default: the model default)')
    p.add_argument('--decoder-variant', default='fast', choices=('fast', 'quality'),
                   help='host-receiver --decoder-variant: the same messages through the heavier decoder')
    p.add_argument('--out', default='stream-quality')
    args = p.parse_args(argv)
    paths = image_paths(args.images)
    n = len(paths)
    os.makedirs(args.out, exist_ok=True)
    launched = HostProcess(['--frames', str(n), '--save', os.path.join(args.out, 'frames'), '--log',
                            os.path.join(args.out, 'host.jsonl'), '--timeout', '60', '--quiet',
                            '--decoder-variant', args.decoder_variant],
                           stderr_path=os.path.join(args.out, 'host.stderr.txt'))
    host, endpoint = launched.proc, launched.endpoint
    rate = (['--channels', str(args.channels)] if args.channels else []) + \
        (['--quality', str(args.quality)] if args.quality else []) + \
        (['--jpeg-quality', str(args.jpeg_quality)] if args.jpeg_quality else [])
    subprocess.check_call([sys.executable, '-m', 'nanolink.edge.cli', '--camera', args.images, '--frames', str(n),
                           '--model', args.model, '--connect', endpoint, '--quiet'] + rate)
    if host.wait(120) != 0:
        raise SystemExit('host-receiver failed')
    rows = [json.loads(l) for l in open(os.path.join(args.out, 'host.jsonl'))]
    res = {'nanolink': [], 'jpeg': []}
    larger = 0
    for r, path in zip(sorted(rows, key=lambda r: r['seq']), paths):
        src = cv2.imread(path)
        dec = cv2.imread(os.path.join(args.out, 'frames', r['stream'], '{:08d}.png'.format(r['seq'])))
        px = src.shape[0] * src.shape[1]
        jpg, fits = jpeg_at_most(src, r['bytes'])
        larger += not fits
        jdec = cv2.imdecode(jpg, cv2.IMREAD_COLOR)
        for name, img, nbytes in (('nanolink', dec, r['bytes']), ('jpeg', jdec, len(jpg))):
            res[name].append((nbytes * 8.0 / px, psnr(src, img), ms_ssim(src[..., ::-1], img[..., ::-1])))
    variant = [] if args.decoder_variant == 'fast' else ['--decoder-variant', args.decoder_variant]
    lines = ['command: python scripts/stream_quality.py --images {} --model {}'.format(
                 args.images, ' '.join([args.model] + rate + variant)),
             '{} images from {}'.format(n, args.images), '',
             '| codec | bpp | PSNR (dB) | MS-SSIM |', '|---|---|---|---|']
    for name, label in (('nanolink', 'nanolink {} (real CLIs, message bytes)'.format(' '.join([args.model] + rate +
                                                                                               variant))),
                        ('jpeg', 'OpenCV JPEG, no larger than the message')):
        a = np.array(res[name])
        lines.append('| {} | {:.4f} | {:.2f} | {:.4f} |'.format(label, a[:, 0].mean(), a[:, 1].mean(), a[:, 2].mean()))
    if larger:
        lines += ['', 'on {} of {} images no OpenCV JPEG is as small as the message: JPEG quality 1 is used there, '
                      'with more bytes than the message'.format(larger, n)]
    text = '\n'.join(lines)
    print(text)
    with open(os.path.join(args.out, 'stream-quality.txt'), 'w') as f:
        f.write(text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
