import math

import msgpack
import numpy as np
import pytest

from nanolink.common import wire


class Spec(object):
    channels, stride, multiple, dtype = 16, 4, 8, 'bits'


MODELS = {'cae-bin': {'0123456789abcdef': Spec()}}


def make_frame(**over):
    rng = np.random.RandomState(0)
    bits = rng.randint(0, 2, (8, 16, 24)).astype(np.uint8)
    kw = dict(stream='cam-1', seq=7, t_cap=1700000000.5, model='cae-bin', fp='0123456789abcdef', shape=(8, 16, 24),
              size=(61, 90), payload=wire.pack_bits(bits), stages={'capture': 1.0, 'encode': 2.5})
    kw.update(over)
    return wire.Frame(**kw), bits


def raw(**over):
    """A message dict as the sender would pack it, with fields overridden or removed (None)."""
    f, _ = make_frame()
    d = {'v': wire.VERSION, 'stream': f.stream, 'session': f.session, 'seq': f.seq, 't_cap': f.t_cap, 'model': f.model, 'fp': f.fp,
         'dtype': 'bits', 'shape': list(f.shape), 'size': list(f.size), 'payload': f.payload, 'stages': f.stages}
    for k, v in over.items():
        if v is None:
            d.pop(k)
        else:
            d[k] = v
    return msgpack.packb(d, use_bin_type=True)


def test_round_trip_keeps_every_field_and_bit():
    f, bits = make_frame()
    g = wire.unpack(wire.pack(f), MODELS)
    for k in wire.FIELDS:
        assert getattr(g, k) == getattr(f, k), k
    assert np.array_equal(wire.unpack_bits(g.payload, g.shape), bits)


def test_payload_layout_is_channel_fastest_msb_first():
    bits = np.zeros((8, 1, 2), np.uint8)
    bits[0, 0, 0] = 1          # first bit of the first byte
    bits[7, 0, 1] = 1          # last bit of the second byte
    assert wire.pack_bits(bits) == bytes([0x80, 0x01])
    bits4 = np.zeros((4, 1, 2), np.uint8)
    bits4[:, 0, 1] = 1         # 4 channels: two positions share a byte
    assert wire.pack_bits(bits4) == bytes([0x0F])


def test_message_starts_with_a_fixmap_of_the_documented_fields():
    msg = wire.pack(make_frame()[0])
    assert msg[0] == 0x80 | len(wire.FIELDS)
    assert list(msgpack.unpackb(msg, raw=False)) == list(wire.FIELDS)


def test_optional_reference_frame_is_a_twelfth_entry_after_stages():
    import cv2
    ref = cv2.imencode('.jpg', np.zeros((61, 90, 3), np.uint8))[1].tobytes()       # the frame's size, H x W
    f = make_frame(ref=ref)[0]
    msg = wire.pack(f)
    assert msg[0] == 0x80 | (len(wire.FIELDS) + 1)
    assert list(msgpack.unpackb(msg, raw=False)) == list(wire.FIELDS) + ['ref']
    g = wire.unpack(msg, MODELS)
    assert g.ref == ref and g.payload == f.payload and g.ref_error is None
    assert wire.unpack(wire.pack(make_frame()[0]), MODELS).ref is None
    other = cv2.imencode('.jpg', np.zeros((60, 90, 3), np.uint8))[1].tobytes()
    g = wire.unpack(wire.pack(make_frame(ref=other)[0]), MODELS)           # the frame is kept, the ref dropped
    assert g.ref is None and g.ref_error == 'its JPEG header is not 90x61 like the frame'
    g = wire.unpack(wire.pack(make_frame(ref=b'\xff\xd8' + b'\x00' * 50)[0]), MODELS)
    assert g.ref is None and 'jpeg' in g.ref_error.lower()


