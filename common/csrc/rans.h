/* nanolink's rANS coder for the integer latents of learned codecs. The format is documented in rans.c and, byte
   by byte with the payload around it, in nanolink/common/wire.py. Plain C99, no allocation, no globals. */
#ifndef NANOLINK_RANS_H
#define NANOLINK_RANS_H

#include <stdint.h>

#define NL_PROB_BITS 15                      /* the frequencies of a channel sum to 2^15 */
#define NL_PROB_SCALE (1u << NL_PROB_BITS)
#define NL_RANS_L (1u << 15)                 /* coder states live in [2^15, 2^31) */
#define NL_MAX_SYMBOLS 256                   /* symbol indices are bytes */
#define NL_LUT_SHIFT 7                       /* decoder's coarse lookup: 2^15 >> 7 = 256 entries a channel */
#define NL_LUT_SIZE (NL_PROB_SCALE >> NL_LUT_SHIFT)

/* Errors: negative return values. */
#define NL_ERR_CAPACITY  -1   /* encode: the output buffer is too small */
#define NL_ERR_SYMBOL    -2   /* encode: a symbol index is not below its channel's symbol count */
#define NL_ERR_SHORT     -3   /* decode: fewer than 8 bytes, or an odd number of bytes */
#define NL_ERR_STATE     -4   /* decode: an initial state outside [2^15, 2^31) */
#define NL_ERR_TRUNCATED -5   /* decode: the stream ended before the last symbol */
#define NL_ERR_TRAILING  -6   /* decode: bytes left over, or final states that are not 2^15 */
#define NL_ERR_TABLES    -7   /* tables: a count outside 1..256, a zero frequency, or a sum that is not 2^15; for
                                 the context coders also tables not laid out as rans.h says */
#define NL_ERR_CODED     -8   /* encode/decode: a one-symbol channel marked as coded */

/* Tables of C channels, flattened: channel c owns entries off[c] .. off[c] + nsym[c] - 1 of freq and cum
   (cum: the sum of the channel's frequencies before the entry). */
int nl_check_tables(uint32_t C, const int32_t *nsym, const int32_t *off, const uint32_t *freq, const uint32_t *cum);

/* Encoder constants per table entry (rcp, shift, bias: 3 uint32 arrays as long as freq). */
void nl_encoder_tables(uint32_t C, const int32_t *nsym, const int32_t *off, const uint32_t *freq,
                       const uint32_t *cum, uint32_t *rcp, uint32_t *shift, uint32_t *bias);

/* Decoder's coarse lookup: NL_LUT_SIZE bytes a channel (C * NL_LUT_SIZE in all). */
void nl_decoder_lut(uint32_t C, const int32_t *nsym, const int32_t *off, const uint32_t *cum, uint8_t *lut);

/* coded[c] = 1 where channel c of sym (C x n, channel-major) holds a symbol other than fill[c], else 0.
   Returns the number of coded channels, or NL_ERR_SYMBOL (with *bad = the channel) for an index >= nsym. */
int64_t nl_varying_channels(const uint8_t *sym, uint32_t n, uint32_t C, const int32_t *nsym, const uint8_t *fill,
                            uint8_t *coded, uint32_t *bad);

/* The stream for the coded channels of sym into out; returns its length in bytes or an error. */
int64_t nl_encode(const uint8_t *sym, uint32_t n, uint32_t C, const int32_t *nsym, const int32_t *off,
                  const uint32_t *freq, const uint32_t *rcp, const uint32_t *shift, const uint32_t *bias,
                  const uint8_t *coded, uint8_t *out, uint64_t capacity);

/* sym (C x n) from a stream of len bytes; channels not coded are filled with fill[c]. Returns 0 or an error. */
int64_t nl_decode(const uint8_t *in, uint64_t len, uint32_t n, uint32_t C, const int32_t *nsym, const int32_t *off,
                  const uint32_t *freq, const uint32_t *cum, const uint8_t *lut, const uint8_t *coded,
                  const uint8_t *fill, uint8_t *sym);

/* Context coding (nl_*_ctx): each channel c has K = KS * KA tables, table t = c * K + ka * KS + ks for the symbol
   at position p (raster order in an h x w grid, n = h * w), where, with d(c, q) = min(|sym[c][q] - fill[c]|, 8)
   and 0 for a neighbour outside the grid:
       ks = min(d(c, left) + d(c, up), KS - 1)                             (the channel's own neighbours)
       A(q) = sum over all channels of d(c, q)                            (activity of a position)
       N(p) = 2 A(left) + 2 A(up) + A(up-left)                            (the neighbours' activity)
       P(c, p) = sum over the channels c' < c of d(c', p)                 (this position's channels before c)
       ka = the number of thr[c * (KA - 1) + k], k = 0 .. KA - 2, that are <= N(p) + mix * P(c, p)
   Channels not coded in a frame hold their fill symbol everywhere, so they add 0 to A and P. thr holds KA - 1
   thresholds per channel (C * (KA - 1) in all); mix = 0 with the same thresholds for every channel is the first
   rule nanolink shipped (the neighbours' activity alone). The tables are given as T = C * K virtual channels (nsym,
   off, freq, cum and encoder constants per table; every table of channel c has nsym[c] symbols; the decoder's LUT
   holds the tables of a channel interleaved, nl_decoder_tables_ctx below). Symbols are
   coded position by position (p ascending), the coded channels of a position in ascending order; the i-th coded
   symbol uses state i % 2. */
