/* State: the nftables backend's committed elements and its staged change
 * (see nft_state.h). Plain data structures, no netlink.
 *
 * Staging never touches the committed state, so a discard only drops what
 * was staged. The references a change takes and drops on shared elements
 * (hairpin pairs, cluster IPs: nft_state_is_shared_set) are counted
 * apart, per element (struct nft_state_hp_delta, a small hash
 * index over them); the commit adds them to the committed counts. The
 * committed frontend array and hairpin table are grown while staging, so
 * the commit, which runs after the kernel accepted the change, cannot run
 * out of memory and leave the state behind the kernel.
 */
#include "nft_state.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sorted_diff.h"

struct nft_state_pending {
	struct nft_state_key key;
	size_t idx;               /* index in fes; SIZE_MAX: a new frontend */
	size_t seq;               /* staging order */
	struct nft_elem *elems;   /* the new elements, owned (NULL: removal) */
	size_t n;
	bool remove;
	bool pooled;              /* elems is in the pool (not to be freed) */
};

struct nft_state_chunk {
	struct nft_state_chunk *next;
	size_t used, cap;         /* elements */
	struct nft_elem v[];
};

/* A zeroed array of n items of size bytes, or NULL. Not calloc: its fresh
 * pages are mapped to the zero page on a first read, and the first write
 * then costs a copy-on-write fault with a TLB shootdown across the
 * process's threads (slow in a VM); memset writes each page first. */
static void *zalloc(size_t n, size_t size)
{
	void *p = n && size > SIZE_MAX / n ? NULL : malloc(n * size);

	if (p)
		memset(p, 0, n * size);
	return p;
}

/* Elements per pool block (about 1 MiB). */
#define CHUNK_ELEMS 16384

/* Room for n elements in the pool, or NULL when out of memory. */
static struct nft_elem *pool_alloc(struct nft_state *s, size_t n)
{
	struct nft_state_chunk *c = s->chunks;

	if (!c || c->cap - c->used < n) {
		size_t cap = n > CHUNK_ELEMS ? n : CHUNK_ELEMS;

		c = malloc(sizeof(*c) + cap * sizeof(struct nft_elem));
		if (!c)
			return NULL;
		c->next = s->chunks;
		c->used = 0;
		c->cap = cap;
		s->chunks = c;
	}
	c->used += n;
	return &c->v[c->used - n];
}

static void pool_free(struct nft_state *s)
{
	while (s->chunks) {
		struct nft_state_chunk *next = s->chunks->next;

		free(s->chunks);
		s->chunks = next;
	}
}

/* Free a frontend's element array unless the pool holds it. */
static void elems_free(struct nft_elem *v, bool pooled)
{
	if (!pooled)
		free(v);
}

/* Identity of a shared element (called hairpin here, the first kind):
 * its set, family and key (a pair of addresses fits in 32 bytes). */
#define HP_KEY_LEN 32

struct nft_state_hairpin {
	uint8_t key[HP_KEY_LEN];
	uint8_t set;
	uint8_t family;
	bool used;                /* refs 0 and used: a tombstone */
	uint32_t refs;
};

struct nft_state_hp_delta {
	uint8_t key[HP_KEY_LEN];
	uint8_t set;
	uint8_t family;
	uint32_t base;            /* committed references when first touched */
	int32_t delta;            /* references taken minus dropped */
};

struct nft_state_hp_slot {
	uint64_t gen;             /* the change it belongs to; else empty */
	uint32_t idx;             /* index in change.hpd */
};

/* Entry of fes marked for removal in nft_state_commit. */
#define FE_GONE SIZE_MAX

static int key_cmp(const struct nft_state_key *a, const struct nft_state_key *b)
{
	return memcmp(a, b, sizeof(*a));
}

/* Array p (items of size bytes, *cap of them) grown to hold want: p
 * itself when it does, else reallocated (*cap updated), NULL when out of
 * memory (p untouched). */
static void *grow(void *p, size_t *cap, size_t want, size_t size, size_t first)
{
	size_t c = *cap ? *cap : first;
	void *q;

	if (want <= *cap)
		return p;
	while (c < want)
		c *= 2;
	q = realloc(p, c * size);
	if (q)
		*cap = c;
	return q;
}

