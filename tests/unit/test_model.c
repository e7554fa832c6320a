/* The model store and its (namespace, name) hash map. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intern.h"
#include "kobj.h"
#include "model.h"
#include "nsname_map.h"

static struct kobj_service *svc_new(const char *ns, const char *name)
{
	struct kobj_service *svc = kobj_service_new();

	cr_assert(svc);
	svc->ns = strdup(ns);
	svc->name = strdup(name);
	return svc;
}

static struct kobj_slice *slice_new(const char *ns, const char *name, const char *svc_name)
{
	struct kobj_slice *s = kobj_slice_new();

	cr_assert(s);
	s->ns = strdup(ns);
	s->name = strdup(name);
	s->service_name = svc_name ? strdup(svc_name) : NULL;
	s->family = AF_INET;
	return s;
}

/* Collects "ns/name" of each visited object into a string. */
struct visit {
	char buf[512];
	int stop_after; /* 0: never */
	int seen;
};

static int visit_svc(const struct kobj_service *svc, void *userdata)
{
	struct visit *v = userdata;
	size_t len = strlen(v->buf);

	snprintf(v->buf + len, sizeof(v->buf) - len, "%s/%s ", svc->ns, svc->name);
	return ++v->seen == v->stop_after ? 42 : 0;
}

static int visit_slice(const struct kobj_slice *s, void *userdata)
{
	struct visit *v = userdata;
	size_t len = strlen(v->buf);

	snprintf(v->buf + len, sizeof(v->buf) - len, "%s/%s ", s->ns, s->name);
	return ++v->seen == v->stop_after ? 42 : 0;
}

Test(model, upsert_find_replace_delete)
{
	struct model *m = model_new();
	struct kobj_service *svc;

	cr_assert(m);
	cr_expect_eq(model_generation(m), 0);
	cr_expect_eq(model_upsert_service(m, svc_new("default", "web")), 0);
	cr_expect_eq(model_generation(m), 1);
	cr_expect_eq(model_n_services(m), 1);
	cr_expect_not_null(model_find_service(m, "default", "web"));
	cr_expect_null(model_find_service(m, "other", "web"));
	cr_expect_null(model_find_service(m, "default", "we"));

	svc = svc_new("default", "web");
	svc->n_ports = 0;
	svc->affinity_client_ip = true;
	cr_expect_eq(model_upsert_service(m, svc), 0);
	cr_expect_eq(model_n_services(m), 1);
	cr_expect_eq(model_find_service(m, "default", "web"), svc, "replaced in place");
	cr_expect_eq(model_generation(m), 2);

	cr_expect_eq(model_delete_service(m, "default", "web"), 0);
	cr_expect_eq(model_n_services(m), 0);
	cr_expect_eq(model_generation(m), 3);
	cr_expect_eq(model_delete_service(m, "default", "web"), 0, "absent is success");
	cr_expect_eq(model_generation(m), 3, "no change, no bump");
	cr_expect_null(model_free(m));
	cr_expect_null(model_free(NULL));
}

Test(model, bad_objects_rejected_and_freed)
{
	struct model *m = model_new();
	struct kobj_service *svc = kobj_service_new();
	struct kobj_slice *s = kobj_slice_new();

	svc->name = strdup("noname-space");
	cr_expect_eq(model_upsert_service(m, svc), -EINVAL);
	cr_expect_eq(model_upsert_slice(m, s), -EINVAL);
	cr_expect_eq(model_upsert_service(m, NULL), -EINVAL);
	cr_expect_eq(model_n_services(m), 0);
	cr_expect_eq(model_generation(m), 0);
	model_free(m);
}

Test(model, foreach_sorted_and_stops)
{
	struct model *m = model_new();
	const char *names[][2] = { { "b", "x" }, { "a", "z" }, { "a", "b-c" }, { "a-b", "a" },
				   { "a", "b" } };
	struct visit v = { 0 };

	for (size_t i = 0; i < 5; i++)
		cr_assert_eq(model_upsert_service(m, svc_new(names[i][0], names[i][1])), 0);
	cr_expect_eq(model_foreach_service(m, visit_svc, &v), 0);
	cr_expect_str_eq(v.buf, "a/b a/b-c a/z a-b/a b/x ");

	/* A replace keeps the order valid; a delete and an insert refresh it. */
	cr_assert_eq(model_upsert_service(m, svc_new("a", "z")), 0);
	cr_assert_eq(model_delete_service(m, "a", "b-c"), 0);
	cr_assert_eq(model_upsert_service(m, svc_new("0", "first")), 0);
	memset(&v, 0, sizeof(v));
	cr_expect_eq(model_foreach_service(m, visit_svc, &v), 0);
	cr_expect_str_eq(v.buf, "0/first a/b a/z a-b/a b/x ");

	memset(&v, 0, sizeof(v));
	v.stop_after = 2;
	cr_expect_eq(model_foreach_service(m, visit_svc, &v), 42);
	cr_expect_str_eq(v.buf, "0/first a/b ");
	model_free(m);
}

