"""Image reading, sizes and resizing shared by the edge and the host (one copy, no twins); the per-frame padding
and cropping around the networks are nanolink.common.codec.pad / prepare / finish.

Resize policy
-------------
* Default: frames keep the source size. The edge pads the bottom and right edges (edge pixels
  repeated) up to the model's multiple (16 for ``cae``, 8 for ``cae-bin``); the wire message carries the original size and
  the host crops the padding off, so the host shows exactly the source size.
* ``--size WxH``: the edge first resizes every frame to W x H (area interpolation when shrinking,
  bilinear when enlarging; the aspect ratio is the user's choice), then pads as above; the host shows
  W x H.
"""
import logging
import os
import re
import struct

import cv2
import numpy as np

from nanolink.common.checks import is_int
from nanolink.common.errors import NanolinkError, UsageError

log = logging.getLogger('nanolink.common')


def opencv_path(path):
    """``path`` as a str OpenCV can open. Python 3.6 under the C/POSIX locale (a systemd service or a container
    without LANG) keeps non-ASCII file-name bytes as surrogate escapes, and OpenCV crashes on them; re-read the
    bytes as UTF-8 instead, or say what to do."""
    try:
        return os.fsencode(path).decode('utf-8')
    except UnicodeDecodeError:
        raise NanolinkError('{!r}: the file name is not UTF-8; rename it (or run with LANG=C.UTF-8)'.format(path))


MAX_IMAGE_PIXELS = 64 * 1024 * 1024      # images (files, folders) larger than this are refused before decoding


class ImageTooLarge(NanolinkError):
    """An image file whose header states more than MAX_IMAGE_PIXELS pixels; nothing was decoded."""


def header_size(data):
    """(width, height) stated by the header of a PNG, JPEG, BMP, WebP or PNM file's bytes, without decoding; None
    for another format or a header too short to say."""
    b = bytes(data[:65536])
    try:
        if b[:8] == b'\x89PNG\r\n\x1a\n' and b[12:16] == b'IHDR':
            return struct.unpack('>II', b[16:24])
        if b[:2] == b'\xff\xd8':
            from nanolink.common.classical import jpeg_size
            h, w = jpeg_size(b)
            return w, h
        if b[:2] == b'BM':
            w, h = struct.unpack('<ii', b[18:26])
            return abs(w), abs(h)
        if b[:4] == b'RIFF' and b[8:12] == b'WEBP':
            kind = b[12:16]
            if kind == b'VP8X':
                return 1 + int.from_bytes(b[24:27], 'little'), 1 + int.from_bytes(b[27:30], 'little')
            if kind == b'VP8L':
                v = int.from_bytes(b[21:25], 'little')
                return 1 + (v & 0x3fff), 1 + ((v >> 14) & 0x3fff)
            if kind == b'VP8 ':
                w, h = struct.unpack('<HH', b[26:30])
                return w & 0x3fff, h & 0x3fff
        if b[:1] == b'P' and b[1:2] in b'123456':
            fields = re.sub(rb'#[^\n]*', b' ', b[2:200]).split()
            return int(fields[0]), int(fields[1])
    except (struct.error, ValueError, IndexError, NanolinkError):
        return None
    return None