static int ptrs_push(const struct nft_elem ***v, size_t *n, size_t *cap, const struct nft_elem *e)
{
	if (*n == *cap) {
		const struct nft_elem **q = grow(*v, cap, *n + 1, sizeof(*q), 256);

		if (!q)
			return -ENOMEM;
		*v = q;
	}
	(*v)[(*n)++] = e;
	return 0;
}

/* Index of key in s->fes, or where it would go (*ret_found false). */
static size_t fes_find(const struct nft_state *s, const struct nft_state_key *key, bool *ret_found)
{
	size_t lo = 0, hi = s->n_fes;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = key_cmp(&s->fes[mid].key, key);

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

/* Hairpin hashing: set, family and the key eight bytes at a time, each
 * step a multiply-xorshift (in memory only: no other process sees it). */
static uint64_t hp_hash(uint8_t set, uint8_t family, const uint8_t *key)
{
	uint64_t h = 0x243f6a8885a308d3ull ^ family ^ ((uint64_t)set << 8), w;

	for (size_t i = 0; i < HP_KEY_LEN; i += 8) {
		memcpy(&w, key + i, 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ull;
		h ^= h >> 29;
	}
	h *= 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 32);
}

/* The committed entry of a hairpin, or NULL. */
static struct nft_state_hairpin *hp_find(const struct nft_state *s, uint8_t set, uint8_t family, const uint8_t *key)
{
	size_t mask = s->cap_hps - 1, j;

	/* Empty (a full sync or a take-over stages against a cleared state):
	 * no probe into a big, cold table. */
	if (!s->cap_hps || !s->n_hps_used)
		return NULL;
	for (j = hp_hash(set, family, key) & mask; s->hps[j].used; j = (j + 1) & mask)
		if (s->hps[j].refs && s->hps[j].set == set && s->hps[j].family == family &&
		    memcmp(s->hps[j].key, key, HP_KEY_LEN) == 0)
			return &s->hps[j];
	return NULL;
}

/* The slot where a committed entry for a key not in the table goes: the
 * first tombstone or free slot of its probe sequence. */
static struct nft_state_hairpin *hp_free_slot(struct nft_state *s, uint8_t set, uint8_t family, const uint8_t *key)
{
	size_t mask = s->cap_hps - 1, j;

	for (j = hp_hash(set, family, key) & mask; s->hps[j].used && s->hps[j].refs; j = (j + 1) & mask)
		;
	return &s->hps[j];
}

/* Make the committed table hold extra more live entries under 70 % load,
 * rehashing it into a bigger one (tombstones dropped) when it would not.
 * Its contents stay the same, so this may run while a change is staged. */
static int hp_reserve(struct nft_state *s, size_t extra)
{
	struct nft_state_hairpin *t, *old = s->hps;
	size_t cap = 1024, old_cap = s->cap_hps;

	if ((s->n_hps_used + extra) * 10 < s->cap_hps * 7)
		return 0;
	while ((s->n_hps + extra) * 10 >= cap * 7)
		cap *= 2;
	t = zalloc(cap, sizeof(*t));
	if (!t)
		return -ENOMEM;
	s->hps = t;
	s->cap_hps = cap;
	s->n_hps_used = s->n_hps;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].refs)
			*hp_free_slot(s, old[i].set, old[i].family, old[i].key) = old[i];
	free(old);
	return 0;
}

/* The change's entry for hairpin e, created (with the committed count as
 * its base) when absent; NULL when out of memory. */
static struct nft_state_hp_delta *hp_delta(struct nft_state *s, const struct nft_elem *e)
{
	struct nft_state_change *c = &s->change;
	uint64_t h = hp_hash(e->set, e->family, e->key);
	struct nft_state_hp_slot *slot;
	struct nft_state_hp_delta *d;
	const struct nft_state_hairpin *committed;
	size_t mask = c->cap_hpd_index - 1, j;

