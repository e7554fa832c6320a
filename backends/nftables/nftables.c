/* Policy: the nftables backend's ops table. Turns plans and diffs into
 * element changes of the constant ruleset (nft_rules.h, nft_sets.h), keeps
 * what it committed in memory, and logs what the kernel refused.
 *
 * State: one entry per frontend, sorted by frontend identity, holding the
 * elements that frontend put in the kernel (sorted). A sync or apply
 * recomputes the elements of the frontends that may have changed, diffs
 * them against the entry and sends only the difference: deletes first, then
 * adds, in one batch (chunked when huge). Hairpin pairs are shared between
 * frontends, so they are reference counted.
 *
 * The first sync (and the one after any failure) is a full replace: the
 * constant ruleset re-declared, every chain emptied and refilled, every set
 * emptied and refilled, all in one kernel transaction. Packets see the old
 * rules or the new ones, never an empty table, so restarting ferry neither
 * flushes first nor disturbs established or new connections.
 */
#include "nftables.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>

#include "log.h"
#include "nft_batch.h"
#include "conntrack.h"
#include "nft_elems.h"
#include "nft_intercept.h"
#include "nft_read.h"
#include "nft_rules.h"
#include "nft_sets.h"
#include "nft_takeover.h"

/* Messages per transaction for incremental changes. */
#define NFT_CHUNK_MSGS 4096

struct fe_key {
	uint8_t kind;
	uint8_t family;
	uint8_t proto;
	uint8_t pad;
	uint16_t port;
	uint8_t addr[16];
};

struct fe_state {
	struct fe_key key;
	struct nft_elem *elems;   /* sorted by nft_elem_cmp */
	size_t n;
	bool seen;                /* sync: still in the plan */
};

struct hp_ref {
	struct nft_elem e;        /* the hairpin element */
	uint32_t refs;            /* 0: free (or a tombstone when used) */
	bool used;
};

struct nftables {
	struct mnl_socket *nl;
	struct nft_batch *batch;
	struct nft_ruleset_cfg rcfg;
	struct inet_prefix *cidrs;
	struct nft_elems_cfg ecfg;
	bool need_full;           /* next sync replaces everything */
	bool adopt_tried;         /* the first sync tried to take the kernel's tables over */
	char tag[NFT_RULESET_TAG_LEN]; /* this configuration's ruleset tag */
	struct fe_state *fes;     /* sorted by key */
	size_t n_fes, cap_fes;
	struct hp_ref *hps;       /* hash table, cap_hps a power of two */
	size_t n_hps, n_hps_used, cap_hps;
	/* Scratch lists of one commit (pointers into elements kept alive
	 * until the commit ends). */
	const struct nft_elem **dels, **adds;
	size_t n_dels, n_adds, cap_dels, cap_adds;
	/* Affinity chains known to exist in the kernel ("family:name"). */
	char (*aff_chains)[56];
	size_t n_aff_chains, cap_aff_chains;
	/* UDP endpoints removed by this commit: their conntrack entries go. */
	struct conntrack_target *ct_gone;
	size_t n_ct_gone, cap_ct_gone;
	/* The slot table ("slots") per family, [0] ip and [1] ip6: its element
	 * count as committed, and the size ferry declared for it (0: none yet
	 * in this process). See slots_reserve. */
	size_t slots_count[2];
	uint32_t slots_cap[2];
};

/* Monotonic milliseconds, for the timings in the logs. */
static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void fe_key_of(const struct plan_frontend *fe, struct fe_key *k)
{
	memset(k, 0, sizeof(*k));
	k->kind = (uint8_t)fe->kind;
	k->family = (uint8_t)fe->addr.family;
	k->proto = (uint8_t)fe->proto;
	k->port = fe->port;
	memcpy(k->addr, fe->addr.u.bytes, sizeof(k->addr));
}

static int fe_key_cmp(const struct fe_key *a, const struct fe_key *b)
{
	return memcmp(a, b, sizeof(*a));
}

/* Index of key in n->fes, or where it would go (*ret_found false). */
static size_t fes_find(const struct nftables *n, const struct fe_key *key, bool *ret_found)
{
	size_t lo = 0, hi = n->n_fes;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = fe_key_cmp(&n->fes[mid].key, key);
		if (c == 0) {
			*ret_found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*ret_found = false;
	return lo;
}

static int ptrs_push(const struct nft_elem ***v, size_t *n, size_t *cap, const struct nft_elem *e)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 256;
		const struct nft_elem **p = realloc(*v, c * sizeof(*p));
		if (!p)
			return -ENOMEM;
		*v = p;
		*cap = c;
	}
	(*v)[(*n)++] = e;
	return 0;
}

/* Hairpin references: an open-addressing hash table keyed by the element
 * (linear probing; a slot with refs 0 and used set is a tombstone). */
static uint64_t hp_hash(const struct nft_elem *e)
{
	uint64_t h = 1469598103934665603ull ^ e->family;

	for (size_t i = 0; i < 32; i++)
		h = (h ^ e->key[i]) * 1099511628211ull;
	return h;
}

static bool hp_same(const struct nft_elem *a, const struct nft_elem *b)
{
	return a->family == b->family && memcmp(a->key, b->key, 32) == 0;
}

static int hp_grow(struct nftables *n)
{
	size_t cap = n->cap_hps ? n->cap_hps * 2 : 1024;
	struct hp_ref *old = n->hps, *t = calloc(cap, sizeof(*t));
	size_t old_cap = n->cap_hps;

	if (!t)
		return -ENOMEM;
	n->hps = t;
	n->cap_hps = cap;
	n->n_hps = 0;
	n->n_hps_used = 0;
	for (size_t i = 0; i < old_cap; i++) {
		if (!old[i].refs)
			continue;
		size_t j = hp_hash(&old[i].e) & (cap - 1);
		while (t[j].used)
			j = (j + 1) & (cap - 1);
		t[j] = old[i];
		n->n_hps++;
		n->n_hps_used++;
	}
	free(old);
	return 0;
}

/* The slot of e, or of the free slot where it would go (*ret_found false). */
static struct hp_ref *hp_slot(struct nftables *n, const struct nft_elem *e, bool *ret_found)
{
	size_t j = hp_hash(e) & (n->cap_hps - 1);
	struct hp_ref *tomb = NULL;

