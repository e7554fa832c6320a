/* State: the nftables backend's committed elements and its staged change
 * (see nft_state.h). Plain data structures, no netlink.
 *
 * What is committed is packed (nft_pack.h); a change unpacks the
 * frontends it diffs or removes, and copies the elements it stages, into
 * its arena (big blocks mapped and unmapped whole, so that the 100 MB a
 * full sync stages go back to the system when it ends), where change.dels
 * and change.adds point.
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
#include <sys/mman.h>
#include <sys/socket.h>

#include "nft_pack.h"
#include "sorted_diff.h"

struct nft_state_pending {
	struct nft_state_key key;
	size_t idx;               /* index in fes; SIZE_MAX: a new frontend */
	size_t seq;               /* staging order */
	uint8_t *packed;          /* the new elements packed (NULL: removal or none) */
	uint32_t n, len;
	struct nft_elem *owned;   /* nft_state_stage's array, freed when the change ends */
	bool remove;
	bool pooled;              /* packed is in the pool (not to be freed) */
	bool deferred;            /* its adds wait for nft_state_complete_adds */
};

/* A block of storage, mapped on its own: unmapping gives it back to the
 * system at once, whatever the heap around it. */
struct nft_state_chunk {
	struct nft_state_chunk *next;
	size_t used, cap;         /* bytes of data */
	_Alignas(16) uint8_t data[];
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

/* Bytes per storage block (a block may be bigger for one big request):
 * one huge page. A full sync or take-over at 100k services stages 100 MB
 * or more; in 4 KiB pages that is 25,000 page faults, each slow in a VM. */
#define CHUNK_BYTES (2u << 20)

static struct nft_state_chunk *chunk_new(size_t want)
{
	size_t hdr = sizeof(struct nft_state_chunk), size = want > CHUNK_BYTES - hdr ? want + hdr : CHUNK_BYTES;
	size_t map = 0, lead;
	uint8_t *p;
	struct nft_state_chunk *c;

	size = (size + CHUNK_BYTES - 1) & ~(size_t)(CHUNK_BYTES - 1);
	/* A mapping aligned to the huge-page size, so that the kernel can back
	 * it with huge pages (asked for, not required: a hint). */
	if (size >= want && size + CHUNK_BYTES > size)
		map = size + CHUNK_BYTES;
	p = map ? mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) : MAP_FAILED;
	if (p == MAP_FAILED)
		return NULL;
	lead = (CHUNK_BYTES - ((uintptr_t)p & (CHUNK_BYTES - 1))) & (CHUNK_BYTES - 1);
	if (lead)
		munmap(p, lead);
	if (map - lead > size)
		munmap(p + lead + size, map - lead - size);
	p += lead;
	(void)madvise(p, size, MADV_HUGEPAGE);
	c = (struct nft_state_chunk *)(void *)p;
	c->next = NULL;
	c->used = 0;
	c->cap = size - hdr;
	return c;
}

static void chunk_free(struct nft_state_chunk *c)
{
	munmap(c, sizeof(*c) + c->cap);
}

/* Room for len bytes aligned to align (a power of two up to 16) in the
 * block list *head, a new block in front when the first lacks it; NULL
 * when out of memory. */
static void *chunks_alloc(struct nft_state_chunk **head, size_t len, size_t align)
{
	struct nft_state_chunk *c = *head;
	size_t at;

	if (c)
		c->used = (c->used + align - 1) & ~(align - 1);
	if (!c || c->used > c->cap || c->cap - c->used < len) {
		c = chunk_new(len);
		if (!c)
			return NULL;
		c->next = *head;
		*head = c;
	}
	at = c->used;
	c->used += len;
	return c->data + at;
}

/* Free every block of *head but the last one (the oldest), which is
 * emptied for reuse when keep_one and of the usual size, else freed too. */
static void chunks_free(struct nft_state_chunk **head, bool keep_one)
{
	while (*head && (!keep_one || (*head)->next || (*head)->cap > CHUNK_BYTES)) {
		struct nft_state_chunk *next = (*head)->next;

		chunk_free(*head);
		*head = next;
	}
	if (*head)
		(*head)->used = 0;
}

/* A point in the arena to go back to (arena_rewind). */
struct arena_mark {
	struct nft_state_chunk *chunk;
	size_t used;
};

static struct arena_mark arena_mark(const struct nft_state *s)
{
	struct nft_state_chunk *c = s->change.arena;