	if (c->cap_hpd_index) {
		for (j = h & mask; c->hpd_index[j].gen == s->gen; j = (j + 1) & mask) {
			d = &c->hpd[c->hpd_index[j].idx];
			if (d->set == e->set && d->family == e->family && memcmp(d->key, e->key, HP_KEY_LEN) == 0)
				return d;
		}
	}
	if ((c->n_hpd + 1) * 10 >= c->cap_hpd_index * 7) {
		/* A bigger index, refilled from hpd (slots of earlier changes
		 * are empty in the new one). */
		size_t cap = c->cap_hpd_index ? c->cap_hpd_index * 2 : 256;
		struct nft_state_hp_slot *t = zalloc(cap, sizeof(*t));

		if (!t)
			return NULL;
		free(c->hpd_index);
		c->hpd_index = t;
		c->cap_hpd_index = cap;
		mask = cap - 1;
		for (size_t i = 0; i < c->n_hpd; i++) {
			for (j = hp_hash(c->hpd[i].set, c->hpd[i].family, c->hpd[i].key) & mask; t[j].gen == s->gen;
			     j = (j + 1) & mask)
				;
			t[j] = (struct nft_state_hp_slot){ .gen = s->gen, .idx = (uint32_t)i };
		}
	}
	if (c->n_hpd == c->cap_hpd) {
		struct nft_state_hp_delta *q = grow(c->hpd, &c->cap_hpd, c->n_hpd + 1, sizeof(*q), 64);

		if (!q)
			return NULL;
		c->hpd = q;
	}
	committed = hp_find(s, e->set, e->family, e->key);
	if (!committed) {
		/* Room in the committed table for it, should the commit add it. */
		if (hp_reserve(s, c->n_hpd_new + 1) < 0)
			return NULL;
		c->n_hpd_new++;
	}
	for (j = h & mask; c->hpd_index[j].gen == s->gen; j = (j + 1) & mask)
		;
	slot = &c->hpd_index[j];
	d = &c->hpd[c->n_hpd];
	memset(d, 0, sizeof(*d));
	memcpy(d->key, e->key, HP_KEY_LEN);
	d->set = e->set;
	d->family = e->family;
	d->base = committed ? committed->refs : 0;
	*slot = (struct nft_state_hp_slot){ .gen = s->gen, .idx = (uint32_t)c->n_hpd++ };
	return d;
}

/* A staged frontend references hairpin e: the first reference adds it. */
static int hp_take(struct nft_state *s, const struct nft_elem *e)
{
	struct nft_state_change *c = &s->change;
	struct nft_state_hp_delta *d = hp_delta(s, e);

	if (!d)
		return -ENOMEM;
	if ((int64_t)d->base + d->delta == 0 && ptrs_push(&c->adds, &c->n_adds, &c->cap_adds, e) < 0)
		return -ENOMEM;
	d->delta++;
	return 0;
}

/* A staged frontend drops its reference: the last one deletes e. */
static int hp_drop(struct nft_state *s, const struct nft_elem *e)
{
	struct nft_state_change *c = &s->change;
	struct nft_state_hp_delta *d = hp_delta(s, e);
	int64_t refs;

	if (!d)
		return -ENOMEM;
	refs = (int64_t)d->base + d->delta;
	if (refs <= 0)
		return 0; /* not referenced: nothing to take back */
	if (refs == 1 && ptrs_push(&c->dels, &c->n_dels, &c->cap_dels, e) < 0)
		return -ENOMEM;
	d->delta--;
	return 0;
}

bool nft_state_is_shared_set(uint8_t set)
{
	return set == NFT_SET_HAIRPIN || set == NFT_SET_CLUSTER_IPS;
}

bool nft_state_is_slot_set(uint8_t set)
{
	return set == NFT_SET_SLOTS || set == NFT_SET_NP_SLOTS || set == NFT_SET_AFF_SLOTS ||
	       set == NFT_SET_NP_AFF_SLOTS;
}

/* The endpoint slot element e points at, as a conntrack target. */
static struct conntrack_target slot_target(const struct nft_elem *e)
{
	size_t alen = e->family == AF_INET6 ? 16 : 4;
	struct conntrack_target t = { .family = e->family };

	memcpy(t.addr, e->data, alen);
	memcpy(&t.port_be, e->data + alen, 2);
	return t;
}

