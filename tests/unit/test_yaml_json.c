/* yaml_json: typing of scalars, multi-document streams, and the bounds that
 * keep hostile input (alias bombs, deep nesting, huge input) cheap. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "yaml_json.h"

static struct yaml_json_doc *docs;
static size_t n_docs;
static struct yaml_json_error perr;

static void teardown(void)
{
	yaml_json_docs_free(docs, n_docs);
	docs = NULL;
	n_docs = 0;
}

TestSuite(yaml_json, .fini = teardown);

static int parse(const char *text)
{
	yaml_json_docs_free(docs, n_docs);
	docs = NULL;
	n_docs = 0;
	return yaml_json_parse(text, strlen(text), NULL, &docs, &n_docs, &perr);
}

static json_t *get(const char *key)
{
	cr_assert_geq(n_docs, 1);
	return json_object_get(docs[0].root, key);
}

Test(yaml_json, core_schema_typing)
{
	cr_assert_eq(parse("a: true\nb: False\nc: null\nd: ~\ne:\nf: 42\ng: -17\nh: 3.5\n"
			   "i: 1e3\nj: hello\nk: \"80\"\nl: '1.5'\nm: 0x1F\nn: 0o17\no: yes\n"
			   "p: +5\nq: .inf\nr: 99999999999999999999\ns: \"true\"\nt: |\n  12\n"),
		     0, "%s", perr.message);
	cr_assert(json_is_true(get("a")));
	cr_assert(json_is_false(get("b")));
	cr_assert(json_is_null(get("c")));
	cr_assert(json_is_null(get("d")));
	cr_assert(json_is_null(get("e")));
	cr_assert_eq(json_integer_value(get("f")), 42);
	cr_assert_eq(json_integer_value(get("g")), -17);
	cr_assert(json_is_real(get("h")));
	cr_assert_float_eq(json_real_value(get("h")), 3.5, 1e-9);
	cr_assert_float_eq(json_real_value(get("i")), 1000.0, 1e-9);
	cr_assert_str_eq(json_string_value(get("j")), "hello");
	cr_assert_str_eq(json_string_value(get("k")), "80", "quoted numbers stay strings");
	cr_assert_str_eq(json_string_value(get("l")), "1.5");
	cr_assert_eq(json_integer_value(get("m")), 31);
	cr_assert_eq(json_integer_value(get("n")), 15);
	cr_assert_str_eq(json_string_value(get("o")), "yes", "core schema: yes is a string");
	cr_assert_eq(json_integer_value(get("p")), 5);
	cr_assert(json_is_string(get("q")), "no infinity in JSON");
	cr_assert(json_is_real(get("r")), "too big for 64 bits: still a number");
	cr_assert_str_eq(json_string_value(get("s")), "true");
	cr_assert_str_eq(json_string_value(get("t")), "12\n", "block scalars are strings");
}

Test(yaml_json, explicit_str_tag)
{
	cr_assert_eq(parse("a: !!str 80\nb: ! 12\n"), 0, "%s", perr.message);
	cr_assert_str_eq(json_string_value(get("a")), "80");
	cr_assert_str_eq(json_string_value(get("b")), "12");
}

Test(yaml_json, multi_documents_and_empty_ones)
{
	cr_assert_eq(parse("---\n---\na: 1\n---\n# only a comment\n---\n- x\n- y\n...\n---\n~\n"),
		     0, "%s", perr.message);
	cr_assert_eq(n_docs, 2);
	cr_assert_eq(json_integer_value(json_object_get(docs[0].root, "a")), 1);
	cr_assert_eq(docs[0].line, 2);
	cr_assert(json_is_array(docs[1].root));
	cr_assert_eq(json_array_size(docs[1].root), 2);
	cr_assert_eq(docs[1].line, 6);
}

Test(yaml_json, empty_input)
{
	cr_assert_eq(parse(""), 0);
	cr_assert_eq(n_docs, 0);
	cr_assert_null(docs);
	cr_assert_eq(parse("# nothing\n"), 0);
	cr_assert_eq(n_docs, 0);
}

Test(yaml_json, flow_style_and_json)
{
	cr_assert_eq(parse("{\"a\": [1, 2, {\"b\": null}], \"c\": \"d\"}"), 0, "%s", perr.message);
	cr_assert_eq(json_array_size(get("a")), 3);
	cr_assert_str_eq(json_string_value(get("c")), "d");
}

Test(yaml_json, aliases_and_merge_keys)
{
	cr_assert_eq(parse("base: &b {port: 80, protocol: TCP}\n"
			   "x: *b\n"
			   "y:\n  <<: *b\n  port: 81\n"
			   "name: &n web\n"
			   "z: *n\n"),
		     0, "%s", perr.message);
	cr_assert_eq(json_integer_value(json_object_get(get("x"), "port")), 80);
	cr_assert_eq(json_integer_value(json_object_get(get("y"), "port")), 81, "explicit key wins");
	cr_assert_str_eq(json_string_value(json_object_get(get("y"), "protocol")), "TCP");
	cr_assert_str_eq(json_string_value(get("z")), "web");
}

Test(yaml_json, unknown_alias_and_self_reference)
{
	cr_assert_eq(parse("a: *nope\n"), -EINVAL);
	cr_assert_eq(perr.line, 1);
	/* An anchor is only known once its node is complete: no cycles. */
	cr_assert_eq(parse("a: &x [1, *x]\n"), -EINVAL);
}

