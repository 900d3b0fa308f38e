"""nanolink wire format, version 2: one msgpack map per video frame, in one ZeroMQ frame.

No pickle, ever: msgpack carries only maps, strings, integers, floats and byte strings, so a message
from the network can never run code. One frame per message (no multipart) keeps ZeroMQ's CONFLATE /
latest-frame mode possible.

Byte by byte
------------
A message is exactly one msgpack map (MessagePack spec) with these 12 entries, packed in this order, and
optionally a 13th, ``ref``; no key may appear twice (in any map)::

    offset  bytes                          meaning
    0       0x8c / 0x8d                    fixmap, 12 entries (13 with ref; a message is at most 16 MiB)
            0xa1 'v'        0x02           format version: positive fixint 2 (version 1 had no session)
            0xa6 'stream'   str            stream id: fixstr 0xa0|n or str8 0xd9 n, UTF-8, 1..64 chars
                                           of [A-Za-z0-9_.:-], not "." or ".." (it names a folder)
            0xa7 'session'  uint           the sender's run: a random number in 1 .. 2**63-1 that an
                                           edge-sender draws when it starts (0: a tool sending one-offs). A
                                           restarted edge, or a second edge with the same stream id, is a new
                                           session: the host counts and saves it apart.
            0xa3 'seq'      uint           sequence number within the session: fixint / 0xcc u8 / 0xcd u16 /
                                           0xce u32 / 0xcf u64, big-endian, 0 .. 2**63-1
            0xa5 't_cap'    0xcb f64       capture time, Unix seconds, IEEE 754 big-endian, 0 < t_cap < 2^32
            0xa5 'model'    str            model name (e.g. "cae"), must be one the receiver knows
            0xa2 'fp'       str            weights fingerprint: 16 lowercase hex chars (first 64 bits of
                                           the SHA-256 of the weights); the receiver must hold a decoder
                                           with the same fingerprint (any of the model's decoders: its
                                           decoder variants read the same bits and keep this fingerprint)
            0xa5 'dtype'    str            payload coding: "rans" (integer latents, entropy-coded), "bits"
                                           (binary codes, bit-packed), "bits-zlib" (the same, zlib-compressed),
                                           "jpeg" or "raw" (below); it must be the coding of the named model
                                           (bits or bits-zlib for "bits")
            0xa5 'shape'    0x93 u u u     fixarray of 3 uints [C, h, w]: channels sent and code height,
                                           width; "bits": 1 <= C <= the model's channels, 1 <= h, w <= 1024;
                                           "rans": C = the model's latent channels, 1 <= h, w <= 1024;
                                           "jpeg", "raw": C = 3, the code image's h, w <= 4096
            0xa4 'size'     0x92 u u       fixarray of 2 uints [H, W]: the frame size the host outputs, 1..4096;
                                           h * stride - multiple < H <= h * stride, likewise W, and
                                           h * stride, w * stride multiples of the model's multiple (the
                                           sender padded the frame to that multiple; the host crops the
                                           padding off)
            0xa7 'payload'  bin            0xc4 n8 / 0xc5 n16 / 0xc6 n32, then the bytes (below)
            0xa6 'stages'   map            fixmap: sender stage name -> f64 milliseconds, names from
                                           nanolink.common.stages.EDGE_STAGES, finite, 0 <= ms < 1e6.
                                           capture, preprocess, encode, gpu_to_cpu are this frame's;
                                           serialise and send are the previous frame's (a message cannot
                                           carry the time taken to build or send itself) and are absent
                                           from a stream's first message.
            0xa3 'ref'      bin            optional (edge-sender --reference-every N): a high-quality JPEG
                                           of this source frame at [H, W] (the size above, before padding),
                                           which the host compares its decoded frame with (live PSNR and
                                           MS-SSIM). Its header must state W x H (checked before decoding);
                                           a ref that is not such a JPEG is dropped by unpack, which keeps
                                           the frame and says why in Frame.ref_error.
                                           Its bytes are link overhead, not the codec's rate: receivers
                                           report bpp without them.

Payload, dtype "bits": the code B[c, y, x] in {0, 1}, shape (C, h, w), is flattened in (y, x, c) order
(channel fastest) and packed 8 bits per byte, first bit in the most significant bit, the last byte
zero-padded (a receiver rejects set padding bits): ``numpy.packbits(B.transpose(1, 2, 0), axis=None)``;
length = ceil(C * h * w / 8). For
C = 8 that is one byte per code position, which the exported encoder graphs produce on the device.

Payload, dtype "rans" (model "cae"): integer latents y[c, y, x], shape (C, h, w), as symbol indices coded with
rANS (nanolink.common.rans, format in common/csrc/rans.c) under the model's integer tables for one rate point::

    offset          bytes            meaning
    0               u8  q            rate point (quality) 1..Q: which of the model's tables coded it
    1               ceil(C / 8)      coded-channel bitmap, numpy.packbits order (channel 0 is the most significant
                                     bit of byte 1), last byte zero-padded: 1 = channel c is in the stream, 0 = every
                                     symbol of channel c is the table's fill symbol (its most probable one); a channel
                                     whose table has one symbol must be 0
    1 + ceil(C/8)   u32 x0, u32 x1   the rANS coder's two final states, little-endian, each in [2^15, 2^31)
    + 8             u16 words        little-endian renormalisation words, in the order the decoder reads them

The symbols of the coded channels are in the stream channel by channel (c ascending), each channel in raster order
(h rows of w); the i-th coded symbol uses state i % 2. Models whose rate point has context tables (manifest
``entropy.rates[q].context``, nanolink-fit-context) code position by position instead (raster order, the coded
channels of a position in ascending c), each symbol with one of its channel's ks * ka tables chosen from symbols
decoded before it (its channel's left and upper neighbours, the activity of the left, upper and upper-left
positions over all channels and, weighted by the section's ``mix``, that of the position's channels before it; the
rule is in common/csrc/rans.h); the layout above is unchanged. Channel c's symbol s stands for the integer
tables[q].lo[c] + s, the host multiplies it by the rate point's inverse gain and runs the decoder. The receiver
decodes into a C x h x w buffer it allocates from the validated shape, and rejects the payload unless the stream
ends exactly where the last symbol does with both states back at 2^15 (truncated, padded, corrupt or foreign
streams all fail that). The tables are in the model's manifest.json and inside its fingerprint.

Payload, dtype "bits-zlib": the "bits" payload compressed with zlib (RFC 1950, any level), sent only when
it is shorter than the packed bits; it must decompress to exactly ceil(C * h * w / 8) bytes with nothing
after the zlib stream. The receiver decompresses with that bound (no zip bombs) while validating, and the
returned Frame carries the packed bits.

Payload, dtype "jpeg": one JPEG file of the h x w code image, whose header must state h x w (checked before
decoding). For model "ae" the code image is the learned 8-bit code at H/2 x W/2; for "ae-full" and the baseline model
"jpeg" (nanolink.common.classical, stride 1) it is the frame itself. dtype "raw" (model "raw"): the BGR
frame as H * W * 3 bytes, row-major. "jpeg" and "raw" as models are baselines for benchmarks.

A receiver validates every field (types, ranges, lengths, known version, model and fingerprint) and
raises WireError with a reason; it never trusts a length or shape it has not checked.

Answers (host -> edge, acknowledged mode; nanolink.common.transport, packed by nanolink.common.answers)
------------------------------------------------------------------------------------------------------
For every frame it has taken (decoded, rejected, or a repeat it already had), the host answers the sending socket
with one ZeroMQ frame, a msgpack map of exactly these 4 entries, an acknowledgement::

    0x84                                   fixmap, 4 entries
    0xa1 'v'        0x02                   format version 2
    0xa3 'ack'      uint                   the session of the frames acknowledged
    0xa3 'seq'      uint                   the frame of that session with this seq has been taken
    0xa6 'credit'   uint                   frames the sender may have in flight after it (flow control), 0..4096

An acknowledgement is for that one frame, not the ones before it: after a reconnection the host can take a newer
frame before an older one sent again. An edge keeps every unacknowledged frame and sends it again after a
reconnection; the host drops repeats by (session, seq).

A frame the host took but did not decode (its model unknown there, over --max-size or the stream's pixel rate, a
payload that does not decode, ...) is also answered with a refusal, just before and again just after its
acknowledgement, so that its edge knows (since 2026-12-07): an edge in acknowledged mode has the first before the
acknowledgement can end its close, one in latest mode (its socket keeps only the newest answer) the second; an
edge counts a frame's refusals once, and one of before counts them among the answers it cannot read, and goes
on. A repeat of a refused frame is refused again. Frames a host in latest mode passes over for a newer one are
acknowledged, not refused::

    0x84                                   fixmap, 4 entries
    0xa1 'v'        0x02                   format version 2
    0xa7 'refused'  uint                   the session of the frame
    0xa3 'seq'      uint                   the frame of that session with this seq was not decoded
    0xa6 'reason'   str                    why, as the host logs it: 1..200 bytes of UTF-8
"""
import math
import re