/* Deleted slot element e: record its endpoint when its frontend is UDP. */
static int ct_push(struct nft_state *s, const struct nft_elem *e)
{
	struct nft_state_change *c = &s->change;
	size_t alen = e->family == AF_INET6 ? 16 : 4;
	/* The protocol follows the address in frontend keys, leads in
	 * node-port ones. */
	size_t proto_off = e->set == NFT_SET_SLOTS || e->set == NFT_SET_AFF_SLOTS ? alen : 0;

	if (e->key[proto_off] != IPPROTO_UDP)
		return 0;
	if (c->n_ct == c->cap_ct) {
		/* ct_used (nft_state_udp_gone's marks) grows alongside. */
		size_t cap = c->cap_ct, cap_used = c->cap_ct;
		struct conntrack_target *q = grow(c->ct, &cap, c->n_ct + 1, sizeof(*q), 16);
		uint8_t *u;

		if (!q)
			return -ENOMEM;
		c->ct = q;
		u = grow(c->ct_used, &cap_used, cap, 1, 16);
		if (!u)
			return -ENOMEM;
		c->ct_used = u;
		c->cap_ct = cap;
	}
	c->ct[c->n_ct++] = slot_target(e);
	c->ct_done = false;
	return 0;
}

static int stage_del(struct nft_state *s, const struct nft_elem *e)
{
	struct nft_state_change *c = &s->change;

	if (nft_state_is_shared_set(e->set))
		return hp_drop(s, e);
	if (ptrs_push(&c->dels, &c->n_dels, &c->cap_dels, e) < 0)
		return -ENOMEM;
	if (e->set == NFT_SET_SLOTS)
		c->slot_dels[e->family == AF_INET6]++;
	return nft_state_is_slot_set(e->set) ? ct_push(s, e) : 0;
}

static int stage_add(struct nft_state *s, const struct nft_elem *e)
{
	struct nft_state_change *c = &s->change;

	if (nft_state_is_shared_set(e->set))
		return hp_take(s, e);
	if (ptrs_push(&c->adds, &c->n_adds, &c->cap_adds, e) < 0)
		return -ENOMEM;
	c->adds_sorted = false;
	if (e->set == NFT_SET_SLOTS)
		c->slot_adds[e->family == AF_INET6]++;
	return 0;
}

/* The per-frontend diff: committed elements against recomputed ones. */
struct fe_diff {
	struct nft_state *s;
	bool changed;
};

static int fe_diff_cmp(const void *old_item, const void *new_item, void *ctx)
{
	(void)ctx;
	return nft_elem_cmp(old_item, new_item, NULL);
}

static int fe_diff_removed(const void *old_item, void *ctx)
{
	struct fe_diff *d = ctx;

	d->changed = true;
	return stage_del(d->s, old_item);
}

static int fe_diff_added(const void *new_item, void *ctx)
{
	struct fe_diff *d = ctx;

	d->changed = true;
	return stage_add(d->s, new_item);
}

static const struct sorted_diff_ops fe_diff_ops = {
	.cmp = fe_diff_cmp,
	.removed = fe_diff_removed,
	.added = fe_diff_added,
};

/* Room for one more pending frontend. */
static int pend_reserve(struct nft_state_change *c)
{
	struct nft_state_pending *q = grow(c->pend, &c->cap_pend, c->n_pend + 1, sizeof(*q), 64);

	if (!q)
		return -ENOMEM;
	c->pend = q;
	return 0;
}

/* Room in the frontend array for every new frontend staged, plus one. */
static int fes_reserve(struct nft_state *s)
{
	struct nft_state_fe *q = grow(s->fes, &s->cap_fes, s->n_fes + s->change.n_inserts + 1, sizeof(*q), 64);

	if (!q)
		return -ENOMEM;
	s->fes = q;
	return 0;
}

/* End the change: staged lists emptied (their storage kept for the
 * next), stamps of this change made stale. */
static void change_end(struct nft_state *s)
{
	struct nft_state_change *c = &s->change;

	c->n_dels = c->n_adds = c->n_pend = c->n_inserts = 0;
	c->n_hpd = c->n_hpd_new = c->n_ct = 0;
	c->adds_sorted = true;
	c->ct_done = false;
	memset(c->slot_adds, 0, sizeof(c->slot_adds));
	memset(c->slot_dels, 0, sizeof(c->slot_dels));
	s->gen++;
}

void nft_state_init(struct nft_state *s)
{
	memset(s, 0, sizeof(*s));
	s->gen = 1;
	s->change.adds_sorted = true;
}

