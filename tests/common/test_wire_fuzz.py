"""Property tests: no byte string makes wire.unpack raise anything but WireError."""
import msgpack
from hypothesis import HealthCheck, given, settings, strategies as st

from nanolink.common import answers, wire
from test_wire import MODELS, make_frame

GOOD = wire.pack(make_frame()[0])
values = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 64 - 1) | st.floats() | st.text(max_size=20)
                      | st.binary(max_size=64), lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                      max_leaves=10)


def unpack_or_reject(data):
    try:
        wire.unpack(data, MODELS)
    except wire.WireError as e:
        assert e.reason


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes(data):
    unpack_or_reject(data)


@settings(max_examples=600, deadline=None)
@given(st.integers(0, len(GOOD) - 1), st.integers(0, 7), st.integers(0, len(GOOD)))
def test_bit_flips_and_truncations(pos, bit, cut):
    flipped = bytearray(GOOD)
    flipped[pos] ^= 1 << bit
    unpack_or_reject(bytes(flipped))
    unpack_or_reject(GOOD[:cut])


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(wire.FIELDS), values)
def test_any_field_with_any_value(field, value):
    d = msgpack.unpackb(GOOD, raw=False)
    d[field] = value
    unpack_or_reject(msgpack.packb(d, use_bin_type=True))


def answer_or_reject(data):
    try:
        kind, session, seq, last = answers.unpack_answer(data)
    except wire.WireError as e:
        assert e.reason
        return
    assert kind in answers.ANSWERS and 0 <= session < 2 ** 63 and 0 <= seq < 2 ** 63
    assert (0 <= last <= answers.MAX_CREDIT) if kind == 'ack' else (isinstance(last, str) and last)


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=120), st.sampled_from(sorted(answers.ANSWERS)), values, values)
def test_answers_of_any_bytes_or_values_read_or_are_rejected(data, kind, ids, last):
    """An edge reads the host's answers (acknowledgements, refusals) with nothing but WireError for what is not one."""
    answer_or_reject(data)
    fields = answers.ANSWERS[kind]
    answer_or_reject(msgpack.packb({fields[0]: 2, fields[1]: ids, fields[2]: 1, fields[3]: last}, use_bin_type=True))
    good = answers.pack_ack(1, 2, 3) if kind == 'ack' else answers.pack_refusal(1, 2, 'why')
    answer_or_reject(good[:len(data) % (len(good) + 1)])