	while (n->hps[j].used) {
		if (n->hps[j].refs && hp_same(&n->hps[j].e, e)) {
			*ret_found = true;
			return &n->hps[j];
		}
		if (!n->hps[j].refs && !tomb)
			tomb = &n->hps[j];
		j = (j + 1) & (n->cap_hps - 1);
	}
	*ret_found = false;
	return tomb ? tomb : &n->hps[j];
}

/* Take a reference on a hairpin pair; the first one adds the element. */
static int hp_ref(struct nftables *n, const struct nft_elem *e)
{
	struct hp_ref *h;
	bool found;

	if ((n->n_hps_used + 1) * 10 >= n->cap_hps * 7 && hp_grow(n) < 0)
		return -ENOMEM;
	h = hp_slot(n, e, &found);
	if (found) {
		h->refs++;
		return 0;
	}
	if (!h->used)
		n->n_hps_used++;
	h->e = *e;
	h->refs = 1;
	h->used = true;
	n->n_hps++;
	return ptrs_push(&n->adds, &n->n_adds, &n->cap_adds, e);
}

/* Drop a reference; the last one deletes the element. */
static int hp_unref(struct nftables *n, const struct nft_elem *e)
{
	struct hp_ref *h;
	bool found;

	if (!n->cap_hps)
		return 0;
	h = hp_slot(n, e, &found);
	if (!found || --h->refs > 0)
		return 0;
	n->n_hps--;  /* stays used: a tombstone */
	return ptrs_push(&n->dels, &n->n_dels, &n->cap_dels, e);
}

/* A slot table element: its data is an endpoint. */
static bool is_slot_set(uint8_t set)
{
	return set == NFT_SET_SLOTS || set == NFT_SET_NP_SLOTS || set == NFT_SET_AFF_SLOTS ||
	       set == NFT_SET_NP_AFF_SLOTS;
}

static int ct_gone_push(struct nftables *n, const struct nft_elem *e)
{
	/* A slot element of a UDP frontend: its endpoint may be gone. */
	size_t alen = e->family == AF_INET6 ? 16 : 4;
	struct conntrack_target t = { .family = e->family };
	size_t proto_off = e->set == NFT_SET_SLOTS || e->set == NFT_SET_AFF_SLOTS ? alen : 0;

	if (e->key[proto_off] != IPPROTO_UDP)
		return 0;
	memcpy(t.addr, e->data, alen);
	memcpy(&t.port_be, e->data + alen, 2);
	for (size_t i = 0; i < n->n_ct_gone; i++)
		if (memcmp(&n->ct_gone[i], &t, sizeof(t)) == 0)
			return 0;
	if (n->n_ct_gone == n->cap_ct_gone) {
		size_t c = n->cap_ct_gone ? n->cap_ct_gone * 2 : 16;
		struct conntrack_target *p = realloc(n->ct_gone, c * sizeof(*p));
		if (!p)
			return -ENOMEM;
		n->ct_gone = p;
		n->cap_ct_gone = c;
	}
	n->ct_gone[n->n_ct_gone++] = t;
	return 0;
}

/* Queue the difference between old (a frontend's committed elements) and
 * new (its recomputed ones), both sorted. Elements in both stay. */
static int diff_elems(struct nftables *n, const struct nft_elem *old, size_t n_old,
		      const struct nft_elem *new, size_t n_new)
{
	size_t i = 0, j = 0;
	int r = 0;

	while (r == 0 && (i < n_old || j < n_new)) {
		int c = i == n_old ? 1 : j == n_new ? -1 : nft_elem_cmp(&old[i], &new[j], NULL);

		if (c == 0) {
			i++;
			j++;
		} else if (c < 0) {
			if (old[i].set == NFT_SET_HAIRPIN) {
				r = hp_unref(n, &old[i]);
			} else {
				r = ptrs_push(&n->dels, &n->n_dels, &n->cap_dels, &old[i]);
				if (r == 0 && is_slot_set(old[i].set))
					r = ct_gone_push(n, &old[i]);
			}
			i++;
		} else {
			if (new[j].set == NFT_SET_HAIRPIN)
				r = hp_ref(n, &new[j]);
			else
				r = ptrs_push(&n->adds, &n->n_adds, &n->cap_adds, &new[j]);
			j++;
		}
	}
	return r;
}

/* Endpoints still used by some slot element of the new elements are not
 * "gone" even if one frontend dropped them (e.g. a resize of the table). */
static void ct_gone_filter(struct nftables *n)
{
	size_t w = 0;

	for (size_t i = 0; i < n->n_ct_gone; i++) {
		bool used = false;
		for (size_t j = 0; j < n->n_adds && !used; j++) {
			const struct nft_elem *e = n->adds[j];
			size_t alen = e->family == AF_INET6 ? 16 : 4;
			if (is_slot_set(e->set) && e->family == n->ct_gone[i].family &&
			    memcmp(e->data, n->ct_gone[i].addr, alen) == 0 &&
			    memcmp(e->data + alen, &n->ct_gone[i].port_be, 2) == 0)
				used = true;
		}
		if (!used)
			n->ct_gone[w++] = n->ct_gone[i];
	}
	n->n_ct_gone = w;
}

/* Queue the creation of the affinity chains the queued adds jump to and
 * that this process has not created yet (they are never removed: a few
 * per distinct timeout and size; ferry cleanup removes the table). */
static int ensure_aff_chains(struct nftables *n)
{
	for (size_t i = 0; i < n->n_adds; i++) {
		const struct nft_elem *e = n->adds[i];
		char name[56], chain[48];
		bool known = false;
		int r;

		if ((e->set != NFT_SET_FE && e->set != NFT_SET_NP) || !e->aff_timeout)
			continue;
		snprintf(name, sizeof(name), "%d:%s", e->family, nft_verdict_chain(e, chain, sizeof(chain)));
		for (size_t j = 0; j < n->n_aff_chains && !known; j++)
			known = strcmp(n->aff_chains[j], name) == 0;
		if (known)
			continue;
		if (n->n_aff_chains == n->cap_aff_chains) {
			size_t c = n->cap_aff_chains ? n->cap_aff_chains * 2 : 8;
			char(*p)[56] = realloc(n->aff_chains, c * sizeof(*p));
			if (!p)
				return -ENOMEM;
			n->aff_chains = p;
			n->cap_aff_chains = c;
		}
		r = nft_aff_chain_msgs(n->batch, &n->rcfg, e);
		if (r < 0)
			return r;
		memcpy(n->aff_chains[n->n_aff_chains++], name, sizeof(name));
	}
	return 0;
}

