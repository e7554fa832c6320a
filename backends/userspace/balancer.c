/* Endpoint selection algorithms (see balancer.h for the sharing rules). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "balancer.h"
#include "maglev.h"

/* ---- endpoints ---- */

/* Room for a balancer after a block's endpoints (balancer_endpoints_new_set). */
enum block_room {
	ROOM_NONE = 0,
	ROOM_FREE,
	ROOM_TAKEN,
};

struct ep_block {
	atomic_uint refs;     /* references to any of its endpoints */
	uint16_t n;
	uint8_t room;         /* enum block_room; control thread only */
	struct balancer_endpoint eps[];
};

static struct ep_block *block_of(const struct balancer_endpoint *ep)
{
	return (struct ep_block *)((char *)(ep - ep->idx) - offsetof(struct ep_block, eps));
}

/* Where a block of n endpoints keeps its balancer's room. */
static size_t room_offset(size_t n)
{
	size_t at = offsetof(struct ep_block, eps) + n * sizeof(struct balancer_endpoint);
	size_t align = _Alignof(struct balancer);

	return (at + align - 1) / align * align;
}

static struct balancer_endpoint *block_new(size_t n, bool room)
{
	struct ep_block *b;

	if (n == 0 || n > BALANCER_BLOCK_MAX)
		return NULL;
	b = calloc(1, room ? room_offset(n) + sizeof(struct balancer) : room_offset(n));
	if (!b)
		return NULL;
	atomic_init(&b->refs, (unsigned)n);
	b->n = (uint16_t)n;
	b->room = room ? ROOM_FREE : ROOM_NONE;
	for (size_t i = 0; i < n; i++) {
		atomic_init(&b->eps[i].state, 0);
		b->eps[i].idx = (uint16_t)i;
	}
	return b->eps;
}

struct balancer_endpoint *balancer_endpoints_new(size_t n)
{
	return block_new(n, false);
}

struct balancer_endpoint *balancer_endpoints_new_set(size_t n)
{
	return block_new(n, true);
}

/* Whether b lives in the room of its endpoints' block. */
static bool balancer_in_block(const struct balancer *b)
{
	const struct ep_block *blk = b->run ? block_of(b->run) : NULL;

	return blk && blk->room == ROOM_TAKEN && (const char *)b == (const char *)blk + room_offset(blk->n);
}

struct balancer_endpoint *balancer_endpoint_new(const struct inet_addr *addr, uint16_t port)
{
	struct balancer_endpoint *ep = balancer_endpoints_new(1);

	if (!ep)
		return NULL;
	ep->addr = *addr;
	ep->port = port;
	return ep;
}

struct balancer_endpoint *balancer_endpoint_ref(struct balancer_endpoint *ep)
{
	atomic_fetch_add_explicit(&block_of(ep)->refs, 1, memory_order_relaxed);
	return ep;
}

struct balancer_endpoint *balancer_endpoint_unref(struct balancer_endpoint *ep)
{
	struct ep_block *b;

	if (!ep)
		return NULL;
	b = block_of(ep);
	if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
		free(b);
	return NULL;
}

/* ep->state: the active count in the upper 31 bits, "down" in bit 0. */
#define EP_DOWN 1u
#define EP_ONE_ACTIVE 2u

void balancer_endpoint_acquire(struct balancer_endpoint *ep)
{
	atomic_fetch_add_explicit(&ep->state, EP_ONE_ACTIVE, memory_order_relaxed);
}

void balancer_endpoint_release(struct balancer_endpoint *ep)
{
	atomic_fetch_sub_explicit(&ep->state, EP_ONE_ACTIVE, memory_order_relaxed);
}

bool balancer_endpoint_usable(const struct balancer_endpoint *ep)
{
	return !(atomic_load_explicit(&ep->state, memory_order_relaxed) & EP_DOWN);
}

void balancer_endpoint_set_healthy(struct balancer_endpoint *ep, bool healthy)
{
	if (healthy)
		atomic_fetch_and_explicit(&ep->state, ~EP_DOWN, memory_order_relaxed);
	else
		atomic_fetch_or_explicit(&ep->state, EP_DOWN, memory_order_relaxed);
}

unsigned balancer_endpoint_active(const struct balancer_endpoint *ep)
{
	return atomic_load_explicit(&ep->state, memory_order_relaxed) / EP_ONE_ACTIVE;
}

static unsigned ep_active(const struct balancer_endpoint *ep)
{
	return balancer_endpoint_active(ep);
}

/* ---- affinity table ---- */

#define AFFINITY_BUCKETS 1024u

struct affinity_entry {
	struct inet_addr client;
	struct inet_addr ep_addr;
	uint16_t ep_port;
	uint64_t expires_ms;
	struct affinity_entry *next;
};

