"""Pre- and post-processing shared by the edge and the host (one copy, no twins).

Resize policy
-------------
* Default: frames keep the source size. The edge pads the bottom and right edges (edge pixels
  repeated) up to the model's multiple (16 for ``cae``, 8 for ``cae-bin``); the wire message carries the original size and
  the host crops the padding off, so the host shows exactly the source size.
* ``--size WxH``: the edge first resizes every frame to W x H (area interpolation when shrinking,
  bilinear when enlarging; the aspect ratio is the user's choice), then pads as above; the host shows
  W x H.
"""
import os

import cv2
import numpy as np

from nanolink.common.errors import NanolinkError, UsageError


def opencv_path(path):
    """``path`` as a str OpenCV can open. Python 3.6 under the C/POSIX locale (a systemd service or a container
    without LANG) keeps non-ASCII file-name bytes as surrogate escapes, and OpenCV crashes on them; re-read the
    bytes as UTF-8 instead, or say what to do."""
    try:
        return os.fsencode(path).decode('utf-8')
    except UnicodeDecodeError:
        raise NanolinkError('{!r}: the file name is not UTF-8; rename it (or run with LANG=C.UTF-8)'.format(path))


def read_image(path):
    """BGR uint8 image at ``path`` (any file name), or None when OpenCV cannot decode it."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except (OSError, ValueError):
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None


def parse_size(text, option='--size'):
    """'1008x1008' -> (1008, 1008) as (width, height); a clear error otherwise."""
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise UsageError('{} must look like WIDTHxHEIGHT, e.g. 1008x1008, got "{}"'.format(option, text))
    if not (8 <= w <= 4096 and 8 <= h <= 4096):
        raise UsageError('{} {}: width and height must be between 8 and 4096'.format(option, text))
    return w, h


def as_bgr(frame):
    """Camera frames may be grey or BGRA: return 3-channel uint8 BGR."""
    if frame.dtype != np.uint8:
        raise NanolinkError('frames must be 8-bit, got {}'.format(frame.dtype))
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


def resize_to(frame, size):
    """BGR frame resized to size (width, height), or unchanged when size is None or already that: area
    interpolation when shrinking, bilinear when enlarging."""
    if size is None or (frame.shape[1], frame.shape[0]) == tuple(size):
        return frame
    shrink = size[0] * size[1] < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, tuple(size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def pad(frame, multiple, size=None):
    """BGR uint8 (H, W, 3) -> (BGR uint8 (Hp, Wp, 3), (H, W) the host outputs): resized to ``size`` (width,
    height) first if given, then padded with edge pixels to ``multiple``."""
    frame = resize_to(as_bgr(frame), size)
    h, w = frame.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        frame = cv2.copyMakeBorder(frame, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(frame), (h, w)


def prepare(frame, multiple, size=None):
    """BGR uint8 (H, W, 3) -> (blob float32 (1, 3, Hp, Wp) RGB in [0, 1], (H, W) the host outputs).

    size: optional (width, height) to resize to first. Hp, Wp are H, W rounded up to ``multiple``.
    """
    frame, (h, w) = pad(frame, multiple, size)
    blob = np.empty((1, 3) + frame.shape[:2], dtype=np.float32)               # (1, 3, Hp, Wp) RGB in [0, 1]
    for c in range(3):                                                         # BGR interleaved -> RGB planes
        np.multiply(frame[:, :, 2 - c], np.float32(1.0 / 255.0), out=blob[0, c], dtype=np.float32)
    return blob, (h, w)


def finish(image, size):
    """Decoder output (1, Hp, Wp, 3) BGR uint8 (the learned decoders round to bytes themselves) -> (H, W, 3)
    cropped to size (H, W); no copy when there is no padding to crop off."""
    if image.dtype != np.uint8 or image.ndim != 4 or image.shape[3] != 3:
        raise NanolinkError('a decoder returned {} {}, not (1, H, W, 3) uint8 BGR: re-export it with this version '
                            '(nanolink-export)'.format(image.dtype, image.shape))
    h, w = size
    return np.ascontiguousarray(image[0, :h, :w])
