/* Capped exponential backoff with "equal jitter" (half fixed, half random):
 * the fixed half guarantees progress slows down, the random half spreads
 * the retries of many proxies hitting one API server after an outage. */
#include "kube_backoff.h"

static uint64_t kube_backoff_step(struct kube_backoff *b)
{
	uint64_t x = b->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	b->rng = x;
	return x;
}

void kube_backoff_init(struct kube_backoff *b, uint32_t base_ms, uint32_t cap_ms, uint64_t seed)
{
	b->base_ms = base_ms ? base_ms : 1;
	b->cap_ms = cap_ms < b->base_ms ? b->base_ms : cap_ms;
	b->attempts = 0;
	b->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
}

uint32_t kube_backoff_rand(struct kube_backoff *b, uint32_t lo, uint32_t hi)
{
	uint64_t span = (uint64_t)hi - lo + 1;

	return lo + (uint32_t)(kube_backoff_step(b) % span);
}

uint32_t kube_backoff_next(struct kube_backoff *b, uint32_t retry_after_ms)
{
	uint64_t d = b->base_ms;
	uint32_t delay;

	/* Shift with a bound so the doubling cannot overflow. */
	for (uint32_t i = 0; i < b->attempts && d < b->cap_ms; i++)
		d *= 2;
	if (d > b->cap_ms)
		d = b->cap_ms;
	if (b->attempts < 64)
		b->attempts++;
	delay = kube_backoff_rand(b, (uint32_t)(d - d / 2), (uint32_t)d);
	if (delay == 0)
		delay = 1;
	if (retry_after_ms > KUBE_BACKOFF_MAX_RETRY_AFTER_MS)
		retry_after_ms = KUBE_BACKOFF_MAX_RETRY_AFTER_MS;
	return delay > retry_after_ms ? delay : retry_after_ms;
}

void kube_backoff_reset(struct kube_backoff *b)
{
	b->attempts = 0;
}
