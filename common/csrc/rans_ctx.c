/* nanolink rANS with context tables: nl_contexts, nl_encoder_tables_ctx, nl_encode_ctx, nl_decode_ctx (the rule
   and the tables' layout are in rans.h; the stream layout is rans.c's). Plain C99, plus where the compiler has
   them: __builtin_prefetch, unsigned __int128 (a portable two-multiply fallback otherwise) and GCC's
   target_clones. */
#include "rans.h"
#include "rans_le.h"

#include <string.h>

/* The context loops are byte and int32 lanes: on x86-64 with glibc, GCC and clang build them twice, for the
   baseline (SSE2) and for AVX2, and the loader picks one for the CPU (an ifunc); 2026-12-07, GCC 12, 1008^2:
   about 8 % off the edge coder. Elsewhere (aarch64: NEON is its baseline; musl, which has no ifunc) they build
   once; with clang too, whose resolvers of static clones are global symbols (clang 14), and older clangs lack the
   attribute. */
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

/* ---- context coding (see rans.h): the same states, words and stream layout, other tables and symbol order ----

   Both sides work on position-major copies of the coded channels only (symT[p * Cc + j] is coded channel j =
   clist[j] at position p): a position's symbols and its neighbours' are then contiguous, which keeps the coder
   inside the cache and lets the context loops vectorise. Channels that are not coded hold their fill symbol, at
   distance 0, so leaving them out changes no context. */

static uint8_t ctx_dist(uint8_t s, uint8_t f)       /* bytes throughout: the loops using it vectorise */
{
    uint8_t d = (uint8_t)(s > f ? s - f : f - s);
    return (uint8_t)(d < NL_CTX_DCLIP ? d : NL_CTX_DCLIP);
}

/* N(p) of rans.h: the activity of the left, upper and upper-left positions */
static uint32_t ctx_neighbours(const uint32_t *act, uint32_t p, uint32_t w)
{
    uint32_t x = p % w, t = 0;
    if (x > 0)
        t += 2 * act[p - 1];
    if (p >= w)
        t += 2 * act[p - w];
    if (x > 0 && p >= w)
        t += act[p - w - 1];
    return t;
}

/* N + mix * P of rans.h as an int32 that compares with every int32 threshold as the exact value would: clamped
   at INT32_MAX, which is >= every threshold anyway */
static int32_t ctx_level(uint64_t nb, uint32_t mix, uint64_t part)
{
    uint64_t u = nb + mix * part;
    return (int32_t)(u < 0x7fffffffu ? u : 0x7fffffffu);
}

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

/* N <= 5 * 8 * C and P <= 8 * C: when N + mix * P cannot pass INT32_MAX, int32 arithmetic on levels is exact
   (otherwise ctx_level clamps) */
static int ctx_fits_int32(uint32_t C, uint32_t mix)
{
    return (uint64_t)C * NL_CTX_DCLIP * (5 + (uint64_t)mix) < 0x7fffffffu;
}

static int ctx_shape_ok(uint32_t n, uint32_t w, uint32_t KS, uint32_t KA, uint32_t mix)
{
    return w > 0 && n % w == 0 && KS >= 1 && KA >= 1 && KS * KA <= NL_CTX_MAX && mix <= NL_CTX_MAX_MIX;
}

/* Working memory carved from the caller's scratch (rans.h gives its size). */
typedef struct {
    uint8_t *symT, *ctxT, *fillc;        /* n x Cc, n x Cc, Cc */
    uint32_t *clist, *base, *eidx[2];    /* Cc each */
    int32_t *level, *count, *thrc;       /* Cc, Cc; (KA - 1) x Cc: threshold k of coded channel j at k * Cc + j */
    uint8_t *dist;                       /* Cc */
    uint32_t Cc;
} ctx_work;

static void ctx_carve(uint8_t *scratch, uint32_t n, uint32_t C, const uint8_t *coded, const uint8_t *fill,
                      const int32_t *off, uint32_t K, uint32_t KA, const int32_t *thr, ctx_work *wk)
{
    uint64_t a = ((uint64_t)2 * n * C + C + 3) & ~(uint64_t)3;
    uint32_t c, k, KA1 = KA - 1;
    wk->symT = scratch;
    wk->clist = (uint32_t *)(void *)(scratch + a);
    wk->base = wk->clist + C;
    wk->eidx[0] = wk->base + C;
    wk->eidx[1] = wk->eidx[0] + C;
    wk->level = (int32_t *)(void *)(wk->eidx[1] + C);
    wk->count = wk->level + C;
    wk->dist = (uint8_t *)(void *)(wk->count + C);
    wk->thrc = wk->count + 2 * (uint64_t)C;      /* dist has C bytes of the C int32 before it */
    wk->Cc = 0;
    for (c = 0; c < C; c++)
        if (!coded || coded[c])
            wk->clist[wk->Cc++] = c;
    wk->ctxT = scratch + (uint64_t)n * wk->Cc;
    wk->fillc = scratch + (uint64_t)2 * n * C;
    for (c = 0; c < wk->Cc; c++) {
        wk->fillc[c] = fill[wk->clist[c]];
        wk->base[c] = off ? (uint32_t)off[wk->clist[c] * K] : 0;
        for (k = 0; thr && k < KA1; k++)            /* the encoder's transposed copy (thr NULL: none) */
            wk->thrc[(uint64_t)k * wk->Cc + c] = thr[(uint64_t)wk->clist[c] * KA1 + k];
    }
}

