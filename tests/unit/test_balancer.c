/* Endpoint selection (backends/userspace/balancer.c), without sockets. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "balancer.h"
#include "kobj.h"

#define N_MAX 8

struct fixture {
	struct balancer_endpoint *eps[N_MAX];
	size_t n;
};

static void fixture_init(struct fixture *fx, size_t n)
{
	memset(fx, 0, sizeof(*fx));
	for (size_t i = 0; i < n; i++) {
		struct inet_addr a;
		char text[32];

		snprintf(text, sizeof(text), "10.1.0.%zu", i + 1);
		cr_assert_eq(inet_addr_parse(text, &a), 0);
		fx->eps[i] = balancer_endpoint_new(&a, 8080);
		cr_assert_not_null(fx->eps[i]);
	}
	fx->n = n;
}

static void fixture_done(struct fixture *fx)
{
	for (size_t i = 0; i < fx->n; i++)
		balancer_endpoint_unref(fx->eps[i]);
}

static size_t index_of(const struct fixture *fx, const struct balancer_endpoint *ep)
{
	for (size_t i = 0; i < fx->n; i++)
		if (fx->eps[i] == ep)
			return i;
	cr_assert_fail("picked an endpoint outside the set");
	return SIZE_MAX;
}

static struct inet_addr client(unsigned i)
{
	struct inet_addr a;
	char text[32];

	snprintf(text, sizeof(text), "192.168.%u.%u", (i >> 8) & 0xff, i & 0xff);
	cr_assert_eq(inet_addr_parse(text, &a), 0);
	return a;
}

Test(balancer, round_robin_cycles_evenly)
{
	struct fixture fx;
	struct balancer *b;
	unsigned count[N_MAX] = { 0 };
	uint64_t rng = 1;
	size_t prev = SIZE_MAX;

	fixture_init(&fx, 4);
	b = balancer_new(BALANCE_ROUND_ROBIN, fx.eps, fx.n, NULL);
	cr_assert_not_null(b);
	for (unsigned i = 0; i < 400; i++) {
		struct inet_addr c = client(i);
		size_t k = index_of(&fx, balancer_pick(b, &c, NULL, 0, 0, &rng));

		if (prev != SIZE_MAX)
			cr_assert_eq(k, (prev + 1) % fx.n, "round robin must visit endpoints in turn");
		prev = k;
		count[k]++;
	}
	for (size_t i = 0; i < fx.n; i++)
		cr_assert_eq(count[i], 100);
	balancer_unref(b);
	fixture_done(&fx);
}

Test(balancer, least_conn_prefers_idle)
{
	struct fixture fx;
	struct balancer *b;
	uint64_t rng = 1;

	fixture_init(&fx, 3);
	b = balancer_new(BALANCE_LEAST_CONN, fx.eps, fx.n, NULL);
	for (int i = 0; i < 5; i++)
		balancer_endpoint_acquire(fx.eps[0]);
	for (int i = 0; i < 3; i++)
		balancer_endpoint_acquire(fx.eps[2]);
	for (int i = 0; i < 10; i++) {
		struct inet_addr c = client(1);

		cr_assert_eq(balancer_pick(b, &c, NULL, 0, 0, &rng), fx.eps[1]);
	}
	/* Picking and holding spreads the load until the counts even out. */
	for (int i = 0; i < 3; i++) {
		struct inet_addr c = client(1);

		balancer_endpoint_acquire(balancer_pick(b, &c, NULL, 0, 0, &rng));
	}
	cr_assert_eq(balancer_endpoint_active(fx.eps[1]), 3);
	for (size_t i = 0; i < fx.n; i++)
		while (balancer_endpoint_active(fx.eps[i]) > 0)
			balancer_endpoint_release(fx.eps[i]);
	balancer_unref(b);
	fixture_done(&fx);
}

Test(balancer, random_two_never_picks_the_worst)
{
	struct fixture fx;
	struct balancer *b;
	unsigned count[N_MAX] = { 0 };
	uint64_t rng = 0x1234567;

	fixture_init(&fx, 5);
	b = balancer_new(BALANCE_RANDOM_TWO, fx.eps, fx.n, NULL);
	/* Loads 0,1,2,3,4: any two distinct choices include a better one
	 * than endpoint 4, and endpoint 0 wins every pair it is in. */
	for (size_t i = 0; i < fx.n; i++)
		for (size_t k = 0; k < i; k++)
			balancer_endpoint_acquire(fx.eps[i]);
	for (unsigned i = 0; i < 5000; i++) {
		struct inet_addr c = client(i);

		count[index_of(&fx, balancer_pick(b, &c, NULL, 0, 0, &rng))]++;
	}
	cr_assert_eq(count[4], 0, "the most loaded endpoint was picked %u times", count[4]);
	for (size_t i = 0; i + 1 < 4; i++)
		cr_assert_gt(count[i], count[i + 1], "less loaded endpoints must win more often");
	/* Endpoint 0 is in 2 of 5 pairs on average: about 40% of picks. */
	cr_assert_gt(count[0], 1700);
	for (size_t i = 0; i < fx.n; i++)
		while (balancer_endpoint_active(fx.eps[i]) > 0)
			balancer_endpoint_release(fx.eps[i]);
	balancer_unref(b);
	fixture_done(&fx);
}

