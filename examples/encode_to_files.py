"""Encode images to nanolink messages on disk and decode them back, without sockets (nanolink.open_codec).

    python examples/encode_to_files.py IMAGE [IMAGE ...] --out encoded/ --quality 3

Writes OUT/<name>.nlk (one wire message each) and OUT/<name>.decoded.png, and prints bytes, bpp and PSNR; files
that are not images are skipped with a warning.
"""
import argparse
import os
import sys

import cv2
import numpy as np

import nanolink


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('images', nargs='+')
    p.add_argument('--out', default='encoded')
    p.add_argument('--model', default='cae')
    p.add_argument('--quality', type=int, default=3, help='cae rate point 1..6')
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    try:
        codec = nanolink.open_codec(args.model, quality=args.quality)
    except nanolink.NanolinkError as e:             # one line saying what to do (UsageError: a bad argument)
        print('encode_to_files: {}'.format(e), file=sys.stderr)
        return 2 if isinstance(e, nanolink.UsageError) else 1
    done = 0
    with codec:
        for path in args.images:
            image = cv2.imread(path)
            if image is None:
                print('{}: not an image, skipped'.format(path), file=sys.stderr)
                continue
            name = os.path.splitext(os.path.basename(path))[0]
            data = codec.encode(image)
            with open(os.path.join(args.out, name + '.nlk'), 'wb') as f:
                f.write(data)
            with open(os.path.join(args.out, name + '.nlk'), 'rb') as f:
                decoded = codec.decode(f.read())
            cv2.imwrite(os.path.join(args.out, name + '.decoded.png'), decoded)
            mse = np.mean((decoded.astype(float) - image) ** 2)
            print('{}: {} bytes, {:.3f} bpp, PSNR {:.2f} dB'.format(
                name, len(data), len(data) * 8.0 / image.shape[0] / image.shape[1], 10 * np.log10(255 ** 2 / mse)))
            done += 1
    if not done:
        print('encode_to_files: none of the {} files is an image'.format(len(args.images)), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