void nft_state_done(struct nft_state *s)
{
	struct nft_state_change *c = &s->change;

	nft_state_clear(s);
	free(s->fes);
	free(s->hps);
	free(c->dels);
	free(c->adds);
	free(c->pend);
	free(c->hpd);
	free(c->hpd_index);
	free(c->ct);
	free(c->ct_used);
	nft_state_init(s);
}

void nft_state_clear(struct nft_state *s)
{
	if (!s->gen)
		s->gen = 1; /* only zeroed */
	nft_state_discard(s);
	for (size_t i = 0; i < s->n_fes; i++)
		elems_free(s->fes[i].elems, s->fes[i].pooled);
	s->n_fes = 0;
	pool_free(s);
	/* The table keeps its size: the next full state needs it again. */
	if (s->hps)
		memset(s->hps, 0, s->cap_hps * sizeof(*s->hps));
	s->n_hps = s->n_hps_used = 0;
	s->slots_count[0] = s->slots_count[1] = 0;
}

void nft_state_key_of(const struct plan_frontend *fe, struct nft_state_key *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->kind = (uint8_t)fe->kind;
	ret->family = (uint8_t)fe->addr.family;
	ret->proto = (uint8_t)fe->proto;
	ret->port = fe->port;
	memcpy(ret->addr, fe->addr.u.bytes, sizeof(ret->addr));
}

size_t nft_state_frontends(const struct nft_state *s)
{
	return s->n_fes;
}

const struct nft_elem *nft_state_elems(const struct nft_state *s, const struct nft_state_key *key, size_t *ret_n)
{
	bool found;
	size_t idx = fes_find(s, key, &found);

	*ret_n = found ? s->fes[idx].n : 0;
	return found && s->fes[idx].n ? s->fes[idx].elems : NULL;
}

uint32_t nft_state_hairpin_refs(const struct nft_state *s, const struct nft_elem *e)
{
	const struct nft_state_change *c = &s->change;
	const struct nft_state_hairpin *h = hp_find(s, e->set, e->family, e->key);
	size_t mask = c->cap_hpd_index - 1;

	if (c->cap_hpd_index)
		for (size_t j = hp_hash(e->set, e->family, e->key) & mask; c->hpd_index[j].gen == s->gen;
		     j = (j + 1) & mask) {
			const struct nft_state_hp_delta *d = &c->hpd[c->hpd_index[j].idx];

			if (d->set == e->set && d->family == e->family && memcmp(d->key, e->key, HP_KEY_LEN) == 0)
				return (uint32_t)((int64_t)d->base + d->delta);
		}
	return h ? h->refs : 0;
}

/* Stage key with elems[0..n), owned by the change from here (freed
 * unless pooled, also on error). */
static int stage_owned(struct nft_state *s, const struct nft_state_key *key, struct nft_elem *elems, size_t n,
		       bool pooled)
{
	struct nft_state_change *c = &s->change;
	struct fe_diff d = { .s = s };
	struct nft_state_pending *p;
	bool found;
	size_t idx = fes_find(s, key, &found);
	int r;

	/* Parked in a pending entry at once, so that a discard frees it
	 * whatever fails below. */
	if (found && s->fes[idx].staged == s->gen)
		r = -EALREADY;
	else if ((r = pend_reserve(c)) == 0 && !found)
		r = fes_reserve(s);
	if (r < 0) {
		elems_free(elems, pooled);
		return r;
	}
	p = &c->pend[c->n_pend];
	*p = (struct nft_state_pending){
		.key = *key, .idx = found ? idx : SIZE_MAX, .seq = c->n_pend, .elems = elems, .n = n,
		.pooled = pooled,
	};
	c->n_pend++;
	if (found) {
		s->fes[idx].staged = s->gen;
		r = sorted_diff(s->fes[idx].elems, s->fes[idx].n, sizeof(struct nft_elem), p->elems, p->n,
				sizeof(struct nft_elem), &fe_diff_ops, &d);
		if (r == 0 && !d.changed) {
			/* The same elements: keep the committed ones. */
			elems_free(p->elems, p->pooled);
			c->n_pend--;
		}
		return r;
	}
	c->n_inserts++;
	return sorted_diff(NULL, 0, sizeof(struct nft_elem), p->elems, p->n, sizeof(struct nft_elem), &fe_diff_ops,
			   &d);
}

