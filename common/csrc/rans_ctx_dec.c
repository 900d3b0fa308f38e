/* nanolink rANS with context tables, the decoder: nl_decoder_tables_ctx and nl_decode_ctx (rans.h has the rule and
   the tables' layout, rans.c the stream's). Plain C99. It works out each symbol's context from the symbols decoded
   before it, so its time is a chain of dependent loads: a symbol's ka needs the one before. Its tables are kept
   small for the cache (16-bit cumulative frequencies, a LUT of 64 entries a table), and the next symbol's LUT line
   is fetched while this one decodes: 8.3 -> 5.2 ms at quality 3 and 16.4 -> 9.8 at quality 6 (1008^2 here). */
#include "rans.h"
#include "rans_ctx.h"
#include "rans_le.h"

#include <string.h>

/* ka of rans.h: how many of a channel's KA - 1 thresholds are <= u (four at a time: the decoder's inner loop) */
static uint32_t ctx_bucket(const int32_t *row, uint32_t KA1, int32_t u)
{
    uint32_t k, ka = 0;
    for (k = 0; k + 4 <= KA1; k += 4)
        ka += (uint32_t)((row[k] <= u) + (row[k + 1] <= u) + (row[k + 2] <= u) + (row[k + 3] <= u));
    for (; k < KA1; k++)
        ka += (uint32_t)(row[k] <= u);
    return ka;
}

/* Where the KA entries of channel c's tables of context ks for this slot begin in the LUT (rans.h) */
static inline uint64_t lut_at(uint32_t c, uint32_t ks, uint32_t KS, uint32_t KA, uint32_t slot)
{
    return ((((uint64_t)c * KS + ks) << (NL_PROB_BITS - NL_CTX_LUT_SHIFT)) + (slot >> NL_CTX_LUT_SHIFT)) * KA;
}

/* ks of each of position p's Cc symbols into ctxp; a neighbour outside the grid reads as the fill row
   (the decoder's) */
static void ctx_position(const uint8_t *symT, uint32_t p, uint32_t w, uint32_t Cc, const uint8_t *restrict fillc,
                         uint32_t KS, uint8_t *restrict ctxp)
{
    const uint8_t *cur = symT + (uint64_t)p * Cc;
    const uint8_t *restrict left = p % w > 0 ? cur - Cc : fillc, *restrict up = p >= w ? cur - (uint64_t)w * Cc : fillc;
    uint32_t j;
    uint8_t top = (uint8_t)(KS - 1);
    for (j = 0; j < Cc; j++) {
        uint8_t d = (uint8_t)(ctx_dist(left[j], fillc[j]) + ctx_dist(up[j], fillc[j]));
        ctxp[j] = (uint8_t)(d < top ? d : top);
    }
}

int nl_decoder_tables_ctx(uint32_t C, uint32_t KS, uint32_t KA, const int32_t *nsym, const int32_t *off,
                          const uint32_t *cum, uint16_t *cum16, uint8_t *lut)
{
    uint32_t ka, ks, b, K = KS * KA;
    uint64_t c, t, o = 0;
    if (!ctx_shape_ok(1, 1, KS, KA, 0))
        return NL_ERR_SHAPE;
    for (t = 0; t < (uint64_t)C * K; t++) {  /* one after the other (so no sentinel overlaps a table), a channel's
                                                tables of one count, cum rising from 0 and below 2^15 */
        int32_t i;
        if (nsym[t] < 1 || nsym[t] > NL_MAX_SYMBOLS || nsym[t] != nsym[t / K * K] || (uint64_t)off[t] != o ||
            cum[o] != 0)
            return NL_ERR_TABLES;
        for (i = 1; i < nsym[t]; i++)
            if (cum[o + (uint64_t)i] <= cum[o + (uint64_t)i - 1] || cum[o + (uint64_t)i] >= NL_PROB_SCALE)
                return NL_ERR_TABLES;
        o += (uint64_t)nsym[t];
    }
    for (c = 0; c < C; c++)
        for (ka = 0; ka < KA; ka++)
            for (ks = 0; ks < KS; ks++) {
                const uint32_t *cu;
                uint16_t *d;
                int32_t i, s = 0;
                t = c * K + ka * KS + ks;
                cu = cum + off[t];
                d = cum16 + (uint64_t)off[t] + t;
                for (i = 0; i < nsym[t]; i++)
                    d[i] = (uint16_t)cu[i];
                d[nsym[t]] = (uint16_t)NL_PROB_SCALE;
                for (b = 0; b < NL_CTX_LUT_SIZE; b++) {
                    while (s + 1 < nsym[t] && cu[s + 1] <= (b << NL_CTX_LUT_SHIFT))
                        s++;
                    lut[((c * KS + ks) * NL_CTX_LUT_SIZE + b) * KA + ka] = (uint8_t)s;
                }
            }
    return 0;
}

