/* nanolink rANS with context tables, the encoder's side: nl_contexts, nl_encoder_tables_ctx, nl_encode_ctx (rans.h
   has the rule and the tables' layout, rans.c the stream's). Plain C99, plus where the compiler has them:
   __builtin_prefetch, unsigned __int128 (a portable two-multiply fallback otherwise) and GCC's target_clones. */
#include "rans.h"
#include "rans_ctx.h"
#include "rans_le.h"

#include <string.h>

/* The context loops are byte, int16 and int32 lanes: on x86-64 with glibc, GCC builds them twice, for the baseline
   (SSE2) and for AVX2, and the loader picks one for the CPU (an ifunc). Elsewhere (aarch64: NEON is its baseline;
   musl, which has no ifunc) they build once; with clang too, whose resolvers of static clones are global symbols
   (clang 14), and older clangs lack the attribute. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__GLIBC__) && !defined(NL_NO_CLONES)
#define NL_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define NL_VECTOR_CLONES
#endif

/* floor(x m / 2^64) for x < 2^32: with m of nl_encoder_tables_ctx, x / freq in one multiply (the fallback is
   exact too: its sum stays below 2^64) */
#if defined(__SIZEOF_INT128__)
__extension__ typedef unsigned __int128 nl_u128;
#endif
static inline uint32_t nl_mulhi(uint32_t x, uint64_t m)
{
#if defined(__SIZEOF_INT128__)
    return (uint32_t)(((nl_u128)x * m) >> 64);
#else
    return (uint32_t)(((uint64_t)x * (m >> 32) + (((uint64_t)x * (uint32_t)m) >> 32)) >> 32);
#endif
}

/* ---- the encoder's side (nl_contexts, nl_encode_ctx): it knows every symbol, so a position's contexts can be
   worked out in any order. They are, one position ahead of the coder, from a window of two grid rows that holds
   the coded channels position-major (a position's Cc symbols side by side, and their distances d), so the working
   set is a few rows and the entries' cache lines. Whole-frame copies (symbols, then contexts, 0.86 MB each at
   1008^2) made it megabytes, and another process's memory traffic slowed the coder by a sixth: 2026-12-07, q6
   (216 channels of 63 x 63), 3.55 -> 3.43 ms on a quiet machine and 4.28 -> 3.56 ms beside a 64 MB memcpy on
   the other core. ---- */

typedef struct {
    const ctx_work *wk;
    const uint8_t *sym;                  /* C x n, channel-major */
    uint32_t *act;                       /* A of rans.h, filled in as rows load */
    uint8_t *rsym[2], *rdist[2];         /* grid row y in slot y & 1: w x Cc */
    uint32_t n, w, KS, KA1, mix;
    int small, narrow;                   /* narrow: every coded channel's thresholds fit int16 (thr16) */
} ctx_win;

static void ctx_window(ctx_win *cw, const ctx_work *wk, const uint8_t *sym, uint32_t n, uint32_t w, uint32_t KS,
                       uint32_t KA, uint32_t mix, uint32_t *act)
{
    uint64_t slot = (uint64_t)w * wk->Cc, two = n / w > 1 ? slot : 0, i, m = (uint64_t)(KA - 1) * wk->Cc;
    cw->wk = wk;
    cw->sym = sym;
    cw->act = act;
    cw->rsym[0] = wk->rows;                 /* 4 w Cc <= 2 n Cc bytes when there are two rows (2 w Cc for one) */
    cw->rsym[1] = wk->rows + two;
    cw->rdist[0] = wk->rows + slot + two;
    cw->rdist[1] = cw->rdist[0] + two;
    cw->n = n;
    cw->w = w;
    cw->KS = KS;
    cw->KA1 = KA - 1;
    cw->mix = mix;
    cw->small = ctx_fits_int32(wk->Cc, mix);
    cw->narrow = 1;
    for (i = 0; i < m; i++) {            /* levels are >= 0: a threshold below -32768 counts as -32768 does */
        int32_t t = wk->thrc[i];
        cw->narrow &= t <= 32767;
        wk->thr16[i] = (int16_t)(t < -32768 ? -32768 : t > 32767 ? 32767 : t);
    }
}

