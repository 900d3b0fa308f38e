"""The rANS coder's context tables (common/csrc/rans.h, nanolink-fit-context): the documented context rule and
stream order, exact round trips on grids of any shape, refusal of corrupt streams and bad tables."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nanolink.common.errors import NanolinkError
from nanolink.common.rans import (CTX_DCLIP, PROB_BITS, PROB_SCALE, RansError, RansTables, pack_context,
                                  unpack_context)
from tests.common.test_rans import random_freqs


def context_case(seed, channels=None, h=None, w=None, span=None):
    """Random tables with context (ks x ka tables a channel) and symbols of an h x w grid that are mostly each
    channel's fill symbol, as latents are. ``span`` 'wide': mix 1024 and per-channel thresholds past int16, most
    of them levels N + mix * P that occur in the grid (each comparison's boundary); 'low': some thresholds far
    below -32768, the rest small. -> (tables, symbols (C, h, w))."""
    rng = np.random.RandomState(seed)
    c = channels or rng.randint(1, 16)
    h, w = h or rng.randint(1, 12), w or rng.randint(1, 15)
    ks, ka = rng.randint(1, 5), rng.randint(1, 8)           # ka > 4: four thresholds a pass, then the rest
    nsym = [int(rng.choice([1, 2, 3, 17, 256])) if rng.rand() < 0.4 else rng.randint(2, 40) for _ in range(c)]
    base = [random_freqs(rng, n) for n in nsym]
    ctx = np.concatenate([random_freqs(rng, n) for n in nsym for _ in range(ks * ka)])
    if span == 'wide':                       # past int16: the encoder's int32 lanes (chosen below)
        thresholds, mix = np.full((c, ka - 1), 40000), 1024
    elif span == 'low':                      # only below int16: clamped in its int16 lanes
        low = rng.randint(0, 2, (c, ka - 1)) * rng.randint(33000, 60000, (c, ka - 1))
        thresholds, mix = rng.randint(-5, 200, (c, ka - 1)) - low, int(rng.choice([0, 7, 50]))
    elif seed % 3 == 0:                      # the first rule: one threshold list for every channel, mix 0
        thresholds, mix = np.cumsum(rng.randint(0, 30, ka - 1)), 0
    else:                                    # per-channel thresholds (any order, even negative), this position too
        thresholds, mix = rng.randint(-5, 200, (c, ka - 1)), int(rng.choice([0, 1, 7, 50, 1024]))
    tables = RansTables([0] * c, base, unpack_context(pack_context(ks, ka, thresholds, ctx, mix)))
    sym = np.stack([np.where(rng.rand(h, w) < 0.5, tables.fill[i], rng.randint(0, n, (h, w)))
                    for i, n in enumerate(nsym)]).astype(np.uint8)
    if span == 'wide':
        levels = reference_levels(tables.fill, sym, mix)
        thresholds = np.array([rng.choice(np.concatenate([lv[lv > 32767], [32768, 40000, 10 ** 6]]), ka - 1)
                               for lv in levels.reshape(c, -1)])
        tables = RansTables([0] * c, base, unpack_context(pack_context(ks, ka, thresholds, ctx, mix)))
    return tables, sym


def reference_levels(fill, sym, mix):
    """N(p) + mix * P(c, p) of csrc/rans.h for every symbol of (C, h, w), written from its description."""
    d = np.minimum(np.abs(sym.astype(np.int64) - fill.astype(np.int64)[:, None, None]), CTX_DCLIP)
    a = d.sum(0)
    n = np.zeros(a.shape, dtype=np.int64)
    n[:, 1:] += 2 * a[:, :-1]
    n[1:, :] += 2 * a[:-1, :]
    n[1:, 1:] += a[:-1, :-1]
    before = np.cumsum(d, axis=0) - d                       # P: this position's channels before c
    return n[None] + mix * before


def reference_contexts(tables, sym):
    """The context rule of csrc/rans.h, written from its description: (C, h, w) -> context indices (C, h, w)."""
    c_, h, w = sym.shape
    d = np.minimum(np.abs(sym.astype(int) - tables.fill.astype(int)[:, None, None]), CTX_DCLIP)
    level = reference_levels(tables.fill, sym, tables.mix)
    thr = tables.thresholds[:c_ * (tables.ka - 1)].reshape(c_, tables.ka - 1)
    ctx = np.zeros(sym.shape, dtype=int)
    for y in range(h):
        for x in range(w):
            for c in range(c_):
                ka = int(np.sum(thr[c] <= level[c, y, x]))
                own = (d[c, y, x - 1] if x else 0) + (d[c, y - 1, x] if y else 0)
                ctx[c, y, x] = ka * tables.ks + min(own, tables.ks - 1)
    return ctx


def reference_encode(tables, sym, coded):
    """The stream of csrc/rans.c with context tables, from its description: position-major, coded channels of a
    position in ascending order, the i-th coded symbol on state i % 2 (plain Python, slow)."""
    c_, h, w = sym.shape
    ctx = reference_contexts(tables, np.where(coded[:, None, None].astype(bool), sym, tables.fill[:, None, None]))
    k = tables.ks * tables.ka
    order = [(c, y, x) for y in range(h) for x in range(w) for c in range(c_) if coded[c]]
    st_ = [1 << 15, 1 << 15]
    words = []
    for i in reversed(range(len(order))):
        c, y, x = order[i]
        o = int(tables.offset[c * k + ctx[c, y, x]])
        s = int(sym[c, y, x])
        f, b = int(tables.freq[o + s]), int(tables.cum[o + s])
        j = i % 2
        if st_[j] >= f << 16:
            words.append(st_[j] & 0xffff)
            st_[j] >>= 16
        st_[j] = ((st_[j] // f) << PROB_BITS) + st_[j] % f + b
    out = b''.join(int(v).to_bytes(4, 'little') for v in st_)
    return out + b''.join(int(v).to_bytes(2, 'little') for v in reversed(words))


@pytest.mark.parametrize('seed', range(10))
def test_context_round_trip_and_the_documented_rule_and_order(seed):
    tables, sym = context_case(seed)
    c, h, w = sym.shape
    assert np.array_equal(tables.contexts(sym.reshape(c, -1), w).reshape(sym.shape), reference_contexts(tables, sym))
    stream, coded = tables.encode(sym)
    assert stream == reference_encode(tables, sym, coded)            # byte for byte what rans.h describes
    back = tables.decode(stream, coded, h * w, w)
    assert np.array_equal(back.reshape(sym.shape), sym)
    again, _ = tables.encode(sym.reshape(c, -1), width=w)             # deterministic, either call form
    assert again == stream


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10 ** 6), c=st.integers(1, 20), h=st.integers(1, 10), w=st.integers(1, 20),
       leave_out=st.integers(0, 2 ** 20 - 1), span=st.sampled_from([None, 'wide', 'low']))
def test_context_encoder_matches_the_rule_on_any_grid_and_channel_subset(seed, c, h, w, leave_out, span):
    """The encoder works the contexts out from a two-row window in blocks of 8 channels x 8 positions, and
    compares levels in int16 lanes unless a threshold needs more (csrc/rans_ctx_enc.c): every grid and channel
    count around those blocks, thresholds either side of int16, and channels left out of a frame by the caller
    give the stream the rule describes."""
    tables, sym = context_case(seed, channels=c, h=h, w=w, span=span)
    coded = tables.varying(sym.reshape(c, -1)) & np.array([1 - ((leave_out >> i) & 1) for i in range(c)], np.uint8)
    stream, _ = tables.encode(sym, coded=coded)
    assert stream == reference_encode(tables, sym, coded)
    kept = np.where(coded[:, None, None].astype(bool), sym, tables.fill[:, None, None])
    assert np.array_equal(tables.decode(stream, coded, h * w, w).reshape(sym.shape), kept)


@pytest.mark.parametrize('span', ['wide', 'low'])
@pytest.mark.parametrize('seed', range(4))
def test_thresholds_either_side_of_int16_give_the_rule_at_every_boundary(seed, span):
    """Thresholds past int16 take the encoder's int32 lanes ('wide': most of them levels that occur, so that
    t == N + mix * P is met); far below it, its int16 lanes with clamping ('low')."""
    tables, sym = context_case(seed, channels=15, h=6, w=9, span=span)
    c, h, w = sym.shape
    assert np.array_equal(tables.contexts(sym.reshape(c, -1), w).reshape(sym.shape), reference_contexts(tables, sym))
    stream, coded = tables.encode(sym)
    assert stream == reference_encode(tables, sym, coded)
    assert np.array_equal(tables.decode(stream, coded, h * w, w).reshape(sym.shape), sym)


def level_32767_case(thresholds):
    """33 channels on a 2 x 2 grid whose distances put N = 1023 at position (1, 1) and P = 31 at its channels 4..16
    (d = 8, 8, 8, 7, then 1 at channel 16), so that with mix 1024 their level N + mix * P is exactly 32767, and
    33 791 past channel 16. Every channel gets the given ka - 1 thresholds. -> (tables, symbols (33, 2, 2))."""
    rng = np.random.RandomState(5)
    c, ks, ka = 33, 2, len(thresholds) + 1
    base = [random_freqs(rng, 17) for _ in range(c)]
    ctx = np.concatenate([random_freqs(rng, 17) for _ in range(c * ks * ka)])
    tables = RansTables([0] * c, base, unpack_context(pack_context(ks, ka, np.tile(thresholds, (c, 1)), ctx, 1024)))
    d = np.zeros((c, 2, 2), dtype=int)
    d[:, 0, 0] = [8] * 32 + [7]                            # A = 263 up-left of (1, 1)
    d[:24, 0, 1] = [8] * 23 + [6]                          # A = 190 above it
    d[:24, 1, 0] = [8] * 23 + [6]                          # A = 190 left of it: N = 2 * 190 + 2 * 190 + 263
    d[:4, 1, 1], d[16, 1, 1] = [8, 8, 8, 7], 1
    fill = tables.fill.astype(int)[:, None, None]
    sym = np.where(fill + d < 17, fill + d, fill - d).astype(np.uint8)
    return tables, sym


@pytest.mark.parametrize('thresholds', [[32767, 100], [32768, 100]])
def test_levels_at_and_past_32767_against_thresholds_either_side_of_it(thresholds):
    """The int16 lanes' boundary (csrc/rans_ctx_enc.c): with every threshold <= 32767 they compare levels clamped
    at 32767 (exactly 32767 counts for a threshold of 32767, 33 791 must not wrap); a threshold of 32768 takes the
    int32 lanes, where a level of 32767 does not reach it."""
    tables, sym = level_32767_case(thresholds)
    level = reference_levels(tables.fill, sym, tables.mix)
    assert np.all(level[4:16, 1, 1] == 32767) and np.all(level[17:, 1, 1] == 33791)
    assert np.array_equal(tables.contexts(sym.reshape(33, -1), 2).reshape(sym.shape), reference_contexts(tables, sym))
    stream, coded = tables.encode(sym)
    assert stream == reference_encode(tables, sym, coded)
    assert np.array_equal(tables.decode(stream, coded, 4, 2).reshape(sym.shape), sym)


@pytest.mark.parametrize('shape', [(1, 1), (1, 37), (29, 1), (3, 3), (16, 24)])
def test_context_round_trip_on_edge_shapes_all_fill_and_max_symbols(shape):
    h, w = shape
    tables, sym = context_case(3, channels=9, h=h, w=w)
    for s in (sym, np.broadcast_to(tables.fill[:, None, None], sym.shape).copy(),      # nothing to code
              np.broadcast_to((tables.channel_nsym - 1)[:, None, None], sym.shape).astype(np.uint8)):  # max index
        stream, coded = tables.encode(s)
        assert np.array_equal(tables.decode(stream, coded, h * w, w).reshape(s.shape), s)


def test_context_decoder_refuses_truncated_extended_and_wrong_shapes():
    tables, sym = context_case(4, channels=10, h=8, w=9)
    stream, coded = tables.encode(sym)
    n = sym.shape[1] * sym.shape[2]
    for bad in (stream[:-2], stream + b'\0\0', stream[:7], b''):
        with pytest.raises(RansError):
            tables.decode(bad, coded, n, 9)
    with pytest.raises(RansError):
        tables.decode(stream, coded, n, 7)              # 7 does not divide 72: not this grid
    with pytest.raises(RansError, match='width'):
        tables.decode(stream, coded, n)                 # context tables need the grid
    with pytest.raises(RansError, match='width'):
        tables.encode(sym.reshape(10, -1))


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=0, max_size=600), mask=st.integers(0, 1023), h=st.integers(1, 9),
       w=st.integers(1, 9))
def test_garbage_never_crashes_the_context_decoder(data, mask, h, w):
    tables, _ = context_case(7, channels=10, h=3, w=3)       # per-channel thresholds, mix
    coded = np.array([(mask >> c) & 1 for c in range(10)], dtype=np.uint8) & ~tables.constant
    try:
        out = tables.decode(data, coded, h * w, w)
    except RansError:
        return
    assert out.shape == (10, h * w) and np.all(out < tables.channel_nsym[:, None])


def test_context_cost_is_within_a_few_bytes_of_the_context_entropy():
    tables, sym = context_case(8, channels=12, h=30, w=40)
    c, h, w = sym.shape
    stream, coded = tables.encode(sym)
    ctx = tables.contexts(sym.reshape(c, -1), w)
    k = tables.ks * tables.ka
    ideal = 0.0
    for i in np.nonzero(coded)[0]:
        for p, s in enumerate(sym[i].ravel()):
            ideal -= np.log2(tables.freq[tables.offset[i * k + ctx[i, p]] + s] / float(PROB_SCALE))
    assert ideal / 8 - 8 <= len(stream) <= ideal / 8 * 1.002 + 16     # the final states hold up to 8 bytes


def test_bad_context_sections_are_refused_with_a_reason():
    rng = np.random.RandomState(0)
    base = [random_freqs(rng, 5), random_freqs(rng, 1)]
    good = np.concatenate([random_freqs(rng, n) for n in (5, 1) for _ in range(4)])
    RansTables([0, 0], base, unpack_context(pack_context(2, 2, [3], good)))
    RansTables([0, 0], base, unpack_context(pack_context(2, 2, [[3], [9]], good, mix=1024)))   # per channel
    for ks, ka, thr, freqs, clip, mix in ((2, 2, [3], good[:-1], CTX_DCLIP, 0),        # one frequency short
                                          (2, 2, [], good, CTX_DCLIP, 0),              # ka - 1 thresholds needed
                                          (2, 2, [3, 4, 5], good, CTX_DCLIP, 0),       # neither 1 nor C lists
                                          (2, 2, [3], good, CTX_DCLIP + 1, 0),         # another distance clip
                                          (2, 2, [3], good, CTX_DCLIP, 1025),          # mix past 1024
                                          (2, 2, [3], good, CTX_DCLIP, -1),
                                          (2, 2, [2 ** 31], good, CTX_DCLIP, 0),       # not an int32
                                          (16, 17, [0] * 16, good, CTX_DCLIP, 0)):     # more than 256 tables
        ctx = dict(unpack_context(pack_context(ks, ka, thr, freqs)), clip=clip, mix=mix)
        with pytest.raises(NanolinkError, match='context'):
            RansTables([0, 0], base, ctx)
    broken = np.concatenate([random_freqs(rng, n) for n in (5, 1) for _ in range(4)])
    broken[0] += 1                                                               # a table not summing to 2^15
    with pytest.raises(NanolinkError):
        RansTables([0, 0], base, unpack_context(pack_context(2, 2, [3], broken)))
    with pytest.raises(NanolinkError, match='unpack'):
        unpack_context({'ks': 2, 'ka': 2, 'thresholds': [3], 'clip': CTX_DCLIP, 'freqs_b64z': 'not base64 zlib'})