def read_image(path):
    """BGR uint8 image at ``path`` (any file name), or None when OpenCV cannot decode it; ImageTooLarge (nothing
    decoded) when its header states more than MAX_IMAGE_PIXELS pixels, or it does not fit in memory."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except (OSError, ValueError, MemoryError):
        return None
    if not data.size:
        return None
    size = header_size(data)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise ImageTooLarge('{}: {}x{} pixels, over the {} Mpx nanolink decodes (resize it first)'.format(
            path, size[0], size[1], MAX_IMAGE_PIXELS >> 20))
    try:
        return cv2.imdecode(data, cv2.IMREAD_COLOR)
    except MemoryError:
        raise ImageTooLarge('{}: does not fit in memory (resize it first)'.format(path))
    except cv2.error as e:                      # OpenCV's own limits (e.g. over 2^30 pixels in a format we do not
        log.debug('%s: %s', path, e)            # read headers of): not an image it decodes
        return None


MIN_SIDE, MAX_SIDE = 8, 4096      # the sizes --size and Sender(size=...) resize to (the wire takes up to 4096)


def parse_size(text, option='--size'):
    """'1008x1008' -> (1008, 1008) as (width, height); a clear error otherwise."""
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise UsageError('{} must look like WIDTHxHEIGHT, e.g. 1008x1008, got "{}"'.format(option, text))
    return _check_sides(w, h, '{}{}{}'.format(option, '' if option.endswith('//') else ' ', text))  # '--size 9x9'


def _check_sides(w, h, what):
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise UsageError('{}: width and height must be between {} and {}'.format(what, MIN_SIDE, MAX_SIDE))
    return w, h


def check_size(size, name='size'):
    """The API's size argument: None, (width, height) in pixels or the CLI's 'WxH' text -> None or (width, height),
    each MIN_SIDE..MAX_SIDE, as --size takes them; UsageError naming ``name`` otherwise."""
    if size is None:
        return None
    if isinstance(size, str):
        return parse_size(size, name)
    try:
        w, h = size
    except (TypeError, ValueError):
        w = h = None
    if not (is_int(w) and is_int(h)):
        raise UsageError('{} must be (width, height) in pixels, e.g. (640, 480), or "640x480", got {!r}'.format(
            name, size))
    return _check_sides(int(w), int(h), '{}=({}, {})'.format(name, w, h))


def to_send(frame, size):
    """The frame an edge encodes: as_bgr, then resized to ``size`` (width, height) if given. A NanolinkError before
    any encoding when a side is over MAX_SIDE, which no wire message carries (it used to be encoded first)."""
    frame = resize_to(as_bgr(frame), size)
    h, w = frame.shape[:2]
    if w > MAX_SIDE or h > MAX_SIDE:
        raise NanolinkError('cannot send a {}x{} frame: size [{}, {}] out of range 1..{} (the wire\'s limit); shrink '
                            'frames with size=(W, H) (edge-sender: --size WxH)'.format(w, h, h, w, MAX_SIDE))
    return frame


FRAME_SHAPES = 'a numpy uint8 array (H, W, 3) BGR, (H, W) or (H, W, 1) grey, or (H, W, 4) BGRA'


def as_bgr(frame):
    """Camera frames may be grey ((H, W) or (H, W, 1)) or BGRA: return 3-channel uint8 BGR. UsageError, saying what
    to pass instead, for anything else (not an array, not 8-bit, another shape, no pixels)."""
    if not isinstance(frame, np.ndarray):
        raise UsageError('a frame must be {}, got {}'.format(FRAME_SHAPES, type(frame).__name__))
    if frame.dtype != np.uint8:
        raise UsageError('frames must be 8-bit (uint8), got {}: convert with {}'.format(frame.dtype, '(frame * 255)'
                         '.clip(0, 255).astype(np.uint8) if its values are in [0, 1]' if frame.dtype.kind == 'f' else
                         'frame.astype(np.uint8) once its values are in 0..255'))
    shape = tuple(frame.shape)
    if frame.ndim == 4 and shape[0] == 1:
        raise UsageError('a frame must be {}, got a batch of one, {}: send frame[0]'.format(FRAME_SHAPES, shape))
    if frame.ndim not in (2, 3) or frame.ndim == 3 and shape[2] not in (1, 3, 4):
        raise UsageError('a frame must be {}, got shape {}'.format(FRAME_SHAPES, shape))
    if not frame.size:
        raise UsageError('an empty frame, shape {}: check that the camera or source gave an image'.format(shape))
    if frame.ndim == 2 or shape[2] == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


def resize_to(frame, size):
    """BGR frame resized to size (width, height), or unchanged when size is None or already that: area
    interpolation when shrinking, bilinear when enlarging."""
    if size is None or (frame.shape[1], frame.shape[0]) == tuple(size):
        return frame
    shrink = size[0] * size[1] < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, tuple(size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
