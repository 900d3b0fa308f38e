"""Entropy coding of integer latents with integer CDF tables: the same C rANS coder on the edge and the host.

    tables = RansTables(lo=[...], freqs=[[...], ...])       # a model's tables at one rate (manifest.json)
    stream, coded = tables.encode(symbols)                   # symbols: uint8 (C, n) indices, channel-major
    symbols = tables.decode(stream, coded, n)                # RansError on a corrupt, truncated or foreign stream

The coder (``csrc/rans.c``, compiled into ``_rans`` when the package is installed and loaded here with ctypes) is
range ANS with 31-bit states, 16-bit words, 15-bit probabilities and two interleaved states; its stream format is in
``csrc/rans.c`` and, with the payload around it, in nanolink.common.wire. Only the integer tables define it, so the
float precision of the encoder network never matters once its symbols exist.

Channels whose table has one symbol are constant at that rate and never coded; channels whose every symbol in a
frame equals the channel's most probable one are left out of that frame's stream (``coded`` says which).

Why C: no entropy coder library installs on JetPack 4.6's Python 3.6 for aarch64 (constriction and range-coder ship
x86 wheels; compressai needs Python >= 3.8 and torch), and numpy cannot run a sequential coder fast enough (a 1008^2
frame has ~0.6 M latents; the edge has ~5 ms for them). The C files (rans.c; rans_ctx_enc.c and rans_ctx_dec.c for
context tables) are C99 without allocation.

Context tables (``RansTables(lo, freqs, context)``, from nanolink-fit-context): each channel has ks * ka tables over
its symbols and each symbol is coded with the one its already-decoded neighbours select (the rule is in
csrc/rans.h); symbols are then coded position by position. On Kodak that cut cae's bytes by 14-17 % at the same
symbols.
"""
import ctypes
import importlib.machinery
import os
import threading

import numpy as np

from nanolink.common.errors import NanolinkError

PROB_BITS = 15
PROB_SCALE = 1 << PROB_BITS
MAX_SYMBOLS = 256
LUT_SIZE = PROB_SCALE >> 7
CTX_LUT_SIZE = PROB_SCALE >> 9                    # csrc/rans.h: NL_CTX_LUT_SIZE

ERRORS = {
    -1: 'the output buffer is too small',
    -2: 'a symbol index is not below its channel\'s symbol count',
    -3: 'the stream is shorter than its 8-byte header or has an odd length',
    -4: 'an initial coder state is out of range',
    -5: 'the stream ends before the last symbol (truncated)',
    -6: 'the stream does not end where its symbols do (corrupt, or coded with other tables)',
    -7: 'invalid tables',
    -8: 'a one-symbol channel is marked as coded',
    -9: 'the symbol grid\'s width does not divide its size, or the context counts are out of range',
}
CTX_DCLIP = 8           # NL_CTX_DCLIP in csrc/rans.h
CTX_MAX_MIX = 1024      # NL_CTX_MAX_MIX


class RansError(ValueError):
    """A stream that does not decode, or symbols that cannot be coded, with the reason."""


def _library_path():
    here = os.path.dirname(os.path.abspath(__file__))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(here, '_rans' + suffix)
        if os.path.isfile(path):
            return path
    return None


def _load():
    path = _library_path()
    if path is None:
        raise NanolinkError('the rANS coder (nanolink/common/_rans*.so) is not built: reinstall nanolink with a C '
                            'compiler present (pip install . ; on a Jetson: sudo apt-get install build-essential '
                            'python3-dev)')
    lib = ctypes.CDLL(path)
    u8p, u16p, i32p, u32p = (np.ctypeslib.ndpointer(t, flags='C_CONTIGUOUS')
                             for t in (np.uint8, np.uint16, np.int32, np.uint32))
    u32, u64, i64 = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int64
    lib.nl_check_tables.argtypes = [u32, i32p, i32p, u32p, u32p]
    lib.nl_check_tables.restype = ctypes.c_int
    lib.nl_encoder_tables.argtypes = [u32, i32p, i32p, u32p, u32p, u32p, u32p, u32p]
    lib.nl_encoder_tables.restype = None
    lib.nl_encoder_tables_ctx.argtypes = [u32, u32, i32p, i32p, u32p, u32p, u32p]
    lib.nl_encoder_tables_ctx.restype = ctypes.c_int
    lib.nl_decoder_lut.argtypes = [u32, i32p, i32p, u32p, u8p]
    lib.nl_decoder_lut.restype = None
    lib.nl_decoder_tables_ctx.argtypes = [u32, u32, u32, i32p, i32p, u32p, u16p, u8p]
    lib.nl_decoder_tables_ctx.restype = ctypes.c_int
    lib.nl_varying_channels.argtypes = [u8p, u32, u32, i32p, u8p, u8p, ctypes.POINTER(u32)]
    lib.nl_varying_channels.restype = i64
    lib.nl_encode.argtypes = [u8p, u32, u32, i32p, i32p, u32p, u32p, u32p, u32p, u8p, u8p, u64]
    lib.nl_encode.restype = i64
    lib.nl_decode.argtypes = [ctypes.c_char_p, u64, u32, u32, i32p, i32p, u32p, u32p, u8p, u8p, u8p, u8p]
    lib.nl_decode.restype = i64
    lib.nl_contexts.argtypes = [u8p, u32, u32, u32, u8p, u32, u32, i32p, u32, u32p, u8p, u8p]
    lib.nl_contexts.restype = i64
    lib.nl_encode_ctx.argtypes = [u8p, u32, u32, u32, i32p, i32p, u32p, u8p, u8p, u32, u32, i32p, u32, u32p, u8p, u8p,
                                  u64]
    lib.nl_encode_ctx.restype = i64
    lib.nl_decode_ctx.argtypes = [ctypes.c_char_p, u64, u32, u32, u32, i32p, i32p, u16p, u8p, u8p, u8p, u32, u32, i32p,
                                  u32, u32p, u8p, u8p]
    lib.nl_decode_ctx.restype = i64
    return lib


