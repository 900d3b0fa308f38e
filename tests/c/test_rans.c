/* C-level round trip of nanolink's rANS coder (common/csrc/rans.c), for the platforms Python tests cannot reach:
   CI builds it natively and cross-compiled for aarch64 (the Jetson's CPU) and runs it under qemu-user.

       gcc -O2 -Wall -Werror -std=c99 -Icommon/csrc tests/c/test_rans.c common/csrc/rans.c common/csrc/rans_ctx_enc.c \
           common/csrc/rans_ctx_dec.c -o test_rans && ./test_rans

   Random tables (1..256 symbols a channel, frequencies >= 1 summing to 2^15, constant channels) and symbols,
   including all-fill frames (no channel coded), the largest symbol index and one-position channels; every stream
   must decode to its symbols, and every truncation, extension and byte flip of it must be rejected or decode to
   symbols within the tables (never read out of bounds: run it under valgrind or -fsanitize=address to check).
   The context coder (nl_*_ctx) gets the same treatment with random ks x ka tables per channel, random per-channel
   activity thresholds (or one list for all), random weights of the position's earlier channels (mix) and random
   grid shapes.
   Prints "ok: N cases" and exits 0, or names the failing case and exits 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rans.h"

#define MAXC 24
#define MAXN 700

static uint32_t rng_state = 12345u;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static int32_t nsym[MAXC], off[MAXC];
static uint32_t freq[MAXC * NL_MAX_SYMBOLS], cum[MAXC * NL_MAX_SYMBOLS];
static uint32_t rcp[MAXC * NL_MAX_SYMBOLS], shift[MAXC * NL_MAX_SYMBOLS], bias[MAXC * NL_MAX_SYMBOLS];
static uint8_t lut[MAXC * NL_LUT_SIZE], fill[MAXC], coded[MAXC], coded2[MAXC];
static uint8_t sym[MAXC * MAXN], back[MAXC * MAXN], out[MAXC * MAXN * 2 + 64], bad[MAXC * MAXN * 2 + 66];

/* Channel c: n symbols with random frequencies (one symbol: constant). Skewed so that some are very peaked. */
static void random_table(uint32_t C)
{
    uint32_t c;
    int32_t o = 0;
    for (c = 0; c < C; c++) {
        int32_t n, s, best = 0;
        uint32_t total = 0, w[NL_MAX_SYMBOLS], wsum = 0;
        switch (rnd() % 5) {
        case 0: n = 1; break;
        case 1: n = NL_MAX_SYMBOLS; break;
        default: n = 2 + (int32_t)(rnd() % 40); break;
        }
        nsym[c] = n;
        off[c] = o;
        for (s = 0; s < n; s++) {
            w[s] = 1 + (rnd() % 1000) * (rnd() % 4 == 0 ? 200u : 1u);
            wsum += w[s];
        }
        for (s = 0; s < n; s++) {       /* frequencies >= 1 summing to 2^15 */
            uint32_t f = n == 1 ? NL_PROB_SCALE : 1 + (uint32_t)((uint64_t)w[s] * (NL_PROB_SCALE - n) / wsum);
            freq[o + s] = f;
            total += f;
        }
        if (n > 1)
            freq[o] += NL_PROB_SCALE - total;
        total = 0;
        for (s = 0; s < n; s++) {
            cum[o + s] = total;
            total += freq[o + s];
            if (freq[o + s] > freq[o + best])
                best = s;
        }
        fill[c] = (uint8_t)best;
        o += n;
    }
}

/* Symbols drawn from each channel's distribution (mostly), or all equal to the fill symbol. */
static void random_symbols(uint32_t C, uint32_t n, int all_fill)
{
    uint32_t c, p;
    for (c = 0; c < C; c++) {
        for (p = 0; p < n; p++) {
            uint32_t r = rnd() % NL_PROB_SCALE;
            int32_t s = 0;
            while (s + 1 < nsym[c] && cum[off[c] + s + 1] <= r)
                s++;
            if (rnd() % 50 == 0)
                s = nsym[c] - 1;                            /* the largest index */
            sym[c * n + p] = (uint8_t)(all_fill ? fill[c] : s);
        }
    }
}