import msgpack

from nanolink.common.errors import WireError
from nanolink.common.payloads import (deflate, entropy_code, inflate, pack_bits, pack_rans,  # noqa: F401
                                      payload_length, unpack_bits, unpack_rans)
from nanolink.common.stages import EDGE_STAGES

VERSION = 2
MAX_T_CAP = float(2 ** 32)              # Unix seconds: the year 2106
MAX_MESSAGE_BYTES = 16 * 1024 * 1024    # also set as ZMQ_MAXMSGSIZE on the receiving socket
# Frames up to 4096 x 4096 (4K cameras fit): a bigger shape would make the decoder allocate gigabytes, so a
# single hostile message could take the host down.
MAX_CODE_SIDE = 1024
MAX_FRAME_SIDE = 4096
DTYPES = ('rans', 'bits', 'bits-zlib', 'jpeg', 'raw')
ZLIB_OF = {'bits-zlib': 'bits'}     # entropy-coded payloads: what they decompress to
FIELDS = ('v', 'stream', 'session', 'seq', 't_cap', 'model', 'fp', 'dtype', 'shape', 'size', 'payload', 'stages')
OPTIONAL = ('ref',)
_STREAM_RE = re.compile(r'[A-Za-z0-9_.:\-]{1,64}')    # with fullmatch: '$' would pass a final newline
_FP_RE = re.compile(r'^[0-9a-f]{16}$')