/* An affinity frontend removed or resized: its clients' remembered slots
 * may point past the new table, so forget every client of that timeout's
 * map (they pick a fresh slot on their next connection). */
static int elem_key_cmp(const void *a, const void *b)
{
	bool same;
	int c = nft_elem_cmp(*(const struct nft_elem *const *)a, *(const struct nft_elem *const *)b, &same);

	return same ? 0 : c;
}

/* Is e (a deleted verdict-map element) added back with the same slot
 * count and affinity, only its digest changed (new endpoints)? aff_adds:
 * the queued adds of affinity verdict-map elements, sorted by key. */
static bool aff_kept(const struct nft_elem *e, const struct nft_elem **aff_adds, size_t n)
{
	const struct nft_elem *const *a = n ? bsearch(&e, aff_adds, n, sizeof(*aff_adds), elem_key_cmp) : NULL;

	return a && (*a)->verdict == e->verdict && (*a)->aff_timeout == e->aff_timeout &&
	       (*a)->aff_mode == e->aff_mode;
}

static int flush_aff_maps(struct nftables *n)
{
	uint32_t done[16][2];
	size_t n_done = 0, n_aff = 0;
	const struct nft_elem **aff_adds = NULL;
	int r = 0;

	for (size_t i = 0; i < n->n_dels && !aff_adds; i++)
		if ((n->dels[i]->set == NFT_SET_FE || n->dels[i]->set == NFT_SET_NP) && n->dels[i]->aff_timeout) {
			aff_adds = malloc((n->n_adds + 1) * sizeof(*aff_adds));
			if (!aff_adds)
				return -ENOMEM;
			for (size_t j = 0; j < n->n_adds; j++)
				if ((n->adds[j]->set == NFT_SET_FE || n->adds[j]->set == NFT_SET_NP) &&
				    n->adds[j]->aff_timeout)
					aff_adds[n_aff++] = n->adds[j];
			if (n_aff > 1)
				qsort(aff_adds, n_aff, sizeof(*aff_adds), elem_key_cmp);
		}
	for (size_t i = 0; i < n->n_dels && r == 0; i++) {
		const struct nft_elem *e = n->dels[i];
		char name[32];
		bool seen = false;

		if ((e->set != NFT_SET_FE && e->set != NFT_SET_NP) || !e->aff_timeout || aff_kept(e, aff_adds, n_aff))
			continue;
		for (size_t j = 0; j < n_done && !seen; j++)
			seen = done[j][0] == e->family && done[j][1] == e->aff_timeout;
		if (seen)
			continue;
		if (n_done < 16) {
			done[n_done][0] = e->family;
			done[n_done][1] = e->aff_timeout;
			n_done++;
		}
		snprintf(name, sizeof(name), "aff_%u", e->aff_timeout);
		r = nft_set_flush_name(n->batch, e->family, name);
	}
	free(aff_adds);
	return r;
}

static void fes_clear(struct nftables *n)
{
	for (size_t i = 0; i < n->n_fes; i++)
		free(n->fes[i].elems);
	n->n_fes = 0;
	n->n_hps = n->n_hps_used = 0;
	if (n->hps)
		memset(n->hps, 0, n->cap_hps * sizeof(*n->hps));
	n->n_aff_chains = 0;
}

/* Sets whose elements point at others: the verdict maps (at slot tables
 * through their chains) and the digests (vouching for slot tables). */
static bool is_pointer_set(uint8_t set)
{
	return nft_set_is_vmap((enum nft_set_id)set) || set == NFT_SET_DIGEST || set == NFT_SET_NP_DIGEST;
}

/* Order a list of queued elements by (family, set), keeping their order
 * otherwise, so that one message carries many elements of one set. Adds
 * (pointers_last) put the pointer sets after the rest, deletes before:
 * should a huge change be split over several transactions, no verdict or
 * digest element is in the kernel without the slots it points at. */
static int group_by_set(const struct nft_elem **v, size_t n, bool pointers_last)
{
	size_t count[4 * NFT_SET_COUNT + 1] = { 0 };
	const struct nft_elem **tmp;

#define BUCKET(e) (((e)->family == AF_INET6 ? 2 * NFT_SET_COUNT : 0) + \
		   (is_pointer_set((e)->set) == pointers_last ? NFT_SET_COUNT : 0) + (e)->set)
	if (n < 2)
		return 0;
	tmp = malloc(n * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		count[BUCKET(v[i]) + 1]++;
	for (size_t b = 1; b <= 4 * NFT_SET_COUNT; b++)
		count[b] += count[b - 1];
	for (size_t i = 0; i < n; i++)
		tmp[count[BUCKET(v[i])]++] = v[i];
#undef BUCKET
	memcpy(v, tmp, n * sizeof(*v));
	free(tmp);
	return 0;
}

/* Append the messages of the queued difference to the batch: deletes,
 * the affinity maps that must forget their clients, affinity chains the
 * adds need, then adds. Returns 0 or -ENOMEM. */
static int queue_diff_msgs(struct nftables *n)
{
	int r = group_by_set(n->dels, n->n_dels, false);

	if (r == 0)
		r = group_by_set(n->adds, n->n_adds, true);
	if (r == 0)
		r = nft_elems_msgs(n->batch, false, n->dels, n->n_dels);
	if (r == 0)
		r = flush_aff_maps(n);
	if (r == 0)
		r = ensure_aff_chains(n);
	if (r == 0)
		r = nft_elems_msgs(n->batch, true, n->adds, n->n_adds);
	return r;
}