/* symT from the coded rows of sym (C x n), in tiles of 64 positions (reads and writes stay in a few lines) */
NL_VECTOR_CLONES static void ctx_gather(const uint8_t *sym, uint32_t n, const ctx_work *wk)
{
    uint32_t j, p, p0, Cc = wk->Cc;
    for (p0 = 0; p0 < n; p0 += 64) {
        uint32_t p1 = p0 + 64 < n ? p0 + 64 : n;
        for (j = 0; j < Cc; j++) {
            const uint8_t *row = sym + (uint64_t)wk->clist[j] * n;
            for (p = p0; p < p1; p++)
                wk->symT[(uint64_t)p * Cc + j] = row[p];
        }
    }
}

/* ks of each of position p's Cc symbols into ctxp; a neighbour outside the grid reads as the fill row */
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

/* every symbol's context ka * KS + ks into ctxT (the encoder knows every symbol), and act[p], position by
   position (N(p) reads only earlier positions' act). Per position: the channels' distances (bytes), their running
   sum P, the levels N + mix * P, then each threshold against all the levels at once (the coded channels'
   thresholds transposed): apart from the running sum, every loop is over int32 or byte lanes and vectorises. */
NL_VECTOR_CLONES static void ctx_all(const ctx_work *wk, uint32_t n, uint32_t w, uint32_t KS, uint32_t KA, uint32_t mix,
                    uint32_t *act)
{
    uint32_t p, j, k, Cc = wk->Cc, KA1 = KA - 1;
    int32_t *restrict level = wk->level, *restrict count = wk->count;
    uint8_t *restrict dist = wk->dist;
    const uint8_t *restrict fillc = wk->fillc;
    int small = ctx_fits_int32(Cc, mix);
    for (p = 0; p < n; p++) {
        const uint8_t *restrict sp = wk->symT + (uint64_t)p * Cc;
        uint8_t *restrict cp = wk->ctxT + (uint64_t)p * Cc;
        uint32_t nb = ctx_neighbours(act, p, w), part = 0;
        ctx_position(wk->symT, p, w, Cc, fillc, KS, cp);
        for (j = 0; j < Cc; j++)
            dist[j] = ctx_dist(sp[j], fillc[j]);
        for (j = 0; j < Cc; j++) {       /* P of each channel: the running sum */
            level[j] = (int32_t)part;
            part += dist[j];
        }
        act[p] = part;                   /* A(p): the channels not coded add 0 */
        if (small)
            for (j = 0; j < Cc; j++)
                level[j] = (int32_t)(nb + mix * (uint32_t)level[j]);
        else
            for (j = 0; j < Cc; j++)
                level[j] = ctx_level(nb, mix, (uint32_t)level[j]);
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
        for (j = 0; j < Cc; j++)         /* KS * KA <= 256: ka * KS + ks fits a byte */
            cp[j] = (uint8_t)(cp[j] + count[j] * (int32_t)KS);
    }
}

int64_t nl_contexts(const uint8_t *sym, uint32_t n, uint32_t w, uint32_t C, const uint8_t *fill, uint32_t KS,
                    uint32_t KA, const int32_t *thr, uint32_t mix, uint32_t *act, uint8_t *scratch, uint8_t *ctx)
{
    ctx_work wk;
    uint32_t j, p;
    if (!ctx_shape_ok(n, w, KS, KA, mix))
        return NL_ERR_SHAPE;
    ctx_carve(scratch, n, C, NULL, fill, NULL, 1, KA, thr, &wk);
    ctx_gather(sym, n, &wk);
    ctx_all(&wk, n, w, KS, KA, mix, act);
    for (j = 0; j < C; j++)
        for (p = 0; p < n; p++)
            ctx[(uint64_t)j * n + p] = wk.ctxT[(uint64_t)p * C + j];
    return 0;
}

/* The enc4 entry index of each coded symbol of position p (rans.h: off[c K] + s K + context), prefetched: the
   coder reaches them one position later. */