struct balancer_affinity {
	atomic_uint refs;
	uint32_t timeout_s;
	pthread_mutex_t lock;
	size_t count;
	size_t inserts_since_purge;
	struct affinity_entry *buckets[AFFINITY_BUCKETS];
};

struct balancer_affinity *balancer_affinity_new(uint32_t timeout_s)
{
	struct balancer_affinity *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	if (pthread_mutex_init(&a->lock, NULL) != 0) {
		free(a);
		return NULL;
	}
	atomic_init(&a->refs, 1);
	a->timeout_s = timeout_s;
	return a;
}

struct balancer_affinity *balancer_affinity_ref(struct balancer_affinity *a)
{
	atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
	return a;
}

struct balancer_affinity *balancer_affinity_unref(struct balancer_affinity *a)
{
	if (!a || atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) != 1)
		return NULL;
	for (size_t i = 0; i < AFFINITY_BUCKETS; i++) {
		struct affinity_entry *e = a->buckets[i];

		while (e) {
			struct affinity_entry *next = e->next;

			free(e);
			e = next;
		}
	}
	pthread_mutex_destroy(&a->lock);
	free(a);
	return NULL;
}

uint32_t balancer_affinity_timeout(const struct balancer_affinity *a)
{
	return a->timeout_s;
}

size_t balancer_affinity_count(struct balancer_affinity *a)
{
	size_t n;

	pthread_mutex_lock(&a->lock);
	n = a->count;
	pthread_mutex_unlock(&a->lock);
	return n;
}

static size_t addr_len(const struct inet_addr *a)
{
	return a->family == AF_INET6 ? 16 : 4;
}

static size_t affinity_bucket(const struct inet_addr *client)
{
	return maglev_hash(client->u.bytes, addr_len(client), 0xaff1) % AFFINITY_BUCKETS;
}

/* Drop every expired entry. Caller holds the lock. */
static void affinity_purge(struct balancer_affinity *a, uint64_t now_ms)
{
	for (size_t i = 0; i < AFFINITY_BUCKETS; i++) {
		struct affinity_entry **pp = &a->buckets[i];

		while (*pp) {
			struct affinity_entry *e = *pp;

			if (e->expires_ms <= now_ms) {
				*pp = e->next;
				free(e);
				a->count--;
			} else {
				pp = &e->next;
			}
		}
	}
	a->inserts_since_purge = 0;
}

/* The live entry of client, or NULL (an expired one is removed). Lock held. */
static struct affinity_entry *affinity_find(struct balancer_affinity *a,
					    const struct inet_addr *client, uint64_t now_ms)
{
	struct affinity_entry **pp = &a->buckets[affinity_bucket(client)];

	for (; *pp; pp = &(*pp)->next) {
		struct affinity_entry *e = *pp;

		if (inet_addr_cmp(&e->client, client) != 0)
			continue;
		if (e->expires_ms <= now_ms) {
			*pp = e->next;
			free(e);
			a->count--;
			return NULL;
		}
		return e;
	}
	return NULL;
}

/* Remember that client uses ep until now + timeout. Lock held. An allocation
 * failure only loses stickiness for this client, so it is not reported. */
static void affinity_store(struct balancer_affinity *a, const struct inet_addr *client,
			   const struct balancer_endpoint *ep, uint64_t now_ms)
{
	struct affinity_entry *e = affinity_find(a, client, now_ms);
	size_t b;

	if (!e) {
		if (++a->inserts_since_purge >= AFFINITY_BUCKETS)
			affinity_purge(a, now_ms);
		e = calloc(1, sizeof(*e));
		if (!e)
			return;
		b = affinity_bucket(client);
		e->client = *client;
		e->next = a->buckets[b];
		a->buckets[b] = e;
		a->count++;
	}
	e->ep_addr = ep->addr;
	e->ep_port = ep->port;
	e->expires_ms = now_ms + (uint64_t)a->timeout_s * 1000u;
}

/* ---- snapshots ---- */

static uint64_t endpoint_key(const struct balancer_endpoint *ep)
{
	uint8_t raw[19];

	memcpy(raw, ep->addr.u.bytes, 16);
	raw[16] = (uint8_t)(ep->port >> 8);
	raw[17] = (uint8_t)ep->port;
	raw[18] = (uint8_t)ep->addr.family;
	return maglev_hash(raw, sizeof(raw), 0x6d61676c6576ULL);
}