Test(balancer, unhealthy_endpoints_are_skipped)
{
	struct fixture fx;
	enum balance_algo algos[] = { BALANCE_ROUND_ROBIN, BALANCE_LEAST_CONN, BALANCE_RANDOM_TWO,
				      BALANCE_MAGLEV };
	uint64_t rng = 99;

	fixture_init(&fx, 4);
	balancer_endpoint_set_healthy(fx.eps[1], false);
	balancer_endpoint_set_healthy(fx.eps[3], false);
	for (size_t a = 0; a < sizeof(algos) / sizeof(algos[0]); a++) {
		struct balancer *b = balancer_new(algos[a], fx.eps, fx.n, NULL);
		unsigned count[N_MAX] = { 0 };

		cr_assert_not_null(b);
		cr_assert(balancer_has_usable(b));
		for (unsigned i = 0; i < 1000; i++) {
			struct inet_addr c = client(i);

			count[index_of(&fx, balancer_pick(b, &c, NULL, 0, 0, &rng))]++;
		}
		cr_assert_eq(count[1] + count[3], 0, "%s picked a down endpoint",
			     balance_algo_name(algos[a]));
		cr_assert_gt(count[0], 0);
		cr_assert_gt(count[2], 0);
		balancer_unref(b);
	}
	/* All down: nothing to pick, and the relay refuses. */
	balancer_endpoint_set_healthy(fx.eps[0], false);
	balancer_endpoint_set_healthy(fx.eps[2], false);
	{
		struct balancer *b = balancer_new(BALANCE_ROUND_ROBIN, fx.eps, fx.n, NULL);
		struct inet_addr c = client(1);

		cr_assert_not(balancer_has_usable(b));
		cr_assert_null(balancer_pick(b, &c, NULL, 0, 0, &rng));
		balancer_unref(b);
	}
	fixture_done(&fx);
}

Test(balancer, exclusions_are_honoured)
{
	struct fixture fx;
	struct balancer *b;
	uint64_t rng = 5;
	struct inet_addr c = client(7);

	fixture_init(&fx, 2);
	b = balancer_new(BALANCE_ROUND_ROBIN, fx.eps, fx.n, NULL);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(balancer_pick(b, &c, &fx.eps[0], 1, 0, &rng), fx.eps[1]);
	cr_assert_null(balancer_pick(b, &c, fx.eps, 2, 0, &rng));
	balancer_unref(b);
	fixture_done(&fx);
}

Test(balancer, affinity_sticks_and_expires)
{
	struct fixture fx;
	struct balancer_affinity *aff;
	struct balancer *b;
	struct balancer_endpoint *first, *ep;
	struct inet_addr c = client(42);
	uint64_t rng = 3;

	fixture_init(&fx, 3);
	aff = balancer_affinity_new(10);
	b = balancer_new(BALANCE_ROUND_ROBIN, fx.eps, fx.n, aff);
	first = balancer_pick(b, &c, NULL, 0, 1000, &rng);
	cr_assert_not_null(first);
	/* Used every 9 s, the entry never expires though 10 s is the timeout. */
	for (uint64_t t = 1000; t < 100000; t += 9000)
		cr_assert_eq(balancer_pick(b, &c, NULL, 0, t, &rng), first);
	/* Other clients still rotate. */
	{
		struct inet_addr o1 = client(1), o2 = client(2);

		cr_assert_neq(balancer_pick(b, &o1, NULL, 0, 100000, &rng),
			      balancer_pick(b, &o2, NULL, 0, 100000, &rng));
	}
	/* Unhealthy: moves to another one, and sticks there. */
	balancer_endpoint_set_healthy(first, false);
	ep = balancer_pick(b, &c, NULL, 0, 100000, &rng);
	cr_assert_neq(ep, first);
	balancer_endpoint_set_healthy(first, true);
	cr_assert_eq(balancer_pick(b, &c, NULL, 0, 101000, &rng), ep);
	/* Idle for more than the timeout: a fresh choice (round robin
	 * moves on, so after a few picks we must see another endpoint). */
	{
		bool moved = false;
		uint64_t t = 101000 + 11000;

		for (int i = 0; i < 3 && !moved; i++, t += 11000)
			moved = balancer_pick(b, &c, NULL, 0, t, &rng) != ep;
		cr_assert(moved, "affinity did not expire");
	}
	cr_assert_geq(balancer_affinity_count(aff), 1);
	balancer_unref(b);
	balancer_affinity_unref(aff);
	fixture_done(&fx);
}

