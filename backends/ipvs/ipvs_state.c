/* State: the IPVS backend's committed items per frontend and the change
 * one sync makes (see ipvs_state.h).
 *
 * Layout: committed frontends in an array sorted by key, each owning its
 * sorted item array; staged frontends in an array too (sorted and made
 * unique when the change is computed). Shared items live in an
 * open-addressing hash with two counts: refs (committed) and pending (what
 * the staged change makes of it); only the entries a change touches are
 * visited again at commit or discard, so a change costs what it touches.
 */
#include "ipvs_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sorted_diff.h"

struct fe_entry {
	struct ipvs_fe_key key;
	struct ipvs_item *items; /* sorted, unique */
	size_t n;
	bool staged;             /* staged since the last commit (full syncs) */
};

struct staged {
	struct ipvs_fe_key key;
	struct ipvs_item *items; /* sorted, unique; NULL with remove */
	size_t n;
	bool remove;
	size_t seq;              /* staging order: the last of one key wins */
};

struct shared {
	struct ipvs_item item;
	uint32_t refs;           /* committed frontends holding it; 0 with used: tombstone */
	uint32_t pending;        /* during a change: refs after it */
	bool used;
	bool touched;
};

/* A pointer list that grows. */
struct ptrs {
	const struct ipvs_item **v;
	size_t n, cap;
};

struct ipvs_state {
	struct fe_entry *fes;    /* sorted by key */
	size_t n_fes, cap_fes;
	struct staged *stg;
	size_t n_stg, cap_stg;
	struct shared *sh;       /* hash, cap_sh a power of two */
	size_t n_sh_used, cap_sh;
	struct shared **touched;
	size_t n_touched, cap_touched;
	struct ptrs dels, adds, edits, drains;
	struct ipvs_item *drain_copies; /* weight-0 versions of drains */
	struct ipvs_item_vec drain_list;
	size_t n_items;          /* committed items, shared ones once */
};

static int ptrs_push(struct ptrs *p, const struct ipvs_item *it)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		const struct ipvs_item **v = realloc(p->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n++] = it;
	return 0;
}

static int cmp_u(unsigned a, unsigned b)
{
	return a < b ? -1 : a > b;
}

static int key_cmp(const struct ipvs_fe_key *a, const struct ipvs_fe_key *b)
{
	int c;

	if ((c = cmp_u(a->kind, b->kind)) || (c = inet_addr_cmp(&a->addr, &b->addr)) ||
	    (c = cmp_u(a->proto, b->proto)) || (c = cmp_u(a->port, b->port)))
		return c;
	return 0;
}

void ipvs_fe_key_of(const struct plan_frontend *fe, struct ipvs_fe_key *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->kind = (uint8_t)fe->kind;
	ret->proto = (uint8_t)fe->proto;
	ret->port = fe->port;
	ret->addr = fe->addr;
}

struct ipvs_state *ipvs_state_new(void)
{
	return calloc(1, sizeof(struct ipvs_state));
}

static void staged_clear(struct ipvs_state *st)
{
	for (size_t i = 0; i < st->n_stg; i++)
		free(st->stg[i].items);
	st->n_stg = 0;
}

static void touched_clear(struct ipvs_state *st)
{
	for (size_t i = 0; i < st->n_touched; i++)
		st->touched[i]->touched = false;
	st->n_touched = 0;
}

static void change_clear(struct ipvs_state *st)
{
	st->dels.n = st->adds.n = st->edits.n = st->drains.n = 0;
	free(st->drain_copies);
	st->drain_copies = NULL;
}

struct ipvs_state *ipvs_state_free(struct ipvs_state *st)
{
	if (!st)
		return NULL;
	ipvs_state_reset(st);
	free(st->fes);
	free(st->stg);
	free(st->sh);
	free(st->touched);
	free(st->dels.v);
	free(st->adds.v);
	free(st->edits.v);
	free(st->drains.v);
	ipvs_item_vec_done(&st->drain_list);
	free(st);
	return NULL;
}