/* Log a refused commit with what was sent. */
static int log_commit_error(struct nftables *n, int r, const struct nft_batch_error *be, const char *what)
{
	log_error("nftables: %s refused by the kernel: %s; refused message: %s (%zu messages were sent)",
		  what, strerror(-r), be->desc, nft_batch_count(n->batch));
	if (log_get_level() >= LOG_LEVEL_DEBUG)
		for (size_t i = 0; i < nft_batch_count(n->batch) && i < 200; i++)
			log_debug("nftables: sent[%zu] %s", i, nft_batch_desc(n->batch, i));
	return r;
}

/* Slot-table elements among v[0..n), per family ([0] ip, [1] ip6). */
static void count_slots(const struct nft_elem *const *v, size_t n, size_t ret[2])
{
	ret[0] = ret[1] = 0;
	for (size_t i = 0; i < n; i++)
		if (v[i]->set == NFT_SET_SLOTS)
			ret[v[i]->family == AF_INET6]++;
}

/* Smallest slot-table size declared: the kernel's hash for it is at least
 * this big (64k elements: 1 MB of buckets). */
#define SLOTS_SIZE_MIN 65536

/* Make room for need[f] slot-table elements in family f. The slot table
 * holds one element per endpoint (1 M at 100k services x 10): declared
 * without a size, the kernel's resizable hash starts small and is rehashed
 * again and again while a big transaction fills it, about half of the
 * commit time. With a size the kernel sizes a hash for it when it creates
 * the set. But a size is also a hard cap, and a raised size counts only
 * once its transaction commits: so the raise is a transaction of its own
 * (table + set, created if absent) sent before the elements, with 50 %
 * headroom so that it is rare. Returns 0 or a negative errno (logged). */
static int slots_reserve(struct nftables *n, const size_t need[2])
{
	struct nft_batch *b = NULL;
	struct nft_batch_error be = { 0 };
	uint32_t want[2] = { 0, 0 };
	int r = 0;

	for (int f = 0; f < 2; f++) {
		size_t w;

		if (need[f] <= n->slots_cap[f])
			continue;
		w = need[f] + need[f] / 2;
		if (w < SLOTS_SIZE_MIN)
			w = SLOTS_SIZE_MIN;
		want[f] = w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
	}
	if (!want[0] && !want[1])
		return 0;
	if (!(b = nft_batch_new()))
		return -ENOMEM;
	for (int f = 0; f < 2 && r == 0; f++) {
		if (!want[f])
			continue;
		r = nft_table_msg(b, f ? AF_INET6 : AF_INET);
		if (r == 0)
			r = nft_set_declare_sized(b, f ? AF_INET6 : AF_INET, NFT_SET_SLOTS, want[f]);
	}
	if (r == 0)
		r = nft_batch_commit(n->nl, b, 0, &be);
	if (r == 0) {
		for (int f = 0; f < 2; f++)
			if (want[f])
				n->slots_cap[f] = want[f];
		log_debug("nftables: slot table sized for %u (ip) / %u (ip6) elements",
			  n->slots_cap[0], n->slots_cap[1]);
	} else if (r == -ENOMEM) {
		log_errno(r, "nftables: out of memory sizing the slot table");
	} else {
		log_errno(r, "nftables: sizing the slot table failed: %s", be.desc);
	}
	nft_batch_free(b);
	return r;
}

/* Compute the elements of one plan frontend into a fresh array. */
static int fe_compute(struct nftables *n, const struct plan_frontend *fe, struct nft_elem_vec *vec)
{
	bool truncated;
	int r = nft_frontend_elems(fe, &n->ecfg, vec, &truncated);
	char buf[INET_ENDPOINT_STRLEN];

	if (r == 0 && truncated)
		log_warn("nftables: %s/%s has more than %u endpoints; only %u get slots",
			 inet_endpoint_format(&fe->addr, fe->port, buf), inet_proto_name(fe->proto),
			 NFT_SLOTS_MAX, NFT_SLOTS_MAX);
	return r;
}

/* Replace the in-memory state by the plan's: every frontend's elements
 * computed and kept, hairpin references taken. Afterwards n->adds lists
 * every element the plan needs (each hairpin once). Returns 0 or -ENOMEM
 * (the state is then empty). */
static int state_from_plan(struct nftables *n, const struct plan *plan)
{
	struct fe_state *fes = NULL;
	size_t n_new = 0;
	int r = 0;

	n->n_adds = n->n_dels = n->n_ct_gone = 0;
	fes_clear(n);
	if (plan->n_frontends && !(fes = calloc(plan->n_frontends, sizeof(*fes))))
		return -ENOMEM;
	for (size_t i = 0; i < plan->n_frontends; i++) {
		struct nft_elem_vec vec = { 0 };

		r = fe_compute(n, &plan->frontends[i], &vec);
		if (r < 0) {
			for (size_t j = 0; j < n_new; j++)
				free(fes[j].elems);
			free(fes);
			return r;
		}
		fe_key_of(&plan->frontends[i], &fes[n_new].key);
		fes[n_new].elems = vec.v;
		fes[n_new].n = vec.n;
		n_new++;
	}
	/* Install the new state first: hairpin refs point into it. */
	free(n->fes);
	n->fes = fes;
	n->n_fes = n->cap_fes = n_new;
	if (n->n_fes > 1)
		qsort(n->fes, n->n_fes, sizeof(*n->fes), (int (*)(const void *, const void *))fe_key_cmp);
	for (size_t i = 0; r == 0 && i < n->n_fes; i++)
		r = diff_elems(n, NULL, 0, n->fes[i].elems, n->fes[i].n);
	if (r < 0)
		fes_clear(n);
	return r;
}

/* Queue the removal of the chains in ferry's tables that this version
 * does not program (an older ferry's): every rule of each first, so that
 * no jump to one is left, then the chains. A table that cannot be read
 * keeps its chains (logged): they are harmless beside the new ones. */
