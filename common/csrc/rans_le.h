/* What rans.c and the context coder (rans_ctx_*.c) share: little-endian stores and loads of the stream, and the
   decoder's renormalisation. */
#ifndef NANOLINK_RANS_LE_H
#define NANOLINK_RANS_LE_H

#include <stdint.h>
#include <string.h>

#include "rans.h"

static inline void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* The encoder's renormalisation before coding a symbol of frequency f with state *xs, given xmax = f 2^16: one
   16-bit word out below out[*wp] (written backwards) when *xs >= xmax, at most one since x < 2^31. Returns 0 or
   NL_ERR_CAPACITY. */
static inline int nl_flush(uint8_t *out, uint64_t *wp, uint32_t *xs, uint32_t xmax)
{
    if (*xs >= xmax) {
        if (*wp < 10)
            return NL_ERR_CAPACITY;
        *wp -= 2;
        out[*wp] = (uint8_t)*xs;
        out[*wp + 1] = (uint8_t)(*xs >> 8);
        *xs >>= 16;
    }
    return 0;
}

/* The encoder's end: the final states x0, x1 before the words, all moved to the front of out. Returns the
   stream's length or NL_ERR_CAPACITY. */
static inline int64_t nl_finish(uint8_t *out, uint64_t capacity, uint64_t wp, uint32_t x0, uint32_t x1)
{
    if (wp < 8)
        return NL_ERR_CAPACITY;
    wp -= 8;
    put32(out + wp, x0);
    put32(out + wp + 4, x1);
    memmove(out, out + wp, (size_t)(capacity - wp));
    return (int64_t)(capacity - wp);
}

/* The decoder's start: the two initial states from the stream's first 8 bytes. Returns 0, NL_ERR_SHORT or
   NL_ERR_STATE. */
static inline int nl_start(const uint8_t *in, uint64_t len, uint32_t *x)
{
    if (len < 8 || (len & 1))
        return NL_ERR_SHORT;
    x[0] = get32(in);
    x[1] = get32(in + 4);
    if (x[0] < NL_RANS_L || x[0] >= (1u << 31) || x[1] < NL_RANS_L || x[1] >= (1u << 31))
        return NL_ERR_STATE;
    return 0;
}

/* The decoder's renormalisation of state *xs: one 16-bit word from in[*rp] when it fell below 2^15. Returns 0, or
   NL_ERR_TRUNCATED when the stream has no word left. */
static inline int nl_refill(const uint8_t *in, uint64_t len, uint64_t *rp, uint32_t *xs)
{
    if (*xs < NL_RANS_L) {
        if (*rp + 2 > len)
            return NL_ERR_TRUNCATED;
        *xs = (*xs << 16) | (uint32_t)in[*rp] | ((uint32_t)in[*rp + 1] << 8);
        *rp += 2;
    }
    return 0;
}

/* A whole stream was read: every word, both states back at the encoder's initial 2^15. */
static inline int nl_stream_done(uint64_t rp, uint64_t len, const uint32_t *x)
{
    return rp == len && x[0] == NL_RANS_L && x[1] == NL_RANS_L;
}

#endif