/* An 8 x 8 byte transpose in a uint64 per row (byte k of a[i] is element (i, k); after, byte i of a[k]): 2 x 2
   blocks of bytes, then of 16-bit pairs, then of 32-bit quads swap across the diagonal. Byte k is bits 8k..8k+7
   only on a little-endian CPU (x86, the Jetson's aarch64): elsewhere ctx_load_row goes byte by byte. Inlined, so
   that the rows stay in registers (GCC left it a call from the AVX2 clone: 2-3 % of the edge coder). */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void tr8x8(uint64_t *a)
{
    uint64_t t;
    unsigned i;
    for (i = 0; i < 8; i += 2) {
        t = ((a[i] >> 8) ^ a[i + 1]) & 0x00ff00ff00ff00ffull;
        a[i + 1] ^= t;
        a[i] ^= t << 8;
    }
    for (i = 0; i < 8; i += (i & 1) ? 3 : 1) {
        t = ((a[i] >> 16) ^ a[i + 2]) & 0x0000ffff0000ffffull;
        a[i + 2] ^= t;
        a[i] ^= t << 16;
    }
    for (i = 0; i < 4; i++) {
        t = ((a[i] >> 32) ^ a[i + 4]) & 0x00000000ffffffffull;
        a[i + 4] ^= t;
        a[i] ^= t << 32;
    }
}

/* Grid row y into slot y & 1: its coded symbols position-major (blocks of 8 channels x 8 positions through
   tr8x8, the edges byte by byte), their distances d, and A of its positions */
NL_VECTOR_CLONES static void ctx_load_row(const ctx_win *cw, uint32_t y)
{
    const ctx_work *wk = cw->wk;
    const uint16_t one = 1;
    uint32_t j, x, w = cw->w, Cc = wk->Cc, w8 = w & ~7u, C8 = *(const uint8_t *)&one ? Cc & ~7u : 0;
    uint8_t *restrict rs = cw->rsym[y & 1], *restrict rd = cw->rdist[y & 1];
    const uint8_t *restrict fillc = wk->fillc;
    const uint8_t *src[8];
    uint64_t a[8];
    unsigned i;
    for (j = 0; j < C8; j += 8) {
        for (i = 0; i < 8; i++)
            src[i] = cw->sym + (uint64_t)wk->clist[j + i] * cw->n + (uint64_t)y * w;
        for (x = 0; x < w8; x += 8) {
            for (i = 0; i < 8; i++)
                memcpy(&a[i], src[i] + x, 8);
            tr8x8(a);
            for (i = 0; i < 8; i++)
                memcpy(rs + (uint64_t)(x + i) * Cc + j, &a[i], 8);
        }
        for (; x < w; x++)
            for (i = 0; i < 8; i++)
                rs[(uint64_t)x * Cc + j + i] = src[i][x];
    }
    for (; j < Cc; j++) {
        const uint8_t *row = cw->sym + (uint64_t)wk->clist[j] * cw->n + (uint64_t)y * w;
        for (x = 0; x < w; x++)
            rs[(uint64_t)x * Cc + j] = row[x];
    }
    for (x = 0; x < w; x++) {
        const uint8_t *restrict s = rs + (uint64_t)x * Cc;
        uint8_t *restrict d = rd + (uint64_t)x * Cc;
        uint32_t t = 0;
        for (j = 0; j < Cc; j++) {
            d[j] = ctx_dist(s[j], fillc[j]);
            t += d[j];
        }
        cw->act[(uint64_t)y * w + x] = t;    /* A(p): the channels not coded add 0 */
    }
}

/* P of rans.h for each coded channel of position q (loaded): the running sum of its distances */
static void ctx_part(const ctx_win *cw, uint32_t q, int32_t *restrict part)
{
    uint32_t j, t = 0, Cc = cw->wk->Cc;
    const uint8_t *restrict d = cw->rdist[(q / cw->w) & 1] + (uint64_t)(q % cw->w) * Cc;
    for (j = 0; j < Cc; j++) {
        part[j] = (int32_t)t;
        t += d[j];
    }
}