int nft_state_stage(struct nft_state *s, const struct nft_state_key *key, struct nft_elem_vec *elems)
{
	struct nft_elem *v = elems->v;
	size_t n = elems->n;

	*elems = (struct nft_elem_vec){ 0 };
	return stage_owned(s, key, v, n, false);
}

int nft_state_stage_copy(struct nft_state *s, const struct nft_state_key *key, const struct nft_elem *elems,
			 size_t n)
{
	/* Staging against nothing (a full sync, a take-over): the pool. */
	bool pooled = s->n_fes == 0 && n > 0;
	struct nft_elem *v = NULL;

	if (n) {
		v = pooled ? pool_alloc(s, n) : malloc(n * sizeof(*v));
		if (!v)
			return -ENOMEM;
		memcpy(v, elems, n * sizeof(*v));
	}
	return stage_owned(s, key, v, n, pooled);
}

/* Stage the removal of s->fes[idx]. */
static int stage_removal_at(struct nft_state *s, size_t idx)
{
	struct nft_state_change *c = &s->change;
	struct nft_state_fe *fe = &s->fes[idx];
	int r = pend_reserve(c);

	if (r < 0)
		return r;
	c->pend[c->n_pend] = (struct nft_state_pending){ .key = fe->key, .idx = idx, .seq = c->n_pend, .remove = true };
	c->n_pend++;
	fe->staged = s->gen;
	for (size_t i = 0; i < fe->n && r == 0; i++)
		r = stage_del(s, &fe->elems[i]);
	return r;
}

int nft_state_stage_removal(struct nft_state *s, const struct nft_state_key *key)
{
	bool found;
	size_t idx = fes_find(s, key, &found);

	if (!found)
		return 0;
	if (s->fes[idx].staged == s->gen)
		return -EALREADY;
	return stage_removal_at(s, idx);
}

int nft_state_stage_unstaged_removals(struct nft_state *s)
{
	int r = 0, n = 0;

	for (size_t i = 0; i < s->n_fes && r == 0; i++)
		if (s->fes[i].staged != s->gen) {
			r = stage_removal_at(s, i);
			n++;
		}
	return r < 0 ? r : n;
}

static int elem_ptr_cmp(const void *a, const void *b)
{
	return nft_elem_cmp(*(const struct nft_elem *const *)a, *(const struct nft_elem *const *)b, NULL);
}

void nft_state_sort_adds(struct nft_state *s)
{
	struct nft_state_change *c = &s->change;

	if (!c->adds_sorted && c->n_adds > 1)
		qsort(c->adds, c->n_adds, sizeof(*c->adds), elem_ptr_cmp);
	c->adds_sorted = true;
}

/* The take-over's diff: the kernel's elements against the change's adds.
 * The adds are compacted in place: the walk has read every add before
 * the one written. */
struct rebase {
	struct nft_state *s;
	size_t w;
};

static int rebase_cmp(const void *old_item, const void *new_item, void *ctx)
{
	(void)ctx;
	return nft_elem_cmp(old_item, *(const struct nft_elem *const *)new_item, NULL);
}

static int rebase_removed(const void *old_item, void *ctx)
{
	struct rebase *rb = ctx;
	struct nft_state_change *c = &rb->s->change;
	const struct nft_elem *e = old_item;

	if (ptrs_push(&c->dels, &c->n_dels, &c->cap_dels, e) < 0)
		return -ENOMEM;
	return nft_state_is_slot_set(e->set) ? ct_push(rb->s, e) : 0;
}

static int rebase_added(const void *new_item, void *ctx)
{
	struct rebase *rb = ctx;

	rb->s->change.adds[rb->w++] = *(const struct nft_elem *const *)new_item;
	return 0;
}

static const struct sorted_diff_ops rebase_ops = {
	.cmp = rebase_cmp,
	.removed = rebase_removed,
	.added = rebase_added,
};

int nft_state_rebase(struct nft_state *s, const struct nft_elem *kernel, size_t n)
{
	struct nft_state_change *c = &s->change;
	struct rebase rb = { .s = s };
	int r;

	if (c->n_dels)
		return -EINVAL;
	nft_state_sort_adds(s);
	r = sorted_diff(kernel, n, sizeof(*kernel), c->adds, c->n_adds, sizeof(*c->adds), &rebase_ops, &rb);
	if (r == 0)
		c->n_adds = rb.w;
	return r;
}