static int stale_chain_msgs(struct nftables *n)
{
	int r = 0;

	for (int fam = 0; fam < 2 && r == 0; fam++) {
		int family = fam ? AF_INET6 : AF_INET;
		char(*names)[NFT_CHAIN_NAME_MAX] = NULL;
		size_t count = 0;

		if (nft_read_chains(n->nl, family, &names, &count) < 0) {
			log_warn("nftables: cannot list the chains of table %s %s: chains of an earlier version, "
				 "if any, stay", fam ? "ip6" : "ip", NFT_TABLE_NAME);
			continue;
		}
		for (int pass = 0; pass < 2 && r == 0; pass++)
			for (size_t i = 0; i < count && r == 0; i++) {
				if (nft_ruleset_has_chain(names[i]))
					continue;
				if (pass == 0)
					log_info("nftables: removing chain %s %s %s (not in this version's ruleset)",
						 fam ? "ip6" : "ip", NFT_TABLE_NAME, names[i]);
				r = pass == 0 ? nft_chain_flush_msg(n->batch, family, names[i])
					      : nft_chain_delete_msg(n->batch, family, names[i]);
			}
		free(names);
	}
	return r;
}

static int nftables_full(struct nftables *n, const struct plan *plan)
{
	struct nft_batch_error be = { 0 };
	double t0 = now_ms(), t1;
	int r = 0;

	nft_batch_clear(n->batch);
	r = stale_chain_msgs(n);
	for (int fam = 0; fam < 2 && r == 0; fam++) {
		int family = fam ? AF_INET6 : AF_INET;
		r = nft_ruleset_msgs(n->batch, family, &n->rcfg);
		for (int s = 0; s < NFT_SET_COUNT && r == 0; s++)
			r = nft_set_flush(n->batch, family, (enum nft_set_id)s);
	}
	if (r == 0)
		r = state_from_plan(n, plan);
	if (r == 0)
		r = ensure_aff_chains(n);
	if (r == 0)
		r = group_by_set(n->adds, n->n_adds, true);
	if (r == 0)
		r = nft_elems_msgs(n->batch, true, n->adds, n->n_adds);
	if (r < 0) {
		fes_clear(n);
		n->need_full = true;
		return log_errno(r, "nftables: out of memory building the full ruleset");
	}
	t1 = now_ms();
	{
		size_t need[2];

		count_slots(n->adds, n->n_adds, need);
		r = slots_reserve(n, need);
		if (r == 0)
			r = nft_batch_commit(n->nl, n->batch, 0, &be);
		if (r == 0) {
			n->slots_count[0] = need[0];
			n->slots_count[1] = need[1];
		}
	}
	if (r < 0) {
		fes_clear(n);
		n->need_full = true;
		if (be.err == 0)
			return r; /* slots_reserve logged it */
		return log_commit_error(n, r, &be, "full sync");
	}
	log_info("nftables: full sync: %zu frontends, %zu elements in one transaction (%zu messages) "
		 "in %.1f ms (build %.1f ms, kernel %.1f ms)",
		 n->n_fes, n->n_adds, nft_batch_count(n->batch), now_ms() - t0, t1 - t0, now_ms() - t1);
	n->need_full = false;
	return 0;
}

static int elem_ptr_cmp(const void *a, const void *b)
{
	return nft_elem_cmp(*(const struct nft_elem *const *)a, *(const struct nft_elem *const *)b, NULL);
}


/* Queue the difference between the kernel's elements (have, sorted) and
 * the plan's (n->adds, all of them): n->dels gets what only the kernel
 * has, n->adds is cut down to what only the plan has. */
static void diff_kernel(struct nftables *n, const struct nft_elem_vec *have)
{
	size_t i = 0, j = 0, w = 0;

	if (n->n_adds > 1)
		qsort(n->adds, n->n_adds, sizeof(*n->adds), elem_ptr_cmp);
	n->n_dels = 0;
	while (i < have->n || j < n->n_adds) {
		int c = i == have->n ? 1 : j == n->n_adds ? -1 : nft_elem_cmp(&have->v[i], n->adds[j], NULL);

		if (c == 0) {
			i++;
			j++;
		} else if (c < 0) {
			/* n->dels has room: it only ever grows (ptrs_push). */
			if (ptrs_push(&n->dels, &n->n_dels, &n->cap_dels, &have->v[i]) == 0 &&
			    is_slot_set(have->v[i].set))
				ct_gone_push(n, &have->v[i]);
			i++;
		} else {
			n->adds[w++] = n->adds[j++];
		}
	}
	n->n_adds = w;
}

/* At debug level, log the first few of n queued elements. */
static void log_elems(const char *what, const struct nft_elem *const *v, size_t n)
{
	if (log_get_level() < LOG_LEVEL_DEBUG)
		return;
	for (size_t i = 0; i < n && i < 20; i++) {
		char buf[256] = "";
		FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");

		if (!f)
			return;
		nft_elem_print(f, v[i]);
		fclose(f);
		log_debug("nftables: %s %s %s: %s", what, v[i]->family == AF_INET6 ? "ip6" : "ip",
			  nft_set_name((enum nft_set_id)v[i]->set), buf);
	}
}

/* Take over the tables an earlier ferry left, on the first sync of this
 * process: when the kernel's rules carry this configuration's tag, read
 * every set once, diff it against the plan and send only the difference,
 * in one transaction, leaving the rules alone. Returns 1 when the tables
 * cannot be taken over (absent, other rules, elements ferry does not
 * write): the caller replaces them. */