/* The context ka * KS + ks of each coded symbol of position q into ctxp, from P (part) and the window (q's row
   and the one above loaded): ks from the neighbours' distances, then the levels N + mix * P, then each threshold
   against all the levels at once (the coded channels' thresholds transposed). Every loop is over byte, int16 or
   int32 lanes and vectorises. The comparisons take int16 lanes, twice as many a vector, when every threshold is
   <= 32767 (the shipped ones are <= 16000): then t <= N + mix * P exactly when t <= min(N + mix * P, 32767).
   2026-12-07, q6: 5 % off the edge coder. */
NL_VECTOR_CLONES static void ctx_codes(const ctx_win *cw, uint32_t q, const int32_t *restrict part,
                                       uint8_t *restrict ctxp)
{
    const ctx_work *wk = cw->wk;
    uint32_t j, k, Cc = wk->Cc, w = cw->w, x = q % w, y = q / w, KA1 = cw->KA1, mix = cw->mix;
    const uint8_t *restrict dl = x > 0 ? cw->rdist[y & 1] + (uint64_t)(x - 1) * Cc : wk->zero;
    const uint8_t *restrict du = y > 0 ? cw->rdist[(y - 1) & 1] + (uint64_t)x * Cc : wk->zero;
    int32_t *restrict level = wk->level, *restrict count = wk->count;
    uint32_t nb = ctx_neighbours(cw->act, q, w);
    uint8_t top = (uint8_t)(cw->KS - 1);
    for (j = 0; j < Cc; j++) {
        uint8_t d = (uint8_t)(dl[j] + du[j]);
        ctxp[j] = (uint8_t)(d < top ? d : top);
    }
    if (cw->small)
        for (j = 0; j < Cc; j++)
            level[j] = (int32_t)(nb + mix * (uint32_t)part[j]);
    else
        for (j = 0; j < Cc; j++)
            level[j] = ctx_level(nb, mix, (uint32_t)part[j]);
    if (cw->narrow) {
        int16_t *restrict l16 = wk->lev16, *restrict c16 = wk->cnt16;
        for (j = 0; j < Cc; j++) {
            l16[j] = (int16_t)(level[j] < 32767 ? level[j] : 32767);
            c16[j] = 0;
        }
        for (k = 0; k + 4 <= KA1; k += 4) {
            const int16_t *restrict t0 = wk->thr16 + (uint64_t)k * Cc, *restrict t1 = t0 + Cc;
            const int16_t *restrict t2 = t1 + Cc, *restrict t3 = t2 + Cc;
            for (j = 0; j < Cc; j++)
                c16[j] = (int16_t)(c16[j] + (t0[j] <= l16[j]) + (t1[j] <= l16[j]) + (t2[j] <= l16[j]) +
                                   (t3[j] <= l16[j]));
        }
        for (; k < KA1; k++) {
            const int16_t *restrict tk = wk->thr16 + (uint64_t)k * Cc;
            for (j = 0; j < Cc; j++)
                c16[j] = (int16_t)(c16[j] + (tk[j] <= l16[j]));
        }
        for (j = 0; j < Cc; j++)             /* KS * KA <= 256: ka * KS + ks fits a byte */
            ctxp[j] = (uint8_t)(ctxp[j] + c16[j] * (int32_t)cw->KS);
        return;
    }
    for (j = 0; j < Cc; j++)
        count[j] = 0;
    for (k = 0; k + 4 <= KA1; k += 4) {     /* four thresholds a pass: fewer loads and stores of count */
        const int32_t *restrict t0 = wk->thrc + (uint64_t)k * Cc, *restrict t1 = t0 + Cc;
        const int32_t *restrict t2 = t1 + Cc, *restrict t3 = t2 + Cc;
        for (j = 0; j < Cc; j++)
            count[j] += (t0[j] <= level[j]) + (t1[j] <= level[j]) + (t2[j] <= level[j]) + (t3[j] <= level[j]);
    }
    for (; k < KA1; k++) {
        const int32_t *restrict tk = wk->thrc + (uint64_t)k * Cc;
        for (j = 0; j < Cc; j++)
            count[j] += tk[j] <= level[j];
    }
    for (j = 0; j < Cc; j++)                 /* KS * KA <= 256: ka * KS + ks fits a byte */
        ctxp[j] = (uint8_t)(ctxp[j] + count[j] * (int32_t)cw->KS);
}