	return (struct arena_mark){ .chunk = c, .used = c ? c->used : 0 };
}

/* Give back what the arena handed out since mark m. */
static void arena_rewind(struct nft_state *s, struct arena_mark m)
{
	struct nft_state_chunk **head = &s->change.arena;

	while (*head && *head != m.chunk) {
		struct nft_state_chunk *next = (*head)->next;

		chunk_free(*head);
		*head = next;
	}
	if (*head)
		(*head)->used = m.used;
}

static struct nft_elem *arena_elems(struct nft_state *s, size_t n)
{
	return n > SIZE_MAX / sizeof(struct nft_elem) ? NULL
						      : chunks_alloc(&s->change.arena, n * sizeof(struct nft_elem), 8);
}

/* Free a frontend's packed elements unless the pool holds them. */
static void packed_free(uint8_t *p, bool pooled)
{
	if (!pooled)
		free(p);
}

/* Identity of a shared element (called hairpin here, the first kind):
 * its set, family and key (a pair of addresses fits in 32 bytes). */
#define HP_KEY_LEN 32

/* The reference tables (struct nft_state_refs): which one holds an
 * element, its key there and its entry's layout. Hairpin pairs (the
 * address twice) and cluster IPs are keyed by the address, the set told
 * apart by the entry's kind; anything else by set, family and whole key. */
enum { REFS_V4, REFS_V6, REFS_RAW };
static const size_t refs_klen[NFT_STATE_REFS] = { 4, 16, HP_KEY_LEN + 2 };
/* Entry size: the key, then the 32-bit word, aligned. */
static const size_t refs_stride[NFT_STATE_REFS] = { 8, 20, 40 };
#define REF_USED 0x80000000u      /* in use (a tombstone when the count is 0) */
#define REF_KIND_SHIFT 29         /* 0: hairpin pair, 1: cluster IP */
#define REF_COUNT 0x1fffffffu

/* An element's place in the reference tables. */
struct ref_key {
	unsigned table;
	uint32_t kind;
	uint8_t key[HP_KEY_LEN + 2];
};

static void ref_key_of(uint8_t set, uint8_t family, const uint8_t *key, struct ref_key *ret)
{
	size_t alen = family == AF_INET6 ? 16 : 4;
	bool addr_form = (family == AF_INET || family == AF_INET6) &&
			 ((set == NFT_SET_HAIRPIN && memcmp(key, key + alen, alen) == 0) || set == NFT_SET_CLUSTER_IPS);
	size_t used = set == NFT_SET_HAIRPIN ? 2 * alen : alen;

	memset(ret, 0, sizeof(*ret));
	for (size_t i = used; i < HP_KEY_LEN && addr_form; i++)
		addr_form = key[i] == 0;
	if (addr_form) {
		ret->table = family == AF_INET6 ? REFS_V6 : REFS_V4;
		ret->kind = set == NFT_SET_CLUSTER_IPS;
		memcpy(ret->key, key, alen);
		return;
	}
	ret->table = REFS_RAW;
	memcpy(ret->key, key, HP_KEY_LEN);
	ret->key[HP_KEY_LEN] = set;
	ret->key[HP_KEY_LEN + 1] = family;
}

static uint32_t *ref_word(const struct nft_state_refs *t, unsigned table, size_t j)
{
	return (uint32_t *)(void *)(t->v + j * refs_stride[table] + refs_stride[table] - 4);
}

static uint64_t ref_hash(const struct ref_key *k)
{
	size_t len = refs_klen[k->table];
	uint64_t h = 0x243f6a8885a308d3ull ^ k->kind ^ (uint64_t)k->table << 8, w;

	for (size_t i = 0; i < len; i += 8) {
		w = 0;
		memcpy(&w, k->key + i, len - i < 8 ? len - i : 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ull;
		h ^= h >> 29;
	}
	h *= 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 32);
}

/* The first probe of k in t (any capacity: the hash scaled to it). */
static size_t ref_home(const struct nft_state_refs *t, const struct ref_key *k)
{
	return (size_t)(((ref_hash(k) >> 32) * (uint64_t)t->cap) >> 32);
}

static bool ref_is(const struct nft_state_refs *t, const struct ref_key *k, size_t j, uint32_t w)
{
	return (w >> REF_KIND_SHIFT & 3) == k->kind &&
	       memcmp(t->v + j * refs_stride[k->table], k->key, refs_klen[k->table]) == 0;
}

