/* Incremental decoder of a Kubernetes watch stream.
 *
 * A watch response body is a sequence of JSON documents, one per line:
 * {"type":"ADDED","object":{...}}. Bytes arrive in chunks cut anywhere (in
 * the middle of a line, of a UTF-8 sequence, of a number); the decoder keeps
 * the unfinished tail and hands over each complete line as one event. A
 * line longer than the bound is skipped whole (up to its newline) and
 * reported, so a hostile or broken server cannot make us buffer without
 * limit. Strings may hold NULs (JSON "\u0000"): jansson keeps their
 * length, and a reader of a field must check it (json_string_length
 * against strlen). Pure: no I/O, no logging.
 */
#ifndef FERRY_KUBE_WATCH_H
#define FERRY_KUBE_WATCH_H

#include <stddef.h>

#include <jansson.h>

/* Default bound of one event line (a Kubernetes object is capped at about
 * 1.5 MiB by etcd; leave room for the envelope). */
#define KUBE_WATCH_MAX_LINE (4u << 20)
/* A line buffer grown past this is freed when a new stream starts. */
#define KUBE_WATCH_KEEP_BUF (64u << 10)

enum kube_event_type {
	KUBE_EVENT_ADDED = 0,
	KUBE_EVENT_MODIFIED,
	KUBE_EVENT_DELETED,
	KUBE_EVENT_BOOKMARK,
	KUBE_EVENT_ERROR,
	KUBE_EVENT_INVALID,   /* not JSON, no known type, or no object: skip it */
	KUBE_EVENT_OVERSIZED, /* longer than the bound: skipped */
};

/* One event. object is borrowed for the duration of the callback (NULL for
 * INVALID and OVERSIZED). why says what was wrong with an INVALID line. */
struct kube_event {
	enum kube_event_type type;
	const json_t *object;
	const char *why;
};

/* Return 0 to go on, or a negative value to stop: kube_watch_feed then
 * returns that value at once and the rest of the chunk is dropped. */
typedef int (*kube_watch_event_fn)(void *userdata, const struct kube_event *ev);

struct kube_watch_decoder {
	char *buf;          /* the unfinished line */
	size_t len, cap;
	size_t max_line;
	int skipping;       /* inside an oversized line, dropping up to '\n' */
};

/* Prepare d with a line bound (0: KUBE_WATCH_MAX_LINE). Allocates nothing. */
void kube_watch_decoder_init(struct kube_watch_decoder *d, size_t max_line);
/* Release the buffer; d may be reused after kube_watch_decoder_init. */
void kube_watch_decoder_done(struct kube_watch_decoder *d);
/* Forget any partial line (a new stream starts), and free the buffer if a
 * long line grew it past KUBE_WATCH_KEEP_BUF. */
void kube_watch_decoder_reset(struct kube_watch_decoder *d);

/* Consume len bytes, calling fn once per complete line (blank lines are
 * ignored). Returns 0, the callback's negative value, or -ENOMEM. */
int kube_watch_feed(struct kube_watch_decoder *d, const char *data, size_t len,
		    kube_watch_event_fn fn, void *userdata);

/* The name of an event type ("ADDED"...), for logs. */
const char *kube_event_type_name(enum kube_event_type t);

#endif