static int check_case(uint32_t C, uint32_t n, int all_fill, int k)
{
    uint32_t badc = 0, i;
    int64_t len, r;
    random_table(C);
    if (nl_check_tables(C, nsym, off, freq, cum) != 0) {
        printf("case %d: generated tables rejected\n", k);
        return 1;
    }
    nl_encoder_tables(C, nsym, off, freq, cum, rcp, shift, bias);
    nl_decoder_lut(C, nsym, off, cum, lut);
    random_symbols(C, n, all_fill);
    r = nl_varying_channels(sym, n, C, nsym, fill, coded, &badc);
    if (r < 0 || (all_fill && r != 0)) {
        printf("case %d: varying channels %lld\n", k, (long long)r);
        return 1;
    }
    len = nl_encode(sym, n, C, nsym, off, freq, rcp, shift, bias, coded, out, sizeof out);
    if (len < 8) {
        printf("case %d: encode returned %lld\n", k, (long long)len);
        return 1;
    }
    memset(back, 0xee, sizeof back);
    r = nl_decode(out, (uint64_t)len, n, C, nsym, off, freq, cum, lut, coded, fill, back);
    if (r != 0 || memcmp(back, sym, (size_t)C * n) != 0) {
        printf("case %d: round trip failed (%lld), C=%u n=%u\n", k, (long long)r, C, n);
        return 1;
    }
    /* every truncation by a word and an extension by a word are rejected */
    if (len > 8 && nl_decode(out, (uint64_t)len - 2, n, C, nsym, off, freq, cum, lut, coded, fill, back) == 0) {
        printf("case %d: truncated stream accepted\n", k);
        return 1;
    }
    memcpy(bad, out, (size_t)len);
    bad[len] = 0;
    bad[len + 1] = 0;
    if (nl_decode(bad, (uint64_t)len + 2, n, C, nsym, off, freq, cum, lut, coded, fill, back) == 0) {
        printf("case %d: extended stream accepted\n", k);
        return 1;
    }
    /* byte flips: rejected, or symbols inside the tables; never a crash */
    for (i = 0; i < 20; i++) {
        uint32_t c;
        memcpy(bad, out, (size_t)len);
        bad[rnd() % (uint32_t)len] ^= (uint8_t)(1 + rnd() % 255);
        if (nl_decode(bad, (uint64_t)len, n, C, nsym, off, freq, cum, lut, coded, fill, back) == 0) {
            for (c = 0; c < C; c++) {
                uint32_t p;
                for (p = 0; p < n; p++) {
                    if (back[c * n + p] >= nsym[c]) {
                        printf("case %d: a corrupt stream decoded to a symbol past its table\n", k);
                        return 1;
                    }
                }
            }
        }
    }
    /* a coded mask that differs from the encoder's is rejected or decodes other symbols, without a crash */
    memcpy(coded2, coded, C);
    coded2[rnd() % C] ^= 1;
    nl_decode(out, (uint64_t)len, n, C, nsym, off, freq, cum, lut, coded2, fill, back);
    /* a symbol past its table is refused by the encoder */
    for (i = 0; i < C; i++) {
        if (nsym[i] < NL_MAX_SYMBOLS) {
            sym[i * n] = (uint8_t)nsym[i];
            coded[i] = 1;
            if (nsym[i] > 1 && nl_encode(sym, n, C, nsym, off, freq, rcp, shift, bias, coded, out, sizeof out)
                != NL_ERR_SYMBOL) {
                printf("case %d: encoder took a symbol past its table\n", k);
                return 1;
            }
            if (nl_varying_channels(sym, n, C, nsym, fill, coded, &badc) != NL_ERR_SYMBOL || badc != i) {
                printf("case %d: varying_channels missed a symbol past its table\n", k);
                return 1;
            }
            break;
        }
    }
    return 0;
}

/* ---- context coding ---- */
#define MAXK 28
static int32_t cnsym[MAXC], tnsym[MAXC * MAXK], toff[MAXC * MAXK], thr[MAXC * MAXK];
static uint32_t tfreq[MAXC * MAXK * NL_MAX_SYMBOLS], tcum[MAXC * MAXK * NL_MAX_SYMBOLS];
static uint32_t trcp[MAXC * MAXK * NL_MAX_SYMBOLS], tshift[MAXC * MAXK * NL_MAX_SYMBOLS];
static uint32_t tbias[MAXC * MAXK * NL_MAX_SYMBOLS], act[MAXN];
static uint32_t tenc4[4 * MAXC * MAXK * NL_MAX_SYMBOLS];
static uint16_t tcum16[MAXC * MAXK * (NL_MAX_SYMBOLS + 1)];
static uint8_t tlut[MAXC * MAXK * NL_CTX_LUT_SIZE], ctx[MAXC * MAXN];
static uint8_t scratch[2 * MAXC * MAXN + (6 * MAXK + 33) * MAXC + 4 + 3];   /* + 3: cases start it unaligned */