/* The committed count word of k, or NULL when k has no live entry. */
static uint32_t *ref_find(const struct nft_state *s, const struct ref_key *k)
{
	const struct nft_state_refs *t = &s->refs[k->table];
	size_t j;

	/* Empty (a full sync or a take-over stages against a cleared state):
	 * no probe into a big, cold table. */
	if (!t->cap || !t->n_used)
		return NULL;
	for (j = ref_home(t, k);; j = j + 1 == t->cap ? 0 : j + 1) {
		uint32_t *w = ref_word(t, k->table, j);

		if (!(*w & REF_USED))
			return NULL;
		if ((*w & REF_COUNT) && ref_is(t, k, j, *w))
			return w;
	}
}

/* The entry where k, not in t, goes: the first tombstone or free entry of
 * its probe sequence. Its key is written; the caller sets the word. */
static uint32_t *ref_place(struct nft_state_refs *t, const struct ref_key *k)
{
	size_t j;

	for (j = ref_home(t, k); (*ref_word(t, k->table, j) & REF_USED) && (*ref_word(t, k->table, j) & REF_COUNT);
	     j = j + 1 == t->cap ? 0 : j + 1)
		;
	memcpy(t->v + j * refs_stride[k->table], k->key, refs_klen[k->table]);
	return ref_word(t, k->table, j);
}

/* Rebuild table i with cap entries, its live ones only. */
static int refs_rehash(struct nft_state *s, unsigned i, size_t cap)
{
	struct nft_state_refs *t = &s->refs[i], old = *t;
	size_t stride = refs_stride[i];

	t->v = zalloc(cap, stride);
	if (!t->v) {
		t->v = old.v;
		return -ENOMEM;
	}
	t->cap = cap;
	t->n_used = t->n;
	for (size_t j = 0; j < old.cap; j++) {
		uint32_t w = *ref_word(&old, i, j);
		struct ref_key k = { .table = i, .kind = w >> REF_KIND_SHIFT & 3 };

		if (!(w & REF_USED) || !(w & REF_COUNT))
			continue;
		memcpy(k.key, old.v + j * stride, refs_klen[i]);
		*ref_place(t, &k) = w;
	}
	free(old.v);
	return 0;
}

/* Make table i hold extra more live entries under 80 % load, rehashing it
 * into one twice as big as needed (tombstones dropped) when it would not.
 * Its contents stay the same, so this may run while a change is staged. */
static int refs_reserve(struct nft_state *s, unsigned i, size_t extra)
{
	struct nft_state_refs *t = &s->refs[i];
	size_t cap = 2 * (t->n + extra);

	if ((t->n_used + extra) * 10 < t->cap * 8)
		return 0;
	return refs_rehash(s, i, cap < 1024 ? 1024 : cap);
}

/* Small: a full sync of a standalone node counts a million of them. */
struct nft_state_hp_delta {
	const struct nft_elem *e; /* the element, in the change's storage */
	uint32_t base;            /* committed references when first touched */
	int32_t delta;            /* references taken minus dropped */
};

struct nft_state_hp_slot {
	uint32_t gen;             /* the change it belongs to (low bits); else empty */
	uint32_t idx;             /* index in change.hpd */
};

/* The change number as index slots hold it; never 0 (change_end). */
static uint32_t slot_gen(const struct nft_state *s)
{
	return (uint32_t)s->gen;
}

/* Is delta d (at index idx of the change's list) the entry of e? */
static bool hpd_is(const struct nft_state_change *c, uint32_t idx, const struct nft_elem *e)
{
	const struct nft_elem *x;

	/* A slot of a change 2^32 changes ago reads as current: its index
	 * may be past the list. */
	if (idx >= c->n_hpd)
		return false;
	x = c->hpd[idx].e;
	return x->set == e->set && x->family == e->family && memcmp(x->key, e->key, HP_KEY_LEN) == 0;
}

/* Element count of an entry of fes marked for removal in nft_state_commit. */
#define FE_GONE UINT32_MAX

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

/* The change's entry for hairpin e, created (with the committed count as
 * its base) when absent; NULL when out of memory. */
