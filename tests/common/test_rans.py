"""The rANS coder shared by the edge and the host: exact round trips, the documented format, and refusal of every
stream that is not exactly the coding of its symbols."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nanolink.common.errors import NanolinkError
from nanolink.common.rans import PROB_BITS, PROB_SCALE, RansError, RansTables


def random_freqs(rng, n):
    """n integer frequencies >= 1 summing to 2^15, skewed (some very peaked)."""
    if n == 1:
        return [PROB_SCALE]
    w = rng.randint(1, 1000, n) * np.where(rng.rand(n) < 0.25, 200, 1)
    f = 1 + (w * (PROB_SCALE - n) // w.sum())
    f[0] += PROB_SCALE - f.sum()
    return [int(v) for v in f]


def random_case(seed, channels=None, n=None):
    rng = np.random.RandomState(seed)
    c = channels or rng.randint(1, 20)
    n = n or rng.randint(1, 400)
    freqs = [random_freqs(rng, int(rng.choice([1, 2, 3, 17, 256]) if rng.rand() < 0.5 else rng.randint(2, 60)))
             for _ in range(c)]
    sym = np.stack([rng.choice(len(f), n, p=np.asarray(f) / float(PROB_SCALE)) for f in freqs]).astype(np.uint8)
    return RansTables([0] * c, freqs), sym


def reference_encode(tables, sym, coded):
    """The stream format of common/csrc/rans.c, written from its description in plain Python (slow)."""
    x = [1 << 15, 1 << 15]
    order = [(c, p) for c in range(tables.channels) if coded[c] for p in range(sym.shape[1])]
    words = []
    for i in reversed(range(len(order))):
        c, p = order[i]
        s = int(sym[c, p])
        o = int(tables.offset[c])
        f, b = int(tables.freq[o + s]), int(tables.cum[o + s])
        k = i % 2
        if x[k] >= f << 16:
            words.append(x[k] & 0xffff)
            x[k] >>= 16
        x[k] = ((x[k] // f) << PROB_BITS) + x[k] % f + b
    out = bytearray()
    for v in x:
        out += int(v).to_bytes(4, 'little')
    for w in reversed(words):
        out += int(w).to_bytes(2, 'little')
    return bytes(out)


@pytest.mark.parametrize('seed', range(12))
def test_round_trip_and_the_documented_format(seed):
    tables, sym = random_case(seed)
    stream, coded = tables.encode(sym)
    assert stream == reference_encode(tables, sym, coded)        # byte for byte what the format describes
    back = tables.decode(stream, coded, sym.shape[1])
    assert back.dtype == np.uint8 and np.array_equal(back, sym)
    again, coded2 = tables.encode(sym)                          # deterministic
    assert again == stream and np.array_equal(coded2, coded)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), n=st.integers(1, 64))
def test_random_tables_round_trip_exactly(seed, n):
    tables, sym = random_case(seed, n=n)
    stream, coded = tables.encode(sym)
    assert np.array_equal(tables.decode(stream, coded, n), sym)


def test_edge_cases_all_fill_max_symbol_constant_channel_one_position():
    freqs = [[PROB_SCALE], random_freqs(np.random.RandomState(1), 256), [1, PROB_SCALE - 1], [PROB_SCALE - 1, 1]]
    tables = RansTables([-3, -128, 0, 5], freqs)
    fill = tables.fill.reshape(-1, 1)
    allfill = np.repeat(fill, 50, axis=1)
    stream, coded = tables.encode(allfill)                # every channel at its fill symbol: nothing to code
    assert not coded.any() and len(stream) == 8
    assert np.array_equal(tables.decode(stream, coded, 50), allfill)
    sym = allfill.copy()
    sym[1, :] = 255                                       # the largest index of a 256-symbol table
    sym[2, 7] = 0                                         # a symbol of probability 2^-15
    stream, coded = tables.encode(sym)
    assert list(coded) == [0, 1, 1, 0]                    # the constant channel is never coded
    assert np.array_equal(tables.decode(stream, coded, 50), sym)
    one = sym[:, :1].copy()
    s1, c1 = tables.encode(one)
    assert np.array_equal(tables.decode(s1, c1, 1), one)
    assert np.array_equal(tables.values(sym)[:, 0], [-3, -128 + 255, int(tables.fill[2]), 5 + int(tables.fill[3])])


def test_streams_that_are_not_exactly_the_coding_are_refused():
    tables, sym = random_case(3, channels=8, n=300)
    stream, coded = tables.encode(sym)
    n = sym.shape[1]
    for bad in (stream[:-2], stream + b'\x00\x00', stream[:6], stream[:-1], b'', b'\x00' * 8,
                b'\xff' * len(stream)):
        with pytest.raises(RansError):
            tables.decode(bad, coded, n)
    with pytest.raises(RansError):
        tables.decode(stream, coded, n + 1)               # fewer symbols in the stream than the shape says
    with pytest.raises(RansError):
        tables.decode(stream, np.ones(8, np.uint8) if not coded.all() else np.zeros(8, np.uint8), n)
    with pytest.raises(RansError):
        tables.decode(stream, coded[:4], n)               # a mask for another channel count


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=0, max_size=600), mask=st.integers(0, 255), n=st.integers(1, 80))
def test_garbage_never_crashes_the_decoder(data, mask, n):
    tables, _ = random_case(5, channels=8, n=10)
    coded = np.array([(mask >> c) & 1 for c in range(8)], dtype=np.uint8) & ~tables.constant
    try:
        out = tables.decode(data, coded, n)
    except RansError:
        return
    assert out.shape == (8, n) and np.all(out < tables.nsym[:, None])   # whatever decodes is inside the tables


def test_flipped_bytes_are_refused_or_stay_inside_the_tables():
    tables, sym = random_case(7, channels=12, n=200)
    stream, coded = tables.encode(sym)
    rng = np.random.RandomState(0)
    refused = 0
    for _ in range(200):
        bad = bytearray(stream)
        bad[rng.randint(len(bad))] ^= rng.randint(1, 256)
        try:
            out = tables.decode(bytes(bad), coded, 200)
            assert np.all(out < tables.nsym[:, None])
        except RansError:
            refused += 1
    assert refused >= 190                                 # the final-state check catches nearly every flip


def test_symbols_past_a_table_and_bad_tables_are_refused():
    tables = RansTables([0, 0], [[PROB_SCALE // 2, PROB_SCALE // 2], [PROB_SCALE]])
    with pytest.raises(RansError, match='channel 0'):
        tables.encode(np.array([[2, 0], [0, 0]], np.uint8))
    with pytest.raises(RansError, match='channel 1'):
        tables.encode(np.array([[0, 0], [1, 0]], np.uint8))   # a constant channel holds only its one symbol
    with pytest.raises(RansError):
        tables.encode(np.zeros((3, 4), np.uint8))              # three channels for two tables
    for lo, freqs in (([0], [[1, 2]]), ([0], [[0, PROB_SCALE]]), ([0], [[]]), ([0], [[1] * 257]), ([0, 1], [[PROB_SCALE]])):
        with pytest.raises(NanolinkError):
            RansTables(lo, freqs)


def test_coding_cost_is_within_a_few_bytes_of_the_table_entropy():
    tables, sym = random_case(11, channels=16, n=4000)
    stream, coded = tables.encode(sym)
    ideal = 0.0
    for c in range(16):
        if coded[c]:
            f = tables.freq[tables.offset[c]:tables.offset[c] + tables.nsym[c]].astype(float)
            ideal -= np.log2(f[sym[c]] / PROB_SCALE).sum()
    assert ideal / 8 <= len(stream) <= ideal / 8 * 1.002 + 16