void ipvs_state_reset(struct ipvs_state *st)
{
	staged_clear(st);
	touched_clear(st);
	change_clear(st);
	for (size_t i = 0; i < st->n_fes; i++)
		free(st->fes[i].items);
	st->n_fes = 0;
	if (st->sh)
		memset(st->sh, 0, st->cap_sh * sizeof(*st->sh));
	st->n_sh_used = 0;
	st->n_items = 0;
}

/* ---- shared items ---- */

static uint64_t item_hash(const struct ipvs_item *it)
{
	uint64_t h = 1469598103934665603ull;
	const uint8_t *parts[2] = { it->addr.u.bytes, it->addr2.u.bytes };

	h = (h ^ it->kind) * 1099511628211ull;
	h = (h ^ it->set) * 1099511628211ull;
	h = (h ^ it->proto) * 1099511628211ull;
	h = (h ^ it->port) * 1099511628211ull;
	h = (h ^ it->port2) * 1099511628211ull;
	for (int p = 0; p < 2; p++)
		for (int i = 0; i < 16; i++)
			h = (h ^ parts[p][i]) * 1099511628211ull;
	return h;
}

static int sh_grow(struct ipvs_state *st)
{
	size_t cap = st->cap_sh ? st->cap_sh * 2 : 256;
	struct shared *old = st->sh, *t = calloc(cap, sizeof(*t));
	size_t old_cap = st->cap_sh;

	if (!t)
		return -ENOMEM;
	/* Only called between changes (no touched entries), so pointers into
	 * the old table are not held anywhere. */
	st->sh = t;
	st->cap_sh = cap;
	st->n_sh_used = 0;
	for (size_t i = 0; i < old_cap; i++) {
		size_t j;

		if (!old[i].used || !old[i].refs)
			continue;
		j = item_hash(&old[i].item) & (cap - 1);
		while (t[j].used)
			j = (j + 1) & (cap - 1);
		t[j] = old[i];
		st->n_sh_used++;
	}
	free(old);
	return 0;
}

/* The entry of it, created (refs 0) when absent; touched for the change.
 * NULL on ENOMEM. */
static struct shared *sh_get(struct ipvs_state *st, const struct ipvs_item *it)
{
	struct shared *tomb = NULL, *e;
	size_t j;

	if (!st->cap_sh)
		return NULL;
	j = item_hash(it) & (st->cap_sh - 1);
	while (st->sh[j].used) {
		e = &st->sh[j];
		if ((e->refs || e->touched) && ipvs_item_cmp(&e->item, it) == 0)
			goto found;
		if (!e->refs && !e->touched && !tomb)
			tomb = e;
		j = (j + 1) & (st->cap_sh - 1);
	}
	e = tomb ? tomb : &st->sh[j];
	if (!e->used)
		st->n_sh_used++;
	memset(e, 0, sizeof(*e));
	e->item = *it;
	e->used = true;
found:
	if (!e->touched) {
		if (st->n_touched == st->cap_touched) {
			size_t cap = st->cap_touched ? st->cap_touched * 2 : 64;
			struct shared **v = realloc(st->touched, cap * sizeof(*v));

			if (!v)
				return NULL;
			st->touched = v;
			st->cap_touched = cap;
		}
		st->touched[st->n_touched++] = e;
		e->touched = true;
		e->pending = e->refs;
	}
	return e;
}

/* Room for the shared items a change may add: the table is never resized
 * while a change holds pointers into it. */
static int sh_reserve(struct ipvs_state *st, size_t extra)
{
	while ((st->n_sh_used + extra + 1) * 10 >= st->cap_sh * 7)
		if (sh_grow(st) < 0)
			return -ENOMEM;
	return 0;
}

/* ---- staging ---- */