/* K tables of n symbols for each of C channels: table t = c * K + j */
static void random_ctx_tables(uint32_t C, uint32_t K)
{
    uint32_t c, j;
    int32_t o = 0;
    for (c = 0; c < C; c++) {
        int32_t n;
        switch (rnd() % 5) {
        case 0: n = 1; break;
        case 1: n = NL_MAX_SYMBOLS; break;
        default: n = 2 + (int32_t)(rnd() % 30); break;
        }
        cnsym[c] = n;
        for (j = 0; j < K; j++) {
            uint32_t t = c * K + j, total = 0, w[NL_MAX_SYMBOLS], wsum = 0;
            int32_t s, best = 0;
            tnsym[t] = n;
            toff[t] = o;
            for (s = 0; s < n; s++) {
                w[s] = 1 + (rnd() % 1000) * (rnd() % 4 == 0 ? 200u : 1u);
                wsum += w[s];
            }
            for (s = 0; s < n; s++) {
                uint32_t f = n == 1 ? NL_PROB_SCALE : 1 + (uint32_t)((uint64_t)w[s] * (NL_PROB_SCALE - n) / wsum);
                tfreq[o + s] = f;
                total += f;
            }
            if (n > 1)
                tfreq[o] += NL_PROB_SCALE - total;
            total = 0;
            for (s = 0; s < n; s++) {
                tcum[o + s] = total;
                total += tfreq[o + s];
                if (tfreq[o + s] > tfreq[o + best])
                    best = s;
            }
            if (j == 0)
                fill[c] = (uint8_t)best;
            o += n;
        }
    }
}

