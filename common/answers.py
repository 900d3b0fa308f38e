"""The host's answers to an edge's frames: acknowledgements and refusals, laid out byte by byte in
nanolink.common.wire ("Answers"); nanolink.common.transport sends them, nanolink.common.sender reads them."""
import msgpack

from nanolink.common.errors import WireError
from nanolink.common.wire import VERSION, _no_ext, _unique_keys

ANSWERS = {'ack': ('v', 'ack', 'seq', 'credit'), 'refused': ('v', 'refused', 'seq', 'reason')}
MAX_CREDIT = 4096
MAX_REASON_BYTES = 200


def pack_ack(session, seq, credit):
    """An acknowledgement of the frame ``seq`` of ``session``, granting ``credit`` frames in flight."""
    return msgpack.packb({'v': VERSION, 'ack': int(session), 'seq': int(seq), 'credit': int(credit)})


def pack_refusal(session, seq, reason):
    """A refusal of the frame ``seq`` of ``session``: ``reason`` cut to MAX_REASON_BYTES of UTF-8."""
    text = reason.encode('utf-8')[:MAX_REASON_BYTES].decode('utf-8', 'ignore') or '?'
    return msgpack.packb({'v': VERSION, 'refused': int(session), 'seq': int(seq), 'reason': text},
                         use_bin_type=True)


def unpack_answer(data):
    """Answer bytes -> ('ack', session, seq, credit) or ('refused', session, seq, reason); WireError for anything
    else (a newer host's answers included, which an edge counts and passes over)."""
    try:
        obj = msgpack.unpackb(bytes(data), raw=False, strict_map_key=True, object_pairs_hook=_unique_keys,
                              ext_hook=_no_ext, max_str_len=MAX_REASON_BYTES, max_bin_len=0, max_array_len=0,
                              max_map_len=4)
    except WireError:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError, msgpack.UnpackException) as e:
        raise WireError('not an answer of a host: {}'.format(type(e).__name__))
    keys = tuple(sorted(obj)) if isinstance(obj, dict) else ()
    kinds = [k for k, fields in ANSWERS.items() if keys == tuple(sorted(fields))]
    if not kinds:
        raise WireError('not an answer of a host')
    kind = kinds[0]
    last = obj[ANSWERS[kind][3]]
    ids_ok = all(type(obj[k]) is int for k in ('v', kind, 'seq')) and obj['v'] == VERSION and \
        0 <= obj[kind] < 2 ** 63 and 0 <= obj['seq'] < 2 ** 63
    last_ok = type(last) is int and 0 <= last <= MAX_CREDIT if kind == 'ack' else isinstance(last, str) and last != ''
    if not (ids_ok and last_ok):
        raise WireError('not an answer of a host')
    return kind, obj[kind], obj['seq'], last
