"""The classical baselines (jpeg, raw) on the wire: exact round trips, and hostile payloads rejected before
OpenCV decodes them."""
import struct
import time

import cv2
import numpy as np
import pytest

from nanolink.common import wire
from nanolink.common.classical import ClassicalDecoder, ClassicalEncoder, classical_info, jpeg_size
from nanolink.common.codec import load_decoders


def message(encoder, frame, seq=0):
    blob, size = encoder.preprocess(frame)
    payload, shape = encoder.fetch(encoder.backend.forward(blob))
    info = encoder.info
    return wire.pack(wire.Frame(stream='s', seq=seq, t_cap=time.time(), model=info.name, fp=info.fingerprint,
                                dtype=info.dtype, shape=shape, size=size, payload=payload, stages={}))


@pytest.fixture(scope='module')
def decoders():
    return load_decoders(['jpeg', 'raw'])


def test_raw_round_trip_is_exact(sample_frame, decoders):
    f = wire.unpack(message(ClassicalEncoder('raw'), sample_frame), decoders)
    dec = decoders['raw'][f.fp]
    np.testing.assert_array_equal(dec.postprocess(dec.decode(f), f), sample_frame)


def test_jpeg_round_trip_equals_opencv_at_that_quality(sample_frame, decoders):
    enc = ClassicalEncoder('jpeg', quality=30, size=(384, 256))
    data = message(enc, sample_frame)
    f = wire.unpack(data, decoders)
    assert f.size == (256, 384) and f.shape == (3, 256, 384)
    small = cv2.resize(sample_frame, (384, 256), interpolation=cv2.INTER_AREA)
    ref = cv2.imdecode(cv2.imencode('.jpg', small, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decoders['jpeg'][f.fp].decode(f), ref)
    assert len(data) < 0.2 * small.nbytes


def test_jpeg_size_reads_the_header_like_opencv(sample_frame):
    for q in (5, 50, 95):
        buf = cv2.imencode('.jpg', sample_frame[:300, :417], [cv2.IMWRITE_JPEG_QUALITY, q])[1]
        assert jpeg_size(buf.tobytes()) == (300, 417)
    prog = cv2.imencode('.jpg', sample_frame, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1]
    assert jpeg_size(prog.tobytes()) == sample_frame.shape[:2]


def hostile_jpeg(h, w):
    """A JPEG whose frame header claims h x w (SOF0), followed by junk and an EOI marker."""
    sof = b'\xff\xc0' + struct.pack('>HBHHB', 11, 8, h, w, 1) + b'\x01\x11\x00'
    return b'\xff\xd8' + sof + b'\x00' * 32 + b'\xff\xd9'


@pytest.mark.parametrize('payload, words', [
    (hostile_jpeg(60000, 60000), 'jpeg payload is 60000x60000 but the message says 8x8'),
    (hostile_jpeg(8, 8), 'does not decode'),
    (hostile_jpeg(8, 8)[:-2], 'is truncated: it does not end with an EOI marker'),
    (b'\x89PNG\r\n\x1a\n' + b'\x00' * 20, 'SOI'),
    (b'\xff\xd8\xff\xe0\x00\x01', 'bad segment length'),
    (b'\xff\xd8\x00', 'no frame header'),
])
def test_bad_jpeg_payloads_are_wire_errors_before_decoding(payload, words, decoders):
    info = classical_info('jpeg')
    f = wire.unpack(wire.pack(wire.Frame(stream='s', seq=0, t_cap=time.time(), model='jpeg', fp=info.fingerprint,
                                         dtype='jpeg', shape=(3, 8, 8), size=(8, 8), payload=payload, stages={})),
                    decoders)
    with pytest.raises(wire.WireError, match=words):
        decoders['jpeg'][f.fp].decode(f)


def test_wire_checks_classical_shapes_and_dtypes(decoders):
    jpeg, raw = classical_info('jpeg'), classical_info('raw')

    def frame(**kw):
        d = dict(stream='s', seq=0, t_cap=time.time(), model='raw', fp=raw.fingerprint, dtype='raw', shape=(3, 4, 4),
                 size=(4, 4), payload=bytes(48), stages={})
        d.update(kw)
        return wire.Frame(**d)
    wire.unpack(wire.pack(frame()), decoders)
    for kw, words in [({'payload': bytes(47)}, 'implies 48'), ({'size': (4, 5)}, 'does not fit code shape'),
                      ({'shape': (1, 4, 4), 'payload': bytes(16)}, r'has shape \[3, h, w\]'),
                      ({'model': 'jpeg', 'fp': jpeg.fingerprint}, "model jpeg sends dtype 'jpeg'"),
                      ({'dtype': 'jpeg', 'payload': b''}, 'empty')]:
        with pytest.raises(wire.WireError, match=words):
            wire.unpack(msg(frame(**kw)), decoders)


def msg(f):
    """Pack without the sender-side check, as a hostile or buggy peer could."""
    import msgpack
    return msgpack.packb({'v': wire.VERSION, 'stream': f.stream, 'session': f.session, 'seq': f.seq, 't_cap': f.t_cap, 'model': f.model, 'fp': f.fp,
                          'dtype': f.dtype, 'shape': list(f.shape), 'size': list(f.size), 'payload': f.payload,
                          'stages': f.stages}, use_bin_type=True)


def test_classical_codecs_reject_bad_options():
    from nanolink.common.errors import NanolinkError
    with pytest.raises(NanolinkError, match='1..100'):
        ClassicalEncoder('jpeg', quality=0)
    with pytest.raises(NanolinkError, match='unknown classical codec'):
        ClassicalDecoder('png')


def test_a_jpeg_libjpeg_warns_about_is_rejected_not_shown(sample_frame, capfd):
    """A truncated JPEG (OpenCV <= 4.6 decodes one silently, grey below the cut; 5.0 returns nothing) is rejected on
    every OpenCV by its missing EOI marker. Corrupt scan data that libjpeg warns about on stderr (OpenCV >= 4.7
    prints the warning, 4.6 does not) is rejected where the warning is printed, and never reaches the host's
    stderr; where it is not, the picture must be the intact one (the bytes libjpeg skips carry no image data)."""
    from nanolink.common.classical import decode_jpeg, encode_jpeg
    good = encode_jpeg(sample_frame, 75).tobytes()
    h, w = sample_frame.shape[:2]
    clean = decode_jpeg(good, (3, h, w))
    assert clean.shape == sample_frame.shape
    for cut in (len(good) // 2, len(good) - 1, len(good) - 2, len(good) - 40):
        with pytest.raises(wire.WireError, match='jpeg payload (is truncated|does not decode)'):
            decode_jpeg(good[:cut], (3, h, w))
    padded = good[:-2] + b'\x00' * 64 + good[-2:]
    try:
        image = decode_jpeg(padded, (3, h, w))
    except wire.WireError as e:
        assert 'jpeg payload is corrupt (Corrupt JPEG data' in str(e)
    else:
        assert np.array_equal(image, clean)
    assert 'JPEG' not in capfd.readouterr().err
