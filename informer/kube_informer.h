/* One Kubernetes resource followed by list + watch (an "informer").
 *
 * The informer lists the resource in pages (limit/continue), then watches
 * it from the list's resourceVersion with bookmarks and a randomized
 * timeoutSeconds, and keeps going forever:
 *  - a watch that ends normally after lasting at least a second (healthy)
 *    is resumed at once from the last resourceVersion seen (an event or a
 *    bookmark);
 *  - 410 Gone (HTTP status, or an ERROR event whose Status code is 410)
 *    means that version is too old: the resource is listed again, after
 *    the backoff, and only the difference is delivered (objects absent
 *    from the new list are removed, objects whose resourceVersion did not
 *    change are not delivered again);
 *  - transport errors, timeouts, 5xx, 429 (Retry-After honoured), 401/403
 *    are retried after a capped exponential backoff with jitter.
 * No server behaviour can make it spin: every way a request ends quickly
 * goes through the backoff, which only a watch that lasted a minute resets.
 * A watch that ends within a second is unhealthy whatever it brought (a
 * bookmark, an ADDED); a list follows metadata.continue only while it makes
 * progress (a page repeating a continue token or an object of the same
 * list, more than a few pages in a row without a new object, or a list
 * without a resourceVersion are errors). What the server does wrong is
 * logged at warn level, at most once per informer every ten seconds.
 *
 * Hostile input is bounded: pages are decoded with NULs allowed in strings
 * (the fields read are checked, so one bad object is rejected and the rest
 * of its page kept); a page inflating past max_list_bytes is refused and
 * the page size halved; the page buffer is an anonymous mapping unmapped
 * once it is large or the list is over.
 * A 404 on the first list switches to the fallback resource when there is
 * one (EndpointSlice -> Endpoints on old servers).
 *
 * The informer's store holds, per object, only its namespace, name,
 * resourceVersion and one word for the handler: the decoded structs live in
 * the model, the JSON is dropped as soon as the handler has seen it.
 * Policy code: retries and skipped events are logged here.
 */
#ifndef FERRY_KUBE_INFORMER_H
#define FERRY_KUBE_INFORMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kube_http.h"

/* What the handler's upsert may return besides 0 and -ENOMEM. */
#define KUBE_INFORMER_REJECTED (-EINVAL) /* bad object; the handler logged it */
#define KUBE_INFORMER_IGNORED 1          /* valid but unused (not stored) */

struct kube_informer_handler {
	/* An object was listed or watched (ADDED/MODIFIED) and differs from the
	 * stored version. variant is 0 for the primary resource, 1 for the
	 * fallback. *aux is the handler's word for this object (0 for a new
	 * one), kept between calls. Returns 0 (stored), KUBE_INFORMER_IGNORED,
	 * KUBE_INFORMER_REJECTED or -ENOMEM; on anything but 0 a stored
	 * previous version is removed through remove(). */
	int (*upsert)(void *userdata, unsigned variant, const json_t *obj, const char *ns,
		      const char *name, uint32_t *aux);
	/* A stored object is gone (deleted, or absent from a relist). */
	void (*remove)(void *userdata, unsigned variant, const char *ns, const char *name,
		       uint32_t aux);
	/* The first complete list has been delivered (called once). */
	void (*synced)(void *userdata);
	/* Something was delivered since the last call (called after each list
	 * and after each chunk of watch events that changed anything). */
	void (*changed)(void *userdata);
	/* A request failed and its retry has just been scheduled (the informer
	 * retries whatever this does). name is the informer's ("services"),
	 * what says which request ("list", "watch"); res is its result, or NULL
	 * for a failure without an HTTP error (out of memory, bad JSON, a list
	 * making no progress). For callers that may give up early, such as a
	 * one-shot `ferry plan`. May stop the loop; must not free the informer.
	 * May be NULL. */
	void (*failed)(void *userdata, const char *name, const char *what,
		       const struct kube_http_result *res);
};