class Frame(object):
    """One decoded, validated message (the fields of the table above)."""

    __slots__ = FIELDS + OPTIONAL + ('symbols', 'rate', 'ref_error')

    def __init__(self, stream, seq, t_cap, model, fp, shape, size, payload, stages, dtype='bits', v=VERSION, ref=None,
                 session=0):
        self.v, self.stream, self.session, self.seq, self.t_cap = v, stream, session, seq, t_cap
        self.model, self.fp, self.dtype = model, fp, dtype
        self.shape, self.size, self.payload, self.stages = tuple(shape), tuple(size), payload, stages
        self.ref = ref              # optional reference JPEG of the source frame (bytes) or None
        self.symbols = None         # "rans" frames from unpack: the decoded symbol indices, uint8 (C, h, w)
        self.rate = None            # and their rate point q
        self.ref_error = None       # why unpack dropped the message's ref (not a JPEG of the frame's size)

    def __repr__(self):
        return 'Frame(stream={!r}, session={:x}, seq={}, model={!r}, shape={}, size={}, {} bytes)'.format(
            self.stream, self.session, self.seq, self.model, self.shape, self.size, len(self.payload))


def is_stream_id(value):
    """True for a valid stream id: 1-64 characters of A-Z a-z 0-9 _ . : -, and not "." or ".." (stream ids name
    folders: host-receiver --save DIR writes DIR/<stream>/)."""
    return isinstance(value, str) and _STREAM_RE.fullmatch(value) is not None and value not in ('.', '..')


