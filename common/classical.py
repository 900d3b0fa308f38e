"""Classical baselines that travel through the same CLIs, transport and wire format as the learned codecs.

    edge-sender --model jpeg --jpeg-quality 20        # OpenCV JPEG, the imagezmq + JPEG way
    edge-sender --model raw                           # the BGR frame as it is

They exist so a benchmark compares like with like: the same capture, sockets, messages and logs, only the
codec differs (``latency-bench`` rows ``jpeg-qN`` and ``raw``). On the wire the model is ``jpeg`` or ``raw``
with a fixed fingerprint, dtype ``jpeg`` or ``raw``, and shape [3, H, W] equal to the frame size.
"""
import hashlib
import os
import struct
import sys
import tempfile

import cv2
import numpy as np

from nanolink.common import wire
from nanolink.common import cli as cliutil
from nanolink.common.errors import NanolinkError
from nanolink.common.zoo import CLASSICAL, ModelInfo  # noqa: F401  (CLASSICAL: the names, defined once in zoo)


def classical_info(name):
    """ModelInfo of a classical codec: stride 1, no padding, 3 'channels' (BGR)."""
    if name not in CLASSICAL:
        raise NanolinkError('unknown classical codec "{}", should be one of {}'.format(name, CLASSICAL))
    fp = hashlib.sha256('nanolink classical codec {} v1'.format(name).encode()).hexdigest()[:16]
    return ModelInfo(name=name, fingerprint=fp, stride=1, multiple=1, channels=3, rate_points=(),
                     default_channels=3, dtype=name)


class ClassicalBackend(object):
    """Backend-shaped encoder or decoder (forward / to_host / run) for the CLIs' stage clock."""

    device = 'cpu'

    def __init__(self, name, quality=None):
        self.kind = 'opencv-' + name
        self.name, self.quality = name, quality
        self.metadata = {}

    def forward(self, frame):
        return encode_jpeg(frame, self.quality) if self.name == 'jpeg' else frame

    def to_host(self, out):
        return out

    def close(self):
        pass


class ClassicalEncoder(object):
    """Same interface as nanolink.common.codec.EdgeEncoder: preprocess, backend.forward, fetch."""

    def __init__(self, name, quality=75, size=None):
        if name == 'jpeg':
            cliutil.check_range('--jpeg-quality', quality, 1, 100)
        self.info = classical_info(name)
        self.backend = ClassicalBackend(name, quality)
        self.channels, self.size, self.quality = 3, size, quality

    def preprocess(self, frame):
        from nanolink.common.imageproc import to_send
        frame = to_send(frame, self.size)
        return np.ascontiguousarray(frame), frame.shape[:2]

    def fetch(self, out):
        """-> (payload bytes, shape [3, H, W])."""
        h, w = out.shape[:2] if self.info.name == 'raw' else jpeg_size(out)
        return out.tobytes(), (3, h, w)

    def entropy_code(self, payload, mode='zlib'):
        return payload, self.info.dtype              # JPEG and raw frames pass through

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def jpeg_size(payload):
    """(height, width) from a baseline or progressive JPEG's SOF header, without decoding; WireError if none.

    Checked before decoding so a hostile header cannot make OpenCV allocate a huge image.
    """
    data = bytes(payload[:65536]) if len(payload) > 65536 else bytes(payload)
    if data[:2] != b'\xff\xd8':
        raise wire.WireError('jpeg payload does not start with a JPEG SOI marker')
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise wire.WireError('jpeg payload: bad marker at byte {}'.format(i))
        marker = data[i + 1]
        if marker == 0xFF:                       # fill byte
            i += 1
            continue
        length = struct.unpack('>H', data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > len(data):
                break
            h, w = struct.unpack('>HH', data[i + 5:i + 9])
            return h, w
        if length < 2:
            raise wire.WireError('jpeg payload: bad segment length at byte {}'.format(i))
        i += 2 + length
    raise wire.WireError('jpeg payload has no frame header (SOF) in its first 64 KiB')


def decode_jpeg(payload, shape, stream=None):
    """JPEG payload of a frame with code shape [3, h, w] -> BGR uint8 (h, w, 3); WireError if it is not one.
    The header is checked first, so a hostile size never reaches the decoder's allocation."""
    h, w = shape[1], shape[2]
    got = jpeg_size(payload)
    if got != (h, w):
        raise wire.WireError('jpeg payload is {}x{} but the message says {}x{}'.format(got[1], got[0], w, h), stream)
    if bytes(payload[-2:]) != b'\xff\xd9':    # OpenCV <= 4.6 decodes a truncated JPEG silently (grey below the cut)
        raise wire.WireError('jpeg payload is truncated: it does not end with an EOI marker', stream)
    with _Stderr() as warnings:   # libjpeg warns of corrupt scan data on stderr (OpenCV >= 4.7; 4.6 keeps quiet)
        image = cv2.imdecode(np.frombuffer(payload, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.shape[:2] != (h, w):
        raise wire.WireError('jpeg payload does not decode to a {}x{} image'.format(w, h), stream)
    if warnings.text:
        raise wire.WireError('jpeg payload is corrupt ({})'.format(warnings.text.strip().splitlines()[0][:100]),
                             stream)
    return image


class _Stderr(object):
    """Captures what C code writes to file descriptor 2 meanwhile (libjpeg's warnings, which OpenCV does not
    return): a corrupt JPEG is then a rejection instead of a garbled frame, and nothing floods the host's stderr.
    Used on the receive loop's thread; a line another thread writes in that window is kept and written after."""

    def __enter__(self):
        sys.stderr.flush()
        self._saved = os.dup(2)
        self._tmp = tempfile.TemporaryFile()
        os.dup2(self._tmp.fileno(), 2)
        return self

    def __exit__(self, *exc):
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._tmp.seek(0)
        raw = self._tmp.read()
        self._tmp.close()
        text = raw.decode('utf-8', 'replace')
        self.text = '\n'.join(l for l in text.splitlines() if 'JPEG' in l or 'jpeg' in l)
        other = '\n'.join(l for l in text.splitlines() if not ('JPEG' in l or 'jpeg' in l))
        if other:
            os.write(2, (other + '\n').encode('utf-8', 'replace'))
        return False


def encode_jpeg(bgr, quality):
    ok, buf = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise NanolinkError('OpenCV could not JPEG-encode a {} image'.format(bgr.shape))
    return buf


class ClassicalDecoder(object):
    """Same interface as nanolink.common.codec.HostDecoder: decode(frame) then postprocess(image, frame)."""

    def __init__(self, name):
        self.info = info = classical_info(name)
        self.backend = ClassicalBackend(name)
        self.variant = 'fast'
        self.stride, self.multiple, self.channels, self.dtype = info.stride, info.multiple, info.channels, info.dtype

    def decode(self, frame):
        h, w = frame.size
        if self.info.name == 'raw':
            return np.frombuffer(frame.payload, dtype=np.uint8).reshape(h, w, 3)
        return decode_jpeg(frame.payload, frame.shape, frame.stream)

    def postprocess(self, image, frame):
        return image
