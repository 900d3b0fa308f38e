"""Image quality metrics on 8-bit frames, without torch (the host runtime has no torch).

``ms_ssim`` is a NumPy/OpenCV port of pytorch-msssim's ``ms_ssim`` (Gaussian window 11, sigma 1.5,
5 scales, the standard weights, zero-padded 2x2 average pooling, ReLU on negative terms), so the demo
and the live quality monitor report the same numbers as ``codec-eval``, which calls pytorch-msssim;
tests/common/test_metrics.py checks the two agree.
"""
import math

import cv2
import numpy as np

_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def psnr(a, b):
    """PSNR in dB between two uint8 images of the same shape (inf when identical)."""
    if a.shape != b.shape:
        raise ValueError('psnr: shapes differ: {} vs {}'.format(a.shape, b.shape))
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float('inf') if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def _gauss(size=11, sigma=1.5):
    x = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _filter_valid(img, g):
    r = len(g) // 2
    out = cv2.sepFilter2D(img, cv2.CV_64F, g, g, borderType=cv2.BORDER_CONSTANT)
    return out[r:img.shape[0] - r, r:img.shape[1] - r]


def _ssim_cs(x, y, g, data_range):
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu1, mu2 = _filter_valid(x, g), _filter_valid(y, g)
    s11 = _filter_valid(x * x, g) - mu1 * mu1
    s22 = _filter_valid(y * y, g) - mu2 * mu2
    s12 = _filter_valid(x * y, g) - mu1 * mu2
    cs_map = (2 * s12 + c2) / (s11 + s22 + c2)
    ssim_map = ((2 * mu1 * mu2 + c1) / (mu1 * mu1 + mu2 * mu2 + c1)) * cs_map
    return ssim_map.mean(), cs_map.mean()


def _pool(x):
    ph, pw = x.shape[0] % 2, x.shape[1] % 2
    x = np.pad(x, ((ph, ph), (pw, pw)), mode='constant')
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    x = x[:h, :w]
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def ms_ssim(a, b, data_range=255.0):
    """MS-SSIM of two uint8 images (H, W[, C]); the smaller side must exceed 160 pixels."""
    if a.shape != b.shape:
        raise ValueError('ms_ssim: shapes differ: {} vs {}'.format(a.shape, b.shape))
    if min(a.shape[:2]) <= 160:
        raise ValueError('ms_ssim needs images larger than 160 pixels on the smaller side, got {}'.format(a.shape))
    a3 = a.reshape(a.shape[0], a.shape[1], -1).astype(np.float64)
    b3 = b.reshape(b.shape[0], b.shape[1], -1).astype(np.float64)
    g = _gauss()
    vals = []
    for c in range(a3.shape[2]):
        x, y = a3[:, :, c], b3[:, :, c]
        terms = []
        for level in range(5):
            s, cs = _ssim_cs(x, y, g, data_range)
            if level < 4:
                terms.append(max(cs, 0.0))
                x, y = _pool(x), _pool(y)
            else:
                terms.append(max(s, 0.0))
        vals.append(np.prod([t ** w for t, w in zip(terms, _WEIGHTS)]))
    return float(np.mean(vals))