static int stage_push(struct ipvs_state *st, const struct ipvs_fe_key *key, struct ipvs_item_vec *items,
		      bool remove)
{
	struct staged *s;

	if (st->n_stg == st->cap_stg) {
		size_t cap = st->cap_stg ? st->cap_stg * 2 : 64;
		struct staged *v = realloc(st->stg, cap * sizeof(*v));

		if (!v) {
			if (items)
				ipvs_item_vec_done(items);
			return -ENOMEM;
		}
		st->stg = v;
		st->cap_stg = cap;
	}
	s = &st->stg[st->n_stg];
	memset(s, 0, sizeof(*s));
	s->key = *key;
	s->remove = remove;
	s->seq = st->n_stg;
	if (items) {
		s->items = items->v;
		s->n = items->n;
		memset(items, 0, sizeof(*items));
	}
	st->n_stg++;
	return 0;
}

int ipvs_state_stage(struct ipvs_state *st, const struct ipvs_fe_key *key, struct ipvs_item_vec *items)
{
	return stage_push(st, key, items, false);
}

int ipvs_state_stage_removal(struct ipvs_state *st, const struct ipvs_fe_key *key)
{
	return stage_push(st, key, NULL, true);
}

static struct fe_entry *fe_find(const struct ipvs_state *st, const struct ipvs_fe_key *key, size_t *ret_pos)
{
	size_t lo = 0, hi = st->n_fes;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = key_cmp(&st->fes[mid].key, key);