static struct nft_state_hp_delta *hp_delta(struct nft_state *s, const struct nft_elem *e)
{
	struct nft_state_change *c = &s->change;
	uint64_t h = hp_hash(e->set, e->family, e->key);
	struct nft_state_hp_slot *slot;
	struct nft_state_hp_delta *d;
	const uint32_t *committed;
	struct ref_key rk;
	size_t mask = c->cap_hpd_index - 1, j;

	if (c->cap_hpd_index) {
		for (j = h & mask; c->hpd_index[j].gen == slot_gen(s); j = (j + 1) & mask)
			if (hpd_is(c, c->hpd_index[j].idx, e))
				return &c->hpd[c->hpd_index[j].idx];
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
			const struct nft_elem *x = c->hpd[i].e;

			for (j = hp_hash(x->set, x->family, x->key) & mask; t[j].gen == slot_gen(s); j = (j + 1) & mask)
				;
			t[j] = (struct nft_state_hp_slot){ .gen = slot_gen(s), .idx = (uint32_t)i };
		}
	}
	if (c->n_hpd == c->cap_hpd) {
		struct nft_state_hp_delta *q = grow(c->hpd, &c->cap_hpd, c->n_hpd + 1, sizeof(*q), 64);

		if (!q)
			return NULL;
		c->hpd = q;
	}
	ref_key_of(e->set, e->family, e->key, &rk);
	committed = ref_find(s, &rk);
	if (!committed) {
		/* Room in the committed table for it, should the commit add it. */
		if (refs_reserve(s, rk.table, c->n_hpd_new[rk.table] + 1) < 0)
			return NULL;
		c->n_hpd_new[rk.table]++;
	}
	for (j = h & mask; c->hpd_index[j].gen == slot_gen(s); j = (j + 1) & mask)
		;
	slot = &c->hpd_index[j];
	d = &c->hpd[c->n_hpd];
	*d = (struct nft_state_hp_delta){ .e = e, .base = committed ? *committed & REF_COUNT : 0 };
	*slot = (struct nft_state_hp_slot){ .gen = slot_gen(s), .idx = (uint32_t)c->n_hpd++ };
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
	c->n_hpd = c->n_ct = 0;
	memset(c->n_hpd_new, 0, sizeof(c->n_hpd_new));
	chunks_free(&c->arena, true);
	c->adds_sorted = true;
	c->deferred = false;
	c->ct_done = false;
	memset(c->slot_adds, 0, sizeof(c->slot_adds));
	memset(c->slot_dels, 0, sizeof(c->slot_dels));
	s->gen++;
	if (!slot_gen(s)) /* 0 marks empty index slots */
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
	for (unsigned i = 0; i < NFT_STATE_REFS; i++)
		free(s->refs[i].v);
	free(s->pack);
	nft_elem_vec_done(&s->view);
	chunks_free(&c->arena, false);
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
		packed_free(s->fes[i].packed, s->fes[i].pooled);
	s->n_fes = 0;
	chunks_free(&s->chunks, false);
	/* The tables keep their size: the next full state needs it again. */
	for (unsigned i = 0; i < NFT_STATE_REFS; i++) {
		struct nft_state_refs *t = &s->refs[i];

		if (t->v)
			memset(t->v, 0, t->cap * refs_stride[i]);
		t->n = t->n_used = 0;
	}
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

const struct nft_elem *nft_state_elems(struct nft_state *s, const struct nft_state_key *key, size_t *ret_n)
{
	bool found;
	size_t idx = fes_find(s, key, &found);
	const struct nft_state_fe *fe;

	*ret_n = 0;
	if (!found || !s->fes[idx].n)
		return NULL;
	fe = &s->fes[idx];
	s->view.n = 0;
	if (nft_elem_vec_reserve(&s->view, fe->n) < 0 || nft_pack_unpack(fe->packed, fe->len, s->view.v, fe->n) < 0)
		return NULL;
	*ret_n = s->view.n = fe->n;
	return s->view.v;
}

uint32_t nft_state_hairpin_refs(const struct nft_state *s, const struct nft_elem *e)
{
	const struct nft_state_change *c = &s->change;
	struct ref_key rk;
	const uint32_t *w;
	size_t mask = c->cap_hpd_index - 1;

	if (c->cap_hpd_index)
		for (size_t j = hp_hash(e->set, e->family, e->key) & mask; c->hpd_index[j].gen == slot_gen(s);
		     j = (j + 1) & mask)
			if (hpd_is(c, c->hpd_index[j].idx, e)) {
				const struct nft_state_hp_delta *d = &c->hpd[c->hpd_index[j].idx];

				return (uint32_t)((int64_t)d->base + d->delta);
			}
	ref_key_of(e->set, e->family, e->key, &rk);
	w = ref_find(s, &rk);
	return w ? *w & REF_COUNT : 0;
}