Test(model, slices_by_service_and_orphans)
{
	struct model *m = model_new();
	struct visit v = { 0 };
	struct kobj_slice *moved;

	cr_assert_eq(model_upsert_service(m, svc_new("default", "web")), 0);
	cr_assert_eq(model_upsert_slice(m, slice_new("default", "web-b", "web")), 0);
	cr_assert_eq(model_upsert_slice(m, slice_new("default", "web-a", "web")), 0);
	cr_assert_eq(model_upsert_slice(m, slice_new("other", "web-c", "web")), 0);
	cr_assert_eq(model_upsert_slice(m, slice_new("default", "db-a", "db")), 0);
	cr_assert_eq(model_upsert_slice(m, slice_new("default", "nolabel", NULL)), 0);
	cr_expect_eq(model_n_slices(m), 5);
	cr_expect_eq(model_generation(m), 6);

	cr_expect_eq(model_foreach_slice_of(m, "default", "web", visit_slice, &v), 0);
	cr_expect_str_eq(v.buf, "default/web-a default/web-b ");

	memset(&v, 0, sizeof(v));
	cr_expect_eq(model_foreach_orphan_slice(m, visit_slice, &v), 0);
	cr_expect_str_eq(v.buf, "default/db-a default/nolabel other/web-c ");

	/* The service arrives: its slice is no orphan any more. */
	cr_assert_eq(model_upsert_service(m, svc_new("default", "db")), 0);
	memset(&v, 0, sizeof(v));
	model_foreach_orphan_slice(m, visit_slice, &v);
	cr_expect_str_eq(v.buf, "default/nolabel other/web-c ");

	/* A slice relabelled to another service moves between groups. */
	moved = slice_new("default", "web-a", "db");
	cr_assert_eq(model_upsert_slice(m, moved), 0);
	cr_expect_eq(model_find_slice(m, "default", "web-a"), moved);
	memset(&v, 0, sizeof(v));
	model_foreach_slice_of(m, "default", "web", visit_slice, &v);
	cr_expect_str_eq(v.buf, "default/web-b ");
	memset(&v, 0, sizeof(v));
	model_foreach_slice_of(m, "default", "db", visit_slice, &v);
	cr_expect_str_eq(v.buf, "default/db-a default/web-a ");

	cr_expect_eq(model_delete_slice(m, "default", "web-b"), 0);
	cr_expect_eq(model_delete_slice(m, "default", "web-b"), 0);
	memset(&v, 0, sizeof(v));
	cr_expect_eq(model_foreach_slice_of(m, "default", "web", visit_slice, &v), 0);
	cr_expect_str_eq(v.buf, "");
	cr_expect_eq(model_n_slices(m), 4);
	model_free(m);
}

Test(model, node_and_clear)
{
	struct model *m = model_new();
	struct kobj_node *node = kobj_node_new();
	uint64_t g;

	node->name = strdup("n1");
	cr_expect_null(model_node(m));
	model_set_node(m, node);
	cr_expect_eq(model_node(m), node);
	cr_assert_eq(model_upsert_service(m, svc_new("a", "b")), 0);
	cr_assert_eq(model_upsert_slice(m, slice_new("a", "b-1", "b")), 0);
	g = model_generation(m);
	model_clear(m);
	cr_expect_gt(model_generation(m), g);
	cr_expect_eq(model_n_services(m), 0);
	cr_expect_eq(model_n_slices(m), 0);
	cr_expect_eq(model_node(m), node, "clear keeps the node");
	cr_expect_null(model_find_slice(m, "a", "b-1"));
	/* Usable after a clear. */
	cr_assert_eq(model_upsert_service(m, svc_new("a", "b")), 0);
	cr_expect_eq(model_n_services(m), 1);
	model_set_node(m, NULL);
	cr_expect_null(model_node(m));
	model_free(m);
}

static int count_change(const char *ns, const char *name, void *userdata)
{
	(void)ns;
	(void)name;
	(*(int *)userdata)++;
	return 0;
}

