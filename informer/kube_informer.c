/* List + watch of one resource, with relist on 410 and backoff.
 *
 * States: LISTING (pages of a list in flight), WATCHING (a watch stream in
 * flight) and WAITING (a timer will start the next request). Exactly one
 * request or one timer is pending at any time, so the informer cannot fan
 * out or spin.
 */
#include "kube_informer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kube_backoff.h"
#include "kube_watch.h"
#include "log.h"
#include "nsname_map.h"

#define WATCH_HEALTHY_MS 1000u /* a watch living this long was not a failure */
#define LIST_TIMEOUT_S 120u

/* One stored object: identity, version, the handler's word. */
struct entry {
	char *ns;
	char *name;
	char *rv;
	uint32_t aux;
	uint64_t seen_gen;
};

enum inf_state { INF_IDLE, INF_LISTING, INF_WATCHING, INF_WAITING };
enum inf_next { NEXT_LIST, NEXT_WATCH };

struct kube_informer {
	struct kube_informer_config cfg;
	char *name, *path, *fallback_path, *label_selector, *field_selector;
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
	char *buf;
	size_t len, cap;
	bool too_big;
	char *continue_tok;
	uint64_t list_gen;
	bool relisting;

	/* Watching. */
	char *rv;                /* last resourceVersion seen */
	struct kube_watch_decoder dec;
	uint64_t watch_start_ms;
	bool watch_got_event;
	bool watch_gone;         /* ERROR 410 seen */
	bool watch_error;        /* other ERROR event seen */
	bool changed;

	struct kube_informer_stats stats;
};

static void inf_schedule(struct kube_informer *inf, enum inf_next next, uint32_t delay_ms);

/* --- store ------------------------------------------------------------------- */

