/* The model store.
 *
 * Three hash maps: services by (ns, name), slices by (ns, name), and slice
 * groups by (ns, service name) so the planner finds a service's slices
 * without scanning. Ordered iteration is served from sorted arrays of
 * pointers that are rebuilt lazily after an insert or delete (a replace
 * swaps the pointer in place): a relist of 100k objects then costs one
 * sort at the next planner run instead of a memmove per insert. The sorted
 * views live behind a pointer so the const read functions can refresh them;
 * the model is single-threaded, so this hidden mutation is safe.
 */
#include "model.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "intern.h"
#include "kobj.h"
#include "log.h"
#include "nsname_map.h"

/* The slices that name one service (that service may not exist). */
struct slice_group {
	const char *ns;       /* shared copies (intern.h) */
	const char *svc_name;
	/* &one while the group has room for one slice only (almost every
	 * service has a single slice per family: no second allocation),
	 * else an array on the heap with room for group_room() at least. */
	struct kobj_slice **slices;
	uint32_t n_slices;
	bool sorted; /* slices[] is in name order */
	struct kobj_slice *one;
};

/* The slices g has room for: 1 inline, else the power of two (4 at least)
 * its array was last grown to for its count, or more after removals. */
static uint32_t group_room(const struct slice_group *g)
{
	uint32_t room = 4;

	if (g->slices == &g->one)
		return 1;
	while (room < g->n_slices)
		room *= 2;
	return room;
}

/* Lazily sorted views of the maps. */
struct model_order {
	struct kobj_service **svcs;
	size_t n_svcs;
	bool svcs_valid;
	struct kobj_slice **slices;
	size_t n_slices;
	bool slices_valid;
};

/* One entry of the change journal: a service whose plan may differ after
 * generation gen, or (ns NULL) everything. */
struct journal_entry {
	uint64_t gen;
	char *ns;
	char *name;
};

struct model {
	struct nsname_map services; /* -> struct kobj_service */
	struct nsname_map slices;   /* -> struct kobj_slice */
	struct nsname_map groups;   /* (ns, service name) -> struct slice_group */
	struct kobj_node *node;
	struct host_addrs host;
	struct inet_prefix *service_cidrs;
	size_t n_service_cidrs;
	uint64_t generation;
	uint64_t service_changes; /* upserts and deletes of services, ever */
	uint64_t slice_changes;   /* upserts and deletes of slices, ever */
	double triggers[MODEL_MAX_TRIGGERS]; /* new slices' trigger times, not yet taken */
	size_t n_triggers;
	struct model_order *order;
	/* The change journal (model_changes_since): a ring of the last
	 * MODEL_JOURNAL_MAX entries, and the newest generation an overwritten
	 * entry had (changes after since are all known when since >= it). */
	struct journal_entry *journal;
	size_t journal_head, journal_n;
	uint64_t journal_floor;
};

/* A slice without the service-name label is grouped under "", a name no
 * Service can have, so it is always an orphan. */
static const char *slice_svc_name(const struct kobj_slice *slice)
{
	return slice->service_name ? slice->service_name : "";
}

static int cmp_nsname(const char *ns_a, const char *name_a, const char *ns_b, const char *name_b)
{
	int c = strcmp(ns_a, ns_b);

	return c ? c : strcmp(name_a, name_b);
}

static int cmp_svc_ptr(const void *a, const void *b)
{
	const struct kobj_service *x = *(const struct kobj_service *const *)a;
	const struct kobj_service *y = *(const struct kobj_service *const *)b;

	return cmp_nsname(x->ns, x->name, y->ns, y->name);
}

static int cmp_slice_ptr(const void *a, const void *b)
{
	const struct kobj_slice *x = *(const struct kobj_slice *const *)a;
	const struct kobj_slice *y = *(const struct kobj_slice *const *)b;

	return cmp_nsname(x->ns, x->name, y->ns, y->name);
}

static struct slice_group *slice_group_free(struct slice_group *g)
{
	if (!g)
		return NULL;
	intern_release(g->ns);
	intern_release(g->svc_name);
	if (g->slices != &g->one)
		free(g->slices);
	free(g);
	return NULL;
}

/* Record that (ns, name) -- or, with ns NULL, everything -- changed at
 * the current generation. Without memory for the names, everything did. */
