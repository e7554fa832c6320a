/* Maglev tables (backends/userspace/maglev.c): balance and disruption. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "balancer.h"
#include "maglev.h"

static uint64_t backend_key(unsigned i)
{
	char name[32];
	int len = snprintf(name, sizeof(name), "10.2.%u.%u:8080", i / 250, i % 250 + 1);

	return maglev_hash(name, (size_t)len, 7);
}

static uint32_t *build(const uint64_t *keys, size_t n, size_t m)
{
	uint32_t *t = calloc(m, sizeof(*t));

	cr_assert_not_null(t);
	cr_assert_eq(maglev_build(keys, n, m, t), 0);
	return t;
}

static void check_balance(size_t n)
{
	size_t m = maglev_table_size(n);
	uint64_t *keys = calloc(n, sizeof(*keys));
	size_t *count = calloc(n, sizeof(*count));
	uint32_t *t;

	for (size_t i = 0; i < n; i++)
		keys[i] = backend_key((unsigned)i);
	t = build(keys, n, m);
	for (size_t s = 0; s < m; s++) {
		cr_assert_lt(t[s], n, "slot %zu unfilled", s);
		count[t[s]]++;
	}
	for (size_t i = 0; i < n; i++) {
		double share = (double)count[i] / (double)m;

		/* Within 5% of the ideal 1/N share, relative. */
		cr_assert(share > 0.95 / (double)n && share < 1.05 / (double)n,
			  "N=%zu: backend %zu owns %zu of %zu slots", n, i, count[i], m);
	}
	free(t);
	free(count);
	free(keys);
}

Test(maglev, table_fill_is_balanced)
{
	check_balance(2);
	check_balance(5);
	check_balance(10);
	check_balance(50);
	check_balance(200);
}

/* Fraction of slots that change owner when backend `gone` leaves. */
static double disruption(size_t n, size_t gone)
{
	size_t m = maglev_table_size(n);
	uint64_t *keys = calloc(n, sizeof(*keys));
	uint64_t *rest = calloc(n, sizeof(*rest));
	uint32_t *before, *after;
	size_t moved = 0, k = 0;

	for (size_t i = 0; i < n; i++) {
		keys[i] = backend_key((unsigned)i);
		if (i != gone)
			rest[k++] = keys[i];
	}
	/* The table built without `gone` must be built the same way the
	 * relay builds it after a sync: same size for the same n range. */
	before = build(keys, n, m);
	after = build(rest, n - 1, m);
	for (size_t s = 0; s < m; s++) {
		uint64_t owner_before = keys[before[s]];
		uint64_t owner_after = rest[after[s]];

		if (owner_before != owner_after)
			moved++;
	}
	free(before);
	free(after);
	free(rest);
	free(keys);
	return (double)moved / (double)m;
}

Test(maglev, disruption_when_one_leaves_stays_near_one_over_n)
{
	size_t sizes[] = { 5, 10, 50 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];

		for (size_t gone = 0; gone < n; gone += (n + 4) / 5) {
			double d = disruption(n, gone);

			/* The leaver's own 1/N must move; the rest should not. */
			cr_assert_geq(d, 0.95 / (double)n, "N=%zu: only %.4f moved", n, d);
			cr_assert_leq(d, 1.5 / (double)n, "N=%zu, backend %zu left: %.4f of slots moved (1/N = %.4f)",
				      n, gone, d, 1.0 / (double)n);
		}
	}
}

Test(maglev, client_keys_follow_the_table_in_the_balancer)
{
	struct balancer_endpoint *eps[10];
	struct balancer *all, *fewer;
	uint64_t rng = 1;
	size_t n = 10, moved = 0, samples = 20000;

	for (size_t i = 0; i < n; i++) {
		struct inet_addr a;
		char text[32];

		snprintf(text, sizeof(text), "10.3.0.%zu", i + 1);
		cr_assert_eq(inet_addr_parse(text, &a), 0);
		eps[i] = balancer_endpoint_new(&a, 80);
	}
	all = balancer_new(BALANCE_MAGLEV, eps, n, NULL);
	fewer = balancer_new(BALANCE_MAGLEV, eps + 1, n - 1, NULL);
	cr_assert_not_null(all);
	cr_assert_not_null(fewer);
	for (size_t k = 0; k < samples; k++) {
		struct inet_addr c = { .family = AF_INET };
		struct balancer_endpoint *a, *b;

		c.u.v4.s_addr = htonl(0x0a800000u + (uint32_t)k * 7919u);
		a = balancer_pick(all, &c, NULL, 0, 0, &rng);
		/* Same client, same answer every time. */
		cr_assert_eq(balancer_pick(all, &c, NULL, 0, 0, &rng), a);
		b = balancer_pick(fewer, &c, NULL, 0, 0, &rng);
		if (a != b)
			moved++;
	}
	cr_assert_leq((double)moved / (double)samples, 1.5 / (double)n,
		      "%zu of %zu clients moved", moved, samples);
	/* An endpoint going down moves only its own clients. */
	balancer_endpoint_set_healthy(eps[3], false);
	moved = 0;
	for (size_t k = 0; k < samples; k++) {
		struct inet_addr c = { .family = AF_INET };
		struct balancer_endpoint *b;

		c.u.v4.s_addr = htonl(0x0a800000u + (uint32_t)k * 7919u);
		b = balancer_pick(all, &c, NULL, 0, 0, &rng);
		cr_assert_neq(b, eps[3]);
		balancer_endpoint_set_healthy(eps[3], true);
		if (balancer_pick(all, &c, NULL, 0, 0, &rng) != b)
			moved++;
		balancer_endpoint_set_healthy(eps[3], false);
	}
	cr_assert_leq((double)moved / (double)samples, 1.5 / (double)n);
	balancer_unref(all);
	balancer_unref(fewer);
	for (size_t i = 0; i < n; i++)
		balancer_endpoint_unref(eps[i]);
}

Test(maglev, rejects_bad_sizes)
{
	uint32_t t[8];
	uint64_t keys[4] = { 1, 2, 3, 4 };

	cr_assert_eq(maglev_build(keys, 4, 2, t), -EINVAL);
	cr_assert_eq(maglev_build(keys, 4, 4, t), -EINVAL);
	cr_assert_eq(maglev_build(keys, 0, 7, t), 0);
	cr_assert_eq(t[0], UINT32_MAX);
}
