"""The payload codings of nanolink.common.wire (documented there, byte by byte): binary codes packed 8 bits a
byte, their zlib form (inflated with a hard bound), and the rANS payload of entropy-coded latents."""
import zlib

import numpy as np

from nanolink.common.errors import WireError


def payload_length(shape, dtype='bits'):
    """Exact payload bytes for shape, or None where the length is the codec's (jpeg)."""
    c, h, w = shape
    if dtype == 'raw':
        return c * h * w
    if dtype in ('jpeg', 'rans'):
        return None
    return (c * h * w + 7) // 8


def pack_bits(bits):
    """(C, h, w) array of {0, 1} -> packed payload bytes (the reference packing of the format)."""
    return np.packbits(np.asarray(bits, dtype=np.uint8).transpose(1, 2, 0), axis=None).tobytes()


def unpack_bits(payload, shape):
    """Packed payload -> (C, h, w) uint8 array of {0, 1}."""
    c, h, w = shape
    flat = np.unpackbits(np.frombuffer(payload, dtype=np.uint8), count=c * h * w)
    return flat.reshape(h, w, c).transpose(2, 0, 1)


def pack_rans(rate, coded, stream):
    """Rate point q, coded-channel mask (C,) and rANS stream -> "rans" payload bytes (the table above)."""
    return bytes(bytearray([rate])) + np.packbits(np.asarray(coded, dtype=np.uint8)).tobytes() + stream


def unpack_rans(payload, shape, tables, stream_id=None):
    """A "rans" payload -> (q, symbols uint8 (C, h, w)); WireError for a rate point the model does not have, a
    bitmap that codes a constant channel, or a stream that does not decode to exactly C x h x w symbols.
    tables: {q: nanolink.common.rans.RansTables}."""
    from nanolink.common.rans import RansError
    c, h, w = shape
    nb = (c + 7) // 8
    if len(payload) < 1 + nb + 8:
        raise WireError('a rans payload of shape {} has at least {} bytes, got {}'.format(
            list(shape), 1 + nb + 8, len(payload)), stream_id)
    q = payload[0]
    if q not in tables:
        raise WireError('rate point {} is not one of the model\'s ({})'.format(q, sorted(tables)), stream_id)
    coded = np.unpackbits(np.frombuffer(payload, dtype=np.uint8, count=nb, offset=1), count=c)
    if np.any(np.unpackbits(np.frombuffer(payload, dtype=np.uint8, count=nb, offset=1))[c:]):
        raise WireError('the rans channel bitmap sets padding bits past channel {}'.format(c), stream_id)
    try:
        symbols = tables[q].decode(payload[1 + nb:], coded, h * w, w)
    except RansError as e:
        raise WireError('rans payload does not decode: {}'.format(e), stream_id)
    return q, symbols.reshape(c, h, w)


def inflate(data, expected, stream):
    """zlib payload -> exactly ``expected`` bytes, reading no more than that (a zip bomb stops there)."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, expected + 1)
    except zlib.error as e:
        raise WireError('bits-zlib payload is not a zlib stream: {}'.format(e), stream)
    if len(out) != expected or not d.eof or d.unused_data or d.unconsumed_tail:
        raise WireError('bits-zlib payload must inflate to exactly {} bytes and end there'.format(expected), stream)
    return out


def deflate(payload, level=3):
    """(payload, dtype) for a packed-bits payload: zlib-compressed when that is shorter, else unchanged."""
    z = zlib.compress(payload, level)
    return (z, 'bits-zlib') if len(z) < len(payload) else (payload, 'bits')


def entropy_code(payload, dtype, mode='zlib'):
    """The payload and dtype to send: binary codes are zlib-coded when mode is 'zlib' (edge-sender --entropy);
    other codings (jpeg, raw) pass through."""
    if dtype == 'bits' and mode == 'zlib':
        return deflate(payload)
    return payload, dtype
