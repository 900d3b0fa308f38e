/* nanolink rANS: range asymmetric numeral systems (Duda 2013) after Fabian Giesen's rans_byte.h (public
   domain), with 31-bit states, 16-bit words and two interleaved states.

   Stream (what nl_encode writes and nl_decode reads), all integers little-endian:
       u32 x0, u32 x1      the encoder's final states, each in [2^15, 2^31)
       u16 words ...       renormalisation words in the order the decoder reads them
   Symbols are coded channel by channel (channel-major, positions in raster order), only for the channels marked
   coded; the i-th coded symbol uses state i % 2. Channel c's symbol s has frequency freq[s] and cumulative
   frequency cum[s] out of 2^15. Decoding one symbol with state x:
       slot = x & 0x7fff;  s = the symbol with cum[s] <= slot < cum[s] + freq[s]
       x = freq[s] * (x >> 15) + slot - cum[s];  if x < 2^15: x = (x << 16) | next u16 word
   Both states end at 2^15 (the encoder's initial state) with every word read: anything else is a corrupt or
   foreign stream and is rejected. Every read is bounds-checked against len.
   nl_encode_ctx / nl_decode_ctx (rans_ctx_enc.c, rans_ctx_dec.c) write and read the same layout with context
   tables (rans.h): position-major symbol order, and each symbol's table chosen from symbols the decoder has already
   decoded. */
#include "rans.h"
#include "rans_le.h"

#include <string.h>

int nl_check_tables(uint32_t C, const int32_t *nsym, const int32_t *off, const uint32_t *freq, const uint32_t *cum)
{
    uint32_t c;
    int32_t s;
    for (c = 0; c < C; c++) {
        uint32_t total = 0;
        if (nsym[c] < 1 || nsym[c] > NL_MAX_SYMBOLS || off[c] < 0)
            return NL_ERR_TABLES;
        for (s = 0; s < nsym[c]; s++) {
            uint32_t f = freq[off[c] + s];
            if ((nsym[c] > 1 && (f == 0 || f >= NL_PROB_SCALE)) || cum[off[c] + s] != total)
                return NL_ERR_TABLES;
            total += f;
        }
        if (nsym[c] > 1 && total != NL_PROB_SCALE)
            return NL_ERR_TABLES;
    }
    return 0;
}

void nl_encoder_tables(uint32_t C, const int32_t *nsym, const int32_t *off, const uint32_t *freq,
                       const uint32_t *cum, uint32_t *rcp, uint32_t *shift, uint32_t *bias)
{
    uint32_t c;
    int32_t s;
    for (c = 0; c < C; c++) {
        for (s = 0; s < nsym[c]; s++) {
            int32_t e = off[c] + s;
            uint32_t f = freq[e];
            if (f < 2) {                 /* x * (2^32 - 1) >> 32 = x - 1, which bias makes exact */
                rcp[e] = 0xffffffffu;
                shift[e] = 0;
                bias[e] = cum[e] + NL_PROB_SCALE - 1;
            } else {                     /* Alverson's reciprocal: exact for x < 2^31 */
                uint32_t sh = 0;
                while (f > (1u << sh))
                    sh++;
                rcp[e] = (uint32_t)(((1ull << (sh + 31)) + f - 1) / f);
                shift[e] = sh - 1;
                bias[e] = cum[e];
            }
        }
    }
}

void nl_decoder_lut(uint32_t C, const int32_t *nsym, const int32_t *off, const uint32_t *cum, uint8_t *lut)
{
    uint32_t c, j;
    for (c = 0; c < C; c++) {
        int32_t s = 0;
        for (j = 0; j < NL_LUT_SIZE; j++) {
            while (s + 1 < nsym[c] && cum[off[c] + s + 1] <= (j << NL_LUT_SHIFT))
                s++;
            lut[c * NL_LUT_SIZE + j] = (uint8_t)s;
        }
    }
}