int nft_state_rebase_all_present(struct nft_state *s)
{
	struct nft_state_change *c = &s->change;

	if (c->n_dels)
		return -EINVAL;
	c->n_adds = 0;
	c->adds_sorted = true;
	return 0;
}

static int ct_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct conntrack_target));
}

int nft_state_udp_gone(struct nft_state *s, const struct conntrack_target **ret, size_t *ret_n)
{
	struct nft_state_change *c = &s->change;

	if (!c->ct_done && c->n_ct) {
		size_t w = 1;

		/* Sorted and unique, then the endpoints an added slot element
		 * points at again are struck out. */
		qsort(c->ct, c->n_ct, sizeof(*c->ct), ct_cmp);
		for (size_t i = 1; i < c->n_ct; i++)
			if (memcmp(&c->ct[i], &c->ct[w - 1], sizeof(*c->ct)) != 0)
				c->ct[w++] = c->ct[i];
		c->n_ct = w;
		memset(c->ct_used, 0, c->n_ct);
		for (size_t i = 0; i < c->n_adds; i++) {
			struct conntrack_target t;
			const struct conntrack_target *hit;

			if (!nft_state_is_slot_set(c->adds[i]->set))
				continue;
			t = slot_target(c->adds[i]);
			hit = bsearch(&t, c->ct, c->n_ct, sizeof(*c->ct), ct_cmp);
			if (hit)
				c->ct_used[hit - c->ct] = 1;
		}
		w = 0;
		for (size_t i = 0; i < c->n_ct; i++)
			if (!c->ct_used[i])
				c->ct[w++] = c->ct[i];
		c->n_ct = w;
	}
	c->ct_done = true;
	*ret = c->ct;
	*ret_n = c->n_ct;
	return 0;
}

void nft_state_slots_need(const struct nft_state *s, size_t ret[2])
{
	for (int f = 0; f < 2; f++)
		ret[f] = s->slots_count[f] + s->change.slot_adds[f];
}

uint32_t nft_state_slots_size(size_t need)
{
	size_t w = need + need / 2;

	if (w < need) /* overflow */
		return UINT32_MAX;
	if (w < NFT_STATE_SLOTS_SIZE_MIN)
		w = NFT_STATE_SLOTS_SIZE_MIN;
	return w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
}

bool nft_state_slots_grow(const struct nft_state *s, const size_t need[2], uint32_t ret_size[2])
{
	bool any = false;

	for (int f = 0; f < 2; f++) {
		ret_size[f] = need[f] > s->slots_size[f] ? nft_state_slots_size(need[f]) : 0;
		any |= ret_size[f] != 0;
	}
	return any;
}

void nft_state_slots_declared(struct nft_state *s, const uint32_t size[2])
{
	for (int f = 0; f < 2; f++)
		if (size[f])
			s->slots_size[f] = size[f];
}