/* Pack v[0..n), the elements staged for p, into p's packed form: in the
 * pool when pooled, else in an array of its own. 0 or -ENOMEM. */
static int pack_pending(struct nft_state *s, struct nft_state_pending *p, const struct nft_elem *v, size_t n,
			bool pooled)
{
	size_t bound = nft_pack_bound(n), len;
	uint8_t *dst;

	if (s->cap_pack < bound) {
		uint8_t *q = realloc(s->pack, bound);

		if (!q)
			return -ENOMEM;
		s->pack = q;
		s->cap_pack = bound;
	}
	len = nft_pack_elems(v, n, s->pack);
	if (len > 0x7fffffff)
		return -E2BIG;
	dst = pooled ? chunks_alloc(&s->chunks, len, 1) : malloc(len);
	if (!dst)
		return -ENOMEM;
	memcpy(dst, s->pack, len);
	p->packed = dst;
	p->len = (uint32_t)len;
	p->pooled = pooled;
	return 0;
}

/* Unpack committed frontend fe into the arena, into *ret (NULL when it
 * has no elements). 0, -ENOMEM, or -EINVAL when its packed form is
 * corrupt (a bug). */
static int unpack_committed(struct nft_state *s, const struct nft_state_fe *fe, struct nft_elem **ret)
{
	*ret = NULL;
	if (!fe->n)
		return 0;
	if (!(*ret = arena_elems(s, fe->n)))
		return -ENOMEM;
	return nft_pack_unpack(fe->packed, fe->len, *ret, fe->n);
}

/* Deferred staging (nft_state_stage_deferred) of a new frontend's
 * elems[0..n): the shared elements copied into the arena and counted (a
 * first reference queued), the others only counted; their adds are
 * queued by nft_state_complete_adds from the packed form. */
static int stage_deferred(struct nft_state *s, const struct nft_elem *elems, size_t n)
{
	struct nft_state_change *c = &s->change;
	size_t n_shared = 0;
	struct nft_elem *copy;
	int r = 0;

	for (size_t i = 0; i < n; i++) {
		if (nft_state_is_shared_set(elems[i].set))
			n_shared++;
		else if (elems[i].set == NFT_SET_SLOTS)
			c->slot_adds[elems[i].family == AF_INET6]++;
	}
	if (!n_shared)
		return 0;
	if (!(copy = arena_elems(s, n_shared)))
		return -ENOMEM;
	for (size_t i = 0; i < n && r == 0; i++)
		if (nft_state_is_shared_set(elems[i].set)) {
			*copy = elems[i];
			r = hp_take(s, copy++);
		}
	c->adds_sorted = false;
	return r;
}

/* Stage key with elems[0..n) (sorted). owned: elems is nft_state_stage's
 * array, the change's from here (freed when it ends, also on error);
 * else elems is copied into the arena, or with deferred (a new frontend
 * against an empty state) only its shared elements are. */
static int stage_elems(struct nft_state *s, const struct nft_state_key *key, const struct nft_elem *elems, size_t n,
		       struct nft_elem *owned, bool deferred)
{
	struct nft_state_change *c = &s->change;
	struct fe_diff d = { .s = s };
	struct arena_mark m = arena_mark(s);
	struct nft_state_pending *p;
	struct nft_elem *old = NULL, *copy;
	const struct nft_elem *v = elems;
	/* Staging against nothing (a full sync, a take-over): the pool. */
	bool found, pooled = s->n_fes == 0 && n > 0;
	size_t idx = fes_find(s, key, &found), n_old = found ? s->fes[idx].n : 0;
	int r;