int64_t nl_contexts(const uint8_t *sym, uint32_t n, uint32_t w, uint32_t C, const uint8_t *fill, uint32_t KS,
                    uint32_t KA, const int32_t *thr, uint32_t mix, uint32_t *act, uint8_t *scratch, uint8_t *ctx)
{
    ctx_work wk;
    ctx_win cw;
    uint32_t j, p;
    if (!ctx_shape_ok(n, w, KS, KA, mix))
        return NL_ERR_SHAPE;
    ctx_carve(scratch, n, C, NULL, fill, NULL, 1, KA, thr, &wk);
    ctx_window(&cw, &wk, sym, n, w, KS, KA, mix, act);
    for (p = 0; p < n; p++) {
        if (p % w == 0)
            ctx_load_row(&cw, p / w);        /* the row above stays in the other slot */
        ctx_part(&cw, p, wk.part[0]);
        ctx_codes(&cw, p, wk.part[0], wk.ctxb);
        for (j = 0; j < C; j++)
            ctx[(uint64_t)j * n + p] = wk.ctxb[j];
    }
    return 0;
}

int nl_encoder_tables_ctx(uint32_t T, uint32_t K, const int32_t *nsym, const int32_t *off, const uint32_t *freq,
                          const uint32_t *bias, uint32_t *enc4)
{
    uint32_t t;
    int32_t s;
    if (K == 0 || T % K)
        return NL_ERR_SHAPE;
    for (t = 0; t < T; t++)              /* the layout rans.h states, which the entries' index below relies on */
        if (nsym[t] != nsym[t / K * K] || off[t] != off[t / K * K] + (int32_t)(t % K) * nsym[t / K * K])
            return NL_ERR_TABLES;
    for (t = 0; t < T; t++) {
        for (s = 0; s < nsym[t]; s++) {
            uint64_t src = (uint64_t)(off[t] + s), e = (uint64_t)off[t / K * K] + (uint64_t)s * K + t % K;
            uint32_t f = freq[src];
            uint64_t m = f < 2 ? ~(uint64_t)0 : ~(uint64_t)0 / f + 1;   /* freq 1: x - 1, bias as nl_encoder_tables' */
            enc4[4 * e] = (uint32_t)m;
            enc4[4 * e + 1] = (uint32_t)(m >> 32);
            enc4[4 * e + 2] = f << 16;
            enc4[4 * e + 3] = bias[src];
        }
    }
    return 0;
}

/* The enc4 entry index of each coded symbol of position q (rans.h: off[c K] + s K + context) into eidx */
static void ctx_entries(const ctx_win *cw, uint32_t q, uint32_t K, uint32_t *restrict eidx)
{
    const ctx_work *wk = cw->wk;
    uint32_t j, Cc = wk->Cc;
    const uint8_t *restrict sp = cw->rsym[(q / cw->w) & 1] + (uint64_t)(q % cw->w) * Cc;
    const uint8_t *cp = wk->ctxb;        /* not restrict: ctx_codes writes it */
    const uint32_t *restrict base = wk->base;
    ctx_codes(cw, q, wk->part[q & 1], wk->ctxb);
    for (j = 0; j < Cc; j++)
        eidx[j] = base[j] + (uint32_t)sp[j] * K + cp[j];
}

