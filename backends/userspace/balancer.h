/* Endpoint selection for the userspace relay: round-robin, least-connections,
 * random-two-choices and Maglev, with ClientIP session affinity and health.
 *
 * Pure module: no sockets, no threads of its own, no logging. Time and
 * randomness come in as arguments so tests can drive them.
 *
 * Sharing rules. A struct balancer is an immutable snapshot of one endpoint
 * set, built by the control thread and read by every worker; it is
 * refcounted and freed by whoever drops the last reference. Endpoints are
 * refcounted too and outlive the snapshots that listed them while a
 * connection still uses them (draining). Their active count and health are
 * one atomic word written from any thread. The affinity table has its own
 * mutex.
 */
#ifndef FERRY_USERSPACE_BALANCER_H
#define FERRY_USERSPACE_BALANCER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inet.h"
#include "model-t.h"

/* Endpoints are allocated in blocks (balancer_endpoints_new: the new
 * endpoints of one set, one allocation for all), each endpoint knowing
 * its index in its block; a reference to an endpoint is a reference to its
 * block, which goes with the last one. A block therefore lives on while
 * any of its endpoints is used (listed by a snapshot, a health target or a
 * connection): at worst a set that loses all but one endpoint of a block
 * keeps the block, never more than the set had when it was built. */
struct balancer_endpoint {
	struct inet_addr addr;
	uint16_t port;
	uint16_t idx;         /* its index in its block */
	/* Both in one word, 28 bytes an endpoint (a million of them at 100k
	 * services): the connections / UDP flows using it, all workers, times
	 * two, plus 1 while active health checks say it is down. Read and
	 * written through the functions below only. */
	atomic_uint state;
};

/* The most endpoints one block holds (idx is 16 bits). */
#define BALANCER_BLOCK_MAX 65535u

/* n (1..BALANCER_BLOCK_MAX) new endpoints in one block: eps[0..n),
 * healthy, no active users, address and port zero for the caller to fill
 * in before sharing them, one reference each. NULL on ENOMEM or a bad n. */
struct balancer_endpoint *balancer_endpoints_new(size_t n);
/* The same, with room after the endpoints for the balancer of a set of
 * exactly eps[0..n) in that order: balancer_new then puts it there, one
 * allocation for both (the balancer's memory then goes with the block). */
struct balancer_endpoint *balancer_endpoints_new_set(size_t n);
/* A new endpoint (a block of one), healthy, no active users, one
 * reference. NULL on ENOMEM. */
struct balancer_endpoint *balancer_endpoint_new(const struct inet_addr *addr, uint16_t port);
/* Take a reference; returns ep. Any thread. */
struct balancer_endpoint *balancer_endpoint_ref(struct balancer_endpoint *ep);
/* Drop a reference, freeing its block on the block's last. Accepts NULL;
 * returns NULL. */
struct balancer_endpoint *balancer_endpoint_unref(struct balancer_endpoint *ep);
/* Count one more (acquire) or one less (release) active user of ep. */
void balancer_endpoint_acquire(struct balancer_endpoint *ep);
void balancer_endpoint_release(struct balancer_endpoint *ep);
/* Usable for new traffic: healthy. */
bool balancer_endpoint_usable(const struct balancer_endpoint *ep);
/* Mark ep up (healthy) or down (health checks). Any thread. */
void balancer_endpoint_set_healthy(struct balancer_endpoint *ep, bool healthy);
/* The connections / flows using ep now (acquired, not yet released). */
unsigned balancer_endpoint_active(const struct balancer_endpoint *ep);

struct balancer_affinity;

/* A ClientIP affinity table whose entries expire timeout_s seconds (>= 1:
 * the plan's timeout) after their last use. One reference. NULL on ENOMEM. */
struct balancer_affinity *balancer_affinity_new(uint32_t timeout_s);
struct balancer_affinity *balancer_affinity_ref(struct balancer_affinity *a);
/* Accepts NULL; returns NULL. */
struct balancer_affinity *balancer_affinity_unref(struct balancer_affinity *a);
/* The timeout the table was made with, in seconds. */
uint32_t balancer_affinity_timeout(const struct balancer_affinity *a);
/* Number of live (possibly expired but not yet purged) entries. Locks. */
size_t balancer_affinity_count(struct balancer_affinity *a);

/* A Maglev lookup table: slot -> endpoint index. */
struct balancer_maglev {
	uint32_t size;
	uint32_t slot[];
};

struct balancer {
	atomic_uint refs;
	enum balance_algo algo;
	atomic_uint rr_next;             /* round-robin cursor, shared by workers */
	uint32_t n_eps;
	struct balancer_affinity *affinity; /* NULL: no session affinity */
	struct balancer_maglev *maglev;  /* BALANCE_MAGLEV only */
	/* The endpoints, n_eps owned references, in order (balancer_ep):
	 * run[0..n_eps) when they lie one after the other in one block (a
	 * set built afresh), with no list; else the list eps[]. */
	struct balancer_endpoint *run;
	struct balancer_endpoint *eps[];
};

/* Endpoint i (< n_eps) of b. */
static inline struct balancer_endpoint *balancer_ep(const struct balancer *b, size_t i)
{
	return b->run ? b->run + i : b->eps[i];
}

/* Build a snapshot over eps[0..n) (references taken on each and on affinity,
 * which may be NULL). For BALANCE_MAGLEV the lookup table is built here.
 * One reference. NULL on ENOMEM (or n over UINT32_MAX). */
struct balancer *balancer_new(enum balance_algo algo, struct balancer_endpoint *const *eps,
			      size_t n, struct balancer_affinity *affinity);
struct balancer *balancer_ref(struct balancer *b);
/* Accepts NULL; returns NULL. */
struct balancer *balancer_unref(struct balancer *b);

/* True when at least one endpoint may take new traffic. */
bool balancer_has_usable(const struct balancer *b);

/* Choose an endpoint for a new connection or flow from client, skipping
 * unhealthy endpoints and the n_exclude ones in exclude (endpoints already
 * tried). now_ms is a monotonic clock (for affinity expiry), *rng a
 * xorshift state (nonzero) the caller owns. Returns a borrowed pointer,
 * valid while the caller holds its reference on b: take your own with
 * balancer_endpoint_ref before dropping b. NULL when nothing is usable.
 * Thread-safe. */
struct balancer_endpoint *balancer_pick(struct balancer *b, const struct inet_addr *client,
					 struct balancer_endpoint *const *exclude, size_t n_exclude,
					 uint64_t now_ms, uint64_t *rng);

/* Next value of a xorshift64* generator; *state must be nonzero. */
uint64_t balancer_random(uint64_t *state);


#endif