static struct kobj_node *node_new(const char *name, const char *zone, const char *addr)
{
	struct kobj_node *node = kobj_node_new();

	node->name = strdup(name);
	node->zone = zone ? strdup(zone) : NULL;
	node->n_addrs = 1;
	node->addrs = calloc(1, sizeof(*node->addrs));
	cr_assert_eq(inet_addr_parse(addr, &node->addrs[0]), 0);
	return node;
}

/* The journal the incremental planner reads: a slice counts for its
 * service before and after; this node's name, zone or addresses mean
 * "everything", a Node update that changes none of them (a status
 * heartbeat, the deletion marks) does not. */
Test(model, change_journal)
{
	struct model *m = model_new();
	struct kobj_node *node;
	uint64_t g;
	int n = 0;

	model_set_node(m, node_new("n1", "z1", "10.0.0.1"));
	g = model_generation(m);
	cr_assert_eq(model_changes_since(m, g, count_change, &n), 0);
	cr_assert_eq(model_upsert_service(m, svc_new("a", "b")), 0);
	cr_assert_eq(model_upsert_slice(m, slice_new("a", "b-1", "b")), 0);
	cr_assert_eq(model_upsert_slice(m, slice_new("a", "b-1", "c")), 0); /* moves to c */
	cr_assert_eq(model_changes_since(m, g, count_change, &n), 0);
	cr_expect_eq(n, 4, "service b, slice for b, slice leaving b and joining c: %d", n);
	g = model_generation(m);
	node = node_new("n1", "z1", "10.0.0.1");
	node->deleting = true;
	model_set_node(m, node);
	cr_expect_gt(model_generation(m), g, "the node changed: a sync is due (health)");
	n = 0;
	cr_expect_eq(model_changes_since(m, g, count_change, &n), 0, "no plan depends on the deletion mark");
	cr_expect_eq(n, 0);
	model_set_node(m, node_new("n1", "z2", "10.0.0.1"));
	cr_expect_eq(model_changes_since(m, g, count_change, &n), MODEL_CHANGES_ALL, "a new zone");
	g = model_generation(m);
	model_set_node(m, node_new("n1", "z2", "10.0.0.2"));
	cr_expect_eq(model_changes_since(m, g, count_change, &n), MODEL_CHANGES_ALL, "a new address");
	model_free(m);
}

/* Random inserts and removes checked against a plain array: exercises
 * growth and backward-shift deletion. */
/* A value for the map tests: it carries its own key. */
struct map_value {
	char *ns;
	char *name;
	char ns_buf[16], name_buf[16];
};

/* The table grows by half, not by double: with keys shaped like the
 * scale benchmark's (one namespace, names differing in their last digits)
 * it keeps between 4/3 and 2 slots per entry, every key is found, and a
 * removal wrapping past the last slot leaves the rest findable. */
Test(nsname_map, grows_by_half_and_finds_every_key)
{
	enum { N = 20000 };
	static struct map_value vals[N];
	struct nsname_map map;

	nsname_map_init(&map, NSNAME_MAP_KEY(struct map_value, ns, name));
	for (int i = 0; i < N; i++) {
		snprintf(vals[i].ns_buf, 16, "default");
		snprintf(vals[i].name_buf, 16, "svc-%06d", i);
		vals[i].ns = vals[i].ns_buf;
		vals[i].name = vals[i].name_buf;
		cr_assert_eq(nsname_map_put(&map, &vals[i], NULL), 0);
		cr_assert_leq(map.n * 4, map.cap * 3);
	}
	cr_expect_leq(map.cap, 2 * (size_t)N, "cap %zu for %d entries", map.cap, N);
	cr_expect_neq(map.cap & (map.cap - 1), 0, "cap %zu: not only powers of two", map.cap);
	for (int i = 0; i < N; i++)
		cr_assert_eq(nsname_map_get(&map, "default", vals[i].name_buf), &vals[i], "key %d", i);
	/* Empty the table from the entries living in its last slots first, so
	 * that runs wrapping from the end to the start get shifted back. */
	for (size_t s = map.cap; s-- > 0;) {
		struct map_value *v = map.slots[s].value;

		if (!v)
			continue;
		cr_assert_eq(nsname_map_remove(&map, v->ns, v->name), v);
		cr_assert_null(nsname_map_get(&map, v->ns, v->name));
	}
	/* What was shifted behind the walk (runs that wrapped) goes now. */
	for (size_t it = 0; nsname_map_size(&map);) {
		struct map_value *v = nsname_map_next(&map, &it);

		cr_assert_not_null(v);
		cr_assert_eq(nsname_map_remove(&map, v->ns, v->name), v);
		it = 0;
	}
	for (int i = 0; i < N; i++)
		cr_assert_null(nsname_map_get(&map, "default", vals[i].name_buf));
	nsname_map_done(&map);
}