static int nftables_adopt(struct nftables *n, const struct plan *plan)
{
	struct nft_elem_vec have = { 0 };
	struct nft_batch_error be = { 0 };
	size_t want_slots[2], have_slots[2] = { 0, 0 }, need[2], kept = 0;
	double t0 = now_ms(), t_read;
	int r;

	if (!nft_takeover_rules_match(n->nl, n->tag))
		return 1;
	nft_batch_clear(n->batch);
	r = state_from_plan(n, plan);
	if (r < 0)
		return log_errno(r, "nftables: out of memory taking over the tables");
	if (n->n_adds > 1)
		qsort(n->adds, n->n_adds, sizeof(*n->adds), elem_ptr_cmp);
	if (nft_takeover_read(n->nl, n->rcfg.masq_mark, n->adds, n->n_adds, &have) < 0) {
		nft_elem_vec_done(&have);
		fes_clear(n);
		return 1;
	}
	t_read = now_ms() - t0;
	for (size_t i = 0; i < have.n; i++)
		if (have.v[i].set == NFT_SET_SLOTS)
			have_slots[have.v[i].family == AF_INET6]++;
	{
		count_slots(n->adds, n->n_adds, want_slots);
		kept = n->n_adds;
		diff_kernel(n, &have);
		kept -= n->n_adds;
		log_elems("take-over removes from", (const struct nft_elem *const *)n->dels, n->n_dels);
		log_elems("take-over adds to", (const struct nft_elem *const *)n->adds, n->n_adds);
		ct_gone_filter(n);
		r = queue_diff_msgs(n);
	}
	if (r < 0) {
		nft_elem_vec_done(&have);
		fes_clear(n);
		return log_errno(r, "nftables: out of memory taking over the tables");
	}
	/* The slot table holds the kernel's elements until the commit. */
	for (int f = 0; f < 2; f++)
		need[f] = want_slots[f] > have_slots[f] ? want_slots[f] : have_slots[f];
	r = slots_reserve(n, need);
	if (r == 0 && nft_batch_count(n->batch))
		r = nft_batch_commit(n->nl, n->batch, 0, &be);
	if (r < 0) {
		if (be.err)
			log_commit_error(n, r, &be, "taking over the tables");
		nft_elem_vec_done(&have);
		fes_clear(n);
		n->need_full = true;
		return r;
	}
	n->slots_count[0] = want_slots[0];
	n->slots_count[1] = want_slots[1];
	log_info("nftables: took over the tables of an earlier ferry: %zu elements kept, %zu removed, %zu added "
		 "(%zu messages) in %.1f ms (reading %.1f ms); rules kept",
		 kept, n->n_dels, n->n_adds, nft_batch_count(n->batch), now_ms() - t0, t_read);
	if (n->n_ct_gone)
		conntrack_flush_udp(n->ct_gone, n->n_ct_gone);
	nft_elem_vec_done(&have);
	n->need_full = false;
	return 0;
}

/* A sync that cannot diff against kept state: the first one of the
 * process takes the kernel's tables over when it can, any other (after a
 * failure) replaces everything. */
static int nftables_rebuild(struct nftables *n, const struct plan *plan)
{
	if (!n->adopt_tried) {
		int r;

		n->adopt_tried = true;
		r = nftables_adopt(n, plan);
		if (r != 1)
			return r;
	}
	return nftables_full(n, plan);
}

/* Recompute frontend fe (NULL: removed, key given) and queue its diff.
 * The new elements are parked in *ret_new until the commit succeeds. */
struct pending {
	size_t idx;           /* index in n->fes, or SIZE_MAX: insert */
	struct fe_key key;
	struct nft_elem_vec vec;
	bool remove;
};

static int nftables_incremental(struct nftables *n, const struct plan *plan,
				const struct plan_frontend *const *changed, size_t n_changed,
				const struct fe_key *removed, size_t n_removed)
{
	struct pending *pend = calloc(n_changed + n_removed + 1, sizeof(*pend));
	struct nft_batch_error be = { 0 };
	size_t n_pend = 0, slot_adds[2], slot_dels[2];
	bool reserve_failed = false;
	double t0 = now_ms();
	int r = 0;

	(void)plan;
	if (!pend)
		return -ENOMEM;
	nft_batch_clear(n->batch);
	n->n_adds = n->n_dels = n->n_ct_gone = 0;
	for (size_t i = 0; r == 0 && i < n_changed; i++) {
		struct pending *p = &pend[n_pend++];
		bool found;

		fe_key_of(changed[i], &p->key);
		p->idx = fes_find(n, &p->key, &found);
		if (!found)
			p->idx = SIZE_MAX;
		r = fe_compute(n, changed[i], &p->vec);
		if (r == 0)
			r = found ? diff_elems(n, n->fes[p->idx].elems, n->fes[p->idx].n, p->vec.v, p->vec.n)
				  : diff_elems(n, NULL, 0, p->vec.v, p->vec.n);
	}
	for (size_t i = 0; r == 0 && i < n_removed; i++) {
		bool found;
		size_t idx = fes_find(n, &removed[i], &found);

		if (!found)
			continue;
		pend[n_pend].idx = idx;
		pend[n_pend].key = removed[i];
		pend[n_pend].remove = true;
		n_pend++;
		r = diff_elems(n, n->fes[idx].elems, n->fes[idx].n, NULL, 0);
	}
	ct_gone_filter(n);
	if (r == 0)
		r = queue_diff_msgs(n);
	count_slots(n->adds, n->n_adds, slot_adds);
	count_slots(n->dels, n->n_dels, slot_dels);
	if (r == 0) {
		size_t need[2] = { n->slots_count[0] + slot_adds[0], n->slots_count[1] + slot_adds[1] };
		r = slots_reserve(n, need);
		reserve_failed = r < 0;
	}
	if (r == 0)
		r = nft_batch_commit(n->nl, n->batch, NFT_CHUNK_MSGS, &be);
	if (r == 0)
		for (int f = 0; f < 2; f++) {
			size_t c = n->slots_count[f] + slot_adds[f];
			n->slots_count[f] = c > slot_dels[f] ? c - slot_dels[f] : 0;
		}
	if (r < 0) {
		if (r != -ENOMEM && !reserve_failed)
			log_commit_error(n, r, &be, "update");
		for (size_t i = 0; i < n_pend; i++)
			nft_elem_vec_done(&pend[i].vec);
		free(pend);
		/* The kernel may hold part of it (earlier chunks): start over. */
		n->need_full = true;
		return r;
	}
	log_debug("nftables: update: %zu frontends changed, %zu removed: -%zu +%zu elements, %zu messages "
		  "in %.2f ms", n_changed, n_removed, n->n_dels, n->n_adds, nft_batch_count(n->batch),
		  now_ms() - t0);
	if (n->n_ct_gone)
		conntrack_flush_udp(n->ct_gone, n->n_ct_gone);

	/* Commit succeeded: move the new element lists in. Removals first (by
	 * descending index), then updates in place, then inserts. */
	for (size_t i = n_pend; i-- > 0;) {
		struct pending *p = &pend[i];
		if (p->remove) {
			/* Re-find: indices of removals are stable (no insert yet) but
			 * several removals shift each other. */
			bool found;
			size_t idx = fes_find(n, &p->key, &found);
			if (!found)
				continue;
			free(n->fes[idx].elems);
			memmove(&n->fes[idx], &n->fes[idx + 1], (n->n_fes - idx - 1) * sizeof(*n->fes));
			n->n_fes--;
			p->remove = false;
			p->idx = SIZE_MAX - 1; /* done */
		}
	}
	for (size_t i = 0; i < n_pend; i++) {
		struct pending *p = &pend[i];
		bool found;
		size_t idx;

		if (p->idx == SIZE_MAX - 1)
			continue;
		idx = fes_find(n, &p->key, &found);
		if (found) {
			free(n->fes[idx].elems);
			n->fes[idx].elems = p->vec.v;
			n->fes[idx].n = p->vec.n;
			continue;
		}
		if (n->n_fes == n->cap_fes) {
			size_t c = n->cap_fes ? n->cap_fes * 2 : 64;
			struct fe_state *f = realloc(n->fes, c * sizeof(*f));
			if (!f) {
				/* State can no longer be trusted: rebuild next time. */
				nft_elem_vec_done(&p->vec);
				n->need_full = true;
				continue;
			}
			n->fes = f;
			n->cap_fes = c;
		}
		memmove(&n->fes[idx + 1], &n->fes[idx], (n->n_fes - idx) * sizeof(*n->fes));
		n->fes[idx] = (struct fe_state){ .key = p->key, .elems = p->vec.v, .n = p->vec.n };
		n->n_fes++;
	}
	free(pend);
	return 0;
}

