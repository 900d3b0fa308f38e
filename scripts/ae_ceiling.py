"""Quality ceiling of an ``ae`` decoder: Kodak (or any folder) decoded from a lossless code.

    python scripts/ae_ceiling.py --images ../shared/data/kodak [--model-dir DIR ...] [--decoder-variant fast quality]

The code is the 8-bit half-size picture the bundled ``ae`` encoder sends (2x2 average, rounded), given to the
decoder without JPEG: no JPEG quality can do better than this. Bilinear upsampling of the same code is the
baseline. PSNR over 8-bit RGB, mean over the images.
"""
import argparse
import sys

import cv2
import numpy as np

from nanolink.common.codec import HostDecoder
from nanolink.common.errors import NanolinkError
from nanolink.common.metrics import psnr
from nanolink.common.zoo import FAST, bundled_model, load_manifest
from nanolink.edge.sources import image_paths


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--images', required=True, help='folder of PNG/JPEG images with even width and height')
    p.add_argument('--model-dir', action='append', default=[], help='an exported ae folder (default: the bundled ae)')
    p.add_argument('--decoder-variant', nargs='+', default=[FAST], metavar='NAME',
                   help='decoders to measure: fast and/or the variants the models ship (default: fast)')
    args = p.parse_args(argv)
    files = image_paths(args.images)
    if not files:
        p.error('no PNG or JPEG images in {}'.format(args.images))
    infos = [load_manifest(d) for d in args.model_dir] or [bundled_model('ae')]
    pairs = []                                           # (picture cropped to even size, its code)
    for fn in files:
        img = cv2.imread(fn, cv2.IMREAD_COLOR)
        h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
        img = img[:h, :w]
        pairs.append((img, cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)))   # the 2x2 mean, rounded
    rows = {}
    for info in infos:
        if info.dtype != 'jpeg':
            p.error('{} is not an ae-type model (its code is not an image)'.format(info.name))
        for variant in args.decoder_variant:
            try:
                dec = HostDecoder.open(info, variant=variant)
            except NanolinkError as e:
                p.error(str(e))
            arch = (info.manifest if variant == FAST else info.manifest['decoder_variants'][variant])['architecture']
            key = '{} {} {} (width {}, {} middle layers)'.format(info.name, info.fingerprint, variant,
                                                                  arch['dec_width'], arch['dec_layers'])
            rows[key] = [psnr(img, dec.backend.run(code[None].astype(np.float32))[0]) for img, code in pairs]
    base = [psnr(img, cv2.resize(code, img.shape[1::-1], interpolation=cv2.INTER_LINEAR)) for img, code in pairs]
    print('{} images from {}, lossless half-size code (no JPEG), mean PSNR:'.format(len(files), args.images))
    for key, v in rows.items():
        print('  decoder {}: {:.2f} dB'.format(key, np.mean(v)))
    print('  bilinear upsampling: {:.2f} dB'.format(np.mean(base)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