struct balancer *balancer_new(enum balance_algo algo, struct balancer_endpoint *const *eps,
			      size_t n, struct balancer_affinity *affinity)
{
	bool run = n > 0;
	struct ep_block *blk;
	struct balancer *b;

	if (n > UINT32_MAX)
		return NULL;
	/* One after the other in one block (consecutive addresses and
	 * indexes: the same block_of): no list needed. */
	for (size_t i = 1; run && i < n; i++)
		run = (uintptr_t)eps[i] == (uintptr_t)eps[0] + i * sizeof(*eps[0]) &&
		      eps[i]->idx == eps[0]->idx + i;
	blk = run ? block_of(eps[0]) : NULL;
	if (blk && blk->room == ROOM_FREE && eps[0]->idx == 0 && n == blk->n) {
		/* The whole block, made for this set: no allocation. */
		b = (struct balancer *)(void *)((char *)blk + room_offset(n));
		blk->room = ROOM_TAKEN;
	} else {
		b = calloc(1, sizeof(*b) + (run ? 0 : n * sizeof(b->eps[0])));
		if (!b)
			return NULL;
	}
	atomic_init(&b->refs, 1);
	atomic_init(&b->rr_next, 0);
	b->algo = algo;
	b->run = run ? eps[0] : NULL;
	for (size_t i = 0; i < n; i++) {
		balancer_endpoint_ref(eps[i]);
		if (!run)
			b->eps[i] = eps[i];
	}
	b->n_eps = (uint32_t)n;
	if (affinity)
		b->affinity = balancer_affinity_ref(affinity);

	if (algo == BALANCE_MAGLEV && n > 0) {
		size_t size = maglev_table_size(n);
		uint64_t *keys = calloc(n, sizeof(*keys));

		b->maglev = calloc(1, sizeof(*b->maglev) + size * sizeof(b->maglev->slot[0]));
		if (!keys || !b->maglev) {
			free(keys);
			goto fail;
		}
		for (size_t i = 0; i < n; i++)
			keys[i] = endpoint_key(eps[i]);
		b->maglev->size = (uint32_t)size;
		if (maglev_build(keys, n, size, b->maglev->slot) < 0) {
			free(keys);
			goto fail;
		}
		free(keys);
	}
	return b;
fail:
	return balancer_unref(b);
}

struct balancer *balancer_ref(struct balancer *b)
{
	atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
	return b;
}

struct balancer *balancer_unref(struct balancer *b)
{
	struct balancer_endpoint *run;
	size_t n;

	if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
		return NULL;
	free(b->maglev);
	balancer_affinity_unref(b->affinity);
	if (balancer_in_block(b)) {
		/* b goes with its block, maybe at the last of these. */
		run = b->run;
		n = b->n_eps;
		for (size_t i = 0; i < n; i++)
			balancer_endpoint_unref(run + i);
		return NULL;
	}
	for (size_t i = 0; i < b->n_eps; i++)
		balancer_endpoint_unref(balancer_ep(b, i));
	free(b);
	return NULL;
}

bool balancer_has_usable(const struct balancer *b)
{
	for (size_t i = 0; i < b->n_eps; i++)
		if (balancer_endpoint_usable(balancer_ep(b, i)))
			return true;
	return false;
}