static int pend_key_cmp(const void *a, const void *b)
{
	const struct nft_state_pending *x = a, *y = b;
	int c = key_cmp(&x->key, &y->key);

	return c ? c : x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Insert the staged new frontends, c->pend[0..n) (unsorted, capacity
 * reserved while staging), into the sorted array: one backward merge. */
static void insert_new(struct nft_state *s, struct nft_state_pending *ins, size_t n)
{
	size_t w = 0, i, k;

	qsort(ins, n, sizeof(*ins), pend_key_cmp);
	/* A key staged twice (a caller's bug) keeps its last elements. */
	for (k = 0; k < n; k++) {
		if (k + 1 < n && key_cmp(&ins[k].key, &ins[k + 1].key) == 0) {
			elems_free(ins[k].elems, ins[k].pooled);
			continue;
		}
		ins[w++] = ins[k];
	}
	n = w;
	i = s->n_fes;
	w = s->n_fes + n;
	for (k = n; k > 0;) {
		if (i > 0 && key_cmp(&s->fes[i - 1].key, &ins[k - 1].key) > 0) {
			s->fes[--w] = s->fes[--i];
		} else {
			k--;
			s->fes[--w] = (struct nft_state_fe){ .key = ins[k].key, .elems = ins[k].elems, .n = ins[k].n,
							     .pooled = ins[k].pooled };
		}
	}
	s->n_fes += n;
}

void nft_state_commit(struct nft_state *s)
{
	struct nft_state_change *c = &s->change;
	size_t first_gone = SIZE_MAX, n_ins = 0;

	/* Frontends that change or go, in place; new ones moved to the front
	 * of pend (in staging order). */
	for (size_t i = 0; i < c->n_pend; i++) {
		struct nft_state_pending *p = &c->pend[i];
		struct nft_state_fe *fe;

		if (p->idx == SIZE_MAX) {
			struct nft_state_pending t = c->pend[n_ins];

			c->pend[n_ins++] = *p;
			*p = t;
			continue;
		}
		fe = &s->fes[p->idx];
		elems_free(fe->elems, fe->pooled);
		fe->elems = p->elems;
		fe->pooled = p->pooled;
		fe->n = p->remove ? FE_GONE : p->n;
		if (p->remove && p->idx < first_gone)
			first_gone = p->idx;
	}
	if (first_gone != SIZE_MAX) {
		size_t w = first_gone;

		for (size_t i = first_gone; i < s->n_fes; i++)
			if (s->fes[i].n != FE_GONE)
				s->fes[w++] = s->fes[i];
		s->n_fes = w;
	}
	if (n_ins)
		insert_new(s, c->pend, n_ins);
	/* Hairpin references; room for the new ones was made while staging. */
	for (size_t i = 0; i < c->n_hpd; i++) {
		const struct nft_state_hp_delta *d = &c->hpd[i];
		struct nft_state_hairpin *h;
		int64_t refs = (int64_t)d->base + d->delta;

		if (d->delta == 0)
			continue;
		h = d->base ? hp_find(s, d->set, d->family, d->key) : NULL;
		if (h) {
			h->refs = refs > 0 ? (uint32_t)refs : 0;
			if (!h->refs)
				s->n_hps--; /* a tombstone */
		} else if (refs > 0) {
			h = hp_free_slot(s, d->set, d->family, d->key);
			if (!h->used)
				s->n_hps_used++;
			memcpy(h->key, d->key, HP_KEY_LEN);
			h->set = d->set;
			h->family = d->family;
			h->used = true;
			h->refs = (uint32_t)refs;
			s->n_hps++;
		}
	}
	for (int f = 0; f < 2; f++) {
		size_t cnt = s->slots_count[f] + c->slot_adds[f];

		s->slots_count[f] = cnt > c->slot_dels[f] ? cnt - c->slot_dels[f] : 0;
	}
	change_end(s);
}

/* Working arrays kept between changes up to this many items each. */
#define TRIM_KEEP 65536

void nft_state_trim(struct nft_state *s)
{
	struct nft_state_change *c = &s->change;

	if (c->n_pend || c->n_dels || c->n_adds || c->n_hpd || c->n_ct)
		return;
	if (c->cap_dels > TRIM_KEEP) {
		free(c->dels);
		c->dels = NULL;
		c->cap_dels = 0;
	}
	if (c->cap_adds > TRIM_KEEP) {
		free(c->adds);
		c->adds = NULL;
		c->cap_adds = 0;
	}
	if (c->cap_pend > TRIM_KEEP) {
		free(c->pend);
		c->pend = NULL;
		c->cap_pend = 0;
	}
	if (c->cap_hpd > TRIM_KEEP) {
		free(c->hpd);
		c->hpd = NULL;
		c->cap_hpd = 0;
	}
	if (c->cap_hpd_index > TRIM_KEEP) {
		free(c->hpd_index);
		c->hpd_index = NULL;
		c->cap_hpd_index = 0;
	}
	if (c->cap_ct > TRIM_KEEP) {
		free(c->ct);
		free(c->ct_used);
		c->ct = NULL;
		c->ct_used = NULL;
		c->cap_ct = 0;
	}
}

void nft_state_discard(struct nft_state *s)
{
	struct nft_state_change *c = &s->change;

	for (size_t i = 0; i < c->n_pend; i++)
		elems_free(c->pend[i].elems, c->pend[i].pooled);
	change_end(s);
}