#define NL_CTX_DCLIP 8
#define NL_CTX_MAX 256                       /* KS * KA */
#define NL_CTX_MAX_MIX 1024                  /* mix: N + mix * P stays far inside 32 bits for C <= 4096 */

/* Scratch the caller provides: act, n uint32; scratch, 2 * n * C + (6 * KA + 33) * C + 4 bytes (position-major
   copies of the coded channels, per-position entry lists, running sums, levels and counts, the coded channels'
   thresholds). */

/* Context index ka * KS + ks of every symbol of sym (C x n) into ctx (C x n). */
int64_t nl_contexts(const uint8_t *sym, uint32_t n, uint32_t w, uint32_t C, const uint8_t *fill, uint32_t KS,
                    uint32_t KA, const int32_t *thr, uint32_t mix, uint32_t *act, uint8_t *scratch, uint8_t *ctx);

/* The context encoder's constants (enc4, 4 * the number of table entries uint32) from T = C * K tables whose K
   tables of a channel lie one after the other in freq (off[c * K + j] = off[c * K] + j * nsym[c * K]); bias is
   nl_encoder_tables'. Symbol s in context j of channel c is entry e = off[c * K] + s * K + j (a channel's contexts
   side by side, so that the entries of its likely symbols share a few cache lines whatever the context), and
   enc4[4e .. 4e + 3] = the low and high words of m, freq << 16 (the state at which a word goes out), bias, where
   m = floor((2^64 - 1) / freq) + 1 = ceil(2^64 / freq) for freq >= 2 and 2^64 - 1 for freq 1: x / freq is then
   the high 64 bits of x * m for every state x < 2^32 (one multiply, no shift; freq 1 gives x - 1, which bias
   makes exact, as in nl_encoder_tables). Returns 0, NL_ERR_SHAPE (K = 0 or T not a multiple of K) or NL_ERR_TABLES
   (tables not laid out as above: a channel's tables of different symbol counts, or apart), writing nothing then. */
int nl_encoder_tables_ctx(uint32_t T, uint32_t K, const int32_t *nsym, const int32_t *off, const uint32_t *freq,
                          const uint32_t *bias, uint32_t *enc4);

/* As nl_encode, with context tables (T = C * KS * KA entries in nsym and off; K = KS * KA) and the encoder's
   constants from nl_encoder_tables_ctx. */
int64_t nl_encode_ctx(const uint8_t *sym, uint32_t n, uint32_t w, uint32_t C, const int32_t *nsym,
                      const int32_t *off, const uint32_t *enc4, const uint8_t *coded, const uint8_t *fill,
                      uint32_t KS, uint32_t KA, const int32_t *thr, uint32_t mix, uint32_t *act, uint8_t *scratch,
                      uint8_t *out, uint64_t capacity);

/* The context decoder's forms of T = C * KS * KA tables laid out one after the other (off[t] = the sum of nsym
   before t), table t = c * K + ka * KS + ks as above:
       cum16, T + the sum of nsym uint16: table t's cumulative frequencies at off[t] + t .. off[t] + t + nsym[t] - 1,
           then 2^15 (the search for a slot's symbol stops there, and freq = cum16[i + 1] - cum16[i]);
       lut, C * KS * NL_CTX_LUT_SIZE * KA bytes: lut[((c KS + ks) NL_CTX_LUT_SIZE + b) KA + ka] is the symbol of
           table t whose range holds slot b << NL_CTX_LUT_SHIFT, the ka tables of a slot side by side: the decoder
           fetches the next symbol's line before it knows that symbol's ka.
   A table of n symbols takes 2 n + 66 bytes, against 4 n + 256 in the decoder's first forms (freq | cum << 16
   and 256 LUT entries a table), whose cache misses took half its time. Returns 0, NL_ERR_SHAPE (KS or KA outside
   1..256, or their product) or NL_ERR_TABLES (tables not one after the other, a count outside 1..256, a channel's
   tables of different counts, or cum not rising from 0 below 2^15), writing nothing then. It reads cum alone and
   the decoder takes 2^15 - cum as the last symbol's frequency: that freq sums to 2^15 is nl_check_tables' check,
   which the tables must pass first (RansTables does both). */
#define NL_CTX_LUT_SHIFT 9
#define NL_CTX_LUT_SIZE (NL_PROB_SCALE >> NL_CTX_LUT_SHIFT)
int nl_decoder_tables_ctx(uint32_t C, uint32_t KS, uint32_t KA, const int32_t *nsym, const int32_t *off,
                          const uint32_t *cum, uint16_t *cum16, uint8_t *lut);

/* As nl_decode, with context tables, cum16 and lut from nl_decoder_tables_ctx. Scratch: as nl_encode_ctx's. */
int64_t nl_decode_ctx(const uint8_t *in, uint64_t len, uint32_t n, uint32_t w, uint32_t C, const int32_t *nsym,
                      const int32_t *off, const uint16_t *cum16, const uint8_t *lut, const uint8_t *coded,
                      const uint8_t *fill, uint32_t KS, uint32_t KA, const int32_t *thr, uint32_t mix, uint32_t *act,
                      uint8_t *scratch, uint8_t *sym);
#define NL_ERR_SHAPE     -9   /* context coding: w = 0, n not a multiple of w, KS * KA outside 1..256 or
                                 mix over NL_CTX_MAX_MIX */

#endif