def test_the_code_is_as_strict_as_the_docstring():
    """Repeated keys and set padding bits are refused (msgpack alone would take the last key, numpy ignore bits)."""
    msg = bytearray(wire.pack(make_frame()[0]))
    i = msg.index(b'\xa3seq')
    with pytest.raises(wire.WireError, match='repeats a key'):          # 'seq' renamed to a second 'v' (fixint)
        wire.unpack(bytes(msg[:i]) + b'\xa1v' + bytes(msg[i + 4:]), MODELS)
    bits = np.random.RandomState(1).randint(0, 2, (3, 2, 2)).astype(np.uint8)   # 12 bits: 4 padding bits
    payload = bytearray(wire.pack_bits(bits))
    ok = make_frame(shape=(3, 2, 2), size=(8, 8), payload=bytes(payload))[0]
    assert np.array_equal(wire.unpack_bits(wire.unpack(wire.pack(ok), MODELS).payload, (3, 2, 2)), bits)
    payload[-1] |= 1
    with pytest.raises(wire.WireError, match='padding bits'):
        wire.unpack(wire.pack(make_frame(shape=(3, 2, 2), size=(8, 8), payload=bytes(payload))[0]), MODELS)


@pytest.mark.parametrize('data, reason', [
    (b'', 'not a msgpack message'),
    (raw(ref=b'PNG...'), 'ref must be a JPEG'),
    (raw(ref='\xff\xd8 text'), 'ref must be a JPEG'),
    (raw(ref=12), 'ref must be a JPEG'),
    (b'\xc1', 'not a msgpack message'),
    (b'\x92\x01\x02', 'must be a msgpack map'),
    (raw()[:-5], 'not a msgpack message'),
    (raw() + b'\x00', 'not a msgpack message'),
    (raw(v=1), 'unsupported format version'),
    (raw(v='1'), 'unsupported format version'),
    (raw(seq=None), 'missing field'),
    (raw(extra=1), 'unknown field'),
    (raw(stream=''), 'stream id'),
    (raw(stream='a b'), 'stream id'),
    (raw(seq=-1), 'seq must be'),
    (raw(seq=1.5), 'seq must be'),
    (raw(t_cap=float('nan')), 't_cap'),
    (raw(t_cap=5), 't_cap'),
    (raw(t_cap=1e300), 't_cap'),
    (raw(model='jpeg'), 'unknown model'),
    (raw(fp='ffffffffffffffff'), 'not loaded here'),
    (raw(fp='XYZ'), 'fp must be'),
    (raw(dtype='float32'), 'dtype'),
    (raw(shape=[8, 16]), 'shape must be'),
    (raw(shape=[8, 16, 'x']), 'shape must be'),
    (raw(shape=[0, 16, 24]), 'out of range'),
    (raw(shape=[32, 16, 24], payload=b'\x00' * (32 * 16 * 24 // 8)), 'channels but model'),
    (raw(size=[64]), 'size must be'),
    (raw(size=[100, 90]), 'does not fit code shape'),
    (raw(shape=[8, 15, 24], size=[58, 90], payload=b'\x00' * (8 * 15 * 24 // 8)), 'does not fit code shape'),
    (raw(size=[0, 90]), 'out of range'),
    (raw(payload=b'\x00' * 10), 'payload is 10 bytes'),
    (raw(payload='text'), 'payload must be binary'),
    (raw(stages={'bogus': 1.0}), 'unknown sender stage'),
    (raw(stages={'encode': -1.0}), 'finite milliseconds'),
    (raw(stages={'encode': float('inf')}), 'finite milliseconds'),
    (raw(stages=[1, 2]), 'stages must be a map'),
    (msgpack.packb({1: 2}), 'not a msgpack message'),
    (msgpack.packb(msgpack.ExtType(1, b'x')), 'ext'),
])
def test_every_malformed_message_is_rejected_with_a_reason(data, reason):
    with pytest.raises(wire.WireError) as e:
        wire.unpack(data, MODELS)
    assert reason in e.value.reason


def test_rejection_names_the_stream_when_it_is_readable():
    with pytest.raises(wire.WireError) as e:
        wire.unpack(raw(payload=b'\x00'), MODELS)
    assert e.value.stream == 'cam-1'


def test_oversized_message_is_rejected_before_parsing():
    with pytest.raises(wire.WireError, match='exceeds'):
        wire.unpack(b'\x00' * (wire.MAX_MESSAGE_BYTES + 1), MODELS)


def test_sender_cannot_pack_an_invalid_frame():
    with pytest.raises(wire.WireError):
        wire.pack(make_frame(payload=b'\x00')[0])
    assert math.isfinite(wire.unpack(wire.pack(make_frame()[0]), MODELS).t_cap)


def test_no_pickle_for_network_data_anywhere_in_the_package():
    """No module imports pickle, except latency-bench's timing of the slides' approach, which pickles a local
    array in one function that touches no socket."""
    import ast
    import nanolink.common, nanolink.edge, nanolink.host
    import os
    for pkg in (nanolink.common, nanolink.edge, nanolink.host):
        d = os.path.dirname(pkg.__file__)
        for name in os.listdir(d):
            if not name.endswith('.py'):
                continue
            src = open(os.path.join(d, name)).read()
            if name == 'bench_report.py' and pkg is nanolink.host:
                tree = ast.parse(src)
                users = set()
                for fn in ast.walk(tree):
                    if isinstance(fn, ast.FunctionDef):
                        for node in ast.walk(fn):
                            if isinstance(node, ast.Import) and any(a.name == 'pickle' for a in node.names):
                                users.add(fn.name)
                            if isinstance(node, ast.ImportFrom) and node.module == 'pickle':
                                users.add(fn.name)
                top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
                       and 'pickle' in [a.name for a in n.names] + [getattr(n, 'module', None)]]
                assert users == {'_slides_pickle_roundtrip'} and not top, users
                fn = next(f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name in users)
                names = {getattr(n, 'id', None) or getattr(n, 'attr', None) for n in ast.walk(fn)}
                assert not names & {'socket', 'recv', 'recv_ready', 'zmq', 'Receiver'}, names
                continue
            assert 'import pickle' not in src and 'pickle.loads' not in src, name


def zframe(payload, shape=(8, 4, 4)):
    return wire.Frame(stream='z', seq=0, t_cap=1.0, model='cae-bin', fp='0123456789abcdef', dtype='bits-zlib',
                      shape=shape, size=(16, 16), payload=payload, stages={})


def raw_message(f):
    return msgpack.packb({'v': wire.VERSION, 'stream': f.stream, 'session': f.session, 'seq': f.seq, 't_cap': f.t_cap, 'model': f.model, 'fp': f.fp,
                          'dtype': f.dtype, 'shape': list(f.shape), 'size': list(f.size), 'payload': f.payload,
                          'stages': f.stages}, use_bin_type=True)


def test_zlib_payload_round_trips_to_the_packed_bits():
    import zlib
    bits = bytes(16)                                           # 8 x 4 x 4 bits, compressible
    payload, dtype = wire.deflate(bits)
    assert dtype == 'bits-zlib' and len(payload) < len(bits)
    f = wire.unpack(wire.pack(zframe(payload)), MODELS)
    assert f.payload == bits and f.dtype == 'bits-zlib'
    rnd = bytes(range(16))
    assert wire.deflate(rnd) == (rnd, 'bits') or len(zlib.compress(rnd, 3)) < 16   # never longer than raw


@pytest.mark.parametrize('payload, words', [
    (b'not zlib at all', 'not a zlib stream'),
    (__import__('zlib').compress(bytes(15)), 'exactly 16 bytes'),                      # too short
    (__import__('zlib').compress(bytes(1 << 20)), 'shorter than'),                      # a bomb is also too long
    (__import__('zlib').compress(bytes(16)) + b'x', 'exactly 16 bytes'),                # trailing data
])
def test_bad_zlib_payloads_are_rejected(payload, words):
    with pytest.raises(wire.WireError, match=words):
        wire.unpack(raw_message(zframe(payload)), MODELS)


def test_zlib_bomb_inside_the_length_limit_stops_at_the_expected_size():
    """4 MB of zeros compress to 4086 bytes, under the 4096 bytes of packed bits that shape [8, 64, 64] implies:
    the receiver inflates at most 4097 bytes of it and rejects the frame."""
    import zlib
    bomb = zlib.compress(bytes(4 << 20), 9)
    assert len(bomb) < 4096
    f = zframe(bomb, (8, 64, 64))
    f.size = (256, 256)
    with pytest.raises(wire.WireError, match='exactly 4096 bytes'):
        wire.unpack(raw_message(f), MODELS)


def test_pack_refuses_a_message_every_receiver_would_refuse():
    f, _ = make_frame(dtype='raw', shape=(3, 2400, 2400), size=(2400, 2400), payload=b'\x00' * (3 * 2400 * 2400))
    with pytest.raises(wire.WireError) as e:
        wire.pack(f)
    assert e.value.too_big and 'over the {} byte limit'.format(wire.MAX_MESSAGE_BYTES) in e.value.reason