static int nftables_sync(void *priv, const struct plan *plan)
{
	struct nftables *n = priv;
	const struct plan_frontend **changed;
	struct fe_key *removed = NULL;
	size_t n_removed = 0;
	int r;

	if (!n->nl)
		return -ENOTCONN;
	if (n->need_full)
		return nftables_rebuild(n, plan);
	/* Every frontend of the plan is recomputed; the diff against the kept
	 * elements decides what the kernel sees. */
	changed = malloc((plan->n_frontends + 1) * sizeof(*changed));
	if (!changed)
		return -ENOMEM;
	for (size_t i = 0; i < n->n_fes; i++)
		n->fes[i].seen = false;
	for (size_t i = 0; i < plan->n_frontends; i++) {
		struct fe_key k;
		bool found;
		size_t idx;

		changed[i] = &plan->frontends[i];
		fe_key_of(&plan->frontends[i], &k);
		idx = fes_find(n, &k, &found);
		if (found)
			n->fes[idx].seen = true;
	}
	for (size_t i = 0; i < n->n_fes; i++)
		if (!n->fes[i].seen)
			n_removed++;
	if (n_removed) {
		removed = malloc(n_removed * sizeof(*removed));
		if (!removed) {
			free(changed);
			return -ENOMEM;
		}
		n_removed = 0;
		for (size_t i = 0; i < n->n_fes; i++)
			if (!n->fes[i].seen)
				removed[n_removed++] = n->fes[i].key;
	}
	r = nftables_incremental(n, plan, changed, plan->n_frontends, removed, n_removed);
	free(changed);
	free(removed);
	return r;
}

static int ptr_cmp(const void *a, const void *b)
{
	const void *x = *(const void *const *)a, *y = *(const void *const *)b;
	return x < y ? -1 : x > y;
}

static int nftables_apply(void *priv, const struct plan *plan, const struct plan_diff *diff)
{
	struct nftables *n = priv;
	const struct plan_frontend **changed;
	const struct plan_epset **eps = NULL;
	struct fe_key *removed = NULL;
	size_t n_changed = 0;
	int r;

	if (!n->nl)
		return -ENOTCONN;
	if (n->need_full)
		return nftables_rebuild(n, plan);
	changed = malloc((diff->n_fe_added + diff->n_fe_changed + plan->n_frontends + 1) * sizeof(*changed));
	removed = malloc((diff->n_fe_removed + 1) * sizeof(*removed));
	if (diff->n_eps_changed)
		eps = malloc(diff->n_eps_changed * sizeof(*eps));
	if (!changed || !removed || (diff->n_eps_changed && !eps)) {
		free(changed);
		free(removed);
		free(eps);
		return -ENOMEM;
	}
	for (size_t i = 0; i < diff->n_fe_added; i++)
		changed[n_changed++] = diff->fe_added[i];
	for (size_t i = 0; i < diff->n_fe_changed; i++)
		changed[n_changed++] = diff->fe_changed[i];
	if (diff->n_eps_changed) {
		/* Frontends whose endpoint set changed (one pass over the plan). */
		memcpy(eps, diff->eps_changed, diff->n_eps_changed * sizeof(*eps));
		qsort(eps, diff->n_eps_changed, sizeof(*eps), ptr_cmp);
		for (size_t i = 0; i < plan->n_frontends; i++) {
			const void *key = plan->frontends[i].epset;
			if (bsearch(&key, eps, diff->n_eps_changed, sizeof(*eps), ptr_cmp))
				changed[n_changed++] = &plan->frontends[i];
		}
	}
	for (size_t i = 0; i < diff->n_fe_removed; i++)
		fe_key_of(diff->fe_removed[i], &removed[i]);
	/* A frontend both changed and found via its epset is listed twice:
	 * recompute it once. */
	if (n_changed > 1) {
		size_t w = 1;
		qsort(changed, n_changed, sizeof(*changed), ptr_cmp);
		for (size_t i = 1; i < n_changed; i++)
			if (changed[i] != changed[w - 1])
				changed[w++] = changed[i];
		n_changed = w;
	}
	r = nftables_incremental(n, plan, changed, n_changed, removed, diff->n_fe_removed);
	free(changed);
	free(removed);
	free(eps);
	return r;
}

