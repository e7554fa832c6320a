/* List + watch of one resource, with relist on 410 and backoff.
 *
 * States: LISTING (pages of a list in flight), WATCHING (a watch stream in
 * flight) and WAITING (a timer will start the next request). Exactly one
 * request or one timer is pending at any time, so the informer cannot fan
 * out. It cannot spin either: the only requests started at once are the
 * next page of a list that makes progress, the watch after a complete
 * list, and the next watch after a healthy one; every other way a request
 * ends goes through the backoff, which only a healthy watch resets.
 */
#include "kube_informer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kube_backoff.h"
#include "kube_watch.h"
#include "intern.h"
#include "log.h"
#include "nsname_map.h"

/* A watch counts as healthy only when it lasted this long (client-go's
 * reflector: a watch that ends within a second with nothing useful is an
 * error); a healthy watch that ends normally is resumed at once. */
#define WATCH_HEALTHY_MS 1000u
/* A watch that lasted this long shows the server works: the backoff starts
 * over, however the watch ended. (Not after every healthy watch: a server
 * ending each watch with a 410 after a second or two would then be relisted
 * every second or two.) */
#define WATCH_RESET_MS 60000u
#define LIST_TIMEOUT_S 120u
/* A list may fetch this many pages in a row that bring no new object
 * (with a continue token) before it counts as going nowhere. */
#define LIST_MAX_IDLE_PAGES 3u
/* A list buffer larger than this is unmapped after each page. */
#define LIST_BUF_KEEP (1u << 20)
/* Warnings about what the server does: at most one per informer per
 * interval; the others go to debug and are counted in the next one. */
#define WARN_INTERVAL_MS 10000u

/* One stored object: identity, version, the handler's word. */
/* What the store keeps of one object: one allocation (a million objects
 * is a realistic cluster), the namespace a shared copy, the name inside
 * (the store's map reads it there). */
struct entry {
	const char *ns;   /* shared copy (intern.h) */
	uint64_t seen_gen;
	/* The resourceVersion delivered last, as a number (rv_number); 0
	 * when none was or it was not one: that only costs a redelivery
	 * later. */
	uint64_t rv;
	uint32_t aux;
	char name[];
};

/* A set of 64-bit hashes, open addressing (0 marks a free slot). */
struct hash_set {
	uint64_t *slots;
	size_t cap, n;
};

enum inf_state { INF_IDLE, INF_LISTING, INF_WATCHING, INF_WAITING };
enum inf_next { NEXT_LIST, NEXT_WATCH };

struct kube_informer {
	struct kube_informer_config cfg;
	char *name, *path, *fallback_path, *label_selector, *field_selector, *default_ns;
	struct kube_informer_handler hd;
	void *userdata;
	struct kube_http *http;
	struct loop *loop;

	struct nsname_map store;
	enum inf_state state;
	enum inf_next next;
	struct kube_http_req *req;
	struct loop_timer timer;
	struct kube_backoff backoff;
	bool synced;
	bool use_fallback;
	bool absent;   /* an optional resource answered 404 */
	bool stopping;

	/* Listing. */
	char *buf;               /* the page arriving: an anonymous mapping of cap bytes */
	size_t len, cap;
	bool too_big;
	bool buf_failed;         /* the buffer could not grow */
	char *continue_tok;
	uint64_t list_gen;
	bool relisting;
	uint32_t page_size;      /* limit asked; halved after a page too large */
	struct hash_set list_seen; /* this list's continue tokens and objects */
	uint32_t idle_pages;     /* pages in a row without a new object */
	bool list_rv_seen;       /* this list carried a resourceVersion */

	/* Watching. */
	char *rv;                /* last resourceVersion seen */
	struct kube_watch_decoder dec;
	uint64_t watch_start_ms;
	uint32_t watch_objects;  /* ADDED, MODIFIED, DELETED events of this watch */
	uint32_t watch_bookmarks;
	bool watch_gone;         /* ERROR 410 seen */
	bool watch_error;        /* other ERROR event seen */
	bool changed;

	/* Rate limit of warnings. */
	bool warned;
	uint64_t warn_ms;
	uint32_t warn_suppressed;

	struct kube_informer_stats stats;
};

static void inf_schedule(struct kube_informer *inf, enum inf_next next, uint32_t delay_ms);

/* --- store ------------------------------------------------------------------- */

static struct entry *entry_free(struct entry *e)
{
	if (e) {
		intern_release(e->ns);
		free(e);
	}
	return NULL;
}

static const char *cur_path(const struct kube_informer *inf)
{
	return inf->use_fallback ? inf->fallback_path : inf->path;
}

/* Remove one stored object, telling the handler. */
static void store_remove(struct kube_informer *inf, const char *ns, const char *name)
{
	struct entry *e = nsname_map_remove(&inf->store, ns, name);

	if (!e)
		return;
	inf->hd.remove(inf->userdata, inf->use_fallback, e->ns, e->name, e->aux);
	inf->stats.removes++;
	inf->changed = true;
	entry_free(e);
}