/* How often an optional resource that the server does not serve is asked
 * for again. */
#define KUBE_INFORMER_ABSENT_RECHECK_MS 60000u

/* Default bound of one list page after decompression. A real page of 500
 * objects is a few MiB; pages of unusually large objects still load, as
 * the page size is halved each time a page goes past the bound. */
#define KUBE_INFORMER_MAX_LIST_BYTES (32u << 20)

struct kube_informer_config {
	const char *name;           /* for logs: "services" */
	const char *path;           /* "/api/v1/services" */
	const char *fallback_path;  /* used after a 404 on path, or NULL */
	/* The resource may not exist on this API server (a newer API group):
	 * a 404 on the list counts as an empty, synced list, asked again every
	 * KUBE_INFORMER_ABSENT_RECHECK_MS instead of watched. */
	bool optional;
	/* The store key of an object without metadata.namespace (absent, null
	 * or ""): for a namespaced resource, the namespace the handler's
	 * decoder files it under (KDECODE_DEFAULT_NAMESPACE), so that its
	 * DELETED event and a relist find it; NULL ("") for a cluster-scoped
	 * one. */
	const char *default_namespace;
	const char *label_selector; /* or NULL */
	const char *field_selector; /* or NULL */
	uint32_t page_size;         /* list limit; 0: 500 */
	uint32_t watch_min_s;       /* timeoutSeconds drawn in [min, max]; 0: 300 */
	uint32_t watch_max_s;       /* 0: 600 */
	uint32_t backoff_base_ms;   /* 0: 500 */
	uint32_t backoff_cap_ms;    /* 0: 30000 */
	size_t max_list_bytes;      /* largest list page, inflated; 0: KUBE_INFORMER_MAX_LIST_BYTES */
	size_t max_event_bytes;     /* largest watch event; 0: KUBE_WATCH_MAX_LINE */
};

/* Counters, for tests, logs and the benchmark. */
struct kube_informer_stats {
	uint64_t lists;          /* list requests (pages) that succeeded */
	uint64_t relists;        /* lists started after a 410 */
	uint64_t watches;        /* watch requests started */
	uint64_t events;         /* watch events decoded */
	uint64_t upserts;        /* objects delivered */
	uint64_t removes;
	uint64_t rejected;       /* objects the handler rejected */
	uint64_t skipped_events; /* malformed or oversized events */
	uint64_t failures;       /* failed or unhealthy requests (retried after a backoff) */
};

struct kube_informer;

/* Create an informer fetching through h and delivering to handler. cfg's
 * strings are copied; h and userdata are borrowed. Nothing happens until
 * kube_informer_start. NULL on ENOMEM. */
struct kube_informer *kube_informer_new(struct kube_http *h, struct loop *loop,
					const struct kube_informer_config *cfg,
					const struct kube_informer_handler *handler,
					void *userdata);
/* Stop (requests aborted, timers stopped) and free. Objects delivered stay
 * wherever the handler put them. Accepts NULL; returns NULL. */
struct kube_informer *kube_informer_free(struct kube_informer *inf);

/* Start the first list. Returns 0 or -ENOMEM (then retried by timer, so
 * the error is informative only). */
int kube_informer_start(struct kube_informer *inf);

/* List again now (SIGHUP), delivering the difference. */
void kube_informer_relist(struct kube_informer *inf);

/* True once the first complete list was delivered. */
bool kube_informer_synced(const struct kube_informer *inf);

/* Number of objects stored. */
size_t kube_informer_size(const struct kube_informer *inf);

/* The counters. */
const struct kube_informer_stats *kube_informer_stats(const struct kube_informer *inf);

/* Build "path?k=v&..." with the informer's selectors and the given extra
 * parameters, percent-escaping values. Exposed for tests. Returns a new
 * string or NULL on ENOMEM. */
char *kube_informer_url(const char *path, const char *label_selector,
			const char *field_selector, const char *extra);

#endif