	if (found && s->fes[idx].staged == s->gen)
		r = -EALREADY;
	else if (n >= FE_GONE)
		r = -E2BIG;
	else if ((r = pend_reserve(c)) == 0 && !found)
		r = fes_reserve(s);
	if (r == 0 && deferred && found)
		r = -EINVAL;
	if (r == 0 && !owned && n && !deferred) {
		if ((copy = arena_elems(s, n)))
			v = memcpy(copy, elems, n * sizeof(*elems));
		else
			r = -ENOMEM;
	}
	if (r == 0 && found)
		r = unpack_committed(s, &s->fes[idx], &old);
	if (r < 0) {
		free(owned);
		arena_rewind(s, m);
		return r;
	}
	/* Parked in a pending entry at once, so that a discard frees what
	 * it holds whatever fails below. */
	p = &c->pend[c->n_pend];
	*p = (struct nft_state_pending){
		.key = *key, .idx = found ? idx : SIZE_MAX, .seq = c->n_pend, .n = (uint32_t)n, .owned = owned,
	};
	c->n_pend++;
	if (found)
		s->fes[idx].staged = s->gen;
	else
		c->n_inserts++;
	if (deferred) {
		c->deferred = p->deferred = true;
		r = stage_deferred(s, v, n);
	} else {
		r = sorted_diff(old, n_old, sizeof(struct nft_elem), v, n, sizeof(struct nft_elem), &fe_diff_ops, &d);
	}
	if (r == 0 && found && !d.changed) {
		/* The same elements: keep the committed ones. */
		free(p->owned);
		c->n_pend--;
		arena_rewind(s, m);
		return 0;
	}
	if (r == 0 && n)
		r = pack_pending(s, p, v, n, pooled);
	return r;
}

int nft_state_stage(struct nft_state *s, const struct nft_state_key *key, struct nft_elem_vec *elems)
{
	struct nft_elem *v = elems->v;
	size_t n = elems->n;

	*elems = (struct nft_elem_vec){ 0 };
	return stage_elems(s, key, v, n, v, false);
}

int nft_state_stage_copy(struct nft_state *s, const struct nft_state_key *key, const struct nft_elem *elems,
			 size_t n)
{
	return stage_elems(s, key, elems, n, NULL, false);
}

int nft_state_stage_deferred(struct nft_state *s, const struct nft_state_key *key, const struct nft_elem *elems,
			     size_t n)
{
	if (s->n_fes)
		return -EINVAL;
	return stage_elems(s, key, elems, n, NULL, true);
}

int nft_state_complete_adds(struct nft_state *s)
{
	struct nft_state_change *c = &s->change;
	int r = 0;

	if (!c->deferred)
		return 0;
	for (size_t i = 0; i < c->n_pend && r == 0; i++) {
		const struct nft_state_pending *p = &c->pend[i];
		struct nft_elem *v;

		if (!p->n || !p->deferred)
			continue;
		if (!(v = arena_elems(s, p->n)))
			return -ENOMEM;
		r = nft_pack_unpack(p->packed, p->len, v, p->n);
		for (size_t k = 0; k < p->n && r == 0; k++)
			if (!nft_state_is_shared_set(v[k].set))
				r = ptrs_push(&c->adds, &c->n_adds, &c->cap_adds, &v[k]);
	}
	if (r == 0)
		c->deferred = false;
	c->adds_sorted = false;
	return r;
}

/* Stage the removal of s->fes[idx]. */
static int stage_removal_at(struct nft_state *s, size_t idx)
{
	struct nft_state_change *c = &s->change;
	struct nft_state_fe *fe = &s->fes[idx];
	struct nft_elem *old = NULL;
	int r = pend_reserve(c);

	if (r == 0)
		r = unpack_committed(s, fe, &old);
	if (r < 0)
		return r;
	c->pend[c->n_pend] = (struct nft_state_pending){ .key = fe->key, .idx = idx, .seq = c->n_pend, .remove = true };
	c->n_pend++;
	fe->staged = s->gen;
	for (size_t i = 0; i < fe->n && r == 0; i++)
		r = stage_del(s, &old[i]);
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
	const uint8_t *present;   /* per add, before the walk: in the kernel, unread */
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
	const struct nft_elem *const *item = new_item;

	/* The walk reads add j before it writes below j: item's index is
	 * still its place in the array it started with. */
	if (rb->present && rb->present[item - rb->s->change.adds])
		return 0;
	rb->s->change.adds[rb->w++] = *item;
	return 0;
}

static const struct sorted_diff_ops rebase_ops = {
	.cmp = rebase_cmp,
	.removed = rebase_removed,
	.added = rebase_added,
};

int nft_state_rebase(struct nft_state *s, const struct nft_elem *kernel, size_t n)
{
	return nft_state_rebase_present(s, kernel, n, NULL);
}