		if (c == 0) {
			if (ret_pos)
				*ret_pos = mid;
			return &st->fes[mid];
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (ret_pos)
		*ret_pos = lo;
	return NULL;
}

/* Order staged frontends by key, the last staging of a key winning, and
 * drop the earlier ones. */
static int staged_cmp(const void *a, const void *b)
{
	const struct staged *x = a, *y = b;
	int c = key_cmp(&x->key, &y->key);

	return c ? c : x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void staged_normalize(struct ipvs_state *st)
{
	size_t w = 0;

	if (st->n_stg > 1)
		qsort(st->stg, st->n_stg, sizeof(*st->stg), staged_cmp);
	for (size_t i = 0; i < st->n_stg; i++) {
		if (i + 1 < st->n_stg && key_cmp(&st->stg[i].key, &st->stg[i + 1].key) == 0) {
			free(st->stg[i].items);
			continue;
		}
		st->stg[w++] = st->stg[i];
	}
	st->n_stg = w;
}

int ipvs_state_stage_unstaged_removals(struct ipvs_state *st)
{
	int r = 0;

	for (size_t i = 0; i < st->n_fes; i++)
		st->fes[i].staged = false;
	for (size_t i = 0; i < st->n_stg; i++) {
		struct fe_entry *f = fe_find(st, &st->stg[i].key, NULL);

		if (f)
			f->staged = true;
	}
	for (size_t i = 0; i < st->n_fes && r == 0; i++)
		if (!st->fes[i].staged)
			r = ipvs_state_stage_removal(st, &st->fes[i].key);
	return r;
}

/* ---- the change ---- */

static bool drains(const struct ipvs_item *it)
{
	return it->kind == IPVS_ITEM_DEST && it->proto != INET_PROTO_UDP;
}

/* An item that goes outright, with no shared count to keep: deleted, or
 * drained (a TCP/SCTP real server). */
static int item_dropped(struct ipvs_state *st, const struct ipvs_item *it)
{
	return ptrs_push(drains(it) ? &st->drains : &st->dels, it);
}

/* An item no frontend wants any more. */
static int item_gone(struct ipvs_state *st, const struct ipvs_item *it)
{
	if (ipvs_item_is_shared(it)) {
		struct shared *e = sh_get(st, it);

		if (!e)
			return -ENOMEM;
		if (e->pending)
			e->pending--;
		return 0;
	}
	return item_dropped(st, it);
}

static int item_new(struct ipvs_state *st, const struct ipvs_item *it)
{
	if (ipvs_item_is_shared(it)) {
		struct shared *e = sh_get(st, it);

		if (!e)
			return -ENOMEM;
		e->pending++;
		return 0;
	}
	return ptrs_push(&st->adds, it);
}

static int diff_cmp(const void *a, const void *b, void *ctx)
{
	(void)ctx;
	return ipvs_item_cmp(a, b);
}

static int diff_removed(const void *a, void *ctx)
{
	return item_gone(ctx, a);
}

static int diff_added(const void *b, void *ctx)
{
	return item_new(ctx, b);
}

static int diff_kept(const void *a, const void *b, void *ctx)
{
	const struct ipvs_item *x = a, *y = b;

	/* A shared item kept by one frontend keeps its count: nothing. */
	if (!ipvs_item_is_shared(y) && ipvs_item_options_differ(x, y))
		return ptrs_push(&((struct ipvs_state *)ctx)->edits, y);
	return 0;
}

static const struct sorted_diff_ops item_diff_ops = {
	.cmp = diff_cmp, .removed = diff_removed, .added = diff_added, .kept = diff_kept,
};

static int ptr_item_cmp(const void *a, const void *b)
{
	return ipvs_item_cmp(*(const struct ipvs_item *const *)a, *(const struct ipvs_item *const *)b);
}

static int ptr_item_rcmp(const void *a, const void *b)
{
	return -ptr_item_cmp(a, b);
}

/* Is a service with dest's virtual server key among the deletes? */
static bool service_deleted(const struct ipvs_state *st, const struct ipvs_item *dest)
{
	struct ipvs_item k = { .kind = IPVS_ITEM_SERVICE, .proto = dest->proto, .port = dest->port,
			       .addr = dest->addr };
	const struct ipvs_item *p = &k;

	/* dels are sorted by descending key at this point. */
	return st->dels.n && bsearch(&p, st->dels.v, st->dels.n, sizeof(*st->dels.v), ptr_item_rcmp) != NULL;
}

/* After the diffs: shared items whose count crosses zero become adds or
 * deletes; drains of deleted services become plain deletes; the lists get
 * their sending order. */
static int change_finish(struct ipvs_state *st, struct ipvs_change *ret)
{
	size_t w = 0;
	int r = 0;

	for (size_t i = 0; i < st->n_touched && r == 0; i++) {
		const struct shared *e = st->touched[i];

		if (e->refs == 0 && e->pending > 0)
			r = ptrs_push(&st->adds, &e->item);
		else if (e->refs > 0 && e->pending == 0)
			r = ptrs_push(&st->dels, &e->item);
	}
	if (r < 0)
		return r;
	if (st->dels.n > 1)
		qsort(st->dels.v, st->dels.n, sizeof(*st->dels.v), ptr_item_rcmp);
	if (st->adds.n > 1)
		qsort(st->adds.v, st->adds.n, sizeof(*st->adds.v), ptr_item_cmp);
	/* A real server of a service that goes goes with it, at once. */
	for (size_t i = 0; i < st->drains.n; i++) {
		if (service_deleted(st, st->drains.v[i]))
			continue;
		st->drains.v[w++] = st->drains.v[i];
	}
	st->drains.n = w;
	if (st->drains.n) {
		st->drain_copies = malloc(st->drains.n * sizeof(*st->drain_copies));
		if (!st->drain_copies)
			return -ENOMEM;
		for (size_t i = 0; i < st->drains.n && r == 0; i++) {
			st->drain_copies[i] = *st->drains.v[i];
			st->drain_copies[i].weight = 0;
			st->drains.v[i] = &st->drain_copies[i];
			r = ptrs_push(&st->edits, &st->drain_copies[i]);
		}
	}
	ret->dels = st->dels.v;
	ret->n_dels = st->dels.n;
	ret->adds = st->adds.v;
	ret->n_adds = st->adds.n;
	ret->edits = st->edits.v;
	ret->n_edits = st->edits.n;
	ret->drains = st->drains.v;
	ret->n_drains = st->drains.n;
	return r;
}

static size_t staged_shared_count(const struct ipvs_state *st)
{
	size_t n = 0;

	for (size_t i = 0; i < st->n_stg; i++)
		for (size_t j = 0; j < st->stg[i].n; j++)
			n += ipvs_item_is_shared(&st->stg[i].items[j]);
	return n;
}

/* Start computing a change, by difference or by adoption: an empty *ret
 * and change lists, the staged frontends in key order (last staging of a
 * key wins), room in the shared hash for every shared item staged. 0 or
 * -ENOMEM. */
static int change_begin(struct ipvs_state *st, struct ipvs_change *ret)
{
	memset(ret, 0, sizeof(*ret));
	touched_clear(st);
	change_clear(st);
	staged_normalize(st);
	return sh_reserve(st, staged_shared_count(st));
}

int ipvs_state_change(struct ipvs_state *st, struct ipvs_change *ret)
{
	int r = change_begin(st, ret);

	for (size_t i = 0; i < st->n_stg && r == 0; i++) {
		const struct staged *s = &st->stg[i];
		const struct fe_entry *f = fe_find(st, &s->key, NULL);

		r = sorted_diff(f ? f->items : NULL, f ? f->n : 0, sizeof(struct ipvs_item), s->items, s->n,
				sizeof(struct ipvs_item), &item_diff_ops, st);
	}
	if (r == 0)
		r = change_finish(st, ret);
	return r;
}

/* ---- adopting the kernel's state ---- */

/* The adopt diff walks the kernel's items (have) against pointers to the
 * items the plan wants. Each list holds a shared item once (its count is
 * set while the wanted list is built), so the diff deletes and adds it
 * like any other item. */
static int adopt_removed(const void *a, void *ctx)
{
	return item_dropped(ctx, a);
}

static int adopt_added(const void *b, void *ctx)
{
	return ptrs_push(&((struct ipvs_state *)ctx)->adds, *(const struct ipvs_item *const *)b);
}

static int adopt_cmp(const void *a, const void *b, void *ctx)
{
	(void)ctx;
	return ipvs_item_cmp(a, *(const struct ipvs_item *const *)b);
}

static int adopt_kept(const void *a, const void *b, void *ctx)
{
	const struct ipvs_item *x = a, *y = *(const struct ipvs_item *const *)b;

	if (ipvs_item_options_differ(x, y))
		return ptrs_push(&((struct ipvs_state *)ctx)->edits, y);
	return 0;
}

static const struct sorted_diff_ops adopt_diff_ops = {
	.cmp = adopt_cmp, .removed = adopt_removed, .added = adopt_added, .kept = adopt_kept,
};

int ipvs_state_change_from(struct ipvs_state *st, const struct ipvs_item *have, size_t n_have,
			   struct ipvs_change *ret)
{
	struct ptrs want = { 0 };
	size_t w = 0;
	int r = change_begin(st, ret);

	/* What the plan wants, every item once; shared items counted. */
	for (size_t i = 0; i < st->n_stg && r == 0; i++)
		for (size_t j = 0; j < st->stg[i].n && r == 0; j++) {
			const struct ipvs_item *it = &st->stg[i].items[j];

			if (ipvs_item_is_shared(it)) {
				struct shared *e = sh_get(st, it);

				if (!e) {
					r = -ENOMEM;
					break;
				}
				if (e->pending++ > 0)
					continue;
			}
			r = ptrs_push(&want, it);
		}
	if (r == 0 && want.n > 1) {
		qsort(want.v, want.n, sizeof(*want.v), ptr_item_cmp);
		for (size_t i = 0; i < want.n; i++)
			if (w == 0 || ipvs_item_cmp(want.v[w - 1], want.v[i]) != 0)
				want.v[w++] = want.v[i];
		want.n = w;
	}
	if (r == 0)
		r = sorted_diff(have, n_have, sizeof(*have), want.v, want.n, sizeof(*want.v), &adopt_diff_ops, st);
	free(want.v);
	/* The kernel's shared items are in have, not in the hash: the counts
	 * start from the plan alone (refs 0), so change_finish would add every
	 * shared item again; the adopt diff already did what is needed. */
	for (size_t i = 0; i < st->n_touched; i++)
		st->touched[i]->refs = 0;
	if (r == 0) {
		struct ipvs_change tmp;
		size_t n_touched = st->n_touched;

		/* Let change_finish order the lists, without shared adds. */
		st->n_touched = 0;
		r = change_finish(st, &tmp);
		st->n_touched = n_touched;
		*ret = tmp;
	}
	return r;
}

/* ---- commit ---- */

static int drain_list_add(struct ipvs_state *st, const struct ipvs_item *it)
{
	struct ipvs_item *d;

	if (ipvs_state_draining(st, it))
		return 0;
	if (!(d = ipvs_item_vec_push(&st->drain_list)))
		return -ENOMEM;
	*d = *it;
	d->weight = 0;
	return 0;
}

void ipvs_state_commit(struct ipvs_state *st)
{
	size_t n_new = 0;

	/* Drains start, re-added real servers and those of deleted services
	 * leave the drain list. */
	for (size_t i = 0; i < st->drains.n; i++)
		(void)drain_list_add(st, st->drains.v[i]); /* ENOMEM: it stays at weight 0, forgotten */
	for (size_t i = 0; i < st->adds.n; i++)
		if (st->adds.v[i]->kind == IPVS_ITEM_DEST)
			ipvs_state_drain_remove(st, st->adds.v[i]);
	for (size_t i = 0; i < st->dels.n; i++) {
		const struct ipvs_item *d = st->dels.v[i];

		if (d->kind == IPVS_ITEM_DEST) {
			ipvs_state_drain_remove(st, d);
		} else if (d->kind == IPVS_ITEM_SERVICE) {
			size_t w = 0;

			for (size_t j = 0; j < st->drain_list.n; j++) {
				const struct ipvs_item *x = &st->drain_list.v[j];

				if (x->proto == d->proto && x->port == d->port && inet_addr_cmp(&x->addr, &d->addr) == 0)
					continue;
				st->drain_list.v[w++] = *x;
			}
			st->drain_list.n = w;
		}
	}
	/* Shared counts move. */
	for (size_t i = 0; i < st->n_touched; i++) {
		struct shared *e = st->touched[i];

		if (e->refs == 0 && e->pending > 0)
			st->n_items++;
		else if (e->refs > 0 && e->pending == 0)
			st->n_items--;
		e->refs = e->pending;
		e->touched = false;
	}
	st->n_touched = 0;
	/* Frontend lists move: count the inserts, make room, merge. */
	for (size_t i = 0; i < st->n_stg; i++)
		if (!st->stg[i].remove && !fe_find(st, &st->stg[i].key, NULL))
			n_new++;
	if (st->n_fes + n_new > st->cap_fes) {
		size_t cap = st->n_fes + n_new + 64;
		struct fe_entry *v = realloc(st->fes, cap * sizeof(*v));

		if (!v) {
			/* Cannot record it: forget everything, the caller's next
			 * sync reads the kernel back. */
			ipvs_state_reset(st);
			return;
		}
		st->fes = v;
		st->cap_fes = cap;
	}
	for (size_t i = 0; i < st->n_stg; i++) {
		struct staged *s = &st->stg[i];
		size_t pos;
		struct fe_entry *f = fe_find(st, &s->key, &pos);
		size_t unshared = 0;

		for (size_t j = 0; j < s->n; j++)
			unshared += !ipvs_item_is_shared(&s->items[j]);
		if (f) {
			for (size_t j = 0; j < f->n; j++)
				st->n_items -= !ipvs_item_is_shared(&f->items[j]);
			free(f->items);
			if (s->remove) {
				memmove(f, f + 1, (st->n_fes - pos - 1) * sizeof(*f));
				st->n_fes--;
				continue;
			}
			f->items = s->items;
			f->n = s->n;
		} else if (!s->remove) {
			memmove(&st->fes[pos + 1], &st->fes[pos], (st->n_fes - pos) * sizeof(*st->fes));
			st->fes[pos] = (struct fe_entry){ .key = s->key, .items = s->items, .n = s->n };
			st->n_fes++;
		}
		st->n_items += unshared;
		s->items = NULL;
	}
	staged_clear(st);
	change_clear(st);
}

void ipvs_state_discard(struct ipvs_state *st)
{
	for (size_t i = 0; i < st->n_touched; i++)
		st->touched[i]->pending = st->touched[i]->refs;
	touched_clear(st);
	staged_clear(st);
	change_clear(st);
}

/* ---- drain list and introspection ---- */

size_t ipvs_state_drain_count(const struct ipvs_state *st)
{
	return st->drain_list.n;
}

const struct ipvs_item *ipvs_state_drain_at(const struct ipvs_state *st, size_t i)
{
	return i < st->drain_list.n ? &st->drain_list.v[i] : NULL;
}

bool ipvs_state_draining(const struct ipvs_state *st, const struct ipvs_item *item)
{
	for (size_t i = 0; i < st->drain_list.n; i++)
		if (ipvs_item_cmp(&st->drain_list.v[i], item) == 0)
			return true;
	return false;
}

void ipvs_state_drain_remove(struct ipvs_state *st, const struct ipvs_item *item)
{
	for (size_t i = 0; i < st->drain_list.n; i++)
		if (ipvs_item_cmp(&st->drain_list.v[i], item) == 0) {
			st->drain_list.v[i] = st->drain_list.v[--st->drain_list.n];
			return;
		}
}

size_t ipvs_state_frontends(const struct ipvs_state *st)
{
	return st->n_fes;
}

size_t ipvs_state_items(const struct ipvs_state *st)
{
	return st->n_items;
}

int ipvs_state_all_items(const struct ipvs_state *st, struct ipvs_item_vec *out)
{
	size_t start = out->n;

	for (size_t i = 0; i < st->n_fes; i++)
		for (size_t j = 0; j < st->fes[i].n; j++) {
			struct ipvs_item *it = ipvs_item_vec_push(out);

			if (!it)
				return -ENOMEM;
			*it = st->fes[i].items[j];
		}
	{
		struct ipvs_item_vec tail = { .v = out->v + start, .n = out->n - start, .cap = out->n - start };

		ipvs_item_vec_sort(&tail);
		out->n = start + tail.n;
	}
	return 0;
}

static bool excluded(const struct inet_addr *a, const struct inet_prefix *ex, size_t n_ex)
{
	for (size_t i = 0; i < n_ex; i++)
		if (inet_prefix_contains(&ex[i], a))
			return true;
	return false;
}

/* Whether dels[0..n) deletes the virtual server of real server d. */
static bool dels_have_service(const struct ipvs_item *const *dels, size_t n, const struct ipvs_item *d)
{
	for (size_t i = 0; i < n; i++)
		if (dels[i]->kind == IPVS_ITEM_SERVICE && dels[i]->proto == d->proto && dels[i]->port == d->port &&
		    inet_addr_cmp(&dels[i]->addr, &d->addr) == 0)
			return true;
	return false;
}

int ipvs_change_keep_excluded(struct ipvs_change *c, const struct inet_prefix *ex, size_t n_ex)
{
	size_t kept = 0, out = 0;
	bool *keep;

	if (!n_ex || !c->n_dels)
		return 0;
	keep = calloc(c->n_dels, sizeof(*keep));
	if (!keep)
		return -ENOMEM;
	/* Decide on the whole list first: a real server looks for its
	 * virtual server's deletion anywhere in it. */
	for (size_t i = 0; i < c->n_dels; i++) {
		const struct ipvs_item *it = c->dels[i];

		switch ((enum ipvs_item_kind)it->kind) {
		case IPVS_ITEM_ADDR:
		case IPVS_ITEM_SERVICE:
			keep[i] = excluded(&it->addr, ex, n_ex);
			break;
		case IPVS_ITEM_DEST:
			keep[i] = excluded(&it->addr, ex, n_ex) && dels_have_service(c->dels, c->n_dels, it);
			break;
		case IPVS_ITEM_MEMBER:
			break;
		}
	}
	for (size_t i = 0; i < c->n_dels; i++) {
		if (keep[i])
			kept++;
		else
			c->dels[out++] = c->dels[i];
	}
	c->n_dels = out;
	free(keep);
	return (int)kept;
}
