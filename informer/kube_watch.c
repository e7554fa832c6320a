/* Watch stream framing: split on '\n', parse each line with jansson. */
#include "kube_watch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void kube_watch_decoder_init(struct kube_watch_decoder *d, size_t max_line)
{
	memset(d, 0, sizeof(*d));
	d->max_line = max_line ? max_line : KUBE_WATCH_MAX_LINE;
}

void kube_watch_decoder_done(struct kube_watch_decoder *d)
{
	free(d->buf);
	d->buf = NULL;
	d->len = d->cap = 0;
	d->skipping = 0;
}

void kube_watch_decoder_reset(struct kube_watch_decoder *d)
{
	d->len = 0;
	d->skipping = 0;
	/* One long event must not pin its buffer (up to max_line) for the
	 * life of the process. */
	if (d->cap > KUBE_WATCH_KEEP_BUF) {
		free(d->buf);
		d->buf = NULL;
		d->cap = 0;
	}
}

const char *kube_event_type_name(enum kube_event_type t)
{
	static const char *const names[] = { "ADDED", "MODIFIED", "DELETED", "BOOKMARK",
					     "ERROR", "INVALID", "OVERSIZED" };

	return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

static int parse_type(const char *s, enum kube_event_type *ret)
{
	static const char *const names[] = { "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR" };

	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*ret = (enum kube_event_type)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* Decode one complete line and call fn. */
static int emit_line(const char *line, size_t len, kube_watch_event_fn fn, void *userdata)
{
	struct kube_event ev = { .type = KUBE_EVENT_INVALID };
	json_error_t jerr;
	json_t *root;
	const json_t *type, *obj;
	int r;

	while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	if (len == 0)
		return 0;
	/* NULs allowed: one in a string ferry does not read (an annotation
	 * value, which the API accepts) must not lose the event; the fields
	 * read are checked by whoever reads them. */
	root = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!root) {
		ev.why = "not valid JSON";
		return fn(userdata, &ev);
	}
	type = json_object_get(root, "type");
	obj = json_object_get(root, "object");
	if (!json_is_string(type) || strlen(json_string_value(type)) != json_string_length(type) ||
	    parse_type(json_string_value(type), &ev.type) < 0) {
		ev.type = KUBE_EVENT_INVALID;
		ev.why = "no known event type";
	} else if (!json_is_object(obj)) {
		ev.type = KUBE_EVENT_INVALID;
		ev.why = "event without an object";
	} else {
		ev.object = obj;
	}
	r = fn(userdata, &ev);
	json_decref(root);
	return r;
}

int kube_watch_feed(struct kube_watch_decoder *d, const char *data, size_t len,
		    kube_watch_event_fn fn, void *userdata)
{
	while (len) {
		const char *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;
		int r;

		if (d->skipping) {
			if (!nl)
				return 0;
			d->skipping = 0;
			data += take + 1;
			len -= take + 1;
			continue;
		}
		if (d->len + take > d->max_line) {
			struct kube_event ev = { .type = KUBE_EVENT_OVERSIZED, .why = "event too large" };

			d->len = 0;
			d->skipping = 1;
			r = fn(userdata, &ev);
			if (r < 0)
				return r;
			continue; /* the skip branch drops up to the newline */
		}
		if (nl && d->len == 0) {
			/* The whole line is in this chunk: no copy. */
			r = emit_line(data, take, fn, userdata);
		} else {
			if (d->len + take > d->cap) {
				size_t cap = d->cap ? d->cap : 4096;
				char *nb;

				while (cap < d->len + take)
					cap *= 2;
				if (cap > d->max_line)
					cap = d->max_line;
				nb = realloc(d->buf, cap);
				if (!nb)
					return -ENOMEM;
				d->buf = nb;
				d->cap = cap;
			}
			memcpy(d->buf + d->len, data, take);
			d->len += take;
			if (!nl)
				return 0;
			r = emit_line(d->buf, d->len, fn, userdata);
			d->len = 0;
		}
		if (r < 0)
			return r;
		data += take + 1;
		len -= take + 1;
	}
	return 0;
}