Test(balancer, affinity_survives_a_new_snapshot_and_leaves_with_the_endpoint)
{
	struct fixture fx;
	struct balancer_affinity *aff;
	struct balancer *b1, *b2;
	struct balancer_endpoint *first, *rest[N_MAX];
	struct inet_addr c = client(9);
	uint64_t rng = 11;
	size_t n = 0;

	fixture_init(&fx, 3);
	aff = balancer_affinity_new(10800);
	cr_assert_eq(balancer_affinity_timeout(aff), 10800);
	b1 = balancer_new(BALANCE_LEAST_CONN, fx.eps, fx.n, aff);
	first = balancer_pick(b1, &c, NULL, 0, 0, &rng);
	/* The same set rebuilt (a sync): the client keeps its endpoint. */
	b2 = balancer_new(BALANCE_LEAST_CONN, fx.eps, fx.n, aff);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(balancer_pick(b2, &c, NULL, 0, 10, &rng), first);
	balancer_unref(b2);
	/* Its endpoint left the set: a new one, in the set. */
	for (size_t i = 0; i < fx.n; i++)
		if (fx.eps[i] != first)
			rest[n++] = fx.eps[i];
	b2 = balancer_new(BALANCE_LEAST_CONN, rest, n, aff);
	cr_assert_neq(balancer_pick(b2, &c, NULL, 0, 20, &rng), first);
	balancer_unref(b2);
	balancer_unref(b1);
	balancer_affinity_unref(aff);
	fixture_done(&fx);
}

Test(balancer, empty_set_picks_nothing)
{
	struct balancer *b = balancer_new(BALANCE_MAGLEV, NULL, 0, NULL);
	struct inet_addr c = client(1);
	uint64_t rng = 1;

	cr_assert_not_null(b);
	cr_assert_not(balancer_has_usable(b));
	cr_assert_null(balancer_pick(b, &c, NULL, 0, 0, &rng));
	balancer_unref(b);
	cr_assert_null(balancer_unref(NULL));
	cr_assert_null(balancer_endpoint_unref(NULL));
	cr_assert_null(balancer_affinity_unref(NULL));
}

/* Endpoints made together share one block: a snapshot over them in order
 * keeps no list (run), one over them out of order or mixed with others
 * does; either picks every endpoint, and the block lives while any
 * reference to any of its endpoints does (ASan checks the frees). */
Test(balancer, endpoint_blocks_and_runs)
{
	struct balancer_endpoint *blk = balancer_endpoints_new(4), *lone;
	struct balancer_endpoint *in_order[4], *mixed[3];
	struct balancer *run, *list;
	struct inet_addr a, c = client(1);
	uint64_t rng = 1;
	unsigned seen_run = 0, seen_list = 0;

	cr_assert_not_null(blk);
	cr_assert_null(balancer_endpoints_new(0));
	for (unsigned i = 0; i < 4; i++) {
		char text[32];

		snprintf(text, sizeof(text), "10.2.0.%u", i + 1);
		cr_assert_eq(inet_addr_parse(text, &blk[i].addr), 0);
		blk[i].port = 80;
		cr_assert(balancer_endpoint_usable(&blk[i]));
		cr_assert_eq(balancer_endpoint_active(&blk[i]), 0);
		in_order[i] = &blk[i];
	}
	cr_assert_eq(inet_addr_parse("10.2.0.9", &a), 0);
	lone = balancer_endpoint_new(&a, 80);
	mixed[0] = &blk[2];
	mixed[1] = lone;
	mixed[2] = &blk[0];
	run = balancer_new(BALANCE_ROUND_ROBIN, in_order, 4, NULL);
	list = balancer_new(BALANCE_ROUND_ROBIN, mixed, 3, NULL);
	cr_assert_not_null(run);
	cr_assert_not_null(list);
	cr_assert_eq(run->run, &blk[0]);
	cr_assert_null(list->run);
	for (unsigned i = 0; i < 4; i++)
		cr_assert_eq(balancer_ep(run, i), &blk[i]);
	cr_assert_eq(balancer_ep(list, 1), lone);
	for (int k = 0; k < 8; k++) {
		seen_run |= 1u << (balancer_pick(run, &c, NULL, 0, 0, &rng) - blk);
		struct balancer_endpoint *ep = balancer_pick(list, &c, NULL, 0, 0, &rng);

		seen_list |= ep == lone ? 8u : 1u << (ep - blk);
	}
	cr_assert_eq(seen_run, 0xf);
	cr_assert_eq(seen_list, 1u | 4u | 8u);
	/* The creator's references go; the snapshots' keep the block. */
	for (unsigned i = 0; i < 4; i++)
		balancer_endpoint_unref(&blk[i]);
	balancer_endpoint_unref(lone);
	balancer_unref(run);
	cr_assert_eq(balancer_ep(list, 0)->port, 80); /* blk[2] still there */
	/* A connection's reference outlives the last snapshot. */
	balancer_endpoint_ref(mixed[2]);
	balancer_unref(list);
	cr_assert_eq(inet_addr_cmp(&mixed[2]->addr, &blk[0].addr), 0);
	balancer_endpoint_unref(mixed[2]);
}