static void ctx_entries(const ctx_work *wk, uint32_t p, uint32_t K, const uint32_t *enc4, uint32_t *restrict eidx)
{
    uint32_t j, Cc = wk->Cc;
    const uint8_t *restrict sp = wk->symT + (uint64_t)p * Cc, *restrict cp = wk->ctxT + (uint64_t)p * Cc;
    const uint32_t *restrict base = wk->base;
    for (j = 0; j < Cc; j++)
        eidx[j] = base[j] + (uint32_t)sp[j] * K + cp[j];
#if defined(__GNUC__)
    for (j = 0; j < Cc; j++)
        __builtin_prefetch(enc4 + 4 * (uint64_t)eidx[j]);
#else
    (void)enc4;
#endif
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

int64_t nl_encode_ctx(const uint8_t *sym, uint32_t n, uint32_t w, uint32_t C, const int32_t *nsym,
                      const int32_t *off, const uint32_t *enc4, const uint8_t *coded, const uint8_t *fill,
                      uint32_t KS, uint32_t KA, const int32_t *thr, uint32_t mix, uint32_t *act, uint8_t *scratch,
                      uint8_t *out, uint64_t capacity)
{
    uint64_t wp = capacity;
    uint32_t K = KS * KA, xa = NL_RANS_L, xb = NL_RANS_L, c;
    int64_t p;
    ctx_work wk;
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
    ctx_gather(sym, n, &wk);
    ctx_all(&wk, n, w, KS, KA, mix, act);
    if (n > 0)
        ctx_entries(&wk, n - 1, K, enc4, wk.eidx[(n - 1) & 1]);
    /* Pushed in reverse, so that the decoder pops position by position. Symbol i (in decoding order) uses state
       i % 2; the two states swap after every symbol, which keeps both in registers (x[i & 1] would put a
       store-to-load round trip in the critical path). xa is the state of the next symbol pushed. */
    for (p = (int64_t)n - 1; p >= 0; p--) {
        const uint32_t *ep = wk.eidx[p & 1];
        int64_t j;
        if (p > 0)
            ctx_entries(&wk, (uint32_t)p - 1, K, enc4, wk.eidx[(p - 1) & 1]);
        for (j = (int64_t)wk.Cc - 1; j >= 0; j--) {
            const uint32_t *e = enc4 + 4 * (uint64_t)ep[j];     /* m (low, high word), freq << 16, bias */
            uint32_t xs = xa;
            if (nl_flush(out, &wp, &xs, e[2]))
                return NL_ERR_CAPACITY;
            xa = xb;
            xb = xs + e[3] + nl_mulhi(xs, (uint64_t)e[0] | (uint64_t)e[1] << 32) * (NL_PROB_SCALE - (e[2] >> 16));
        }
    }
    return nl_finish(out, capacity, wp, xb, xa);   /* xa: the state "symbol -1" would use, state 1 */
}

int64_t nl_decode_ctx(const uint8_t *in, uint64_t len, uint32_t n, uint32_t w, uint32_t C, const int32_t *nsym,
                      const int32_t *off, const uint32_t *dec1, const uint8_t *lut, const uint8_t *coded,
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
    ctxp = wk.ctxT;                      /* one position's ks */
    for (p = 0; p < n; p++) {
        uint8_t *sp = wk.symT + (uint64_t)p * wk.Cc;
        uint32_t nb = ctx_neighbours(act, p, w), part = 0;
        ctx_position(wk.symT, p, w, wk.Cc, wk.fillc, KS, ctxp);
        for (j = 0; j < wk.Cc; j++) {   /* ka needs this position's symbols before j: chosen as they decode */
            int32_t level = small ? (int32_t)(nb + mix * part) : ctx_level(nb, mix, part);
            uint32_t ka = ctx_bucket(thr + (uint64_t)wk.clist[j] * KA1, KA1, level);
            uint32_t t = wk.clist[j] * K + ka * KS + ctxp[j], xs, slot, s, ns = (uint32_t)nsym[t];
            const uint32_t *fc = dec1 + off[t];     /* freq | cum << 16 of each symbol of the table */
            unsigned k = (unsigned)(i & 1);
            xs = x[k];
            slot = xs & (NL_PROB_SCALE - 1);
            s = lut[(uint64_t)t * NL_LUT_SIZE + (slot >> NL_LUT_SHIFT)];
            while (s + 1 < ns && (fc[s + 1] >> 16) <= slot)
                s++;
            xs = (fc[s] & 0xffffu) * (xs >> NL_PROB_BITS) + slot - (fc[s] >> 16);
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
                row[p] = wk.symT[(uint64_t)p * wk.Cc + j];
            j++;
        } else {
            memset(row, fill[c], n);
        }
    }
    return 0;
}
