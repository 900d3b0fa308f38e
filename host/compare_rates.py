"""nanolink-compare's bit-rate table: Mbit/s a user can plan with, for each rate point of a model at common frame
sizes and a frame rate, beside OpenCV JPEG's at the same PSNR on the same frames.

Frames: the bundled sample photos, centre-cropped to each size's aspect ratio and resized (area) to it. Bytes are
whole wire messages; JPEG's are bare files. JPEG's Mbit/s at equal PSNR is interpolated (linearly in PSNR, in log
bytes) between the two qualities of its 2..98 sweep that bracket the model's mean PSNR.
"""
import math

import cv2
import numpy as np

from nanolink.codec import Codec
from nanolink.common import zoo
from nanolink.common.classical import encode_jpeg
from nanolink.common.metrics import psnr

SIZES = ((640, 480), (1280, 720), (1008, 1008))
JPEG_SWEEP = tuple(range(2, 99, 4))


def frames_at(photos, size):
    w, h = size
    out = []
    for p in photos:
        ph, pw = p.shape[:2]
        scale = min(pw / float(w), ph / float(h))
        cw, ch = int(w * scale), int(h * scale)
        x, y = (pw - cw) // 2, (ph - ch) // 2
        crop = p[y:y + ch, x:x + cw]
        out.append(cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA if scale > 1 else cv2.INTER_CUBIC))
    return out


def _option(info):
    return {'rans': 'quality', 'jpeg': 'jpeg_quality', 'bits': 'channels'}[info.dtype]


def jpeg_sweep(frames):
    """[(mean PSNR, mean bytes, quality)] of OpenCV JPEG over JPEG_SWEEP on frames."""
    sweep = []
    for q in JPEG_SWEEP:
        files = [encode_jpeg(f, q) for f in frames]
        sweep.append((float(np.mean([psnr(f, cv2.imdecode(j, cv2.IMREAD_COLOR)) for f, j in zip(frames, files)])),
                      float(np.mean([len(j) for j in files])), q))
    return sweep


def jpeg_bytes_at(sweep, target):
    """Mean JPEG bytes per frame at mean PSNR ``target`` (None when outside the sweep), and the bracketing qualities."""
    for (p0, b0, q0), (p1, b1, q1) in zip(sweep, sweep[1:]):
        if p0 <= target <= p1 and p1 > p0:
            t = (target - p0) / (p1 - p0)
            return math.exp(math.log(b0) + t * (math.log(b1) - math.log(b0))), (q0, q1)
    return None, None


def rate_rows(models, photos, fps, sizes=SIZES):
    rows = []
    for size in sizes:
        frames = frames_at(photos, size)
        sweep = jpeg_sweep(frames)
        for model in models:
            info = zoo.bundled_model(model)
            for r in info.rate_points:
                codec = Codec(model, **{_option(info): r})
                msgs = [codec.encode(f) for f in frames]
                p = float(np.mean([psnr(f, codec.decode(m)) for f, m in zip(frames, msgs)]))
                codec.close()
                nbytes = float(np.mean([len(m) for m in msgs]))
                jb, qs = jpeg_bytes_at(sweep, p)
                rows.append({'model': model, 'rate': r, 'option': _option(info), 'size': list(size), 'psnr': p,
                             'mbps': nbytes * 8 * fps / 1e6, 'jpeg_mbps': jb * 8 * fps / 1e6 if jb else None,
                             'jpeg_qualities': qs})
    return rows


def format_rates(rows, fps, n_photos):
    lines = ['Mbit/s at {:g} fps on the {} bundled photos (whole messages), beside OpenCV JPEG at the same mean PSNR'
             .format(fps, n_photos),
             'size | model, rate point | PSNR dB | Mbit/s | JPEG Mbit/s at that PSNR | JPEG / nanolink']
    for r in rows:
        j = r['jpeg_mbps']
        lines.append('{}x{} | {} {}={} | {:.2f} | {:.2f} | {} | {}'.format(
            r['size'][0], r['size'][1], r['model'], r['option'], r['rate'], r['psnr'], r['mbps'],
            '{:.2f} (q{}-{})'.format(j, *r['jpeg_qualities']) if j else 'out of JPEG q2-98\'s range',
            'x{:.2f}'.format(j / r['mbps']) if j else '-'))
    return '\n'.join(lines)
