/* Capped exponential backoff with jitter, for retrying API requests.
 *
 * Pure arithmetic on a small struct: no clock, no loop, so it is unit
 * tested directly. The random source is a caller-seeded xorshift state, so
 * tests are reproducible and two informers started together do not retry
 * in lockstep.
 */
#ifndef FERRY_KUBE_BACKOFF_H
#define FERRY_KUBE_BACKOFF_H

#include <stdint.h>

struct kube_backoff {
	uint32_t base_ms;   /* first delay (before jitter) */
	uint32_t cap_ms;    /* no delay exceeds this (Retry-After aside) */
	uint32_t attempts;  /* failures since the last success */
	uint64_t rng;       /* xorshift64 state, never 0 */
};

/* Set up b with the given bounds (base_ms >= 1, cap_ms >= base_ms) and a
 * seed (any value; 0 is replaced by a constant). */
void kube_backoff_init(struct kube_backoff *b, uint32_t base_ms, uint32_t cap_ms, uint64_t seed);

/* The delay before the next retry, and count one more failure. The delay
 * is drawn uniformly in [d/2, d] where d = min(cap, base * 2^attempts), so
 * it is never 0 and never above the cap. retry_after_ms (0 when the server
 * sent none) raises the result to at least that much, itself capped at
 * KUBE_BACKOFF_MAX_RETRY_AFTER_MS so a hostile header cannot stall us for
 * days. */
uint32_t kube_backoff_next(struct kube_backoff *b, uint32_t retry_after_ms);

/* A request succeeded: the next failure starts from base again. */
void kube_backoff_reset(struct kube_backoff *b);

/* A uniformly drawn value in [lo, hi] from b's random state (lo <= hi). */
uint32_t kube_backoff_rand(struct kube_backoff *b, uint32_t lo, uint32_t hi);

#define KUBE_BACKOFF_MAX_RETRY_AFTER_MS (10u * 60u * 1000u)

#endif