/* Say at warn level what the server is doing, at most once per
 * WARN_INTERVAL_MS: a misbehaving server must not flood the log either. */
static void inf_warn(struct kube_informer *inf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void inf_warn(struct kube_informer *inf, const char *fmt, ...)
{
	uint64_t now = loop_now_ms();
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (inf->warned && now - inf->warn_ms < WARN_INTERVAL_MS) {
		inf->warn_suppressed++;
		log_debug("kube %s: %s", inf->name, msg);
		return;
	}
	if (inf->warn_suppressed)
		log_warn("kube %s: %s (%u similar warnings in the last %u s not shown)", inf->name, msg,
			 inf->warn_suppressed, WARN_INTERVAL_MS / 1000);
	else
		log_warn("kube %s: %s", inf->name, msg);
	inf->warned = true;
	inf->warn_ms = now;
	inf->warn_suppressed = 0;
}

/* A string field of metadata: 0 and *ret (NULL when absent or null), or
 * -EINVAL when it is not a string or holds a NUL (lists and events are
 * decoded with NULs allowed; a C string would silently stop at it). */
static int meta_str(const json_t *obj, const char *key, const char **ret)
{
	const json_t *md = json_object_get(obj, "metadata");
	const json_t *v = json_is_object(md) ? json_object_get(md, key) : NULL;

	*ret = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return -EINVAL;
	*ret = json_string_value(v);
	return 0;
}

/* The resourceVersion of obj, or NULL. */
static const char *meta_rv(const json_t *obj)
{
	const char *rv;

	return meta_str(obj, "resourceVersion", &rv) == 0 ? rv : NULL;
}

/* The store key of obj: its namespace (the configured default when it has
 * none, so that the key is the one the handler's decoder uses) and name.
 * Returns 0, or -EINVAL when either is unusable. */
static int obj_key(const struct kube_informer *inf, const json_t *obj, const char **ret_ns,
		   const char **ret_name)
{
	const char *ns, *name;

	if (meta_str(obj, "namespace", &ns) < 0 || meta_str(obj, "name", &name) < 0)
		return -EINVAL;
	if (!ns || !*ns)
		ns = inf->default_ns ? inf->default_ns : "";
	if (!name || !*name || strlen(name) > 253 || strlen(ns) > 63)
		return -EINVAL;
	*ret_ns = ns;
	*ret_name = name;
	return 0;
}

/* A resourceVersion as the store keeps it: etcd's are decimal numbers, so
 * one in canonical form (1 to 19 digits, no leading zero) is kept as its
 * value, which equals another's exactly when the strings are equal; any
 * other form is 0, "unknown" (never equal: delivered again). Kubernetes
 * calls them opaque strings; this only trades a redelivery for 16 bytes
 * per object. */
static uint64_t rv_number(const char *rv)
{
	uint64_t v = 0;
	size_t n = 0;

	if (!rv || rv[0] < '1' || rv[0] > '9')
		return 0;
	for (; rv[n]; n++) {
		if (rv[n] < '0' || rv[n] > '9' || n == 19)
			return 0;
		v = v * 10 + (uint64_t)(rv[n] - '0');
	}
	return v;
}

/* Deliver one listed or watched object unless its version is already
 * stored. Returns 0 or -ENOMEM. */
static int store_upsert(struct kube_informer *inf, const json_t *obj)
{
	const char *ns, *name;
	uint64_t rv = rv_number(meta_rv(obj));
	struct entry *e;
	uint32_t aux;
	int r;

	if (obj_key(inf, obj, &ns, &name) < 0) {
		inf_warn(inf, "skipped an object without a valid metadata.namespace and name");
		inf->stats.rejected++;
		return 0;
	}
	e = nsname_map_get(&inf->store, ns, name);
	if (e) {
		e->seen_gen = inf->list_gen;
		if (rv && e->rv == rv)
			return 0; /* this version was delivered already */
	}
	aux = e ? e->aux : 0;
	r = inf->hd.upsert(inf->userdata, inf->use_fallback, obj, ns, name, &aux);
	inf->changed = true;
	if (r == -ENOMEM)
		return r;
	if (r != 0) {
		if (r != KUBE_INFORMER_IGNORED)
			inf->stats.rejected++;
		/* What is stored no longer reflects the object: drop it. */
		if (e)
			store_remove(inf, ns, name);
		return 0;
	}
	inf->stats.upserts++;
	if (!e) {
		e = calloc(1, offsetof(struct entry, name) + strlen(name) + 1);
		if (e)
			strcpy(e->name, name);
		if (!e || !(e->ns = intern(ns)) || nsname_map_put(&inf->store, e, NULL) < 0) {
			/* The object is in the model but unknown here: take it out
			 * again so the two do not disagree. */
			inf->hd.remove(inf->userdata, inf->use_fallback, ns, name, aux);
			entry_free(e);
			return -ENOMEM;
		}
		e->seen_gen = inf->list_gen;
	}
	e->aux = aux;
	e->rv = rv;
	return 0;
}

static void set_rv(struct kube_informer *inf, const char *rv)
{
	char *copy;

	if (!rv || !*rv)
		return;
	copy = strdup(rv);
	if (copy) {
		free(inf->rv);
		inf->rv = copy;
	}
}

/* --- URLs -------------------------------------------------------------------- */

static int append(char **buf, size_t *len, size_t *cap, const char *s, bool escape)
{
	for (; *s; s++) {
		char enc[4];
		const char *piece = s;
		size_t n = 1;
		unsigned char ch = (unsigned char)*s;

		if (escape && !((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
				(ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' ||
				ch == '~')) {
			snprintf(enc, sizeof(enc), "%%%02X", ch);
			piece = enc;
			n = 3;
		}
		if (*len + n + 1 > *cap) {
			size_t ncap = *cap ? *cap * 2 : 256;
			char *nb = realloc(*buf, ncap);

			if (!nb)
				return -ENOMEM;
			*buf = nb;
			*cap = ncap;
		}
		memcpy(*buf + *len, piece, n);
		*len += n;
		(*buf)[*len] = '\0';
	}
	return 0;
}

char *kube_informer_url(const char *path, const char *label_selector,
			const char *field_selector, const char *extra)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	bool first = true;
	int r = append(&buf, &len, &cap, path, false);

	if (r == 0 && extra && *extra) {
		r = append(&buf, &len, &cap, "?", false);
		if (r == 0)
			r = append(&buf, &len, &cap, extra, false);
		first = false;
	}
	if (r == 0 && label_selector && *label_selector) {
		r = append(&buf, &len, &cap, first ? "?labelSelector=" : "&labelSelector=", false);
		if (r == 0)
			r = append(&buf, &len, &cap, label_selector, true);
		first = false;
	}
	if (r == 0 && field_selector && *field_selector) {
		r = append(&buf, &len, &cap, first ? "?fieldSelector=" : "&fieldSelector=", false);
		if (r == 0)
			r = append(&buf, &len, &cap, field_selector, true);
	}
	if (r < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* --- list progress ------------------------------------------------------------ */

static void hash_set_clear(struct hash_set *s)
{
	free(s->slots);
	s->slots = NULL;
	s->cap = s->n = 0;
}

/* Add h. Returns 1 when it was there already, 0 when added, or -ENOMEM. */
static int hash_set_add(struct hash_set *s, uint64_t h)
{
	size_t i;

	if (!h)
		h = 1;
	if ((s->n + 1) * 2 > s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 64;
		uint64_t *slots = calloc(ncap, sizeof(*slots));

		if (!slots)
			return -ENOMEM;
		for (size_t k = 0; k < s->cap; k++) {
			if (!s->slots[k])
				continue;
			for (i = s->slots[k] & (ncap - 1); slots[i]; i = (i + 1) & (ncap - 1))
				;
			slots[i] = s->slots[k];
		}
		free(s->slots);
		s->slots = slots;
		s->cap = ncap;
	}
	for (i = h & (s->cap - 1); s->slots[i]; i = (i + 1) & (s->cap - 1))
		if (s->slots[i] == h)
			return 1;
	s->slots[i] = h;
	s->n++;
	return 0;
}

/* FNV-1a over a tag byte and up to two strings (NUL-separated), finished
 * with a mixer so the low bits used as the slot index are spread. */
static uint64_t hash_key(char tag, const char *a, const char *b)
{
	uint64_t h = 0xcbf29ce484222325ull;

	h = (h ^ (unsigned char)tag) * 0x100000001b3ull;
	for (; *a; a++)
		h = (h ^ (unsigned char)*a) * 0x100000001b3ull;
	h = (h ^ 0) * 0x100000001b3ull;
	for (; b && *b; b++)
		h = (h ^ (unsigned char)*b) * 0x100000001b3ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

/* --- list buffer --------------------------------------------------------------- */

/* The page being received lives in an anonymous mapping of its own:
 * unmapping it gives the memory back to the kernel at once, whatever
 * malloc's trim thresholds would keep (a page can be tens of MiB). */
static int list_buf_grow(struct kube_informer *inf, size_t need)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t limit = (inf->cfg.max_list_bytes + 1 + page - 1) / page * page;
	size_t cap = inf->cap ? inf->cap : 65536;
	void *p;

	while (cap < need)
		cap *= 2;
	if (cap > limit)
		cap = limit; /* need <= max_list_bytes + 1, checked by the caller */
	if (inf->buf)
		p = mremap(inf->buf, inf->cap, cap, MREMAP_MAYMOVE);
	else
		p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	inf->buf = p;
	inf->cap = cap;
	return 0;
}

static void list_buf_free(struct kube_informer *inf)
{
	if (inf->buf)
		munmap(inf->buf, inf->cap);
	inf->buf = NULL;
	inf->len = inf->cap = 0;
}

/* --- list -------------------------------------------------------------------- */

static int list_on_body(void *userdata, const char *data, size_t len)
{
	struct kube_informer *inf = userdata;

	/* Counted after decompression: a gzip bomb stops here too. */
	if (len > inf->cfg.max_list_bytes - inf->len) {
		inf->too_big = true;
		return -1;
	}
	if (inf->len + len + 1 > inf->cap && list_buf_grow(inf, inf->len + len + 1) < 0) {
		inf->buf_failed = true;
		return -1;
	}
	memcpy(inf->buf + inf->len, data, len);
	inf->len += len;
	return 0;
}

/* Forget the list in progress: its continue token, what it has seen, its
 * buffer. What it delivered stays stored (the next list sweeps). */
static void list_reset(struct kube_informer *inf)
{
	free(inf->continue_tok);
	inf->continue_tok = NULL;
	hash_set_clear(&inf->list_seen);
	inf->idle_pages = 0;
	list_buf_free(inf);
}

/* Count a failure, say what happened, and schedule the retry after the
 * backoff. */
static void inf_backoff(struct kube_informer *inf, enum inf_next next, uint32_t retry_after_ms,
			const char *what)
{
	uint32_t delay = kube_backoff_next(&inf->backoff, retry_after_ms);

	inf->stats.failures++;
	inf_warn(inf, "%s; retrying in %u ms", what, delay);
	inf_schedule(inf, next, delay);
}

/* Log a failed request and schedule its retry after the backoff. */
static void inf_retry(struct kube_informer *inf, enum inf_next next, const char *what,
		      const struct kube_http_result *res)
{
	char msg[400];

	if (res && res->error)
		snprintf(msg, sizeof(msg), "%s failed: %s", what, res->message);
	else if (res)
		snprintf(msg, sizeof(msg), "%s failed: HTTP %ld%s", what, res->status,
			 res->status == 401 ? " (token rejected)" : "");
	else
		snprintf(msg, sizeof(msg), "%s failed", what);
	inf_backoff(inf, next, res ? res->retry_after_ms : 0, msg);
	if (inf->hd.failed)
		inf->hd.failed(inf->userdata, inf->name, what, res);
}

static void start_list(struct kube_informer *inf);
static void start_watch(struct kube_informer *inf);

/* The last page is in: remove what the list no longer has, and go on
 * watching. */
static void list_complete(struct kube_informer *inf)
{
	struct entry *e;
	size_t iter = 0, n = 0;
	const char **gone = NULL;

	list_reset(inf);
	inf->page_size = inf->cfg.page_size;
	/* Collect first: the map must not change while iterated. */
	while ((e = nsname_map_next(&inf->store, &iter)))
		if (e->seen_gen != inf->list_gen)
			n++;
	if (n) {
		gone = calloc(n, 2 * sizeof(*gone));
		if (!gone) {
			inf_retry(inf, NEXT_LIST, "list (out of memory)", NULL);
			return;
		}
		n = 0;
		iter = 0;
		while ((e = nsname_map_next(&inf->store, &iter)))
			if (e->seen_gen != inf->list_gen) {
				gone[2 * n] = e->ns;
				gone[2 * n + 1] = e->name;
				n++;
			}
		/* store_remove frees the strings: remove by copies. */
		for (size_t i = 0; i < n; i++) {
			char ns[64], name[254];

			snprintf(ns, sizeof(ns), "%s", gone[2 * i]);
			snprintf(name, sizeof(name), "%s", gone[2 * i + 1]);
			store_remove(inf, ns, name);
		}
		free(gone);
	}
	if (inf->relisting)
		log_info("kube %s: relisted: %zu objects, %zu gone during the gap", inf->name,
			 nsname_map_size(&inf->store), n);
	inf->relisting = false;
	if (inf->changed) {
		inf->changed = false;
		if (inf->hd.changed)
			inf->hd.changed(inf->userdata);
	}
	if (!inf->synced) {
		inf->synced = true;
		log_info("kube %s: synced, %zu objects", inf->name, nsname_map_size(&inf->store));
		if (inf->hd.synced)
			inf->hd.synced(inf->userdata);
		if (inf->stopping)
			return;
	}
	if (inf->absent) {
		inf_schedule(inf, NEXT_LIST, KUBE_INFORMER_ABSENT_RECHECK_MS);
		return;
	}
	start_watch(inf);
}

/* Apply one page of a list. Returns 0; -EBADMSG (not a list page), or
 * -ELOOP (the page repeats a continue token or an object of this list, or
 * the list keeps going without bringing a new object), with *ret_why
 * saying which; or -ENOMEM. The objects before a repeat are delivered. */
static int list_apply_page(struct kube_informer *inf, const char **ret_why)
{
	json_error_t jerr;
	/* NULs allowed: one in an annotation value (which the API accepts)
	 * must not refuse the whole page; the fields read are checked. */
	json_t *root = json_loadb(inf->buf, inf->len, JSON_ALLOW_NUL, &jerr);
	const json_t *items, *md, *cont, *item;
	const char *tok = NULL, *rv, *ns, *name;
	size_t i, fresh = 0;
	int r = 0;

	*ret_why = "not a list";
	if (!root)
		return -EBADMSG;
	items = json_object_get(root, "items");
	md = json_object_get(root, "metadata");
	cont = json_object_get(md, "continue");
	if (!json_is_object(md) || (items && !json_is_array(items) && !json_is_null(items)) ||
	    (cont && !json_is_null(cont) && !json_is_string(cont)) ||
	    (json_is_string(cont) && strlen(json_string_value(cont)) != json_string_length(cont))) {
		json_decref(root);
		return -EBADMSG;
	}
	if (meta_str(root, "resourceVersion", &rv) == 0 && rv && *rv) {
		set_rv(inf, rv);
		inf->list_rv_seen = true;
	}
	if (json_is_string(cont) && *json_string_value(cont))
		tok = json_string_value(cont);
	free(inf->continue_tok);
	inf->continue_tok = NULL;
	if (tok) {
		r = hash_set_add(&inf->list_seen, hash_key('t', tok, NULL));
		if (r == 0 && !(inf->continue_tok = strdup(tok)))
			r = -ENOMEM;
		if (r > 0) {
			*ret_why = "no progress: a continue token came back";
			r = -ELOOP;
		}
	}
	json_array_foreach(items, i, item) {
		if (r < 0)
			break;
		if (!json_is_object(item)) {
			inf_warn(inf, "skipped list item %zu: not an object", i);
			inf->stats.rejected++;
			continue;
		}
		if (obj_key(inf, item, &ns, &name) == 0) {
			r = hash_set_add(&inf->list_seen, hash_key('o', ns, name));
			if (r > 0) {
				*ret_why = "no progress: an object came back in the same list";
				r = -ELOOP;
				break;
			}
			if (r < 0)
				break;
			fresh++;
		}
		r = store_upsert(inf, item);
	}
	json_decref(root);
	if (r < 0)
		return r;
	inf->idle_pages = fresh ? 0 : inf->idle_pages + 1;
	if (tok && inf->idle_pages > LIST_MAX_IDLE_PAGES) {
		*ret_why = "no progress: pages without a new object";
		return -ELOOP;
	}
	return 0;
}

static void list_on_done(void *userdata, const struct kube_http_result *res)
{
	struct kube_informer *inf = userdata;
	bool first_page = !inf->continue_tok;
	const char *why;
	char what[200];
	int r;

	inf->req = NULL;
	inf->state = INF_IDLE;
	if (res->error == 0 && res->status == 404 && first_page && inf->fallback_path &&
	    !inf->use_fallback && !inf->synced) {
		log_info("kube %s: %s not served (404): using %s instead", inf->name, inf->path,
			 inf->fallback_path);
		inf->use_fallback = true;
		list_reset(inf);
		start_list(inf);
		return;
	}
	if (res->error == 0 && res->status == 404 && first_page && inf->cfg.optional) {
		/* Not served: the same as an empty list (what was there is gone). */
		if (!inf->absent)
			log_info("kube %s: %s not served (404): none; asking again every %u s", inf->name,
				 inf->path, KUBE_INFORMER_ABSENT_RECHECK_MS / 1000);
		inf->absent = true;
		list_complete(inf);
		return;
	}
	if (res->error == 0 && res->status == 410) {
		/* The continue token expired: start the list over. */
		log_info("kube %s: list continuation expired (410): listing again", inf->name);
		list_reset(inf);
		inf_schedule(inf, NEXT_LIST, kube_backoff_next(&inf->backoff, 0));
		return;
	}
	if (res->error || res->status != 200) {
		bool too_big = inf->too_big, oom = inf->buf_failed;

		list_reset(inf);
		if (too_big && inf->page_size > 1) {
			/* Big objects, or a gzip bomb: ask for fewer at a time. */
			inf->page_size /= 2;
			snprintf(what, sizeof(what),
				 "list (a page inflated past %zu bytes; asking for %u objects a page)",
				 inf->cfg.max_list_bytes, inf->page_size);
		} else if (too_big) {
			snprintf(what, sizeof(what), "list (one object inflated past %zu bytes)",
				 inf->cfg.max_list_bytes);
		}
		if (too_big || oom)
			inf_retry(inf, NEXT_LIST, too_big ? what : "list (out of memory)", NULL);
		else
			inf_retry(inf, NEXT_LIST, "list", res);
		return;
	}
	inf->absent = false;
	r = list_apply_page(inf, &why);
	/* Give a large buffer back now rather than keep it for the next page
	 * or, worse, for the life of the process. */
	if (inf->cap > LIST_BUF_KEEP)
		list_buf_free(inf);
	inf->len = 0;
	if (r == -ENOMEM) {
		list_reset(inf);
		inf_retry(inf, NEXT_LIST, "list (out of memory)", NULL);
		return;
	}
	if (r < 0) {
		list_reset(inf);
		snprintf(what, sizeof(what), "list (%s)", why);
		inf_retry(inf, NEXT_LIST, what, NULL);
		return;
	}
	inf->stats.lists++;
	if (inf->continue_tok) {
		start_list(inf);
		return;
	}
	if (!inf->list_rv_seen) {
		/* Nothing to watch from: listing again at once would spin. */
		list_reset(inf);
		inf_retry(inf, NEXT_LIST, "list (no metadata.resourceVersion)", NULL);
		return;
	}
	list_complete(inf);
}

static void start_list(struct kube_informer *inf)
{
	char extra[64 + 1024];
	char *url, *esc = NULL;
	size_t elen = 0, ecap = 0;
	int r;

	if (!inf->continue_tok) {
		/* A new list: sweep marks and progress tracking start over. */
		inf->list_gen++;
		hash_set_clear(&inf->list_seen);
		inf->idle_pages = 0;
		inf->list_rv_seen = false;
	}
	if (inf->continue_tok && append(&esc, &elen, &ecap, inf->continue_tok, true) < 0) {
		list_reset(inf);
		inf_retry(inf, NEXT_LIST, "list (out of memory)", NULL);
		return;
	}
	if (esc && strlen(esc) > 1000) {
		/* A continue token that long is not from a real server. */
		free(esc);
		list_reset(inf);
		inf_retry(inf, NEXT_LIST, "list (oversized continue token)", NULL);
		return;
	}
	snprintf(extra, sizeof(extra), "limit=%u%s%s", inf->page_size, esc ? "&continue=" : "",
		 esc ? esc : "");
	free(esc);
	url = kube_informer_url(cur_path(inf), inf->label_selector, inf->field_selector, extra);
	inf->len = 0;
	inf->too_big = inf->buf_failed = false;
	r = url ? kube_http_get(inf->http, url, LIST_TIMEOUT_S, list_on_body, list_on_done, inf,
				&inf->req) :
		  -ENOMEM;
	free(url);
	if (r < 0) {
		list_reset(inf);
		inf_retry(inf, NEXT_LIST, "list (cannot start request)", NULL);
		return;
	}
	inf->state = INF_LISTING;
	log_debug("kube %s: listing%s", inf->name, inf->continue_tok ? " (next page)" : "");
}

/* --- watch ------------------------------------------------------------------- */

static int watch_on_event(void *userdata, const struct kube_event *ev)
{
	struct kube_informer *inf = userdata;
	const char *ns, *name;
	int r;

	switch (ev->type) {
	case KUBE_EVENT_ADDED:
	case KUBE_EVENT_MODIFIED:
		inf->stats.events++;
		inf->watch_objects++;
		r = store_upsert(inf, ev->object);
		if (r < 0)
			return r;
		set_rv(inf, meta_rv(ev->object));
		return 0;
	case KUBE_EVENT_DELETED:
		inf->stats.events++;
		inf->watch_objects++;
		/* The key the object was stored under, namespace defaulted. */
		if (obj_key(inf, ev->object, &ns, &name) == 0) {
			store_remove(inf, ns, name);
		} else {
			inf->stats.skipped_events++;
			inf_warn(inf, "skipped a DELETED event without a valid metadata.namespace and name");
		}
		set_rv(inf, meta_rv(ev->object));
		return 0;
	case KUBE_EVENT_BOOKMARK:
		inf->stats.events++;
		inf->watch_bookmarks++;
		set_rv(inf, meta_rv(ev->object));
		return 0;
	case KUBE_EVENT_ERROR: {
		const json_t *code = json_object_get(ev->object, "code");
		const json_t *msg = json_object_get(ev->object, "message");

		if (json_is_integer(code) && json_integer_value(code) == 410) {
			inf->watch_gone = true;
		} else {
			inf->watch_error = true;
			inf_warn(inf, "watch ERROR event: code %lld: %.200s",
				 json_is_integer(code) ? (long long)json_integer_value(code) : 0LL,
				 json_is_string(msg) ? json_string_value(msg) : "(no message)");
		}
		return -1; /* stop this stream */
	}
	case KUBE_EVENT_INVALID:
	case KUBE_EVENT_OVERSIZED:
	default:
		inf->stats.skipped_events++;
		inf_warn(inf, "skipped a watch event: %s", ev->why ? ev->why : "invalid");
		return 0;
	}
}

static int watch_on_body(void *userdata, const char *data, size_t len)
{
	struct kube_informer *inf = userdata;
	int r = kube_watch_feed(&inf->dec, data, len, watch_on_event, inf);

	if (inf->changed) {
		inf->changed = false;
		if (inf->hd.changed)
			inf->hd.changed(inf->userdata);
	}
	return r < 0 ? -1 : 0;
}

/* What a watch that ended early brought, for the log. */
static void watch_summary(const struct kube_informer *inf, char *buf, size_t len)
{
	if (inf->watch_objects)
		snprintf(buf, len, "%u object events", inf->watch_objects);
	else if (inf->watch_bookmarks)
		snprintf(buf, len, "nothing but %u bookmark%s", inf->watch_bookmarks,
			 inf->watch_bookmarks == 1 ? "" : "s");
	else
		snprintf(buf, len, "no event");
}

static void watch_on_done(void *userdata, const struct kube_http_result *res)
{
	struct kube_informer *inf = userdata;
	unsigned long long lived = loop_now_ms() - inf->watch_start_ms;
	/* Healthy means it lasted: events alone do not make a watch healthy, or
	 * a server closing every watch after one event (a bookmark, an ADDED)
	 * would be asked again at once, forever. */
	bool healthy = lived >= WATCH_HEALTHY_MS;
	char msg[300], got[64];
	uint32_t delay;

	inf->req = NULL;
	inf->state = INF_IDLE;
	watch_summary(inf, got, sizeof(got));
	if (lived >= WATCH_RESET_MS)
		kube_backoff_reset(&inf->backoff);
	if (inf->watch_gone || (res->error == 0 && res->status == 410)) {
		/* A relist is the expensive request: always after the backoff. */
		inf->stats.relists++;
		inf->relisting = true;
		free(inf->rv);
		inf->rv = NULL;
		delay = kube_backoff_next(&inf->backoff, 0);
		if (healthy) {
			log_info("kube %s: resourceVersion too old (410 Gone): relisting in %u ms",
				 inf->name, delay);
		} else {
			inf->stats.failures++;
			inf_warn(inf, "the API server answered 410 Gone %llu ms into a watch (%s); "
				      "relisting in %u ms", lived, got, delay);
		}
		inf_schedule(inf, NEXT_LIST, delay);
		return;
	}
	if (inf->watch_error) {
		inf_retry(inf, NEXT_WATCH, "watch", NULL);
		return;
	}
	if (res->error == 0 && res->status == 200) {
		if (healthy) {
			/* The server ended the stream (timeoutSeconds): resume. */
			log_debug("kube %s: watch ended after %llu ms; resuming", inf->name, lived);
			inf_schedule(inf, NEXT_WATCH, 0);
			return;
		}
		snprintf(msg, sizeof(msg), "the API server ended a watch after %llu ms with %s", lived,
			 got);
		inf_backoff(inf, NEXT_WATCH, 0, msg);
		return;
	}
	if (res->error == -ETIMEDOUT && res->status == 200 && healthy) {
		/* Our own bound, for a server that forgets timeoutSeconds. */
		log_debug("kube %s: watch cut after %llu ms; resuming", inf->name, lived);
		inf_schedule(inf, NEXT_WATCH, kube_backoff_next(&inf->backoff, 0));
		return;
	}
	inf_retry(inf, NEXT_WATCH, "watch", res);
}

static void start_watch(struct kube_informer *inf)
{
	char extra[1200];
	char *url, *esc = NULL;
	size_t elen = 0, ecap = 0;
	uint32_t timeout_s;
	int r;

	if (!inf->rv) {
		/* Nothing to resume from (a list always sets one): list, but
		 * through the backoff. */
		inf_retry(inf, NEXT_LIST, "watch (no resourceVersion)", NULL);
		return;
	}
	if (append(&esc, &elen, &ecap, inf->rv, true) < 0 || strlen(esc) > 1000) {
		free(esc);
		free(inf->rv);
		inf->rv = NULL;
		inf_retry(inf, NEXT_LIST, "watch (bad resourceVersion)", NULL);
		return;
	}
	timeout_s = kube_backoff_rand(&inf->backoff, inf->cfg.watch_min_s, inf->cfg.watch_max_s);
	snprintf(extra, sizeof(extra),
		 "watch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%u", esc,
		 timeout_s);
	free(esc);
	url = kube_informer_url(cur_path(inf), inf->label_selector, inf->field_selector, extra);
	kube_watch_decoder_reset(&inf->dec);
	inf->watch_objects = inf->watch_bookmarks = 0;
	inf->watch_gone = inf->watch_error = false;
	inf->watch_start_ms = loop_now_ms();
	/* Our own bound a little after the server's, for a server that forgets. */
	r = url ? kube_http_get(inf->http, url, timeout_s + 30, watch_on_body, watch_on_done, inf,
				&inf->req) :
		  -ENOMEM;
	free(url);
	if (r < 0) {
		inf_retry(inf, NEXT_WATCH, "watch (cannot start request)", NULL);
		return;
	}
	inf->stats.watches++;
	inf->state = INF_WATCHING;
	log_debug("kube %s: watching from resourceVersion %s (timeout %u s)", inf->name, inf->rv,
		  timeout_s);
}

/* --- scheduling -------------------------------------------------------------- */

static void on_timer(struct loop *loop, void *userdata)
{
	struct kube_informer *inf = userdata;

	(void)loop;
	inf->state = INF_IDLE;
	if (inf->next == NEXT_WATCH)
		start_watch(inf);
	else
		start_list(inf);
}

static void inf_schedule(struct kube_informer *inf, enum inf_next next, uint32_t delay_ms)
{
	inf->next = next;
	inf->state = INF_WAITING;
	loop_timer_start(inf->loop, &inf->timer, delay_ms);
}

/* --- public ------------------------------------------------------------------ */

static char *dup_or_null(const char *s, bool *failed)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*failed = true;
	return d;
}

struct kube_informer *kube_informer_new(struct kube_http *h, struct loop *loop,
					const struct kube_informer_config *cfg,
					const struct kube_informer_handler *handler,
					void *userdata)
{
	struct kube_informer *inf = calloc(1, sizeof(*inf));
	bool failed = false;

	if (!inf)
		return NULL;
	inf->cfg = *cfg;
	inf->name = dup_or_null(cfg->name ? cfg->name : cfg->path, &failed);
	inf->path = dup_or_null(cfg->path, &failed);
	inf->fallback_path = dup_or_null(cfg->fallback_path, &failed);
	inf->label_selector = dup_or_null(cfg->label_selector, &failed);
	inf->field_selector = dup_or_null(cfg->field_selector, &failed);
	inf->default_ns = dup_or_null(cfg->default_namespace, &failed);
	if (failed || !inf->path) {
		kube_informer_free(inf);
		return NULL;
	}
	if (!inf->cfg.page_size)
		inf->cfg.page_size = 500;
	if (!inf->cfg.watch_min_s)
		inf->cfg.watch_min_s = 300;
	if (!inf->cfg.watch_max_s)
		inf->cfg.watch_max_s = 600;
	if (inf->cfg.watch_max_s < inf->cfg.watch_min_s)
		inf->cfg.watch_max_s = inf->cfg.watch_min_s;
	if (!inf->cfg.max_list_bytes)
		inf->cfg.max_list_bytes = KUBE_INFORMER_MAX_LIST_BYTES;
	inf->page_size = inf->cfg.page_size;
	inf->hd = *handler;
	inf->userdata = userdata;
	inf->http = h;
	inf->loop = loop;
	nsname_map_init(&inf->store, NSNAME_MAP_KEY_INLINE_NAME(struct entry, ns, name));
	loop_timer_init(&inf->timer, on_timer, inf);
	kube_backoff_init(&inf->backoff, cfg->backoff_base_ms ? cfg->backoff_base_ms : 500,
			  cfg->backoff_cap_ms ? cfg->backoff_cap_ms : 30000,
			  (uint64_t)loop_now_ms() * 2654435761u ^ (uint64_t)getpid() ^ (uintptr_t)inf);
	kube_watch_decoder_init(&inf->dec, cfg->max_event_bytes);
	return inf;
}

struct kube_informer *kube_informer_free(struct kube_informer *inf)
{
	struct entry *e;
	size_t iter = 0;

	if (!inf)
		return NULL;
	inf->stopping = true;
	if (inf->req)
		kube_http_cancel(inf->http, inf->req);
	loop_timer_stop(inf->loop, &inf->timer);
	while ((e = nsname_map_next(&inf->store, &iter)))
		entry_free(e);
	nsname_map_done(&inf->store);
	kube_watch_decoder_done(&inf->dec);
	list_reset(inf);
	free(inf->rv);
	free(inf->name);
	free(inf->path);
	free(inf->fallback_path);
	free(inf->label_selector);
	free(inf->field_selector);
	free(inf->default_ns);
	free(inf);
	return NULL;
}

int kube_informer_start(struct kube_informer *inf)
{
	start_list(inf);
	return 0;
}

void kube_informer_relist(struct kube_informer *inf)
{
	if (inf->req) {
		kube_http_cancel(inf->http, inf->req);
		inf->req = NULL;
	}
	loop_timer_stop(inf->loop, &inf->timer);
	list_reset(inf);
	inf->relisting = true;
	start_list(inf);
}

bool kube_informer_synced(const struct kube_informer *inf)
{
	return inf->synced;
}

size_t kube_informer_size(const struct kube_informer *inf)
{
	return nsname_map_size(&inf->store);
}

const struct kube_informer_stats *kube_informer_stats(const struct kube_informer *inf)
{
	return &inf->stats;
}