uint64_t balancer_random(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static bool excluded(const struct balancer_endpoint *ep,
		     struct balancer_endpoint *const *exclude, size_t n_exclude)
{
	for (size_t i = 0; i < n_exclude; i++)
		if (exclude[i] == ep)
			return true;
	return false;
}

static bool candidate(const struct balancer_endpoint *ep,
		      struct balancer_endpoint *const *exclude, size_t n_exclude)
{
	return balancer_endpoint_usable(ep) && !excluded(ep, exclude, n_exclude);
}

/* The first candidate at or after index start (wrapping), or SIZE_MAX. */
static size_t next_candidate(const struct balancer *b, size_t start,
			     struct balancer_endpoint *const *exclude, size_t n_exclude)
{
	for (size_t k = 0; k < b->n_eps; k++) {
		size_t i = (start + k) % b->n_eps;

		if (candidate(balancer_ep(b, i), exclude, n_exclude))
			return i;
	}
	return SIZE_MAX;
}

static size_t pick_round_robin(struct balancer *b, struct balancer_endpoint *const *exclude,
			       size_t n_exclude)
{
	unsigned start = atomic_fetch_add_explicit(&b->rr_next, 1, memory_order_relaxed);
	size_t i = next_candidate(b, start % b->n_eps, exclude, n_exclude);

	/* Skipping over unusable endpoints must not hand the next caller the
	 * same one again, so move the cursor past what was chosen. */
	if (i != SIZE_MAX && i != start % b->n_eps)
		atomic_fetch_add_explicit(&b->rr_next, (unsigned)((i + b->n_eps - start % b->n_eps) % b->n_eps),
					  memory_order_relaxed);
	return i;
}

static size_t pick_least_conn(struct balancer *b, struct balancer_endpoint *const *exclude,
			      size_t n_exclude)
{
	/* Start the scan at a rotating offset so equally loaded endpoints
	 * share new connections instead of the first one taking them all. */
	unsigned start = atomic_fetch_add_explicit(&b->rr_next, 1, memory_order_relaxed);
	size_t best = SIZE_MAX;
	unsigned best_active = 0;

	for (size_t k = 0; k < b->n_eps; k++) {
		size_t i = (start + k) % b->n_eps;
		unsigned a;

		if (!candidate(balancer_ep(b, i), exclude, n_exclude))
			continue;
		a = ep_active(balancer_ep(b, i));
		if (best == SIZE_MAX || a < best_active) {
			best = i;
			best_active = a;
		}
	}
	return best;
}

static size_t pick_random_two(struct balancer *b, struct balancer_endpoint *const *exclude,
			      size_t n_exclude, uint64_t *rng)
{
	size_t i, j;

	i = next_candidate(b, balancer_random(rng) % b->n_eps, exclude, n_exclude);
	if (i == SIZE_MAX)
		return SIZE_MAX;
	/* Second choice: another random candidate distinct from the first
	 * when one exists (offset 1..n-1 from i). */
	if (b->n_eps == 1)
		return i;
	j = next_candidate(b, (i + 1 + balancer_random(rng) % (b->n_eps - 1)) % b->n_eps,
			   exclude, n_exclude);
	if (j == SIZE_MAX || j == i)
		return i;
	return ep_active(balancer_ep(b, j)) < ep_active(balancer_ep(b, i)) ? j : i;
}

static size_t pick_maglev(struct balancer *b, const struct inet_addr *client,
			  struct balancer_endpoint *const *exclude, size_t n_exclude)
{
	uint64_t h = client ? maglev_hash(client->u.bytes, addr_len(client), 0x636c6e74ULL) : 0;
	size_t size = b->maglev->size, slot = h % size;

	/* A down or excluded owner: walk on to the next slot whose owner can
	 * take it, so only that owner's clients move. The caller checked
	 * that a usable endpoint exists, but exclusions may rule them all
	 * out, hence the bound. */
	for (size_t k = 0; k < size; k++) {
		size_t i = b->maglev->slot[(slot + k) % size];

		if (candidate(balancer_ep(b, i), exclude, n_exclude))
			return i;
	}
	return SIZE_MAX;
}

struct balancer_endpoint *balancer_pick(struct balancer *b, const struct inet_addr *client,
					 struct balancer_endpoint *const *exclude, size_t n_exclude,
					 uint64_t now_ms, uint64_t *rng)
{
	struct balancer_endpoint *chosen = NULL;
	size_t i;

	if (b->n_eps == 0 || next_candidate(b, 0, exclude, n_exclude) == SIZE_MAX)
		return NULL;

	if (b->affinity && client) {
		struct affinity_entry *e;

		pthread_mutex_lock(&b->affinity->lock);
		e = affinity_find(b->affinity, client, now_ms);
		if (e) {
			/* Still sticky only if that endpoint is in this set and
			 * can take traffic; otherwise choose afresh below. */
			for (size_t k = 0; k < b->n_eps; k++) {
				struct balancer_endpoint *ep = balancer_ep(b, k);

				if (ep->port == e->ep_port && inet_addr_cmp(&ep->addr, &e->ep_addr) == 0) {
					if (candidate(ep, exclude, n_exclude))
						chosen = ep;
					break;
				}
			}
		}
		if (chosen) {
			affinity_store(b->affinity, client, chosen, now_ms);
			pthread_mutex_unlock(&b->affinity->lock);
			return chosen;
		}
		pthread_mutex_unlock(&b->affinity->lock);
	}

	switch (b->algo) {
	case BALANCE_LEAST_CONN:
		i = pick_least_conn(b, exclude, n_exclude);
		break;
	case BALANCE_RANDOM_TWO:
		i = pick_random_two(b, exclude, n_exclude, rng);
		break;
	case BALANCE_MAGLEV:
		i = b->maglev ? pick_maglev(b, client, exclude, n_exclude) : SIZE_MAX;
		break;
	case BALANCE_ROUND_ROBIN:
	default:
		i = pick_round_robin(b, exclude, n_exclude);
		break;
	}
	if (i == SIZE_MAX)
		return NULL;
	chosen = balancer_ep(b, i);

	if (b->affinity && client) {
		pthread_mutex_lock(&b->affinity->lock);
		affinity_store(b->affinity, client, chosen, now_ms);
		pthread_mutex_unlock(&b->affinity->lock);
	}
	return chosen;
}