int64_t nl_varying_channels(const uint8_t *sym, uint32_t n, uint32_t C, const int32_t *nsym, const uint8_t *fill,
                            uint8_t *coded, uint32_t *bad)
{
    uint32_t c, p;
    int64_t count = 0;
    for (c = 0; c < C; c++) {
        const uint8_t *row = sym + (uint64_t)c * n;
        uint8_t f = fill[c], lim = (uint8_t)(nsym[c] - 1), any = 0, over = 0;
        for (p = 0; p < n; p++) {    /* branch-free: the compiler vectorises it */
            any |= (uint8_t)(row[p] != f);
            over |= (uint8_t)(row[p] > lim);
        }
        if (over) {
            *bad = c;
            return NL_ERR_SYMBOL;
        }
        coded[c] = (uint8_t)(any && nsym[c] > 1);
        count += coded[c];
    }
    return count;
}


int64_t nl_encode(const uint8_t *sym, uint32_t n, uint32_t C, const int32_t *nsym, const int32_t *off,
                  const uint32_t *freq, const uint32_t *rcp, const uint32_t *shift, const uint32_t *bias,
                  const uint8_t *coded, uint8_t *out, uint64_t capacity)
{
    uint32_t x[2] = {NL_RANS_L, NL_RANS_L};
    uint64_t total = 0, i, wp = capacity;
    int64_t c;
    for (c = 0; c < (int64_t)C; c++) {
        if (coded[c] && nsym[c] < 2)
            return NL_ERR_CODED;
        total += coded[c] ? n : 0;
    }
    if (capacity < 8)
        return NL_ERR_CAPACITY;
    i = total;                           /* symbols are pushed in reverse: the decoder pops them in order */
    for (c = (int64_t)C - 1; c >= 0; c--) {
        const uint8_t *row;
        int64_t p;
        int32_t o, ns;
        if (!coded[c])
            continue;
        row = sym + (uint64_t)c * n;
        o = off[c];
        ns = nsym[c];
        for (p = (int64_t)n - 1; p >= 0; p--) {
            uint32_t s = row[p], e, xs, q;
            unsigned k;
            i--;
            k = (unsigned)(i & 1);
            if (s >= (uint32_t)ns)
                return NL_ERR_SYMBOL;
            e = (uint32_t)o + s;
            xs = x[k];
            if (nl_flush(out, &wp, &xs, freq[e] << 16))
                return NL_ERR_CAPACITY;
            q = (uint32_t)(((uint64_t)xs * rcp[e]) >> 32) >> shift[e];
            x[k] = xs + bias[e] + q * (NL_PROB_SCALE - freq[e]);
        }
    }
    return nl_finish(out, capacity, wp, x[0], x[1]);
}

int64_t nl_decode(const uint8_t *in, uint64_t len, uint32_t n, uint32_t C, const int32_t *nsym, const int32_t *off,
                  const uint32_t *freq, const uint32_t *cum, const uint8_t *lut, const uint8_t *coded,
                  const uint8_t *fill, uint8_t *sym)
{
    uint32_t x[2];
    uint64_t rp = 8, i = 0;
    int r;
    uint32_t c, p;
    r = nl_start(in, len, x);
    if (r)
        return r;
    for (c = 0; c < C; c++) {
        uint8_t *row = sym + (uint64_t)c * n;
        const uint32_t *f = freq + off[c], *cu = cum + off[c];
        const uint8_t *lt = lut + (uint64_t)c * NL_LUT_SIZE;
        int32_t ns = nsym[c];
        if (!coded[c]) {
            memset(row, fill[c], n);
            continue;
        }
        if (ns < 2)
            return NL_ERR_CODED;
        for (p = 0; p < n; p++, i++) {
            unsigned k = (unsigned)(i & 1);
            uint32_t xs = x[k], slot = xs & (NL_PROB_SCALE - 1), s = lt[slot >> NL_LUT_SHIFT];
            while (s + 1 < (uint32_t)ns && cu[s + 1] <= slot)
                s++;
            xs = f[s] * (xs >> NL_PROB_BITS) + slot - cu[s];
            if (nl_refill(in, len, &rp, &xs))
                return NL_ERR_TRUNCATED;
            x[k] = xs;
            row[p] = (uint8_t)s;
        }
    }
    if (!nl_stream_done(rp, len, x))
        return NL_ERR_TRAILING;
    return 0;
}