def unpack_context(entry):
    """A manifest's context section -> the dict RansTables takes. Its table frequencies (uint16, channel by channel,
    context by context, symbol by symbol) are stored as ``freqs_b64z``: base64 of the zlib stream of all their low
    bytes followed by all their high bytes (byte planes: 13 % smaller than plain uint16 here)."""
    import base64
    import zlib
    try:
        raw = np.frombuffer(zlib.decompress(base64.b64decode(entry['freqs_b64z'])), dtype=np.uint8)
        if raw.size % 2:
            raise ValueError('an odd number of bytes')
        n = raw.size // 2
        out = dict(entry, freqs=raw[:n].astype(np.uint32) | (raw[n:].astype(np.uint32) << 8))
    except (KeyError, TypeError, ValueError, zlib.error) as e:
        raise NanolinkError('the rANS context tables do not unpack ({}): export the model again with '
                            'nanolink-export'.format(e))
    del out['freqs_b64z']
    return out


def pack_context(ks, ka, thresholds, freqs, mix=0):
    """The manifest form of context tables (see unpack_context): freqs (C * ka * ks tables, flattened); thresholds
    ka - 1 for every channel, or ka - 1 per channel (flattened); mix, the weight of this position's earlier channels
    in the activity (csrc/rans.h), written only when it is not 0, so the first rule's sections stay as they were."""
    import base64
    import zlib
    f = np.asarray(freqs, dtype=np.int64)
    if f.size and (f.min() < 0 or f.max() > 0xffff):
        raise ValueError('context frequencies must fit 16 bits')
    raw = (f & 0xff).astype(np.uint8).tobytes() + (f >> 8).astype(np.uint8).tobytes()
    out = {'ks': int(ks), 'ka': int(ka), 'thresholds': [int(t) for t in np.asarray(thresholds).ravel()],
           'clip': CTX_DCLIP, 'freqs_b64z': base64.b64encode(zlib.compress(raw, 9)).decode('ascii')}
    if mix:
        out['mix'] = int(mix)
    return out


