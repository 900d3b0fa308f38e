"""The "rans" payload on the wire (nanolink.common.wire): entropy-coded integer latents round-trip through a real
message; truncated, oversized, foreign and garbage payloads are rejected with a reason, never crashed on."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from nanolink.common import wire
from nanolink.common.rans import PROB_SCALE, RansTables

C, H, W = 10, 3, 5                    # latents at H/16: a 48 x 80 frame
FP = 'fedcba9876543210'


def tables_for(seed):
    rng = np.random.RandomState(seed)
    freqs = []
    for c in range(C):
        n = 1 if c == 3 else int(rng.randint(2, 30))       # channel 3 is constant at this rate
        if n == 1:
            freqs.append([PROB_SCALE])
            continue
        w = rng.randint(1, 500, n)
        f = 1 + w * (PROB_SCALE - n) // w.sum()
        f[0] += PROB_SCALE - f.sum()
        freqs.append([int(v) for v in f])
    return RansTables(list(rng.randint(-20, 0, C)), freqs)


class Spec(object):
    channels, stride, multiple, dtype = C, 16, 16, 'rans'

    def __init__(self):
        self.tables = {1: tables_for(1), 2: tables_for(2)}


MODELS = {'cae': {FP: Spec()}}


def symbols(rate, seed=0):
    t = MODELS['cae'][FP].tables[rate]
    rng = np.random.RandomState(seed)
    return np.stack([rng.randint(0, t.nsym[c], H * W) for c in range(C)]).astype(np.uint8)


def message(rate=2, payload=None, shape=(C, H, W), sym=None):
    if payload is None:
        stream, coded = MODELS['cae'][FP].tables[rate].encode(symbols(rate) if sym is None else sym)
        payload = wire.pack_rans(rate, coded, stream)
    return wire.pack(wire.Frame(stream='cam', seq=0, t_cap=1.7e9, model='cae', fp=FP, dtype='rans', shape=shape,
                                size=(48, 80), payload=payload, stages={}))


def test_round_trip_gives_the_symbols_and_the_rate_point():
    for rate in (1, 2):
        f = wire.unpack(message(rate), MODELS)
        assert f.rate == rate and f.symbols.shape == (C, H, W) and f.symbols.dtype == np.uint8
        assert np.array_equal(f.symbols.reshape(C, -1), symbols(rate))


def test_payload_layout_is_rate_bitmap_then_stream():
    t = MODELS['cae'][FP].tables[2]
    stream, coded = t.encode(symbols(2))
    payload = wire.pack_rans(2, coded, stream)
    assert payload[0] == 2
    assert list(np.unpackbits(np.frombuffer(payload[1:3], np.uint8))[:C]) == list(coded)
    assert coded[3] == 0                                     # the constant channel is never in the stream
    assert payload[3:] == stream


@pytest.mark.parametrize('mutate, words', [
    (lambda p: p[:-2], 'does not decode'),
    (lambda p: p + b'\x00\x00', 'does not decode'),
    (lambda p: p[:6], 'at least'),
    (lambda p: bytes([9]) + p[1:], 'rate point 9'),
    (lambda p: p[:1] + bytes([p[1] | 0x10]) + p[2:], 'constant'),          # channel 3: a constant one
    (lambda p: p[:2] + bytes([p[2] | 0x01]) + p[3:], 'padding bits'),      # bit 15 of a 10-channel bitmap
])
def test_bad_payloads_are_rejected_with_a_reason(mutate, words):
    t = MODELS['cae'][FP].tables[2]
    stream, coded = t.encode(symbols(2))
    bad = mutate(wire.pack_rans(2, coded, stream))
    with pytest.raises(wire.WireError) as e:
        wire.unpack(message(payload=bad), MODELS)
    assert words in e.value.reason and e.value.stream == 'cam'


def test_shapes_that_do_not_match_the_model_are_rejected_before_decoding():
    for shape, words in (((C - 1, H, W), 'channels'), ((C, H, W + 1), 'does not fit')):
        with pytest.raises(wire.WireError) as e:
            wire.unpack(message(shape=shape), MODELS)
        assert words in e.value.reason
    huge = b'\x02' + b'\x00' * (2 + 8 + 2 * C * H * W + 1)      # longer than any coding of C x h x w symbols
    with pytest.raises(wire.WireError) as e:
        wire.unpack(message(payload=huge), MODELS)
    assert 'at most' in e.value.reason


GOOD = message()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(GOOD) - 1), st.integers(0, 7), st.integers(0, len(GOOD)))
def test_bit_flips_and_truncations_of_a_rans_message(pos, bit, cut):
    for data in (GOOD[:pos] + bytes([GOOD[pos] ^ (1 << bit)]) + GOOD[pos + 1:], GOOD[:cut]):
        try:
            f = wire.unpack(data, MODELS)
        except wire.WireError as e:
            assert e.reason
            continue
        t = MODELS['cae'][FP].tables[f.rate]
        assert np.all(f.symbols.reshape(C, -1) < t.nsym[:, None])       # decoded only what the tables allow


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=0, max_size=200))
def test_random_payload_bytes_are_rejected_or_decode_inside_the_tables(payload):
    try:
        f = wire.unpack(message(payload=payload), MODELS)
    except wire.WireError as e:
        assert e.reason
        return
    assert np.all(f.symbols.reshape(C, -1) < MODELS['cae'][FP].tables[f.rate].nsym[:, None])