static int check_ctx_case(uint32_t C, uint32_t h, uint32_t w, int all_fill, int k)
{
    uint32_t KS = 1 + rnd() % 4, KA = 1 + rnd() % 7, K = KS * KA, n = h * w, c, p, i, badc = 0;
    uint32_t mix = k % 3 == 0 ? 0 : (k % 5 == 0 ? NL_CTX_MAX_MIX : rnd() % 64);
    int64_t len, r;
    uint8_t *scr = scratch + k % 4;     /* the carving aligns its int32 arrays wherever the scratch starts */
    for (c = 0; c < C; c++)        /* per-channel thresholds (every third case: the same list for all, mix 0) */
        for (i = 0; i + 1 < KA; i++)
            thr[c * (KA - 1) + i] = k % 3 == 0 && c > 0 ? thr[i] :
                                    k % 5 == 0 ? (int32_t)(rnd() % 200000) - 40000 :   /* past int16, mix 1024 */
                                    (int32_t)(rnd() % 300) - 20;
    random_ctx_tables(C, K);
    if (nl_check_tables(C * K, tnsym, toff, tfreq, tcum) != 0) {
        printf("ctx case %d: generated tables rejected\n", k);
        return 1;
    }
    nl_encoder_tables(C * K, tnsym, toff, tfreq, tcum, trcp, tshift, tbias);
    if (nl_encoder_tables_ctx(C * K, K, tnsym, toff, tfreq, tbias, tenc4) != 0 ||
        nl_decoder_tables_ctx(C, KS, KA, tnsym, toff, tcum, tcum16, tlut) != 0) {
        printf("ctx case %d: encoder or decoder tables rejected\n", k);
        return 1;
    }
    for (c = 0; c < C; c++)
        for (p = 0; p < n; p++) {
            uint32_t x = rnd() % 8;         /* mostly the fill symbol, as latents are */
            int32_t s = x < 4 ? fill[c] : (int32_t)(rnd() % (uint32_t)cnsym[c]);
            sym[c * n + p] = (uint8_t)(all_fill ? fill[c] : s);
        }
    r = nl_varying_channels(sym, n, C, cnsym, fill, coded, &badc);
    if (r < 0) {
        printf("ctx case %d: varying channels %lld\n", k, (long long)r);
        return 1;
    }
    if (nl_contexts(sym, n, w, C, fill, KS, KA, thr, mix, act, scr, ctx) != 0) {
        printf("ctx case %d: contexts failed\n", k);
        return 1;
    }
    for (i = 0; i < C * n; i++)
        if (ctx[i] >= K) {
            printf("ctx case %d: context %u >= %u\n", k, ctx[i], K);
            return 1;
        }
    len = nl_encode_ctx(sym, n, w, C, tnsym, toff, tenc4, coded, fill, KS, KA, thr, mix, act, scr, out,
                        sizeof out);
    if (len < 8) {
        printf("ctx case %d: encode returned %lld\n", k, (long long)len);
        return 1;
    }
    memset(back, 0xee, sizeof back);
    r = nl_decode_ctx(out, (uint64_t)len, n, w, C, tnsym, toff, tcum16, tlut, coded, fill, KS, KA, thr, mix, act,
                      scr, back);
    if (r != 0 || memcmp(back, sym, (size_t)C * n) != 0) {
        printf("ctx case %d: round trip failed (%lld), C=%u h=%u w=%u KS=%u KA=%u\n", k, (long long)r, C, h, w,
               KS, KA);
        return 1;
    }
    if (len > 8 && nl_decode_ctx(out, (uint64_t)len - 2, n, w, C, tnsym, toff, tcum16, tlut, coded, fill, KS,
                                 KA, thr, mix, act, scr, back) == 0) {
        printf("ctx case %d: truncated stream accepted\n", k);
        return 1;
    }
    memcpy(bad, out, (size_t)len);
    bad[len] = 0;
    bad[len + 1] = 0;
    if (nl_decode_ctx(bad, (uint64_t)len + 2, n, w, C, tnsym, toff, tcum16, tlut, coded, fill, KS, KA, thr, mix,
                      act, scr, back) == 0) {
        printf("ctx case %d: extended stream accepted\n", k);
        return 1;
    }
    for (i = 0; i < 20; i++) {
        memcpy(bad, out, (size_t)len);
        bad[rnd() % (uint32_t)len] ^= (uint8_t)(1 + rnd() % 255);
        if (nl_decode_ctx(bad, (uint64_t)len, n, w, C, tnsym, toff, tcum16, tlut, coded, fill, KS, KA, thr, mix,
                          act, scr, back) == 0)
            for (c = 0; c < C; c++)
                for (p = 0; p < n; p++)
                    if (back[c * n + p] >= cnsym[c]) {
                        printf("ctx case %d: a corrupt stream decoded to a symbol past its table\n", k);
                        return 1;
                    }
    }
    /* a grid whose width does not divide it, or no width, is refused on both sides */
    if (nl_decode_ctx(out, (uint64_t)len, n, 0, C, tnsym, toff, tcum16, tlut, coded, fill, KS, KA, thr, mix, act,
                      scr, back) != NL_ERR_SHAPE ||
        nl_decode_ctx(out, (uint64_t)len, n, w, C, tnsym, toff, tcum16, tlut, coded, fill, KS, KA, thr,
                      NL_CTX_MAX_MIX + 1, act, scr, back) != NL_ERR_SHAPE ||
        (w > 1 && n % (w + 1) != 0 &&
         nl_encode_ctx(sym, n, w + 1, C, tnsym, toff, tenc4, coded, fill, KS, KA, thr, mix, act, scr, out,
                       sizeof out) != NL_ERR_SHAPE)) {
        printf("ctx case %d: a bad grid width was accepted\n", k);
        return 1;
    }
    /* KS * KA past 256 is refused even where the product wraps in 32 bits (2^31 * 2) */
    if (nl_contexts(sym, n, w, C, fill, 0x80000000u, 2, thr, mix, act, scr, ctx) != NL_ERR_SHAPE ||
        nl_encode_ctx(sym, n, w, C, tnsym, toff, tenc4, coded, fill, 2, 0x80000000u, thr, mix, act, scr, out,
                      sizeof out) != NL_ERR_SHAPE ||
        nl_decode_ctx(out, (uint64_t)len, n, w, C, tnsym, toff, tcum16, tlut, coded, fill, 0x80000000u, 2, thr, mix,
                      act, scr, back) != NL_ERR_SHAPE) {
        printf("ctx case %d: KS * KA wrapping past 2^32 was accepted\n", k);
        return 1;
    }
    /* the decoder's forms need the tables one after the other (else a sentinel could overlap a table), one count
       for a channel's tables, and cum rising from 0 below 2^15 (the decoder derives freq from cum); bad KS refused */
    if (nl_decoder_tables_ctx(C, 0, KA, tnsym, toff, tcum, tcum16, tlut) != NL_ERR_SHAPE ||
        nl_decoder_tables_ctx(C, 0x80000000u, 2, tnsym, toff, tcum, tcum16, tlut) != NL_ERR_SHAPE) {
        printf("ctx case %d: decoder tables with a bad KS were accepted\n", k);
        return 1;
    }
    for (i = 0; i < 5; i++) {
        uint32_t t = C * K - 1, e = (uint32_t)toff[t], last = e + (uint32_t)tnsym[t] - 1, keep = tcum[last];
        int32_t keepn = tnsym[K > 1 ? 1 : 0];
        if (i == 4 && (K < 2 || tnsym[0] < 2))
            continue;
        switch (i) {
        case 0: toff[t] += 1; break;
        case 1: tcum[e] = 1; break;
        case 2: tcum[last] = last > e ? tcum[last - 1] : 1; break;
        case 3: tcum[last] = NL_PROB_SCALE; break;
        default: tnsym[1] = tnsym[0] - 1; break;
        }
        r = nl_decoder_tables_ctx(C, KS, KA, tnsym, toff, tcum, tcum16, tlut);
        toff[t] = (int32_t)e;
        tcum[e] = 0;
        tcum[last] = keep;
        tnsym[K > 1 ? 1 : 0] = keepn;
        if (r != NL_ERR_TABLES) {
            printf("ctx case %d: decoder tables with a bad layout, cum or count (%u) were accepted\n", k, i);
            return 1;
        }
    }
    /* a symbol past its table is refused by the encoder */
    for (c = 0; c < C; c++)
        if (cnsym[c] > 1 && cnsym[c] < NL_MAX_SYMBOLS) {
            sym[c * n] = (uint8_t)cnsym[c];
            coded[c] = 1;
            if (nl_encode_ctx(sym, n, w, C, tnsym, toff, tenc4, coded, fill, KS, KA, thr, mix, act,
                              scr, out, sizeof out) != NL_ERR_SYMBOL) {
                printf("ctx case %d: encoder took a symbol past its table\n", k);
                return 1;
            }
            break;
        }
    return 0;
}

