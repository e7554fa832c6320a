/* Backoff bounds: grows, stays in [d/2, d], never exceeds the cap, never 0,
 * honours Retry-After (bounded), restarts after a reset. */
#include <criterion/criterion.h>

#include "kube_backoff.h"

Test(kube_backoff, grows_within_bounds_and_caps)
{
	struct kube_backoff b;
	uint32_t d = 500;

	kube_backoff_init(&b, 500, 30000, 42);
	for (int i = 0; i < 40; i++) {
		uint32_t v = kube_backoff_next(&b, 0);

		cr_assert_geq(v, d - d / 2, "attempt %d: %u < %u", i, v, d - d / 2);
		cr_assert_leq(v, d, "attempt %d: %u > %u", i, v, d);
		cr_assert_leq(v, 30000);
		cr_assert_gt(v, 0);
		d = d * 2 > 30000 ? 30000 : d * 2;
	}
}

Test(kube_backoff, jitter_differs_between_seeds)
{
	struct kube_backoff a, b;
	int same = 0;

	kube_backoff_init(&a, 1000, 60000, 1);
	kube_backoff_init(&b, 1000, 60000, 2);
	for (int i = 0; i < 10; i++)
		same += kube_backoff_next(&a, 0) == kube_backoff_next(&b, 0);
	cr_assert_lt(same, 10);
}

Test(kube_backoff, retry_after_is_honoured_and_bounded)
{
	struct kube_backoff b;

	kube_backoff_init(&b, 500, 30000, 7);
	cr_assert_geq(kube_backoff_next(&b, 5000), 5000);
	cr_assert_eq(kube_backoff_next(&b, 86400000u), KUBE_BACKOFF_MAX_RETRY_AFTER_MS);
}

Test(kube_backoff, reset_starts_over)
{
	struct kube_backoff b;

	kube_backoff_init(&b, 500, 30000, 9);
	for (int i = 0; i < 10; i++)
		kube_backoff_next(&b, 0);
	kube_backoff_reset(&b);
	cr_assert_leq(kube_backoff_next(&b, 0), 500);
}

Test(kube_backoff, rand_stays_in_range)
{
	struct kube_backoff b;

	kube_backoff_init(&b, 1, 1, 0);
	for (int i = 0; i < 1000; i++) {
		uint32_t v = kube_backoff_rand(&b, 300, 600);
		cr_assert(v >= 300 && v <= 600);
	}
}