def _readable_stream(value):
    """The stream id if it is a valid one (to name the sender in a rejection), else None."""
    return value if is_stream_id(value) else None


def check_stream_id(stream):
    if not is_stream_id(stream):
        raise WireError('stream id must be 1-64 characters of A-Z a-z 0-9 _ . : -, other than "." and "..", got '
                        '{!r}'.format(stream)[:200])
    return stream


def pack(frame):
    """Frame -> message bytes. The sender's fields are checked as strictly as the receiver checks them."""
    _check(frame, models=None)
    stages = {}
    for k, ms in frame.stages.items():
        stages[k] = float(ms)
    obj = {
        'v': VERSION, 'stream': frame.stream, 'session': int(frame.session), 'seq': int(frame.seq),
        't_cap': float(frame.t_cap),
        'model': frame.model, 'fp': frame.fp, 'dtype': frame.dtype,
        'shape': [int(x) for x in frame.shape], 'size': [int(x) for x in frame.size],
        'payload': frame.payload, 'stages': stages,
    }
    if frame.ref is not None:
        obj['ref'] = bytes(frame.ref)
    data = msgpack.packb(obj, use_bin_type=True)
    if len(data) > MAX_MESSAGE_BYTES:           # every receiver would reject it (or ZeroMQ drop it unseen)
        raise WireError('the message would be {} bytes, over the {} byte limit of every receiver'.format(
            len(data), MAX_MESSAGE_BYTES), frame.stream, too_big=True)
    return data


def _no_ext(code, data):
    raise WireError('msgpack extension types are not allowed (ext type {})'.format(code))


def _unique_keys(pairs):
    d = dict(pairs)
    if len(d) != len(pairs):
        raise WireError('a msgpack map repeats a key')
    return d


