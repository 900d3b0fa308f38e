/* What the context coder's two sides share (rans_ctx_enc.c, rans_ctx_dec.c; the rule and the tables' layout are
   in rans.h): the rule's terms, and the working memory carved from the caller's scratch.

   Both sides work on position-major copies of the coded channels only (coded channel j = clist[j]; a position's
   Cc symbols side by side): a position's symbols and its neighbours' are then contiguous, which keeps the coder
   inside the cache and lets the context loops vectorise. Channels that are not coded hold their fill symbol, at
   distance 0, so leaving them out changes no context. */
#ifndef NANOLINK_RANS_CTX_H
#define NANOLINK_RANS_CTX_H

#include <stdint.h>
#include <string.h>

#include "rans.h"

#if defined(__GNUC__)
#define NL_PREFETCH(a) __builtin_prefetch(a)
#else
#define NL_PREFETCH(a) ((void)(a))
#endif

static inline uint8_t ctx_dist(uint8_t s, uint8_t f)       /* bytes throughout: the loops using it vectorise */
{
    uint8_t d = (uint8_t)(s > f ? s - f : f - s);
    return (uint8_t)(d < NL_CTX_DCLIP ? d : NL_CTX_DCLIP);
}

/* N(p) of rans.h: the activity of the left, upper and upper-left positions */
static inline uint32_t ctx_neighbours(const uint32_t *act, uint32_t p, uint32_t w)
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
static inline int32_t ctx_level(uint64_t nb, uint32_t mix, uint64_t part)
{
    uint64_t u = nb + mix * part;
    return (int32_t)(u < 0x7fffffffu ? u : 0x7fffffffu);
}

/* N <= 5 * 8 * C and P <= 8 * C: when N + mix * P cannot pass INT32_MAX, int32 arithmetic on levels is exact
   (otherwise ctx_level clamps) */
static inline int ctx_fits_int32(uint32_t C, uint32_t mix)
{
    return (uint64_t)C * NL_CTX_DCLIP * (5 + (uint64_t)mix) < 0x7fffffffu;
}

static inline int ctx_shape_ok(uint32_t n, uint32_t w, uint32_t KS, uint32_t KA, uint32_t mix)
{
    return w > 0 && n % w == 0 && KS >= 1 && KA >= 1 && KS <= NL_CTX_MAX && KA <= NL_CTX_MAX &&
           KS * KA <= NL_CTX_MAX && mix <= NL_CTX_MAX_MIX;     /* each <= 256 first: the product cannot wrap */
}

/* Working memory carved from the caller's scratch (rans.h gives its size): rows is its first 2 n C bytes, the
   decoder's n x Cc symbols or the encoder's window of two grid rows. */
typedef struct {
    uint8_t *rows, *fillc;               /* 2 n C bytes, Cc */
    uint32_t *clist, *base, *eidx[2];    /* Cc each (eidx: the encoder's entries of two positions) */
    int32_t *level, *count, *part[2];    /* Cc each (part: the encoder's P of two positions) */
    int32_t *thrc;                       /* (KA - 1) x Cc: threshold k of coded channel j at k * Cc + j */
    uint8_t *zero, *ctxb;                /* Cc each */
    int16_t *thr16, *lev16, *cnt16;      /* the encoder's 16-bit lanes: (KA - 1) x Cc, Cc, Cc */
    uint32_t Cc;
} ctx_work;

static inline void ctx_carve(uint8_t *scratch, uint32_t n, uint32_t C, const uint8_t *coded, const uint8_t *fill,
                             const int32_t *off, uint32_t K, uint32_t KA, const int32_t *thr, ctx_work *wk)
{
    uint64_t a = (uint64_t)2 * n * C + C;
    uint32_t c, k, KA1 = KA - 1;
    a += (4 - ((uintptr_t)scratch + a) % 4) % 4;         /* the int32 arrays 4-aligned wherever scratch lies */
    wk->rows = scratch;
    wk->fillc = scratch + (uint64_t)2 * n * C;
    wk->clist = (uint32_t *)(void *)(scratch + a);
    wk->base = wk->clist + C;
    wk->eidx[0] = wk->base + C;
    wk->eidx[1] = wk->eidx[0] + C;
    wk->level = (int32_t *)(void *)(wk->eidx[1] + C);
    wk->count = wk->level + C;
    wk->part[0] = wk->count + C;
    wk->part[1] = wk->part[0] + C;
    wk->thrc = wk->part[1] + C;
    wk->zero = (uint8_t *)(void *)(wk->thrc + (uint64_t)KA1 * C);
    wk->ctxb = wk->zero + C;
    wk->thr16 = (int16_t *)(void *)(wk->ctxb + C);
    wk->lev16 = wk->thr16 + (uint64_t)KA1 * C;
    wk->cnt16 = wk->lev16 + C;           /* which ends (6 KA + 33) C + 3 bytes past 2 n C at most */
    wk->Cc = 0;
    for (c = 0; c < C; c++)
        if (!coded || coded[c])
            wk->clist[wk->Cc++] = c;
    memset(wk->zero, 0, C);
    for (c = 0; c < wk->Cc; c++) {
        wk->fillc[c] = fill[wk->clist[c]];
        wk->base[c] = off ? (uint32_t)off[wk->clist[c] * K] : 0;
        for (k = 0; thr && k < KA1; k++)            /* the encoder's transposed copy (thr NULL: none) */
            wk->thrc[(uint64_t)k * wk->Cc + c] = thr[(uint64_t)wk->clist[c] * KA1 + k];
    }
}

#endif