static void journal_note(struct model *m, const char *ns, const char *name)
{
	struct journal_entry *e;

	if (!m->journal) {
		m->journal = calloc(MODEL_JOURNAL_MAX, sizeof(*m->journal));
		if (!m->journal) {
			m->journal_floor = m->generation; /* nothing after it is known */
			return;
		}
	}
	e = &m->journal[m->journal_head];
	if (m->journal_n == MODEL_JOURNAL_MAX) {
		if (e->gen > m->journal_floor)
			m->journal_floor = e->gen;
		free(e->ns);
	} else {
		m->journal_n++;
	}
	m->journal_head = (m->journal_head + 1) % MODEL_JOURNAL_MAX;
	e->gen = m->generation;
	e->ns = e->name = NULL;
	if (!ns)
		return;
	/* ns and name share one allocation. */
	size_t nsl = strlen(ns) + 1, nl = strlen(name) + 1;
	e->ns = malloc(nsl + nl);
	if (!e->ns)
		return; /* recorded as "everything" */
	memcpy(e->ns, ns, nsl);
	e->name = memcpy(e->ns + nsl, name, nl);
}

int model_changes_since(const struct model *m, uint64_t since,
			int (*fn)(const char *ns, const char *name, void *userdata), void *userdata)
{
	size_t start;
	int r;

	if (since > m->generation)
		return MODEL_CHANGES_ALL; /* another model's generation */
	if (since == m->generation)
		return 0;
	if (m->journal_floor > since || !m->journal)
		return MODEL_CHANGES_ALL;
	start = (m->journal_head + MODEL_JOURNAL_MAX - m->journal_n) % MODEL_JOURNAL_MAX;
	/* Generations grow along the ring: find the first entry after since
	 * by bisection, so a planner that keeps up reads only what is new. */
	size_t lo = 0, hi = m->journal_n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->journal[(start + mid) % MODEL_JOURNAL_MAX].gen <= since)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < m->journal_n; i++)
		if (!m->journal[(start + i) % MODEL_JOURNAL_MAX].ns)
			return MODEL_CHANGES_ALL;
	for (size_t i = lo; i < m->journal_n; i++) {
		const struct journal_entry *e = &m->journal[(start + i) % MODEL_JOURNAL_MAX];

		if ((r = fn(e->ns, e->name, userdata)) != 0)
			return r;
	}
	return 0;
}

struct model *model_new(void)
{
	struct model *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->order = calloc(1, sizeof(*m->order));
	if (!m->order) {
		free(m);
		return NULL;
	}
	nsname_map_init(&m->services, NSNAME_MAP_KEY(struct kobj_service, ns, name));
	nsname_map_init(&m->slices, NSNAME_MAP_KEY(struct kobj_slice, ns, name));
	nsname_map_init(&m->groups, NSNAME_MAP_KEY(struct slice_group, ns, svc_name));
	return m;
}

/* Free every object and empty the maps, keeping the node. */
static void model_release_objects(struct model *m)
{
	size_t it = 0;
	void *v;

	while ((v = nsname_map_next(&m->services, &it)))
		kobj_service_free(v);
	it = 0;
	while ((v = nsname_map_next(&m->slices, &it)))
		kobj_slice_free(v);
	it = 0;
	while ((v = nsname_map_next(&m->groups, &it)))
		slice_group_free(v);
	nsname_map_done(&m->services);
	nsname_map_done(&m->slices);
	nsname_map_done(&m->groups);
	m->order->svcs_valid = false;
	m->order->slices_valid = false;
}

struct model *model_free(struct model *m)
{
	if (!m)
		return NULL;
	model_release_objects(m);
	kobj_node_free(m->node);
	host_addrs_done(&m->host);
	free(m->service_cidrs);
	free(m->order->svcs);
	free(m->order->slices);
	free(m->order);
	for (size_t i = 0; m->journal && i < MODEL_JOURNAL_MAX; i++)
		free(m->journal[i].ns);
	free(m->journal);
	free(m);
	return NULL;
}

void model_clear(struct model *m)
{
	model_release_objects(m);
	m->generation++;
	journal_note(m, NULL, NULL);
}

/* Refresh the sorted service view. Returns 0 or -ENOMEM. */
static int order_services(const struct model *m)
{
	struct model_order *o = m->order;
	size_t n = nsname_map_size(&m->services), it = 0, i = 0;
	struct kobj_service *svc;

	if (o->svcs_valid)
		return 0;
	if (n > o->n_svcs || !o->svcs) {
		struct kobj_service **a = realloc(o->svcs, (n ? n : 1) * sizeof(*a));
		if (!a)
			return -ENOMEM;
		o->svcs = a;
	}
	while ((svc = nsname_map_next(&m->services, &it)))
		o->svcs[i++] = svc;
	o->n_svcs = n;
	qsort(o->svcs, n, sizeof(*o->svcs), cmp_svc_ptr);
	o->svcs_valid = true;
	return 0;
}