Test(yaml_json, duplicate_keys_rejected)
{
	cr_assert_eq(parse("a: 1\nb: 2\na: 3\n"), -EINVAL);
	cr_assert_eq(perr.line, 3);
	cr_assert(strstr(perr.message, "duplicate"), "%s", perr.message);
}

Test(yaml_json, billion_laughs_rejected_fast)
{
	const char *bomb =
		"a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
		"b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
		"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
		"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
		"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
		"f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
		"g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
		"h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
		"i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(parse(bomb), -ELOOP);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_assert(strstr(perr.message, "aliases"), "%s", perr.message);
	cr_assert_gt(perr.line, 1);
	cr_assert_lt((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000, 1000);
}

Test(yaml_json, alias_budget_is_configurable)
{
	struct yaml_json_limits lim = { .max_alias_nodes = 10 };
	const char *text = "a: &a [1, 2, 3]\nb: [*a, *a]\n";

	cr_assert_eq(yaml_json_parse(text, strlen(text), &lim, &docs, &n_docs, &perr), 0);
	yaml_json_docs_free(docs, n_docs);
	docs = NULL;
	n_docs = 0;
	lim.max_alias_nodes = 7;
	cr_assert_eq(yaml_json_parse(text, strlen(text), &lim, &docs, &n_docs, &perr), -ELOOP);
}

Test(yaml_json, deep_nesting_rejected)
{
	size_t depth = 100000;
	char *text = malloc(2 * depth + 1);

	/* Flow and block nesting both count. */
	memset(text, '[', depth);
	memset(text + depth, ']', depth);
	text[2 * depth] = '\0';
	cr_assert_eq(parse(text), -ELOOP);
	cr_assert(strstr(perr.message, "nesting"), "%s", perr.message);
	free(text);

	/* 64 levels are fine. */
	text = malloc(2 * 64 + 1);
	memset(text, '[', 64);
	memset(text + 64, ']', 64);
	text[128] = '\0';
	cr_assert_eq(parse(text), 0, "%s", perr.message);
	free(text);
	text = malloc(2 * 65 + 1);
	memset(text, '[', 65);
	memset(text + 65, ']', 65);
	text[130] = '\0';
	cr_assert_eq(parse(text), -ELOOP);
	free(text);
}

Test(yaml_json, syntax_error_has_line)
{
	cr_assert_eq(parse("a: 1\nb: [1, 2\nc: 3\n"), -EINVAL);
	cr_assert_geq(perr.line, 2, "line %u", perr.line);
	cr_assert_neq(perr.message[0], '\0');
	cr_assert_eq(parse("a: 1\n  b: 2\n"), -EINVAL);
	cr_assert_eq(perr.line, 2, "line %u: %s", perr.line, perr.message);
}

Test(yaml_json, complex_keys_rejected)
{
	cr_assert_eq(parse("? [a, b]\n: 1\n"), -EINVAL);
}

Test(yaml_json, size_bound)
{
	struct yaml_json_limits lim = { .max_bytes = 8 };
	const char *text = "a: 123456789\n";

	cr_assert_eq(yaml_json_parse(text, strlen(text), &lim, &docs, &n_docs, &perr), -EFBIG);
	cr_assert_eq(yaml_json_parse_json(text, strlen(text), &lim, &docs, &n_docs, &perr), -EFBIG);
}

Test(yaml_json, json_parser)
{
	const char *ok = "{\"kind\": \"Service\", \"n\": 5}";
	const char *dup = "{\"a\": 1,\n \"a\": 2}";
	const char *bad = "{\"a\": 1,\n\n \"b\" 2}";
	const char *null = "null";

	cr_assert_eq(yaml_json_parse_json(ok, strlen(ok), NULL, &docs, &n_docs, &perr), 0);
	cr_assert_eq(n_docs, 1);
	cr_assert_eq(json_integer_value(get("n")), 5);
	teardown();
	cr_assert_eq(yaml_json_parse_json(dup, strlen(dup), NULL, &docs, &n_docs, &perr), -EINVAL);
	cr_assert_eq(yaml_json_parse_json(bad, strlen(bad), NULL, &docs, &n_docs, &perr), -EINVAL);
	cr_assert_eq(perr.line, 3);
	cr_assert_eq(yaml_json_parse_json(null, strlen(null), NULL, &docs, &n_docs, &perr), 0);
	cr_assert_eq(n_docs, 0);
}

Test(yaml_json, json_deep_nesting_rejected)
{
	char text[2 * 100 + 1];

	memset(text, '[', 100);
	memset(text + 100, ']', 100);
	text[200] = '\0';
	cr_assert_eq(yaml_json_parse_json(text, 200, NULL, &docs, &n_docs, &perr), -ELOOP);
}

Test(yaml_json, buffer_need_not_be_terminated)
{
	const char text[] = { 'a', ':', ' ', '1', '2', 'x', 'y' };

	cr_assert_eq(yaml_json_parse(text, 5, NULL, &docs, &n_docs, &perr), 0);
	cr_assert_eq(json_integer_value(get("a")), 12);
}

/* --- Streams ------------------------------------------------------------- */

/* A reader over a text, a few bytes at a time, failing with fail_errno
 * (when not 0) once fail_at bytes are out. */
struct text_input {
	const char *text;
	size_t len, at, chunk, fail_at;
	int fail_errno;
};

static ssize_t text_read(void *userdata, void *buf, size_t size)
{
	struct text_input *ti = userdata;
	size_t n = ti->len - ti->at;

	if (ti->fail_errno && ti->at >= ti->fail_at)
		return -ti->fail_errno;
	if (n > size)
		n = size;
	if (n > ti->chunk)
		n = ti->chunk;
	memcpy(buf, ti->text + ti->at, n);
	ti->at += n;
	return (ssize_t)n;
}

/* What the callbacks saw. */
struct seen {
	char log[1024];
	size_t n_docs;
	size_t items_left;       /* items still in the last document */
	int item_result;         /* what the item callback answers */
};

static int seen_document(void *userdata, json_t *root, unsigned line)
{
	struct seen *s = userdata;
	size_t n = strlen(s->log);

	snprintf(s->log + n, sizeof(s->log) - n, "doc@%u(%s) ", line,
		 json_string_value(json_object_get(root, "kind")) ?: "-");
	s->items_left = json_array_size(json_object_get(root, "items"));
	s->n_docs++;
	json_decref(root);
	return 0;
}

static int seen_item(void *userdata, const json_t *root, const json_t *item, unsigned line)
{
	struct seen *s = userdata;
	size_t n = strlen(s->log);

	snprintf(s->log + n, sizeof(s->log) - n, "item@%u(%s,%s) ", line,
		 json_string_value(json_object_get(item, "name")) ?: "?",
		 json_object_get(root, "kind") ? "kind known" : "kind not yet");
	return s->item_result;
}

Test(yaml_json, stream_hands_over_items_before_the_document_ends)
{
	const char *text = "apiVersion: v1\nitems:\n- name: a\n- name: b\n  x: [1, 2]\n- 7\n"
			   "kind: List\n---\nkind: Other\nitems: [{name: c}]\n"
			   "nested: {items: [{name: d}]}\n";
	struct text_input ti = { .text = text, .len = strlen(text), .chunk = 3 };
	const struct yaml_json_input in = { .read = text_read, .userdata = &ti };
	struct seen s = { .item_result = 1 };
	const struct yaml_json_output out = {
		.document = seen_document, .item = seen_item, .userdata = &s,
	};

	cr_assert_eq(yaml_json_parse_stream(&in, NULL, &out, &perr), 0, "%s", perr.message);
	cr_assert_str_eq(s.log, "item@3(a,kind not yet) item@4(b,kind not yet) item@6(?,kind not yet) "
				"doc@1(List) item@10(c,kind known) doc@8(Other) ");
	cr_assert_eq(s.items_left, 0, "taken items leave the document");

	/* Items left in place stay in the document. */
	ti.at = 0;
	memset(&s, 0, sizeof(s));
	cr_assert_eq(yaml_json_parse_stream(&in, NULL, &out, &perr), 0);
	cr_assert_eq(s.n_docs, 2);
	cr_assert_eq(s.items_left, 1);
}

Test(yaml_json, stream_read_error_ends_the_parse)
{
	const char *text = "a: 1\n---\nb: 2\n---\nc: 3\n";
	struct text_input ti = { .text = text, .len = strlen(text), .chunk = 4, .fail_at = 12,
				 .fail_errno = EIO };
	const struct yaml_json_input in = { .read = text_read, .userdata = &ti };
	struct seen s = { 0 };
	const struct yaml_json_output out = { .document = seen_document, .userdata = &s };

	cr_assert_eq(yaml_json_parse_stream(&in, NULL, &out, &perr), -EIO);
	cr_assert(strstr(perr.message, "read failed"), "%s", perr.message);
	ti = (struct text_input){ .text = "{\"a\": [1, 2, 3, 4, 5, 6, 7, 8]}", .chunk = 4,
				  .fail_at = 12, .fail_errno = EIO };
	ti.len = strlen(ti.text);
	cr_assert_eq(yaml_json_parse_json_stream(&in, NULL, &out, &perr), -EIO);
	cr_assert(strstr(perr.message, "read failed"), "%s", perr.message);
}

/* left bytes of comment lines, then one document: input of any length. */
struct long_input {
	size_t left;
	bool tail_done;
};

static ssize_t long_read(void *userdata, void *buf, size_t size)
{
	static const char line[] = "# padding padding padding padding padding padding padding\n";
	static const char tail[] = "a: 1\n";
	struct long_input *li = userdata;
	size_t n = 0;

	while (li->left > 0 && n + sizeof(line) - 1 <= size) {
		memcpy((char *)buf + n, line, sizeof(line) - 1);
		n += sizeof(line) - 1;
		li->left = li->left > sizeof(line) - 1 ? li->left - (sizeof(line) - 1) : 0;
	}
	if (n > 0 || li->tail_done || size < sizeof(tail) - 1)
		return (ssize_t)n;
	memcpy(buf, tail, sizeof(tail) - 1);
	li->tail_done = true;
	return (ssize_t)(sizeof(tail) - 1);
}

Test(yaml_json, stream_size_bound)
{
	struct long_input li = { .left = (size_t)20 << 20 };
	const struct yaml_json_input in = { .read = long_read, .userdata = &li };
	struct seen s = { 0 };
	const struct yaml_json_output out = { .document = seen_document, .userdata = &s };
	struct yaml_json_limits lim = { .max_bytes = SIZE_MAX };

	/* Over 16 MiB is fine when the caller says so... */
	cr_assert_eq(yaml_json_parse_stream(&in, &lim, &out, &perr), 0, "%s", perr.message);
	cr_assert_eq(s.n_docs, 1);
	/* ... and refused at the default bound. */
	li = (struct long_input){ .left = (size_t)20 << 20 };
	cr_assert_eq(yaml_json_parse_stream(&in, NULL, &out, &perr), -EFBIG);
}

/* The depth bound holds through aliases (found by fuzz/manifest_decode): an
 * anchored 40-deep value aliased 40 levels down would be 81 deep. */
Test(yaml_json, nesting_bound_holds_through_aliases)
{
	char text[512];
	size_t n = 0;

	n += (size_t)snprintf(text + n, sizeof(text) - n, "x: &a ");
	for (int i = 0; i < 40; i++)
		text[n++] = '[';
	for (int i = 0; i < 40; i++)
		text[n++] = ']';
	n += (size_t)snprintf(text + n, sizeof(text) - n, "\ny: ");
	for (int i = 0; i < 40; i++)
		text[n++] = '[';
	n += (size_t)snprintf(text + n, sizeof(text) - n, "*a");
	for (int i = 0; i < 40; i++)
		text[n++] = ']';
	text[n] = '\0';
	cr_assert_eq(parse(text), -ELOOP, "an alias made the value deeper than the bound");
	cr_assert(strstr(perr.message, "through alias *a"), "%s", perr.message);
	/* Shallow enough: fine (1 mapping + 20 + 20 levels). */
	cr_assert_eq(parse("x: &a [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]\n"
			   "y: [[[[[[[[[[[[[[[[[[[[*a]]]]]]]]]]]]]]]]]]]]\n"), 0, "%s", perr.message);
}