int nft_state_rebase_present(struct nft_state *s, const struct nft_elem *kernel, size_t n, const uint8_t *present)
{
	struct nft_state_change *c = &s->change;
	struct rebase rb = { .s = s, .present = present };
	int r;

	if (c->n_dels)
		return -EINVAL;
	if (present && (c->deferred || !c->adds_sorted))
		return -EINVAL;
	if ((r = nft_state_complete_adds(s)) < 0)
		return r;
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
	c->deferred = false;
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
			packed_free(ins[k].packed, ins[k].pooled);
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
			s->fes[--w] = (struct nft_state_fe){ .key = ins[k].key, .packed = ins[k].packed, .n = ins[k].n,
							     .len = ins[k].len & 0x7fffffff, .pooled = ins[k].pooled };
		}
	}
	s->n_fes += n;
}

/* The change's references on shared elements into the committed counts
 * (room for the new ones was made while staging). */
static void commit_refs(struct nft_state *s)
{
	struct nft_state_change *c = &s->change;

	for (size_t i = 0; i < c->n_hpd; i++) {
		const struct nft_state_hp_delta *d = &c->hpd[i];
		int64_t refs = (int64_t)d->base + d->delta;
		uint32_t count = refs <= 0 ? 0 : refs > REF_COUNT ? REF_COUNT : (uint32_t)refs, *w;
		struct nft_state_refs *t;
		struct ref_key rk;

		if (d->delta == 0)
			continue;
		ref_key_of(d->e->set, d->e->family, d->e->key, &rk);
		t = &s->refs[rk.table];
		w = d->base ? ref_find(s, &rk) : NULL;
		if (w) {
			/* No count left: a tombstone. */
			*w = (*w & ~REF_COUNT) | count;
			if (!count)
				t->n--;
		} else if (count) {
			w = ref_place(t, &rk);
			if (!(*w & REF_USED))
				t->n_used++;
			*w = REF_USED | rk.kind << REF_KIND_SHIFT | count;
			t->n++;
		}
	}
}

void nft_state_commit(struct nft_state *s)
{
	struct nft_state_change *c = &s->change;
	size_t first_gone = SIZE_MAX, n_ins = 0;

	/* First the counts: the deltas point at the staged elements. */
	commit_refs(s);
	/* The staged arrays go (change.adds dangles from here, as dels). */
	for (size_t i = 0; i < c->n_pend; i++) {
		free(c->pend[i].owned);
		c->pend[i].owned = NULL;
	}
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
		packed_free(fe->packed, fe->pooled);
		fe->packed = p->packed;
		fe->len = p->len & 0x7fffffff;
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
	for (int f = 0; f < 2; f++) {
		size_t cnt = s->slots_count[f] + c->slot_adds[f];

		s->slots_count[f] = cnt > c->slot_dels[f] ? cnt - c->slot_dels[f] : 0;
	}
	change_end(s);
}

void nft_state_mem(const struct nft_state *s, struct nft_state_mem *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->frontends = s->cap_fes * sizeof(*s->fes);
	for (const struct nft_state_chunk *c = s->chunks; c; c = c->next)
		ret->packed += sizeof(*c) + c->cap;
	for (size_t i = 0; i < s->n_fes; i++)
		if (!s->fes[i].pooled)
			ret->packed += s->fes[i].len;
	for (unsigned i = 0; i < NFT_STATE_REFS; i++)
		ret->refs += s->refs[i].cap * refs_stride[i];
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
	if (s->cap_pack > TRIM_KEEP) {
		free(s->pack);
		s->pack = NULL;
		s->cap_pack = 0;
	}
	nft_elem_vec_done(&s->view);
	/* Tables grown step by step to twice their need: down to 3/4 load,
	 * below the 80 % that grows them (a failed rehash keeps the bigger
	 * one). */
	for (unsigned i = 0; i < NFT_STATE_REFS; i++) {
		size_t want = s->refs[i].n * 4 / 3;

		if (want < 1024)
			want = 1024;
		if (s->refs[i].cap > want + want / 4)
			(void)refs_rehash(s, i, want);
	}
}

void nft_state_discard(struct nft_state *s)
{
	struct nft_state_change *c = &s->change;

	for (size_t i = 0; i < c->n_pend; i++) {
		free(c->pend[i].owned);
		packed_free(c->pend[i].packed, c->pend[i].pooled);
	}
	change_end(s);
}