/* Refresh the sorted slice view. Returns 0 or -ENOMEM. */
static int order_slices(const struct model *m)
{
	struct model_order *o = m->order;
	size_t n = nsname_map_size(&m->slices), it = 0, i = 0;
	struct kobj_slice *slice;

	if (o->slices_valid)
		return 0;
	if (n > o->n_slices || !o->slices) {
		struct kobj_slice **a = realloc(o->slices, (n ? n : 1) * sizeof(*a));
		if (!a)
			return -ENOMEM;
		o->slices = a;
	}
	while ((slice = nsname_map_next(&m->slices, &it)))
		o->slices[i++] = slice;
	o->n_slices = n;
	qsort(o->slices, n, sizeof(*o->slices), cmp_slice_ptr);
	o->slices_valid = true;
	return 0;
}

/* Point a valid sorted view at a replacement object (same ns and name), so
 * a plain update does not force a re-sort. */
static void order_swap(void **arr, size_t n, bool valid, const void *old, void *repl,
		       int (*cmp)(const void *, const void *))
{
	void **hit;

	if (!valid)
		return;
	hit = bsearch(&old, arr, n, sizeof(*arr), cmp);
	if (hit)
		*hit = repl;
}

int model_upsert_service(struct model *m, struct kobj_service *svc)
{
	void *old = NULL;
	int r;

	if (!svc)
		return -EINVAL;
	if (!svc->ns || !svc->name) {
		log_warn("model: service without namespace or name from %s ignored",
			 svc->source ? svc->source : "?");
		kobj_service_free(svc);
		return -EINVAL;
	}
	/* Namespaces and sources repeat: one shared copy each (a failure
	 * only costs memory). */
	(void)kobj_service_intern(svc);
	/* Its name, cluster IPs and ports in one allocation instead of
	 * three: 100k services hold 200k fewer. Same on failure. */
	(void)kobj_service_pack(svc);
	r = nsname_map_put(&m->services, svc, &old);
	if (r < 0) {
		kobj_service_free(svc);
		return r;
	}
	if (old) {
		order_swap((void **)m->order->svcs, m->order->n_svcs, m->order->svcs_valid, old, svc,
			   cmp_svc_ptr);
		kobj_service_free(old);
	} else {
		m->order->svcs_valid = false;
	}
	m->generation++;
	m->service_changes++;
	journal_note(m, svc->ns, svc->name);
	return 0;
}

int model_delete_service(struct model *m, const char *ns, const char *name)
{
	struct kobj_service *svc;

	if (!ns || !name)
		return 0;
	svc = nsname_map_remove(&m->services, ns, name);
	if (!svc)
		return 0;
	m->order->svcs_valid = false;
	m->generation++;
	m->service_changes++;
	journal_note(m, svc->ns, svc->name);
	kobj_service_free(svc);
	return 0;
}

/* Take slice out of its group, dropping the group when it empties. */
static void group_remove_slice(struct model *m, const struct kobj_slice *slice)
{
	struct slice_group *g = nsname_map_get(&m->groups, slice->ns, slice_svc_name(slice));

	if (!g)
		return;
	for (size_t i = 0; i < g->n_slices; i++) {
		if (g->slices[i] != slice)
			continue;
		/* memmove keeps the name order intact. */
		memmove(&g->slices[i], &g->slices[i + 1], (g->n_slices - i - 1) * sizeof(*g->slices));
		g->n_slices--;
		break;
	}
	if (!g->n_slices) {
		nsname_map_remove(&m->groups, g->ns, g->svc_name);
		slice_group_free(g);
	}
}

/* Add slice to the group of its service, creating the group. 0 or -ENOMEM. */
static int group_add_slice(struct model *m, struct kobj_slice *slice)
{
	const char *svc_name = slice_svc_name(slice);
	struct slice_group *g = nsname_map_get(&m->groups, slice->ns, svc_name);
	bool created = false;

	if (!g) {
		g = calloc(1, sizeof(*g));
		if (!g)
			return -ENOMEM;
		g->ns = intern(slice->ns);
		g->svc_name = intern(svc_name);
		if (!g->ns || !g->svc_name || nsname_map_put(&m->groups, g, NULL) < 0) {
			slice_group_free(g);
			return -ENOMEM;
		}
		g->slices = &g->one;
		g->sorted = true;
		created = true;
	}
	if (g->n_slices == group_room(g)) {
		uint32_t room = group_room(g), cap = room < 4 ? 4 : room * 2;
		struct kobj_slice **a = NULL;

		if (room < UINT32_MAX / 2)
			a = g->slices == &g->one ? malloc(cap * sizeof(*a))
						 : realloc(g->slices, cap * sizeof(*a));
		if (a && g->slices == &g->one)
			a[0] = g->one;
		if (!a) {
			if (created) {
				nsname_map_remove(&m->groups, g->ns, g->svc_name);
				slice_group_free(g);
			}
			return -ENOMEM;
		}
		g->slices = a;
	}
	g->slices[g->n_slices++] = slice;
	g->sorted = false;
	return 0;
}