/* A value whose name is its own array, not a pointer. */
struct inline_value {
	const char *ns;
	char name[16];
};

Test(nsname_map, inline_names)
{
	struct inline_value a = { .ns = "default", .name = "web" }, b = { .ns = "default", .name = "web-1" };
	struct inline_value c = { .ns = "other", .name = "web" };
	struct nsname_map map;
	void *old = NULL;

	nsname_map_init(&map, NSNAME_MAP_KEY_INLINE_NAME(struct inline_value, ns, name));
	cr_assert_eq(nsname_map_put(&map, &a, NULL), 0);
	cr_assert_eq(nsname_map_put(&map, &b, NULL), 0);
	cr_assert_eq(nsname_map_put(&map, &c, NULL), 0);
	cr_expect_eq(nsname_map_get(&map, "default", "web"), &a);
	cr_expect_eq(nsname_map_get(&map, "default", "web-1"), &b);
	cr_expect_eq(nsname_map_get(&map, "other", "web"), &c);
	cr_expect_null(nsname_map_get(&map, "other", "web-1"));
	cr_expect_eq(nsname_map_remove(&map, "default", "web"), &a);
	cr_expect_null(nsname_map_get(&map, "default", "web"));
	cr_expect_eq(nsname_map_put(&map, &a, &old), 0);
	cr_expect_null(old);
	cr_expect_eq(nsname_map_size(&map), 3);
	nsname_map_done(&map);
}

Test(nsname_map, matches_reference)
{
	enum { N = 3000 };
	static struct map_value vals[N];
	static bool present[N];
	struct nsname_map map;
	unsigned seed = 12345;

	nsname_map_init(&map, NSNAME_MAP_KEY(struct map_value, ns, name));
	for (int i = 0; i < N; i++) {
		snprintf(vals[i].ns_buf, 16, "ns%d", i % 7);
		snprintf(vals[i].name_buf, 16, "n%d", i);
		vals[i].ns = vals[i].ns_buf;
		vals[i].name = vals[i].name_buf;
	}
	for (int round = 0; round < 40000; round++) {
		int i = (int)(rand_r(&seed) % N);
		void *old = NULL;

		if (rand_r(&seed) % 3) {
			cr_assert_eq(nsname_map_put(&map, &vals[i], &old), 0);
			cr_assert_eq(old, present[i] ? (void *)&vals[i] : NULL);
			present[i] = true;
		} else {
			void *v = nsname_map_remove(&map, vals[i].ns, vals[i].name);
			cr_assert_eq(v, present[i] ? (void *)&vals[i] : NULL);
			present[i] = false;
		}
	}
	size_t n = 0, it = 0, seen = 0;
	for (int i = 0; i < N; i++) {
		/* Look up with copies of the strings: the key is compared, not
		 * the pointers. */
		char ns[16], name[16];
		void *v;

		memcpy(ns, vals[i].ns_buf, sizeof(ns));
		memcpy(name, vals[i].name_buf, sizeof(name));
		v = nsname_map_get(&map, ns, name);
		cr_assert_eq(v, present[i] ? (void *)&vals[i] : NULL, "key %d", i);
		n += present[i];
	}
	cr_expect_eq(nsname_map_size(&map), n);
	while (nsname_map_next(&map, &it))
		seen++;
	cr_expect_eq(seen, n);
	/* ("ab", "c") and ("a", "bc") are different keys. */
	struct map_value abc = { .ns = "ab", .name = "c" }, other = { .ns = "ab", .name = "c" };
	void *old = NULL;
	cr_expect_eq(nsname_map_put(&map, &abc, NULL), 0);
	cr_expect_null(nsname_map_get(&map, "a", "bc"));
	cr_expect_eq(nsname_map_get(&map, "ab", "c"), &abc);
	/* A value with an equal key replaces the entry. */
	cr_expect_eq(nsname_map_put(&map, &other, &old), 0);
	cr_expect_eq(old, &abc);
	cr_expect_eq(nsname_map_get(&map, "ab", "c"), &other);
	cr_expect_eq(nsname_map_put(&map, NULL, NULL), -EINVAL);
	nsname_map_done(&map);
	nsname_map_done(NULL);
}

