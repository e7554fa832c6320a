/* yaml_json: typing of scalars, multi-document streams, and the bounds that
 * keep hostile input (alias bombs, deep nesting, huge input) cheap. */
#include <criterion/criterion.h>

#include <errno.h>
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