class RansTables(object):
    """One rate point's integer tables: channel c codes the integers lo[c] .. lo[c] + len(freqs[c]) - 1 as symbol
    indices 0 .. len(freqs[c]) - 1 with frequencies freqs[c] (each >= 1, summing to 2^15; one symbol: constant).

    With ``context`` (see csrc/rans.h and unpack_context: {'ks', 'ka', 'thresholds', 'mix', 'clip', 'freqs'}), each
    channel has ks * ka tables over the same symbols, chosen per symbol from what is decoded before it: its left and
    upper neighbours, the activity of the neighbouring positions and, weighted by ``mix`` (0 when absent), of this
    position's earlier channels. ``thresholds`` holds ka - 1 values for every channel, or ka - 1 per channel (C * (ka
    - 1), channel by channel). ``freqs`` then only gives the symbol counts and the fill (most probable) symbol of
    each channel."""

    def __init__(self, lo, freqs, context=None):
        if len(lo) != len(freqs) or not freqs:
            raise NanolinkError('rANS tables need one lo and one frequency list per channel ({} and {})'.format(
                len(lo), len(freqs)))
        self.lib = _load()
        self.channels = len(freqs)
        self.lo = np.asarray(lo, dtype=np.int32)
        nsym = np.array([len(f) for f in freqs], dtype=np.int32)
        if nsym.min() < 1 or nsym.max() > MAX_SYMBOLS:
            raise NanolinkError('rANS tables: every channel needs 1..{} symbols'.format(MAX_SYMBOLS))
        self.fill = np.array([int(np.argmax(f)) for f in freqs], dtype=np.uint8)   # the most probable symbol
        self.constant = nsym == 1
        self.channel_nsym = nsym
        self.ks = self.ka = 1
        self.mix = 0
        self.thresholds = np.zeros(1, dtype=np.int32)
        if context is None:
            flat = np.concatenate([np.asarray(f, dtype=np.int64) for f in freqs])
        else:
            try:
                self.ks, self.ka = int(context['ks']), int(context['ka'])
                thr = np.asarray(context['thresholds'], dtype=np.int64).reshape(-1)
                self.mix = int(context.get('mix', 0))
                clip = int(context.get('clip', CTX_DCLIP))
                flat = np.asarray(context['freqs'], dtype=np.int64).reshape(-1)
            except (KeyError, TypeError, ValueError, OverflowError) as e:
                raise NanolinkError('rANS context tables: {} ({})'.format(type(e).__name__, e))
            k = self.ks * self.ka
            per_channel = len(thr) == self.channels * (self.ka - 1) and self.ka > 1
            if not (1 <= k <= 256 and (len(thr) == self.ka - 1 or per_channel) and clip == CTX_DCLIP
                    and flat.size == k * int(nsym.sum()) and 0 <= self.mix <= CTX_MAX_MIX
                    and np.all(np.abs(thr) < 2 ** 31)):
                raise NanolinkError('rANS context tables: need ks * ka in 1..256, ka - 1 thresholds (or ka - 1 per '
                                    'channel), mix in 0..{}, clip {} and {} frequencies, got ks {} ka {}, {} thresholds, '
                                    'mix {}, clip {}, {}'.format(CTX_MAX_MIX, CTX_DCLIP, k * int(nsym.sum()), self.ks,
                                                                 self.ka, len(thr), self.mix, clip, flat.size))
            if not per_channel:                       # one list for every channel (the first rule's form)
                thr = np.tile(thr, self.channels)
            self.thresholds = thr.astype(np.int32) if thr.size else np.zeros(1, dtype=np.int32)
            nsym = np.repeat(nsym, k)
        self.context = context is not None
        self.tables = len(nsym)                       # C, or C * ks * ka with context
        self.nsym = nsym
        self.offset = np.concatenate([[0], np.cumsum(nsym)[:-1]]).astype(np.int32)
        if flat.size != int(nsym.sum()) or flat.min() < 0 or flat.max() > PROB_SCALE:
            raise NanolinkError('rANS tables: frequencies must lie in 0..{}'.format(PROB_SCALE))
        self.freq = flat.astype(np.uint32)
        self.cum = np.zeros_like(self.freq)
        for t in range(self.tables):
            o, n = self.offset[t], nsym[t]
            self.cum[o:o + n] = np.concatenate([[0], np.cumsum(self.freq[o:o + n])[:-1]])
        if self.lib.nl_check_tables(self.tables, self.nsym, self.offset, self.freq, self.cum):
            raise NanolinkError('rANS tables: a channel with several symbols needs frequencies >= 1 that sum to '
                                '{}'.format(PROB_SCALE))
        self.rcp, self.shift, self.bias = (np.zeros_like(self.freq) for _ in range(3))
        self.lib.nl_encoder_tables(self.tables, self.nsym, self.offset, self.freq, self.cum, self.rcp, self.shift,
                                   self.bias)
        if self.context:                                  # the packed forms the context coder reads (rans.h)
            self.enc4 = np.zeros(4 * self.freq.size, dtype=np.uint32)  # (channel, symbol, context) order
            self.cum16 = np.zeros(self.freq.size + self.tables, dtype=np.uint16)
            self.lut = np.zeros(self.tables * CTX_LUT_SIZE, dtype=np.uint8)
            if (self.lib.nl_encoder_tables_ctx(self.tables, self.ks * self.ka, self.nsym, self.offset, self.freq,
                                               self.bias, self.enc4) or
                    self.lib.nl_decoder_tables_ctx(self.channels, self.ks, self.ka, self.nsym, self.offset, self.cum,
                                                   self.cum16, self.lut)):
                raise NanolinkError('rANS context tables: each channel needs its ks * ka tables side by side, of one '
                                    'symbol count')
        else:
            self.lut = np.zeros(self.tables * LUT_SIZE, dtype=np.uint8)
            self.lib.nl_decoder_lut(self.tables, self.nsym, self.offset, self.cum, self.lut)
        self._out = np.zeros(0, dtype=np.uint8)
        self._local = threading.local()

    def _scratch(self, n):
        """The context coder's working memory for n positions, one set per thread (host decode workers share these
        tables): (activity uint32 (n,), position-major copies uint8 (2 n C,))."""
        mine = getattr(self._local, 'scratch', None)
        if mine is None or mine[0].size < n:
            mine = (np.empty(max(n, 1), dtype=np.uint32),
                    np.empty(2 * n * self.channels + (6 * self.ka + 33) * self.channels + 4,
                             dtype=np.uint8))                                          # csrc/rans.h
            self._local.scratch = mine
        return mine

    def contexts(self, symbols, width):
        """uint8 (C, n) context index ka * ks + ks of each symbol of (C, n) in a grid of the given width."""
        symbols = self._check(symbols)
        ctx = np.empty_like(symbols)
        n = symbols.shape[1]
        r = self.lib.nl_contexts(symbols, n, width, self.channels, self.fill, self.ks, self.ka, self.thresholds,
                                 self.mix, *(self._scratch(n) + (ctx,)))
        if r < 0:
            raise RansError(ERRORS.get(r, 'error {}'.format(r)))
        return ctx

    def varying(self, symbols):
        """uint8 (C,) mask: 1 for the channels of symbols (C, n) to code, 0 for those equal to their fill symbol."""
        symbols = self._check(symbols)
        coded = np.zeros(self.channels, dtype=np.uint8)
        bad = ctypes.c_uint32(0)
        r = self.lib.nl_varying_channels(symbols, symbols.shape[1], self.channels, self.channel_nsym, self.fill, coded,
                                         ctypes.byref(bad))
        if r < 0:
            raise RansError('channel {}: a symbol index is {} or more, past its table'.format(
                bad.value, self.channel_nsym[bad.value]))
        return coded

    def encode(self, symbols, coded=None, width=None):
        """symbols uint8 (C, n), or (C, h, w) -> (stream bytes, coded mask uint8 (C,)). Context tables need the
        grid's width: (C, h, w) symbols, or width=."""
        if symbols.ndim == 3:
            width = symbols.shape[2]
            symbols = symbols.reshape(symbols.shape[0], -1)
        symbols = self._check(symbols)
        if coded is None:
            coded = self.varying(symbols)
        n = symbols.shape[1]
        need = 2 * n * int(coded.sum()) + 16              # a symbol costs at most one 16-bit word
        if self._out.size < need:
            self._out = np.zeros(need, dtype=np.uint8)
        if self.context:
            if not width:
                raise RansError('context tables code a grid: give (C, h, w) symbols or width=')
            r = self.lib.nl_encode_ctx(symbols, n, width, self.channels, self.nsym, self.offset, self.enc4, coded,
                                       self.fill, self.ks, self.ka, self.thresholds, self.mix,
                                       *(self._scratch(n) + (self._out, self._out.size)))
        else:
            r = self.lib.nl_encode(symbols, n, self.channels, self.nsym, self.offset, self.freq, self.rcp,
                                   self.shift, self.bias, coded, self._out, self._out.size)
        if r < 0:
            raise RansError(ERRORS.get(r, 'error {}'.format(r)))
        return self._out[:r].tobytes(), coded

    def decode(self, stream, coded, n, width=None):
        """Stream bytes, coded mask (C,) and positions per channel (and the grid's width, for context tables) ->
        symbols uint8 (C, n); RansError if the stream is not exactly the coding of C x n symbols under these
        tables."""
        coded = np.ascontiguousarray(coded, dtype=np.uint8)
        if coded.shape != (self.channels,):
            raise RansError('the coded-channel mask has {} entries, the tables {} channels'.format(
                coded.size, self.channels))
        if np.any(coded.astype(bool) & self.constant):
            raise RansError('a channel that is constant at this rate is marked as coded')
        out = np.empty((self.channels, n), dtype=np.uint8)
        stream = bytes(stream)
        if self.context:
            if not width:
                raise RansError('context tables decode a grid: give width=')
            r = self.lib.nl_decode_ctx(stream, len(stream), n, width, self.channels, self.nsym, self.offset,
                                       self.cum16, self.lut, coded, self.fill, self.ks, self.ka, self.thresholds,
                                       self.mix, *(self._scratch(n) + (out,)))
        else:
            r = self.lib.nl_decode(stream, len(stream), n, self.channels, self.nsym, self.offset, self.freq,
                                   self.cum, self.lut, coded, self.fill, out)
        if r < 0:
            raise RansError(ERRORS.get(r, 'error {}'.format(r)))
        return out

    def values(self, symbols):
        """Symbol indices (C, ...) -> the integers they stand for (int32), lo[c] + index."""
        return symbols.astype(np.int32) + self.lo.reshape((-1,) + (1,) * (symbols.ndim - 1))

    def _check(self, symbols):
        symbols = np.ascontiguousarray(symbols, dtype=np.uint8)
        if symbols.ndim != 2 or symbols.shape[0] != self.channels:
            raise RansError('symbols must be (C={}, n), got {}'.format(self.channels, symbols.shape))
        return symbols