static struct entry *entry_free(struct entry *e)
{
	if (e) {
		free(e->ns);
		free(e->name);
		free(e->rv);
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

/* A string field of metadata, or NULL. */
static const char *meta_str(const json_t *obj, const char *key)
{
	const json_t *md = json_object_get(obj, "metadata");
	const json_t *v = json_is_object(md) ? json_object_get(md, key) : NULL;

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Deliver one listed or watched object unless its version is already
 * stored. Returns 0 or -ENOMEM. */
static int store_upsert(struct kube_informer *inf, const json_t *obj)
{
	const char *ns = meta_str(obj, "namespace"), *name = meta_str(obj, "name");
	const char *rv = meta_str(obj, "resourceVersion");
	struct entry *e;
	uint32_t aux;
	int r;

	if (!ns)
		ns = "";
	if (!name || !*name || strlen(name) > 253 || strlen(ns) > 63) {
		log_warn("kube %s: skipped an object without a valid metadata.name", inf->name);
		inf->stats.rejected++;
		return 0;
	}
	e = nsname_map_get(&inf->store, ns, name);
	if (e) {
		e->seen_gen = inf->list_gen;
		if (rv && e->rv && strcmp(rv, e->rv) == 0)
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
		e = calloc(1, sizeof(*e));
		if (!e || !(e->ns = strdup(ns)) || !(e->name = strdup(name)) ||
		    nsname_map_put(&inf->store, e->ns, e->name, e, NULL) < 0) {
			/* The object is in the model but unknown here: take it out
			 * again so the two do not disagree. */
			inf->hd.remove(inf->userdata, inf->use_fallback, ns, name, aux);
			entry_free(e);
			return -ENOMEM;
		}
		e->seen_gen = inf->list_gen;
	}
	e->aux = aux;
	free(e->rv);
	e->rv = rv ? strdup(rv) : NULL; /* NULL only costs a redelivery later */
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

/* --- list -------------------------------------------------------------------- */

static int list_on_body(void *userdata, const char *data, size_t len)
{
	struct kube_informer *inf = userdata;

	if (inf->len + len > inf->cfg.max_list_bytes) {
		inf->too_big = true;
		return -1;
	}
	if (inf->len + len + 1 > inf->cap) {
		size_t cap = inf->cap ? inf->cap : 65536;
		char *nb;

		while (cap < inf->len + len + 1)
			cap *= 2;
		nb = realloc(inf->buf, cap);
		if (!nb)
			return -1;
		inf->buf = nb;
		inf->cap = cap;
	}
	memcpy(inf->buf + inf->len, data, len);
	inf->len += len;
	return 0;
}

/* Log a failed request and schedule its retry after the backoff. */
static void inf_retry(struct kube_informer *inf, enum inf_next next, const char *what,
		      const struct kube_http_result *res)
{
	uint32_t delay = kube_backoff_next(&inf->backoff, res ? res->retry_after_ms : 0);

	inf->stats.failures++;
	if (res && res->error)
		log_warn("kube %s: %s failed: %s; retrying in %u ms", inf->name, what, res->message,
			 delay);
	else if (res)
		log_warn("kube %s: %s failed: HTTP %ld%s; retrying in %u ms", inf->name, what,
			 res->status, res->status == 401 ? " (token rejected)" : "", delay);
	else
		log_warn("kube %s: %s failed; retrying in %u ms", inf->name, what, delay);
	inf_schedule(inf, next, delay);
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
	char **gone = NULL;

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

/* Apply one page of a list. Returns 0, or -EBADMSG / -ENOMEM. */
static int list_apply_page(struct kube_informer *inf)
{
	json_error_t jerr;
	json_t *root = json_loadb(inf->buf, inf->len, 0, &jerr);
	const json_t *items, *md, *cont, *item;
	size_t i;
	int r = 0;

	if (!root)
		return -EBADMSG;
	items = json_object_get(root, "items");
	md = json_object_get(root, "metadata");
	if (!json_is_object(md) || (items && !json_is_array(items) && !json_is_null(items))) {
		json_decref(root);
		return -EBADMSG;
	}
	set_rv(inf, json_string_value(json_object_get(md, "resourceVersion")));
	cont = json_object_get(md, "continue");
	free(inf->continue_tok);
	inf->continue_tok = json_is_string(cont) && *json_string_value(cont) ?
				    strdup(json_string_value(cont)) : NULL;
	json_array_foreach(items, i, item) {
		if (!json_is_object(item)) {
			log_warn("kube %s: skipped list item %zu: not an object", inf->name, i);
			inf->stats.rejected++;
			continue;
		}
		r = store_upsert(inf, item);
		if (r < 0)
			break;
	}
	json_decref(root);
	return r;
}

static void list_on_done(void *userdata, const struct kube_http_result *res)
{
	struct kube_informer *inf = userdata;
	bool first_page = !inf->continue_tok;
	int r;

	inf->req = NULL;
	inf->state = INF_IDLE;
	if (res->error == 0 && res->status == 404 && first_page && inf->fallback_path &&
	    !inf->use_fallback && !inf->synced) {
		log_info("kube %s: %s not served (404): using %s instead", inf->name, inf->path,
			 inf->fallback_path);
		inf->use_fallback = true;
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
		free(inf->continue_tok);
		inf->continue_tok = NULL;
		inf_schedule(inf, NEXT_LIST, kube_backoff_next(&inf->backoff, 0));
		return;
	}
	if (res->error || res->status != 200) {
		free(inf->continue_tok);
		inf->continue_tok = NULL;
		if (inf->too_big)
			log_warn("kube %s: list page larger than %zu bytes refused", inf->name,
				 inf->cfg.max_list_bytes);
		inf_retry(inf, NEXT_LIST, "list", inf->too_big ? NULL : res);
		return;
	}
	inf->absent = false;
	r = list_apply_page(inf);
	inf->len = 0;
	if (r < 0) {
		free(inf->continue_tok);
		inf->continue_tok = NULL;
		inf_retry(inf, NEXT_LIST, r == -ENOMEM ? "list (out of memory)" : "list (bad JSON)",
			  NULL);
		return;
	}
	inf->stats.lists++;
	if (inf->continue_tok)
		start_list(inf);
	else
		list_complete(inf);
}

static void start_list(struct kube_informer *inf)
{
	char extra[64 + 1024];
	char *url, *esc = NULL;
	size_t elen = 0, ecap = 0;
	int r;

	if (!inf->continue_tok)
		inf->list_gen++; /* a new list: sweep marks start over */
	if (inf->continue_tok && append(&esc, &elen, &ecap, inf->continue_tok, true) < 0) {
		inf_retry(inf, NEXT_LIST, "list (out of memory)", NULL);
		return;
	}
	if (esc && strlen(esc) > 1000) {
		/* A continue token that long is not from a real server. */
		free(esc);
		esc = NULL;
		free(inf->continue_tok);
		inf->continue_tok = NULL;
		inf_retry(inf, NEXT_LIST, "list (oversized continue token)", NULL);
		return;
	}
	snprintf(extra, sizeof(extra), "limit=%u%s%s", inf->cfg.page_size, esc ? "&continue=" : "",
		 esc ? esc : "");
	free(esc);
	url = kube_informer_url(cur_path(inf), inf->label_selector, inf->field_selector, extra);
	inf->len = 0;
	inf->too_big = false;
	r = url ? kube_http_get(inf->http, url, LIST_TIMEOUT_S, list_on_body, list_on_done, inf,
				&inf->req) :
		  -ENOMEM;
	free(url);
	if (r < 0) {
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
	const char *name;
	int r;

	switch (ev->type) {
	case KUBE_EVENT_ADDED:
	case KUBE_EVENT_MODIFIED:
		inf->stats.events++;
		inf->watch_got_event = true;
		r = store_upsert(inf, ev->object);
		if (r < 0)
			return r;
		set_rv(inf, meta_str(ev->object, "resourceVersion"));
		return 0;
	case KUBE_EVENT_DELETED:
		inf->stats.events++;
		inf->watch_got_event = true;
		name = meta_str(ev->object, "name");
		if (name) {
			const char *ns = meta_str(ev->object, "namespace");
			store_remove(inf, ns ? ns : "", name);
		}
		set_rv(inf, meta_str(ev->object, "resourceVersion"));
		return 0;
	case KUBE_EVENT_BOOKMARK:
		inf->stats.events++;
		inf->watch_got_event = true;
		set_rv(inf, meta_str(ev->object, "resourceVersion"));
		return 0;
	case KUBE_EVENT_ERROR: {
		const json_t *code = json_object_get(ev->object, "code");
		const json_t *msg = json_object_get(ev->object, "message");

		if (json_is_integer(code) && json_integer_value(code) == 410) {
			inf->watch_gone = true;
		} else {
			inf->watch_error = true;
			log_warn("kube %s: watch ERROR event: code %lld: %.200s", inf->name,
				 json_is_integer(code) ? (long long)json_integer_value(code) : 0LL,
				 json_is_string(msg) ? json_string_value(msg) : "(no message)");
		}
		return -1; /* stop this stream */
	}
	case KUBE_EVENT_INVALID:
	case KUBE_EVENT_OVERSIZED:
	default:
		inf->stats.skipped_events++;
		log_warn("kube %s: skipped a watch event: %s", inf->name, ev->why ? ev->why : "invalid");
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

static void watch_on_done(void *userdata, const struct kube_http_result *res)
{
	struct kube_informer *inf = userdata;
	uint64_t lived = loop_now_ms() - inf->watch_start_ms;
	bool healthy = inf->watch_got_event || lived >= WATCH_HEALTHY_MS;

	inf->req = NULL;
	inf->state = INF_IDLE;
	if (inf->watch_got_event)
		kube_backoff_reset(&inf->backoff);
	if (inf->watch_gone || (res->error == 0 && res->status == 410)) {
		log_info("kube %s: resourceVersion %s is too old (410 Gone): relisting", inf->name,
			 inf->rv ? inf->rv : "?");
		inf->stats.relists++;
		inf->relisting = true;
		free(inf->rv);
		inf->rv = NULL;
		inf_schedule(inf, NEXT_LIST, healthy ? 0 : kube_backoff_next(&inf->backoff, 0));
		return;
	}
	if (inf->watch_error) {
		inf_retry(inf, NEXT_WATCH, "watch", NULL);
		return;
	}
	if ((res->error == 0 || res->error == -ETIMEDOUT) && res->status == 200) {
		/* The server (or our own bound) ended the stream: resume. */
		log_debug("kube %s: watch ended after %llu ms; resuming", inf->name,
			  (unsigned long long)lived);
		if (healthy && res->error == 0) {
			kube_backoff_reset(&inf->backoff);
			inf_schedule(inf, NEXT_WATCH, 0);
		} else {
			inf_schedule(inf, NEXT_WATCH, kube_backoff_next(&inf->backoff, 0));
		}
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
		start_list(inf); /* nothing to resume from */
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
	inf->watch_got_event = inf->watch_gone = inf->watch_error = false;
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
		inf->cfg.max_list_bytes = 256u << 20;
	inf->hd = *handler;
	inf->userdata = userdata;
	inf->http = h;
	inf->loop = loop;
	nsname_map_init(&inf->store);
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
	free(inf->buf);
	free(inf->continue_tok);
	free(inf->rv);
	free(inf->name);
	free(inf->path);
	free(inf->fallback_path);
	free(inf->label_selector);
	free(inf->field_selector);
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
	free(inf->continue_tok);
	inf->continue_tok = NULL;
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