int main(void)
{
    int k, cases = 0;
    /* a table that does not sum to 2^15 is refused */
    nsym[0] = 2; off[0] = 0; freq[0] = 1; freq[1] = 1; cum[0] = 0; cum[1] = 1;
    if (nl_check_tables(1, nsym, off, freq, cum) != NL_ERR_TABLES) {
        printf("bad tables accepted\n");
        return 1;
    }
    /* context encoder tables not laid out as rans.h says are refused, with nothing written: a channel's two
       tables on the same entries, then of different symbol counts, then K = 0 */
    tnsym[0] = 2; tnsym[1] = 2; toff[0] = 0; toff[1] = 0; tfreq[0] = tfreq[1] = NL_PROB_SCALE / 2;
    tbias[0] = 0; tbias[1] = NL_PROB_SCALE / 2; tenc4[16] = 12345;
    if (nl_encoder_tables_ctx(2, 2, tnsym, toff, tfreq, tbias, tenc4) != NL_ERR_TABLES || tenc4[16] != 12345) {
        printf("overlapping context tables accepted\n");
        return 1;
    }
    tnsym[1] = 3; toff[1] = 2;
    if (nl_encoder_tables_ctx(2, 2, tnsym, toff, tfreq, tbias, tenc4) != NL_ERR_TABLES ||
        nl_encoder_tables_ctx(2, 0, tnsym, toff, tfreq, tbias, tenc4) != NL_ERR_SHAPE) {
        printf("uneven context tables or K = 0 accepted\n");
        return 1;
    }
    for (k = 0; k < 400; k++) {
        uint32_t C = 1 + rnd() % MAXC, n = (k % 7 == 0) ? 1 : 1 + rnd() % MAXN;
        if (check_case(C, n, k % 11 == 0, k))
            return 1;
        cases++;
    }
    for (k = 0; k < 200; k++) {
        uint32_t C = 1 + rnd() % MAXC, h = 1 + rnd() % 20, w = 1 + rnd() % 30;
        while (h * w > MAXN)
            h--;
        if (check_ctx_case(C, h, w, k % 13 == 0, k))
            return 1;
        cases++;
    }
    printf("ok: %d cases\n", cases);
    return 0;
}