static int nftables_probe(char *why, size_t why_len)
{
	struct mnl_socket *nl = NULL;
	struct nft_batch *b = NULL;
	struct nft_batch_error be = { 0 };
	char name[64];
	int r;

	r = nft_socket_open(&nl);
	if (r < 0) {
		snprintf(why, why_len, "cannot open a NETLINK_NETFILTER socket: %s", strerror(-r));
		return r;
	}
	b = nft_batch_new();
	snprintf(name, sizeof(name), "ferry_probe_%ld", (long)getpid());
	r = b ? nft_probe_msgs(b, name) : -ENOMEM;
	if (r == 0)
		r = nft_batch_commit(nl, b, 0, &be);
	if (r < 0)
		snprintf(why, why_len, "the kernel refused an nf_tables transaction with a nat chain (%s)%s",
			 strerror(-r), r == -EPERM ? ": needs CAP_NET_ADMIN (run as root)" : "");
	nft_batch_free(b);
	mnl_socket_close(nl);
	return r;
}

int nftables_config(const struct nftables_options *opts, struct nft_ruleset_cfg *rcfg,
		    struct nft_elems_cfg *ecfg)
{
	static const struct nftables_options defaults = { 0 };
	const struct local_detect *local;

	if (!opts)
		opts = &defaults;
	local = &opts->local;
	*rcfg = (struct nft_ruleset_cfg){
		.masq_mark = opts->masquerade_mark ? opts->masquerade_mark : NFTABLES_DEFAULT_MASQ_MARK,
		.cluster_cidrs = local->cluster_cidrs,
		.n_cluster_cidrs = local->n_cluster_cidrs,
	};
	if (local->mode != LOCAL_DETECT_CLUSTER_CIDR) {
		size_t len = local->interface ? strlen(local->interface) : 0;

		if (len == 0 || len > NFT_IFNAME_MAX)
			return log_errno(-EINVAL, "nftables: local interface name '%s' must be 1-%d characters",
					 local->interface ? local->interface : "", NFT_IFNAME_MAX);
		memcpy(rcfg->local_iifname, local->interface, len);
		rcfg->local_iifname_prefix = local->mode == LOCAL_DETECT_INTERFACE_NAME_PREFIX;
	}
	*ecfg = (struct nft_elems_cfg){
		.masq_mark = rcfg->masq_mark,
		.local_v4 = nft_ruleset_detects_local(rcfg, AF_INET),
		.local_v6 = nft_ruleset_detects_local(rcfg, AF_INET6),
	};
	return 0;
}

static int nftables_init(void *priv, const void *options)
{
	struct nftables *n = priv;
	int r;

	n->need_full = true;
	r = nftables_config(options, &n->rcfg, &n->ecfg);
	if (r < 0)
		return r;
	if (n->rcfg.n_cluster_cidrs) {
		/* Owned copies: the options need not outlive init. */
		n->cidrs = calloc(n->rcfg.n_cluster_cidrs, sizeof(*n->cidrs));
		if (!n->cidrs)
			return -ENOMEM;
		memcpy(n->cidrs, n->rcfg.cluster_cidrs, n->rcfg.n_cluster_cidrs * sizeof(*n->cidrs));
		n->rcfg.cluster_cidrs = n->cidrs;
	}
	r = nft_ruleset_tag(&n->rcfg, n->tag);
	if (r < 0)
		return r;
	n->rcfg.tag = n->tag;
	n->batch = nft_batch_new();
	if (!n->batch)
		return -ENOMEM;
	r = nft_socket_open(&n->nl);
	if (r < 0)
		return log_errno(r, "nftables: cannot open a NETLINK_NETFILTER socket");
	if (n->rcfg.local_iifname[0])
		log_info("nftables: masquerade mark 0x%x, detect-local-mode %s: traffic in on iifname \"%s%s\" "
			 "is local", n->rcfg.masq_mark,
			 n->rcfg.local_iifname_prefix ? "InterfaceNamePrefix" : "BridgeInterface",
			 n->rcfg.local_iifname, n->rcfg.local_iifname_prefix ? "*" : "");
	else
		log_info("nftables: masquerade mark 0x%x, detect-local-mode ClusterCIDR: %zu cluster CIDRs",
			 n->rcfg.masq_mark, n->rcfg.n_cluster_cidrs);
	return 0;
}

static void nftables_fini(void *priv)
{
	struct nftables *n = priv;

	/* The rules stay in force: a restarted ferry takes them over (kube-proxy
	 * does the same); `ferry cleanup` removes them. */
	fes_clear(n);
	free(n->fes);
	free(n->hps);
	free(n->dels);
	free(n->adds);
	free(n->ct_gone);
	free(n->aff_chains);
	free(n->cidrs);
	n->batch = nft_batch_free(n->batch);
	if (n->nl)
		mnl_socket_close(n->nl);
	memset(n, 0, sizeof(*n));
}

static int nftables_cleanup(void)
{
	struct mnl_socket *nl = NULL;
	struct nft_batch *b = nft_batch_new();
	int r, ret = 0;

	if (!b)
		return -ENOMEM;
	r = nft_socket_open(&nl);
	if (r < 0) {
		nft_batch_free(b);
		return log_errno(r, "nftables: cannot open a NETLINK_NETFILTER socket");
	}
	/* One transaction per family, so an absent table does not stop the
	 * other's removal. */
	for (int fam = 0; fam < 2; fam++) {
		struct nft_batch_error be = { 0 };

		nft_batch_clear(b);
		r = nft_table_delete_msg(b, fam ? AF_INET6 : AF_INET);
		if (r == 0)
			r = nft_batch_commit(nl, b, 0, &be);
		if (r == -ENOENT)
			r = 0;
		if (r < 0)
			ret = log_errno(r, "nftables: cleanup: %s refused", be.desc);
	}
	nft_batch_free(b);
	mnl_socket_close(nl);
	/* The relay's interception tables are nftables too: remove them here. */
	r = nftables_intercept_ops.cleanup();
	if (r < 0)
		ret = log_errno(r, "nftables: cleanup of the interception tables failed");
	return ret;
}

const struct backend_ops nftables_backend_ops = {
	.name = "nftables",
	.priv_size = sizeof(struct nftables),
	.probe = nftables_probe,
	.init = nftables_init,
	.sync = nftables_sync,
	.apply = nftables_apply,
	.render = nftables_render,
	.cleanup = nftables_cleanup,
	.fini = nftables_fini,
};
