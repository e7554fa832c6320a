/* Fuzz target: the watch-stream decoder (informer/kube_watch.c) fed in
 * chunks of fuzzer-chosen sizes.
 *
 * Input layout: byte 0 picks the line bound (0: the default 4 MiB, else a
 * small bound of 16..4096 bytes so oversized lines happen), byte 1 (mod 16)
 * is how many chunk-size bytes follow (0: the whole stream in one call);
 * the chunk sizes (1..256, used in turn) come next, then the stream itself.
 *
 * Checked: the events of the chunked feed are exactly those of feeding the
 * whole stream at once (same types, reasons and objects: chunk boundaries
 * never matter), every event has an object iff it is ADDED, MODIFIED,
 * DELETED, BOOKMARK or ERROR, the decoder never holds more than the line
 * bound, and the object of each event goes through the decoders as
 * kube_source.c would use them. Seeds: corpus/watch_stream/ (the 2-byte
 * header, then watch lines). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check_kobj.h"
#include "fuzz_check.h"
#include "kube_watch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	enum kube_event_type type;
	const char *why;   /* static strings of kube_watch.c */
	json_t *object;    /* own reference, or NULL */
};

struct events {
	struct seen *v;
	size_t n, cap;
	bool decode;       /* run the decoders on each object */
};

static int on_event(void *userdata, const struct kube_event *ev)
{
	struct events *evs = userdata;
	bool has_object = ev->type <= KUBE_EVENT_ERROR;

	FUZZ_CHECK(ev->type <= KUBE_EVENT_OVERSIZED);
	FUZZ_CHECK(has_object == (ev->object != NULL));
	FUZZ_CHECK(!has_object || json_is_object(ev->object));
	FUZZ_CHECK(has_object || (ev->why && ev->why[0]));
	FUZZ_CHECK(strcmp(kube_event_type_name(ev->type), "?") != 0);
	if (evs->n == evs->cap) {
		size_t cap = evs->cap ? 2 * evs->cap : 16;
		struct seen *v = realloc(evs->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		evs->v = v;
		evs->cap = cap;
	}
	evs->v[evs->n].type = ev->type;
	evs->v[evs->n].why = has_object ? NULL : ev->why;
	evs->v[evs->n].object = ev->object ? json_incref((json_t *)ev->object) : NULL;
	evs->n++;
	if (evs->decode && ev->type != KUBE_EVENT_BOOKMARK && ev->type != KUBE_EVENT_ERROR && ev->object)
		check_kobj_api_object(ev->object);
	return 0;
}

static void events_done(struct events *evs)
{
	for (size_t i = 0; i < evs->n; i++)
		json_decref(evs->v[i].object);
	free(evs->v);
}

static void check_decoder(const struct kube_watch_decoder *d)
{
	FUZZ_CHECK(d->len <= d->max_line);
	FUZZ_CHECK(d->len <= d->cap);
	FUZZ_CHECK(d->cap <= d->max_line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kube_watch_decoder whole, chunked;
	struct events a = { .decode = true }, b = { 0 };
	uint8_t chunks[16];
	size_t n_chunks, max_line, off, k;
	const char *stream;
	size_t len;
	int r;

	if (size < 2)
		return 0;
	max_line = data[0] ? 16 + (size_t)data[0] * 16 : 0;
	n_chunks = data[1] % 16;
	if (size < 2 + n_chunks)
		return 0;
	memcpy(chunks, data + 2, n_chunks);
	stream = (const char *)data + 2 + n_chunks;
	len = size - 2 - n_chunks;

	kube_watch_decoder_init(&whole, max_line);
	FUZZ_CHECK(whole.max_line == (max_line ? max_line : KUBE_WATCH_MAX_LINE));
	r = kube_watch_feed(&whole, stream, len, on_event, &a);
	FUZZ_CHECK(r == 0 || r == -ENOMEM);
	check_decoder(&whole);

	kube_watch_decoder_init(&chunked, max_line);
	for (off = 0, k = 0; off < len && r == 0; k++) {
		size_t step = n_chunks ? (size_t)chunks[k % n_chunks] + 1 : len - off;

		if (step > len - off)
			step = len - off;
		r = kube_watch_feed(&chunked, stream + off, step, on_event, &b);
		FUZZ_CHECK(r == 0 || r == -ENOMEM);
		check_decoder(&chunked);
		off += step;
	}
	if (r == 0) {
		/* The same events, and the same unfinished tail. */
		FUZZ_CHECK(a.n == b.n);
		for (size_t i = 0; i < a.n; i++) {
			FUZZ_CHECK(a.v[i].type == b.v[i].type);
			FUZZ_CHECK(a.v[i].why == b.v[i].why ||
				   (a.v[i].why && b.v[i].why && strcmp(a.v[i].why, b.v[i].why) == 0));
			FUZZ_CHECK((a.v[i].object == NULL) == (b.v[i].object == NULL));
			FUZZ_CHECK(!a.v[i].object || json_equal(a.v[i].object, b.v[i].object));
		}
		FUZZ_CHECK(whole.len == chunked.len && whole.skipping == chunked.skipping);
		FUZZ_CHECK(memcmp(whole.buf ? whole.buf : "", chunked.buf ? chunked.buf : "", whole.len) == 0);
	}

	/* A reset drops the tail: a new stream starts clean. */
	kube_watch_decoder_reset(&chunked);
	FUZZ_CHECK(chunked.len == 0 && !chunked.skipping);

	kube_watch_decoder_done(&whole);
	kube_watch_decoder_done(&chunked);
	events_done(&a);
	events_done(&b);
	return 0;
}