def unpack(data, models):
    """Message bytes -> validated Frame, or WireError.

    models: {name: {fingerprint: spec}} of what this receiver can decode, where a spec has ``channels``,
    ``stride``, ``multiple`` and ``dtype`` attributes (nanolink.common.zoo.ModelInfo, a HostDecoder).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError('message must be bytes, got {}'.format(type(data).__name__))
    if len(data) > MAX_MESSAGE_BYTES:
        raise WireError('message of {} bytes exceeds the {} byte limit'.format(len(data), MAX_MESSAGE_BYTES))
    try:
        obj = msgpack.unpackb(bytes(data), raw=False, use_list=True, strict_map_key=True, object_pairs_hook=_unique_keys,
                              ext_hook=_no_ext, max_str_len=1024, max_bin_len=MAX_MESSAGE_BYTES,
                              max_array_len=16, max_map_len=64, max_ext_len=0)
    except WireError:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError, msgpack.UnpackException) as e:
        raise WireError('not a msgpack message: {}: {}'.format(type(e).__name__, str(e)[:120]))
    if not isinstance(obj, dict):
        raise WireError('message must be a msgpack map, got {}'.format(type(obj).__name__))
    stream = _readable_stream(obj.get('stream'))
    missing = [k for k in FIELDS if k not in obj]
    if missing:
        raise WireError('missing field(s) {}'.format(', '.join(missing)), stream)
    extra = sorted(str(k) for k in obj if k not in FIELDS + OPTIONAL)
    if extra:
        raise WireError('unknown field(s) {}'.format(', '.join(extra)[:200]), stream)
    if type(obj['v']) is not int or obj['v'] != VERSION:
        raise WireError('unsupported format version {!r}, this receiver speaks version {}'.format(
            obj['v'], VERSION), stream)
    frame = Frame(stream=obj['stream'], session=obj['session'], seq=obj['seq'], t_cap=obj['t_cap'],
                  model=obj['model'], fp=obj['fp'],
                  shape=_uint_list(obj['shape'], 3, 'shape', stream), size=_uint_list(obj['size'], 2, 'size', stream),
                  payload=obj['payload'], stages=obj['stages'], dtype=obj['dtype'], ref=obj.get('ref'))
    _check(frame, models)
    if frame.dtype in ZLIB_OF:
        frame.payload = inflate(frame.payload, payload_length(frame.shape), frame.stream)
    if ZLIB_OF.get(frame.dtype, frame.dtype) == 'bits':
        c, h, w = frame.shape
        pad = -(c * h * w) % 8
        if pad and frame.payload[-1] & ((1 << pad) - 1):
            raise WireError('the last byte of the bits payload sets padding bits', frame.stream)
    if frame.ref is not None:                  # an optional extra: a bad one is dropped (and said why), the frame
        from nanolink.common.classical import jpeg_size          # itself is kept
        try:
            if tuple(jpeg_size(frame.ref)) != tuple(frame.size):
                frame.ref_error = 'its JPEG header is not {}x{} like the frame'.format(frame.size[1], frame.size[0])
        except WireError as e:
            frame.ref_error = e.reason
        if frame.ref_error:
            frame.ref = None
    if frame.dtype == 'rans':
        frame.rate, frame.symbols = unpack_rans(frame.payload, frame.shape, models[frame.model][frame.fp].tables,
                                                frame.stream)
    return frame


def peek_ids(data):
    """(session, seq) of a message whose map reads and carries valid ones (to acknowledge a message that is
    otherwise rejected), else None."""
    try:
        obj = msgpack.unpackb(bytes(data), raw=False, strict_map_key=False, ext_hook=_no_ext, max_str_len=1024,
                              max_bin_len=MAX_MESSAGE_BYTES, max_array_len=16, max_map_len=64, max_ext_len=0)
    except (WireError, ValueError, TypeError, OverflowError, RecursionError, msgpack.UnpackException):
        return None
    if not isinstance(obj, dict):
        return None
    session, seq = obj.get('session'), obj.get('seq')
    if type(session) is int and type(seq) is int and 0 <= session < 2 ** 63 and 0 <= seq < 2 ** 63:
        return session, seq
    return None


def _uint_list(value, n, name, stream):
    if not isinstance(value, list) or len(value) != n or any(type(x) is not int for x in value):
        raise WireError('{} must be a list of {} integers, got {!r}'.format(name, n, value)[:200], stream)
    return value


def _check(f, models):
    """Validate every field of a Frame; models=None skips the receiver's model registry check."""
    check_stream_id(f.stream)
    s = f.stream
    if type(f.seq) is not int or not 0 <= f.seq < 2 ** 63:
        raise WireError('seq must be an integer in [0, 2**63), got {!r}'.format(f.seq), s)
    if type(f.session) is not int or not 0 <= f.session < 2 ** 63:
        raise WireError('session must be an integer in [0, 2**63), got {!r}'.format(f.session), s)
    if type(f.t_cap) is not float or not math.isfinite(f.t_cap) or not 0 < f.t_cap < MAX_T_CAP:
        raise WireError('t_cap must be a float in 0 < t_cap < 2^32 (Unix seconds), got {!r}'.format(f.t_cap), s)
    if not isinstance(f.model, str) or not 1 <= len(f.model) <= 64:
        raise WireError('model must be a name of 1-64 characters, got {!r}'.format(f.model)[:200], s)
    if not isinstance(f.fp, str) or not _FP_RE.match(f.fp):
        raise WireError('fp must be 16 lowercase hex characters, got {!r}'.format(f.fp)[:200], s)
    if f.dtype not in DTYPES:
        raise WireError('dtype must be one of {}, got {!r}'.format(DTYPES, f.dtype)[:200], s)
    if len(f.shape) != 3 or any(type(x) is not int for x in f.shape):
        raise WireError('shape must be 3 integers [C, h, w], got {!r}'.format(f.shape), s)
    c, h, w = f.shape
    if len(f.size) != 2 or any(type(x) is not int for x in f.size):
        raise WireError('size must be 2 integers [H, W], got {!r}'.format(f.size), s)
    if not all(1 <= x <= MAX_FRAME_SIDE for x in f.size):
        raise WireError('size {} out of range 1..{}'.format(list(f.size), MAX_FRAME_SIDE), s, too_big=True)
    if f.dtype in ('bits', 'bits-zlib', 'rans'):
        if not (1 <= c <= 1024 and 1 <= h <= MAX_CODE_SIDE and 1 <= w <= MAX_CODE_SIDE):
            raise WireError('shape {} out of range (1 <= C <= 1024, 1 <= h, w <= {})'.format(
                list(f.shape), MAX_CODE_SIDE), s)
    elif c != 3 or not (1 <= h <= MAX_FRAME_SIDE and 1 <= w <= MAX_FRAME_SIDE):
        raise WireError('a {} frame has shape [3, h, w] with 1 <= h, w <= {}, got {}'.format(
            f.dtype, MAX_FRAME_SIDE, list(f.shape)), s)
    if not isinstance(f.payload, (bytes, bytearray)):
        raise WireError('payload must be binary (msgpack bin), got {}'.format(type(f.payload).__name__), s)
    expected = payload_length(f.shape, f.dtype)
    if f.dtype == 'rans':
        if len(f.payload) > 1 + (c + 7) // 8 + 8 + 2 * c * h * w:     # a symbol costs at most one 16-bit word
            raise WireError('a rans payload of shape {} has at most {} bytes, got {}'.format(
                list(f.shape), 1 + (c + 7) // 8 + 8 + 2 * c * h * w, len(f.payload)), s)
    elif f.dtype in ZLIB_OF:
        if not 0 < len(f.payload) < expected:
            raise WireError('a bits-zlib payload must be shorter than the {} bytes of its packed bits, got {}'.format(
                expected, len(f.payload)), s)
    elif expected is not None and len(f.payload) != expected:
        raise WireError('payload is {} bytes but shape {} implies {}'.format(len(f.payload), list(f.shape), expected), s)
    if expected is None and not f.payload:
        raise WireError('payload is empty', s)
    if f.ref is not None and (not isinstance(f.ref, (bytes, bytearray)) or f.ref[:2] != b'\xff\xd8'):
        raise WireError('ref must be a JPEG file (msgpack bin starting with the SOI marker FF D8)', s)
    if not isinstance(f.stages, dict):
        raise WireError('stages must be a map of stage name to milliseconds', s)
    for k, ms in f.stages.items():
        if k not in EDGE_STAGES:
            raise WireError('unknown sender stage {!r}'.format(k)[:200], s)
        if type(ms) not in (float, int) or not (math.isfinite(ms) and 0 <= ms < 1e6):
            raise WireError('stage {} must be finite milliseconds in [0, 1e6), got {!r}'.format(k, ms), s)
    if models is None:
        return
    if f.model not in models:
        raise WireError('unknown model {!r}; this receiver decodes {}'.format(f.model, sorted(models))[:200], s)
    spec = models[f.model].get(f.fp)
    if spec is None:
        raise WireError('model {} with fingerprint {} is not loaded here (have {}): the sender and the receiver '
                        'must use the same weights'.format(f.model, f.fp, sorted(models[f.model])), s, True)
    if ZLIB_OF.get(f.dtype, f.dtype) != spec.dtype:
        raise WireError('model {} sends dtype {!r}, got {!r}'.format(f.model, spec.dtype, f.dtype), s)
    if c > spec.channels or (f.dtype == 'rans' and c != spec.channels):
        raise WireError('shape {} has {} channels but model {} has {}'.format(
            list(f.shape), c, f.model, spec.channels), s)
    for side, n in zip(f.size, (h, w)):
        if not n * spec.stride - spec.multiple < side <= n * spec.stride or n * spec.stride % spec.multiple:
            raise WireError('size {} does not fit code shape {} at stride {} (padding to a multiple of {})'.format(
                list(f.size), list(f.shape), spec.stride, spec.multiple), s)
