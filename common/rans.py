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
frame has ~0.6 M latents; the edge has ~5 ms for them). The C file is ~250 lines, C99, without allocation.
"""
import ctypes
import importlib.machinery
import os

import numpy as np

from nanolink.common.errors import NanolinkError

PROB_BITS = 15
PROB_SCALE = 1 << PROB_BITS
MAX_SYMBOLS = 256
LUT_SIZE = PROB_SCALE >> 7

ERRORS = {
    -1: 'the output buffer is too small',
    -2: 'a symbol index is not below its channel\'s symbol count',
    -3: 'the stream is shorter than its 8-byte header or has an odd length',
    -4: 'an initial coder state is out of range',
    -5: 'the stream ends before the last symbol (truncated)',
    -6: 'the stream does not end where its symbols do (corrupt, or coded with other tables)',
    -7: 'invalid tables',
    -8: 'a one-symbol channel is marked as coded',
}


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
    u8p, i32p, u32p = (np.ctypeslib.ndpointer(t, flags='C_CONTIGUOUS') for t in (np.uint8, np.int32, np.uint32))
    u32, u64, i64 = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int64
    lib.nl_check_tables.argtypes = [u32, i32p, i32p, u32p, u32p]
    lib.nl_check_tables.restype = ctypes.c_int
    lib.nl_encoder_tables.argtypes = [u32, i32p, i32p, u32p, u32p, u32p, u32p, u32p]
    lib.nl_encoder_tables.restype = None
    lib.nl_decoder_lut.argtypes = [u32, i32p, i32p, u32p, u8p]
    lib.nl_decoder_lut.restype = None
    lib.nl_varying_channels.argtypes = [u8p, u32, u32, i32p, u8p, u8p, ctypes.POINTER(u32)]
    lib.nl_varying_channels.restype = i64
    lib.nl_encode.argtypes = [u8p, u32, u32, i32p, i32p, u32p, u32p, u32p, u32p, u8p, u8p, u64]
    lib.nl_encode.restype = i64
    lib.nl_decode.argtypes = [ctypes.c_char_p, u64, u32, u32, i32p, i32p, u32p, u32p, u8p, u8p, u8p, u8p]
    lib.nl_decode.restype = i64
    return lib


class RansTables(object):
    """One rate point's integer tables: channel c codes the integers lo[c] .. lo[c] + len(freqs[c]) - 1 as symbol
    indices 0 .. len(freqs[c]) - 1 with frequencies freqs[c] (each >= 1, summing to 2^15; one symbol: constant)."""

    def __init__(self, lo, freqs):
        if len(lo) != len(freqs) or not freqs:
            raise NanolinkError('rANS tables need one lo and one frequency list per channel ({} and {})'.format(
                len(lo), len(freqs)))
        self.lib = _load()
        self.channels = len(freqs)
        self.lo = np.asarray(lo, dtype=np.int32)
        self.nsym = np.array([len(f) for f in freqs], dtype=np.int32)
        if self.nsym.min() < 1 or self.nsym.max() > MAX_SYMBOLS:
            raise NanolinkError('rANS tables: every channel needs 1..{} symbols'.format(MAX_SYMBOLS))
        self.offset = np.concatenate([[0], np.cumsum(self.nsym)[:-1]]).astype(np.int32)
        self.freq = np.concatenate([np.asarray(f, dtype=np.int64) for f in freqs])
        if self.freq.min() < 0 or self.freq.max() > PROB_SCALE:
            raise NanolinkError('rANS tables: frequencies must lie in 0..{}'.format(PROB_SCALE))
        self.freq = self.freq.astype(np.uint32)
        self.cum = np.zeros_like(self.freq)
        for c in range(self.channels):
            o, n = self.offset[c], self.nsym[c]
            self.cum[o:o + n] = np.concatenate([[0], np.cumsum(self.freq[o:o + n])[:-1]])
        if self.lib.nl_check_tables(self.channels, self.nsym, self.offset, self.freq, self.cum):
            raise NanolinkError('rANS tables: a channel with several symbols needs frequencies >= 1 that sum to '
                                '{}'.format(PROB_SCALE))
        self.fill = np.array([int(np.argmax(f)) for f in freqs], dtype=np.uint8)   # the most probable symbol
        self.constant = self.nsym == 1
        self.rcp, self.shift, self.bias = (np.zeros_like(self.freq) for _ in range(3))
        self.lib.nl_encoder_tables(self.channels, self.nsym, self.offset, self.freq, self.cum, self.rcp, self.shift,
                                   self.bias)
        self.lut = np.zeros(self.channels * LUT_SIZE, dtype=np.uint8)
        self.lib.nl_decoder_lut(self.channels, self.nsym, self.offset, self.cum, self.lut)
        self._out = np.zeros(0, dtype=np.uint8)

    def varying(self, symbols):
        """uint8 (C,) mask: 1 for the channels of symbols (C, n) to code, 0 for those equal to their fill symbol."""
        symbols = self._check(symbols)
        coded = np.zeros(self.channels, dtype=np.uint8)
        bad = ctypes.c_uint32(0)
        r = self.lib.nl_varying_channels(symbols, symbols.shape[1], self.channels, self.nsym, self.fill, coded,
                                         ctypes.byref(bad))
        if r < 0:
            raise RansError('channel {}: a symbol index is {} or more, past its table'.format(
                bad.value, self.nsym[bad.value]))
        return coded

    def encode(self, symbols, coded=None):
        """symbols uint8 (C, n) -> (stream bytes, coded mask uint8 (C,))."""
        symbols = self._check(symbols)
        if coded is None:
            coded = self.varying(symbols)
        n = symbols.shape[1]
        need = 2 * n * int(coded.sum()) + 16              # a symbol costs at most one 16-bit word
        if self._out.size < need:
            self._out = np.zeros(need, dtype=np.uint8)
        r = self.lib.nl_encode(symbols, n, self.channels, self.nsym, self.offset, self.freq, self.rcp, self.shift,
                               self.bias, coded, self._out, self._out.size)
        if r < 0:
            raise RansError(ERRORS.get(r, 'error {}'.format(r)))
        return self._out[:r].tobytes(), coded

    def decode(self, stream, coded, n):
        """Stream bytes, coded mask (C,) and positions per channel -> symbols uint8 (C, n); RansError if the
        stream is not exactly the coding of C x n symbols under these tables."""
        coded = np.ascontiguousarray(coded, dtype=np.uint8)
        if coded.shape != (self.channels,):
            raise RansError('the coded-channel mask has {} entries, the tables {} channels'.format(
                coded.size, self.channels))
        if np.any(coded.astype(bool) & self.constant):
            raise RansError('a channel that is constant at this rate is marked as coded')
        out = np.empty((self.channels, n), dtype=np.uint8)
        stream = bytes(stream)
        r = self.lib.nl_decode(stream, len(stream), n, self.channels, self.nsym, self.offset, self.freq, self.cum,
                               self.lut, coded, self.fill, out)
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