/* Service and slice changes are counted (kube-proxy's changes totals), and
 * each new or changed last-change-trigger-time is handed out once. */
Test(model, change_counts_and_trigger_times)
{
	struct model *m = model_new();
	struct kobj_slice *s;
	uint64_t svcs, slices;
	double t[4];

	cr_assert_not_null(m);
	s = slice_new("default", "a-1", "a");
	s->trigger_time_s = 100.5;
	cr_assert_eq(model_upsert_slice(m, s), 0);
	s = slice_new("default", "a-1", "a"); /* same trigger time: no new change */
	s->trigger_time_s = 100.5;
	cr_assert_eq(model_upsert_slice(m, s), 0);
	s = slice_new("default", "b-1", "b"); /* no annotation */
	cr_assert_eq(model_upsert_slice(m, s), 0);
	cr_assert_eq(model_take_triggers(m, t, 4), 1);
	cr_expect_float_eq(t[0], 100.5, 1e-9);
	cr_expect_eq(model_take_triggers(m, t, 4), 0, "taken once");
	s = slice_new("default", "a-1", "a");
	s->trigger_time_s = 200;
	cr_assert_eq(model_upsert_slice(m, s), 0);
	cr_expect_eq(model_take_triggers(m, t, 4), 1);
	cr_assert_eq(model_delete_slice(m, "default", "b-1"), 0);
	model_change_counts(m, &svcs, &slices);
	cr_expect_eq(svcs, 0);
	cr_expect_eq(slices, 5);
	model_free(m);
}

/* Shared copies: equal strings share one, each intern() is one reference,
 * the last release frees it; the table grows past many strings. */
Test(intern, shares_counts_and_grows)
{
	enum { N = 5000 };
	static const char *copies[N];
	unsigned long base = intern_count();
	char buf[32];
	const char *a = intern("zone-a"), *b;

	cr_assert_not_null(a);
	strcpy(buf, "zone-a");
	b = intern(buf);
	cr_expect_eq(a, b, "one copy for equal strings");
	cr_expect_eq(intern_count(), base + 1);
	for (int i = 0; i < N; i++) {
		snprintf(buf, sizeof(buf), "node-%d", i);
		copies[i] = intern(buf);
		cr_assert_not_null(copies[i]);
		cr_assert_str_eq(copies[i], buf);
	}
	cr_expect_eq(intern_count(), base + 1 + N);
	for (int i = 0; i < N; i++) {
		snprintf(buf, sizeof(buf), "node-%d", i);
		cr_assert_eq(intern(buf), copies[i], "found again after the table grew");
		intern_release(copies[i]);
		intern_release(copies[i]);
	}
	intern_release(b);
	cr_expect_eq(intern_count(), base + 1, "a still holds one reference");
	cr_expect_str_eq(a, "zone-a");
	intern_release(a);
	cr_expect_eq(intern_count(), base);
}

static int collect_names(const struct kobj_slice *slice, void *userdata)
{
	char *out = userdata;

	strcat(out, slice->name);
	strcat(out, " ");
	return 0;
}

/* A service's slices past the one kept inline, removed down to a few and
 * added again: every one listed once, in name order. */
Test(model, slice_group_grows_shrinks_and_grows)
{
	struct model *m = model_new();
	char name[16], got[256];

	cr_assert(m);
	for (int i = 0; i < 9; i++) {
		snprintf(name, sizeof(name), "web-%d", i);
		cr_assert_eq(model_upsert_slice(m, slice_new("default", name, "web")), 0);
	}
	for (int i = 0; i < 7; i++) {
		snprintf(name, sizeof(name), "web-%d", i);
		cr_assert_eq(model_delete_slice(m, "default", name), 0);
	}
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "web-a%d", i);
		cr_assert_eq(model_upsert_slice(m, slice_new("default", name, "web")), 0);
	}
	got[0] = '\0';
	cr_assert_eq(model_foreach_slice_of(m, "default", "web", collect_names, got), 0);
	cr_expect_str_eq(got, "web-7 web-8 web-a0 web-a1 web-a2 web-a3 web-a4 ");
	for (int i = 7; i < 9; i++) {
		snprintf(name, sizeof(name), "web-%d", i);
		cr_assert_eq(model_delete_slice(m, "default", name), 0);
	}
	got[0] = '\0';
	cr_assert_eq(model_foreach_slice_of(m, "default", "web", collect_names, got), 0);
	cr_expect_str_eq(got, "web-a0 web-a1 web-a2 web-a3 web-a4 ");
	cr_expect_null(model_free(m));
}