int model_upsert_slice(struct model *m, struct kobj_slice *slice)
{
	struct kobj_slice *old;
	int r;

	if (!slice)
		return -EINVAL;
	if (!slice->ns || !slice->name) {
		log_warn("model: EndpointSlice without namespace or name from %s ignored",
			 slice->source ? slice->source : "?");
		kobj_slice_free(slice);
		return -EINVAL;
	}
	/* Node names, zones, namespaces repeat across a million endpoints:
	 * one shared copy each (a failure only costs memory). */
	(void)kobj_slice_intern(slice);
	/* Its name, endpoints and ports in one allocation. */
	(void)kobj_slice_pack(slice);
	/* Add to the new group first: if that fails, nothing has changed. */
	r = group_add_slice(m, slice);
	if (r < 0) {
		kobj_slice_free(slice);
		return r;
	}
	old = nsname_map_get(&m->slices, slice->ns, slice->name);
	/* A replace cannot need a bigger table, so only an insert can fail. */
	r = nsname_map_put(&m->slices, slice, NULL);
	if (r < 0) {
		group_remove_slice(m, slice);
		kobj_slice_free(slice);
		return r;
	}
	/* A new trigger time is a change to measure (kube-proxy's network
	 * programming latency); beyond the bound the newest are dropped. */
	if (slice->trigger_time_s > 0 && (!old || old->trigger_time_s != slice->trigger_time_s) &&
	    m->n_triggers < MODEL_MAX_TRIGGERS)
		m->triggers[m->n_triggers++] = slice->trigger_time_s;
	m->generation++;
	m->slice_changes++;
	/* A slice that moved to another service changes both. */
	if (old && old->service_name && (!slice->service_name || strcmp(old->service_name, slice->service_name) != 0))
		journal_note(m, old->ns, old->service_name);
	if (slice->service_name)
		journal_note(m, slice->ns, slice->service_name);
	if (old) {
		group_remove_slice(m, old);
		order_swap((void **)m->order->slices, m->order->n_slices, m->order->slices_valid, old,
			   slice, cmp_slice_ptr);
		kobj_slice_free(old);
	} else {
		m->order->slices_valid = false;
	}
	return 0;
}

int model_delete_slice(struct model *m, const char *ns, const char *name)
{
	struct kobj_slice *slice;

	if (!ns || !name)
		return 0;
	slice = nsname_map_remove(&m->slices, ns, name);
	if (!slice)
		return 0;
	group_remove_slice(m, slice);
	m->order->slices_valid = false;
	m->generation++;
	m->slice_changes++;
	if (slice->service_name)
		journal_note(m, slice->ns, slice->service_name);
	kobj_slice_free(slice);
	return 0;
}

/* Does the plan of every service depend on what differs between a and b
 * (name, zone, addresses)? The deletion marks are for health only. */
static bool node_plan_differs(const struct kobj_node *a, const struct kobj_node *b)
{
	if (!a || !b)
		return a != b;
	if (!kobj_str_eq(a->name, b->name) || !kobj_str_eq(a->zone, b->zone) || a->n_addrs != b->n_addrs)
		return true;
	for (size_t i = 0; i < a->n_addrs; i++)
		if (inet_addr_cmp(&a->addrs[i], &b->addrs[i]) != 0)
			return true;
	return false;
}

void model_set_node(struct model *m, struct kobj_node *node)
{
	/* The same object handed again may have been changed in place:
	 * nothing to compare it with, so everything may have changed. */
	bool differs = m->node == node || node_plan_differs(m->node, node);

	if (m->node != node)
		kobj_node_free(m->node);
	m->node = node;
	m->generation++;
	if (differs)
		journal_note(m, NULL, NULL);
}

const struct kobj_node *model_node(const struct model *m)
{
	return m->node;
}

void host_addrs_done(struct host_addrs *h)
{
	free(h->addrs);
	memset(h, 0, sizeof(*h));
}

static bool host_addrs_equal(const struct host_addrs *a, const struct host_addrs *b)
{
	if (a->n_addrs != b->n_addrs)
		return false;
	for (size_t i = 0; i < 2; i++)
		if (inet_addr_cmp(&a->default_src[i], &b->default_src[i]) != 0)
			return false;
	for (size_t i = 0; i < a->n_addrs; i++)
		if (inet_addr_cmp(&a->addrs[i], &b->addrs[i]) != 0)
			return false;
	return true;
}

