/* The watch stream decoder: events split at every possible boundary, in
 * random chunks, with malformed and oversized lines in between. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube_watch.h"

struct seen {
	char log[4096];
	size_t n;
};

static int record(void *userdata, const struct kube_event *ev)
{
	struct seen *s = userdata;
	const json_t *md = ev->object ? json_object_get(ev->object, "metadata") : NULL;
	const json_t *name = md ? json_object_get(md, "name") : NULL;
	size_t len = strlen(s->log);

	snprintf(s->log + len, sizeof(s->log) - len, "%s:%s;", kube_event_type_name(ev->type),
		 json_is_string(name) ? json_string_value(name) : "-");
	s->n++;
	return 0;
}

static const char stream[] =
	"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}\n"
	"{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"b\",\"x\":\"\\u00e9\\n\"}}}\r\n"
	"\n"
	"this is not json\n"
	"{\"type\":\"WHAT\",\"object\":{}}\n"
	"{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"c\"}}}\n"
	"{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"9\"}}}\n"
	"{\"type\":\"ERROR\",\"object\":{\"code\":410}}\n";

static const char expected[] = "ADDED:a;MODIFIED:b;INVALID:-;INVALID:-;DELETED:c;BOOKMARK:-;ERROR:-;";

Test(kube_watch, whole_stream_at_once)
{
	struct kube_watch_decoder d;
	struct seen s = { 0 };

	kube_watch_decoder_init(&d, 0);
	cr_assert_eq(kube_watch_feed(&d, stream, strlen(stream), record, &s), 0);
	cr_assert_str_eq(s.log, expected);
	kube_watch_decoder_done(&d);
}

Test(kube_watch, every_split_point)
{
	size_t len = strlen(stream);

	for (size_t cut = 0; cut <= len; cut++) {
		struct kube_watch_decoder d;
		struct seen s = { 0 };

		kube_watch_decoder_init(&d, 0);
		cr_assert_eq(kube_watch_feed(&d, stream, cut, record, &s), 0);
		cr_assert_eq(kube_watch_feed(&d, stream + cut, len - cut, record, &s), 0);
		cr_assert_str_eq(s.log, expected, "cut at %zu", cut);
		kube_watch_decoder_done(&d);
	}
}

Test(kube_watch, random_chunks_byte_by_byte_and_more)
{
	size_t len = strlen(stream);

	srand(12345);
	for (int round = 0; round < 500; round++) {
		struct kube_watch_decoder d;
		struct seen s = { 0 };
		size_t pos = 0;

		kube_watch_decoder_init(&d, 0);
		while (pos < len) {
			size_t n = 1 + (size_t)rand() % (round % 3 == 0 ? 2 : 40);
			if (n > len - pos)
				n = len - pos;
			cr_assert_eq(kube_watch_feed(&d, stream + pos, n, record, &s), 0);
			pos += n;
		}
		cr_assert_str_eq(s.log, expected, "round %d", round);
		kube_watch_decoder_done(&d);
	}
}

Test(kube_watch, oversized_line_is_skipped_and_the_stream_goes_on)
{
	struct kube_watch_decoder d;
	struct seen s = { 0 };
	char big[600];
	const char *after = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"z\"}}}\n";

	memset(big, 'x', sizeof(big));
	kube_watch_decoder_init(&d, 256);
	/* The long line arrives in pieces; only a newline ends it. */
	for (int i = 0; i < 5; i++)
		cr_assert_eq(kube_watch_feed(&d, big, sizeof(big), record, &s), 0);
	cr_assert_eq(kube_watch_feed(&d, "\n", 1, record, &s), 0);
	cr_assert_eq(kube_watch_feed(&d, after, strlen(after), record, &s), 0);
	cr_assert_str_eq(s.log, "OVERSIZED:-;ADDED:z;");
	cr_assert_leq(d.cap, 256);
	kube_watch_decoder_done(&d);
}

static int stop_at_error(void *userdata, const struct kube_event *ev)
{
	record(userdata, ev);
	return ev->type == KUBE_EVENT_ERROR ? -42 : 0;
}

Test(kube_watch, callback_can_stop_the_feed)
{
	struct kube_watch_decoder d;
	struct seen s = { 0 };
	const char *two = "{\"type\":\"ERROR\",\"object\":{\"code\":500}}\n"
			  "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}\n";

	kube_watch_decoder_init(&d, 0);
	cr_assert_eq(kube_watch_feed(&d, two, strlen(two), stop_at_error, &s), -42);
	cr_assert_str_eq(s.log, "ERROR:-;");
	kube_watch_decoder_done(&d);
}

/* A NUL in a string (an annotation value, which the API accepts) does not
 * lose the event: the object arrives with the string's full length, for
 * the reader of a field to judge. A NUL in the event type is no type. */
Test(kube_watch, nul_in_a_string_keeps_the_event)
{
	static const char line[] =
		"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\","
		"\"annotations\":{\"note\":\"x\\u0000y\"}}}}\n"
		"{\"type\":\"ADDED\\u0000\",\"object\":{\"metadata\":{\"name\":\"b\"}}}\n";
	struct kube_watch_decoder d;
	struct seen s = { 0 };

	kube_watch_decoder_init(&d, 0);
	cr_assert_eq(kube_watch_feed(&d, line, strlen(line), record, &s), 0);
	cr_assert_str_eq(s.log, "ADDED:a;INVALID:-;");
	kube_watch_decoder_done(&d);
}

/* A long event grows the line buffer; a new stream gives it back. */
Test(kube_watch, reset_frees_a_grown_buffer)
{
	struct kube_watch_decoder d;
	struct seen s = { 0 };
	size_t n = 1 << 20;
	char *big = malloc(n);

	cr_assert_not_null(big);
	memset(big, ' ', n);
	kube_watch_decoder_init(&d, 0);
	/* An unfinished line of 1 MiB: kept whole. */
	cr_assert_eq(kube_watch_feed(&d, big, n, record, &s), 0);
	cr_assert_geq(d.cap, n);
	kube_watch_decoder_reset(&d);
	cr_assert_null(d.buf);
	cr_assert_eq(d.cap, 0);
	/* A small one stays for the next stream. */
	cr_assert_eq(kube_watch_feed(&d, "{\"ty", 4, record, &s), 0);
	kube_watch_decoder_reset(&d);
	cr_assert_not_null(d.buf);
	kube_watch_decoder_done(&d);
	free(big);
}