/* An endpoint's active count and health share one word: neither disturbs
 * the other, a block holds at most BALANCER_BLOCK_MAX endpoints, and the
 * last of those still finds its block. */
Test(balancer, endpoint_state_word_and_block_bounds)
{
	struct balancer_endpoint *big = balancer_endpoints_new(BALANCER_BLOCK_MAX);
	struct balancer_endpoint *last;

	cr_assert_eq(sizeof(struct balancer_endpoint), 28);
	cr_assert_null(balancer_endpoints_new((size_t)BALANCER_BLOCK_MAX + 1));
	cr_assert_not_null(big);
	last = &big[BALANCER_BLOCK_MAX - 1];
	cr_assert_eq(last->idx, BALANCER_BLOCK_MAX - 1);
	for (int i = 0; i < 3; i++)
		balancer_endpoint_acquire(last);
	balancer_endpoint_set_healthy(last, false);
	cr_assert_not(balancer_endpoint_usable(last));
	cr_assert_eq(balancer_endpoint_active(last), 3);
	balancer_endpoint_release(last);
	balancer_endpoint_set_healthy(last, false); /* idempotent */
	cr_assert_eq(balancer_endpoint_active(last), 2);
	balancer_endpoint_set_healthy(last, true);
	cr_assert(balancer_endpoint_usable(last));
	cr_assert_eq(balancer_endpoint_active(last), 2);
	cr_assert(balancer_endpoint_usable(&big[0]));
	cr_assert_eq(balancer_endpoint_active(&big[0]), 0);
	/* References through the last endpoint hold the block (ASan: freed
	 * once, after every reference). */
	balancer_endpoint_ref(last);
	for (size_t i = 0; i < BALANCER_BLOCK_MAX; i++)
		balancer_endpoint_unref(&big[i]);
	cr_assert_eq(balancer_endpoint_active(last), 2);
	balancer_endpoint_unref(last);
}

/* A set built afresh has its balancer in its endpoints' block: picks work
 * (Maglev too), and the block, balancer included, lives until the last
 * reference to any endpoint, after the balancer's own last reference. A
 * balancer over part of such a block is an allocation of its own. */
Test(balancer, balancer_in_its_endpoints_block)
{
	struct balancer_endpoint *blk = balancer_endpoints_new_set(3), *held;
	struct balancer_endpoint *part[2], *all[3];
	struct balancer *b, *sub;
	struct inet_addr c = client(7);
	uint64_t rng = 1;

	cr_assert_not_null(blk);
	for (unsigned i = 0; i < 3; i++) {
		char text[32];

		snprintf(text, sizeof(text), "10.3.0.%u", i + 1);
		cr_assert_eq(inet_addr_parse(text, &blk[i].addr), 0);
		blk[i].port = 80;
		all[i] = &blk[i];
	}
	part[0] = &blk[1];
	part[1] = &blk[2];
	sub = balancer_new(BALANCE_ROUND_ROBIN, part, 2, NULL);
	b = balancer_new(BALANCE_MAGLEV, all, 3, NULL);
	cr_assert(sub && b);
	cr_expect(b > (struct balancer *)(void *)&blk[2] &&
		  (char *)b < (char *)&blk[2] + sizeof(blk[2]) + 2 * sizeof(void *),
		  "the balancer of the whole set sits right after its endpoints");
	cr_expect(sub < (struct balancer *)(void *)&blk[0] || sub > b, "a part's balancer is elsewhere");
	for (unsigned i = 0; i < 3; i++)
		balancer_endpoint_unref(&blk[i]); /* the builder's references */
	held = balancer_endpoint_ref(balancer_pick(b, &c, NULL, 0, 0, &rng));
	cr_assert_not_null(held);
	cr_expect_eq(balancer_pick(b, &c, NULL, 0, 0, &rng), held, "Maglev: the same client, the same one");
	balancer_unref(b);
	cr_assert_not_null(balancer_pick(sub, &c, NULL, 0, 0, &rng));
	balancer_unref(sub);
	/* Only the connection's reference is left: the block is still there. */
	cr_expect_eq(held->port, 80);
	balancer_endpoint_unref(held);
}