int model_set_host_addrs(struct model *m, const struct host_addrs *h)
{
	struct host_addrs copy = *h;

	if (host_addrs_equal(&m->host, h))
		return 0;
	copy.addrs = malloc((h->n_addrs + 1) * sizeof(*copy.addrs));
	if (!copy.addrs)
		return -ENOMEM;
	if (h->n_addrs)
		memcpy(copy.addrs, h->addrs, h->n_addrs * sizeof(*copy.addrs));
	host_addrs_done(&m->host);
	m->host = copy;
	m->generation++;
	journal_note(m, NULL, NULL);
	return 1;
}

const struct host_addrs *model_host_addrs(const struct model *m)
{
	return &m->host;
}

int model_set_service_cidrs(struct model *m, const struct inet_prefix *cidrs, size_t n)
{
	struct inet_prefix *copy;
	bool same = n == m->n_service_cidrs;

	for (size_t i = 0; same && i < n; i++)
		same = cidrs[i].len == m->service_cidrs[i].len &&
		       inet_addr_cmp(&cidrs[i].addr, &m->service_cidrs[i].addr) == 0;
	if (same)
		return 0;
	copy = malloc((n + 1) * sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	if (n)
		memcpy(copy, cidrs, n * sizeof(*copy));
	free(m->service_cidrs);
	m->service_cidrs = copy;
	m->n_service_cidrs = n;
	m->generation++;
	journal_note(m, NULL, NULL);
	return 1;
}

const struct inet_prefix *model_service_cidrs(const struct model *m, size_t *ret_n)
{
	*ret_n = m->n_service_cidrs;
	return m->service_cidrs;
}

const struct kobj_service *model_find_service(const struct model *m, const char *ns,
					      const char *name)
{
	if (!ns || !name)
		return NULL;
	return nsname_map_get(&m->services, ns, name);
}

const struct kobj_slice *model_find_slice(const struct model *m, const char *ns,
					  const char *name)
{
	if (!ns || !name)
		return NULL;
	return nsname_map_get(&m->slices, ns, name);
}

size_t model_n_services(const struct model *m)
{
	return nsname_map_size(&m->services);
}

size_t model_n_slices(const struct model *m)
{
	return nsname_map_size(&m->slices);
}

int model_foreach_service(const struct model *m,
			  int (*fn)(const struct kobj_service *svc, void *userdata),
			  void *userdata)
{
	int r = order_services(m);

	if (r < 0)
		return r;
	for (size_t i = 0; i < m->order->n_svcs; i++) {
		r = fn(m->order->svcs[i], userdata);
		if (r)
			return r;
	}
	return 0;
}

int model_foreach_slice_of(const struct model *m, const char *ns, const char *service_name,
			   int (*fn)(const struct kobj_slice *slice, void *userdata),
			   void *userdata)
{
	struct slice_group *g;

	if (!ns || !service_name)
		return 0;
	g = nsname_map_get(&m->groups, ns, service_name);
	if (!g)
		return 0;
	if (!g->sorted) {
		qsort(g->slices, g->n_slices, sizeof(*g->slices), cmp_slice_ptr);
		g->sorted = true;
	}
	for (size_t i = 0; i < g->n_slices; i++) {
		int r = fn(g->slices[i], userdata);
		if (r)
			return r;
	}
	return 0;
}

int model_foreach_orphan_slice(const struct model *m,
			       int (*fn)(const struct kobj_slice *slice, void *userdata),
			       void *userdata)
{
	int r = order_slices(m);

	if (r < 0)
		return r;
	for (size_t i = 0; i < m->order->n_slices; i++) {
		const struct kobj_slice *s = m->order->slices[i];

		if (nsname_map_get(&m->services, s->ns, slice_svc_name(s)))
			continue;
		r = fn(s, userdata);
		if (r)
			return r;
	}
	return 0;
}

uint64_t model_generation(const struct model *m)
{
	return m->generation;
}

size_t model_take_triggers(struct model *m, double *ret, size_t max)
{
	size_t n = m->n_triggers < max ? m->n_triggers : max;

	memcpy(ret, m->triggers, n * sizeof(*ret));
	m->n_triggers = 0;
	return n;
}

void model_change_counts(const struct model *m, uint64_t *ret_services, uint64_t *ret_slices)
{
	*ret_services = m->service_changes;
	*ret_slices = m->slice_changes;
}