int64_t nl_encode_ctx(const uint8_t *sym, uint32_t n, uint32_t w, uint32_t C, const int32_t *nsym,
                      const int32_t *off, const uint32_t *enc4, const uint8_t *coded, const uint8_t *fill,
                      uint32_t KS, uint32_t KA, const int32_t *thr, uint32_t mix, uint32_t *act, uint8_t *scratch,
                      uint8_t *out, uint64_t capacity)
{
    uint64_t wp = capacity;
    uint32_t K = KS * KA, xa = NL_RANS_L, xb = NL_RANS_L, c;
    int64_t p;
    ctx_work wk;
    ctx_win cw;
    if (!ctx_shape_ok(n, w, KS, KA, mix))
        return NL_ERR_SHAPE;
    for (c = 0; c < C; c++) {
        if (coded[c] && nsym[c * K] < 2)
            return NL_ERR_CODED;
    }
    if (capacity < 8)
        return NL_ERR_CAPACITY;
    for (c = 0; c < C; c++) {            /* every index in range before contexts read them */
        const uint8_t *row = sym + (uint64_t)c * n;
        uint8_t over = 0, lim = (uint8_t)(nsym[c * K] - 1);
        uint32_t q;
        for (q = 0; q < n; q++)
            over |= (uint8_t)(row[q] > lim);
        if (over || fill[c] > lim)
            return NL_ERR_SYMBOL;
    }
    ctx_carve(scratch, n, C, coded, fill, off, K, KA, thr, &wk);
    ctx_window(&cw, &wk, sym, n, w, KS, KA, mix, act);
    /* A pipeline, as the coder goes backwards: while it codes position p, the entries of p - 1 (computed just
       before) are prefetched and P of p - 2 is summed (from the last channel down: P = A minus the distances from
       the channel on) in the same loop, beside the states' chains of multiplies. Row y - 2 loads into row y's
       slot once p - 1 has left row y. The prefetch gains nothing on a quiet machine, 4 % beside a memcpy. */
    if (n > 0) {
        ctx_load_row(&cw, (n - 1) / w);
        if (n / w > 1)
            ctx_load_row(&cw, (n - 1) / w - 1);
        ctx_part(&cw, n - 1, wk.part[(n - 1) & 1]);
        if (n > 1)
            ctx_part(&cw, n - 2, wk.part[(n - 2) & 1]);
        ctx_entries(&cw, n - 1, K, wk.eidx[(n - 1) & 1]);
    }
    /* Symbol i (in decoding order) uses state i % 2; the two states swap after every symbol, which keeps both in
       registers (x[i & 1] would put a store-to-load round trip in the critical path). xa is the state of the next
       symbol pushed. */
    for (p = (int64_t)n - 1; p >= 0; p--) {
        const uint32_t *ep = wk.eidx[p & 1], *en = ep;
        const uint8_t *dq = wk.zero;
        int32_t *pq = wk.part[p & 1];        /* p - 2's */
        uint32_t aq = 0, s2 = 0;
        int64_t j;
        if (p > 0) {
            if ((uint32_t)p % w == 0 && (uint32_t)p / w >= 2)
                ctx_load_row(&cw, (uint32_t)p / w - 2);
            en = wk.eidx[(p - 1) & 1];
            ctx_entries(&cw, (uint32_t)p - 1, K, wk.eidx[(p - 1) & 1]);
        }
        if (p > 1) {
            uint32_t q = (uint32_t)p - 2;
            dq = cw.rdist[(q / w) & 1] + (uint64_t)(q % w) * wk.Cc;
            aq = act[q];
        }
        for (j = (int64_t)wk.Cc - 1; j >= 0; j--) {
            const uint32_t *e = enc4 + 4 * (uint64_t)ep[j];     /* m (low, high word), freq << 16, bias */
            uint32_t xs = xa;
            NL_PREFETCH(enc4 + 4 * (uint64_t)en[j]);
            if (nl_flush(out, &wp, &xs, e[2]))
                return NL_ERR_CAPACITY;
            xa = xb;
            xb = xs + e[3] + nl_mulhi(xs, (uint64_t)e[0] | (uint64_t)e[1] << 32) * (NL_PROB_SCALE - (e[2] >> 16));
            s2 += dq[j];
            pq[j] = (int32_t)(aq - s2);
        }
    }
    return nl_finish(out, capacity, wp, xb, xa);   /* xa: the state "symbol -1" would use, state 1 */
}