int64_t nl_decode_ctx(const uint8_t *in, uint64_t len, uint32_t n, uint32_t w, uint32_t C, const int32_t *nsym,
                      const int32_t *off, const uint16_t *cum16, const uint8_t *lut, const uint8_t *coded,
                      const uint8_t *fill, uint32_t KS, uint32_t KA, const int32_t *thr, uint32_t mix, uint32_t *act,
                      uint8_t *scratch, uint8_t *sym)
{
    uint32_t x[2];
    uint64_t rp = 8, i = 0;
    int r;
    uint32_t c, p, j, K = KS * KA, KA1 = KA - 1;
    uint8_t *ctxp;
    ctx_work wk;
    int small = ctx_fits_int32(C, mix);
    if (!ctx_shape_ok(n, w, KS, KA, mix))
        return NL_ERR_SHAPE;
    r = nl_start(in, len, x);
    if (r)
        return r;
    for (c = 0; c < C; c++)
        if (coded[c] && nsym[c * K] < 2)
            return NL_ERR_CODED;
    ctx_carve(scratch, n, C, coded, fill, NULL, K, KA, NULL, &wk);
    ctxp = wk.ctxb;                      /* one position's ks */
    for (p = 0; p < n; p++) {
        uint8_t *sp = wk.rows + (uint64_t)p * wk.Cc;
        uint32_t nb = ctx_neighbours(act, p, w), part = 0;
        const uint8_t *line = lut;      /* this symbol's LUT line, found (and fetched) while the one before decoded */
        ctx_position(wk.rows, p, w, wk.Cc, wk.fillc, KS, ctxp);
        if (wk.Cc > 0)
            line += lut_at(wk.clist[0], ctxp[0], KS, KA, x[i & 1] & (NL_PROB_SCALE - 1));
        for (j = 0; j < wk.Cc; j++) {   /* ka needs this position's symbols before j: chosen as they decode */
            int32_t level = small ? (int32_t)(nb + mix * part) : ctx_level(nb, mix, part);
            uint32_t ka = ctx_bucket(thr + (uint64_t)wk.clist[j] * KA1, KA1, level);
            uint64_t t = (uint64_t)wk.clist[j] * K + ka * KS + ctxp[j];
            uint32_t xs, slot, s;
            const uint16_t *cu = cum16 + (uint64_t)off[t] + t;    /* the table's cumulative frequencies, 2^15 last */
            unsigned k = (unsigned)(i & 1);
            const uint8_t *here = line;
            if (j + 1 < wk.Cc) {        /* the next symbol's LUT line, every ka in it: its state is final already */
                line = lut + lut_at(wk.clist[j + 1], ctxp[j + 1], KS, KA, x[k ^ 1u] & (NL_PROB_SCALE - 1));
                NL_PREFETCH(line);
            }
            xs = x[k];
            slot = xs & (NL_PROB_SCALE - 1);
            s = here[ka];
            while (cu[s + 1] <= slot)
                s++;
            xs = (uint32_t)(cu[s + 1] - cu[s]) * (xs >> NL_PROB_BITS) + slot - cu[s];
            if (nl_refill(in, len, &rp, &xs))
                return NL_ERR_TRUNCATED;
            x[k] = xs;
            i++;
            sp[j] = (uint8_t)s;
            part += ctx_dist(sp[j], wk.fillc[j]);
        }
        act[p] = (uint32_t)part;         /* A(p): every channel of p, the ones not coded adding 0 */
    }
    if (!nl_stream_done(rp, len, x))
        return NL_ERR_TRAILING;
    for (c = 0, j = 0; c < C; c++) {     /* back to channel-major; channels left out are their fill symbol */
        uint8_t *row = sym + (uint64_t)c * n;
        if (j < wk.Cc && wk.clist[j] == c) {
            for (p = 0; p < n; p++)
                row[p] = wk.rows[(uint64_t)p * wk.Cc + j];
            j++;
        } else {
            memset(row, fill[c], n);
        }
    }
    return 0;
}
