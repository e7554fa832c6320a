/* YAML event stream to jansson values.
 *
 * libyaml's event parser is driven by hand with an explicit stack of open
 * containers, so hostile nesting costs no C stack: the depth bound is checked
 * when a container opens. Anchored values are kept in a jansson object (name
 * to value) with a second object holding each anchor's expanded node count;
 * an alias takes a new reference to the anchored value and adds that count to
 * the alias budget. An anchor is only registered once its node is complete,
 * so an alias can never refer to one of its own ancestors (no cycles).
 *
 * Input comes through a read callback (libyaml pulls it in small pieces),
 * output goes to a document callback, and items of a root mapping's "items"
 * sequence may be handed out one by one: with both, a stream of any length
 * costs memory for one item at a time plus the anchors. The buffer API is the
 * streaming one with a buffer reader and a collecting callback.
 */
#include "yaml_json.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#define TAG_STR "tag:yaml.org,2002:str"

struct frame {
	json_t *node;        /* the open object or array */
	char *key;           /* pending key of a mapping; NULL while expecting one */
	size_t key_len;
	bool key_is_merge;   /* the pending key is a plain `<<` */
	json_t *merge;       /* values brought in by `<<`, applied at mapping end */
	char *anchor;        /* registered when the container ends */
	size_t start_nodes;  /* node counter when the container opened */
	size_t height;       /* levels of containers below it so far (aliases included) */
	unsigned line;       /* 1-based line where it opened */
};

struct builder {
	struct yaml_json_limits lim;
	struct frame *stack;
	size_t depth;
	json_t *anchors;       /* name -> value */
	json_t *weights;       /* name -> expanded node count */
	size_t nodes;          /* nodes seen in this stream, aliases expanded */
	size_t alias_nodes;    /* nodes added by aliases, whole stream */
	json_t *root;          /* root of the current document once complete */
	const struct yaml_json_output *out;
	struct yaml_json_error *err;
};

/* The read side of a stream: the caller's reader, counted against max_bytes. */
struct reader {
	const struct yaml_json_input *in;
	size_t max_bytes;
	size_t n_read;
	int error;             /* why the last read failed: -errno, or -EFBIG */
};

static int fail(struct yaml_json_error *err, int r, const yaml_mark_t *mark,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail(struct yaml_json_error *err, int r, const yaml_mark_t *mark,
		const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return r;
	err->line = mark ? (unsigned)mark->line + 1 : 0;
	err->column = mark ? (unsigned)mark->column + 1 : 0;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return r;
}

/* A callback of the caller said no: say where (the caller knows why). */
static int sink_fail(struct yaml_json_error *err, int r, const yaml_mark_t *mark,
		     const char *what, unsigned line)
{
	if (r == -ENOMEM)
		return fail(err, r, mark, "out of memory");
	return fail(err, r, mark, "%s of line %u not accepted: %s", what, line, strerror(-r));
}

static void limits_fill(struct yaml_json_limits *ret, const struct yaml_json_limits *in)
{
	ret->max_depth = in && in->max_depth ? in->max_depth : YAML_JSON_MAX_DEPTH;
	ret->max_alias_nodes = in && in->max_alias_nodes ? in->max_alias_nodes
							 : YAML_JSON_MAX_ALIAS_NODES;
	ret->max_bytes = in && in->max_bytes ? in->max_bytes : YAML_JSON_MAX_BYTES;
}

void yaml_json_docs_free(struct yaml_json_doc *docs, size_t n)
{
	if (!docs)
		return;
	for (size_t i = 0; i < n; i++)
		json_decref(docs[i].root);
	free(docs);
}

static int docs_push(struct yaml_json_doc **docs, size_t *n, size_t *cap, json_t *root,
		     unsigned line)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 4;
		struct yaml_json_doc *d = realloc(*docs, ncap * sizeof(*d));

		if (!d) {
			json_decref(root);
			return -ENOMEM;
		}
		*docs = d;
		*cap = ncap;
	}
	(*docs)[*n].root = root;
	(*docs)[*n].line = line;
	(*n)++;
	return 0;
}

/* --- Scalars ------------------------------------------------------------- */

static bool all_in(const char *s, size_t len, const char *set)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!strchr(set, s[i]) || s[i] == '\0')
			return false;
	return true;
}

/* The core schema's float form: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool looks_float(const char *s, size_t len)
{
	size_t i = 0, digits = 0;

	if (i < len && (s[i] == '-' || s[i] == '+'))
		i++;
	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++, digits++;
	if (i < len && s[i] == '.') {
		i++;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++, digits++;
	}
	if (digits == 0)
		return false;
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		size_t exp = 0;

		i++;
		if (i < len && (s[i] == '-' || s[i] == '+'))
			i++;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++, exp++;
		if (exp == 0)
			return false;
	}
	return i == len;
}

static bool equals_any(const char *s, size_t len, const char *const *words)
{
	for (; *words; words++)
		if (strlen(*words) == len && memcmp(s, *words, len) == 0)
			return true;
	return false;
}

/* Type one scalar. s is NUL-terminated (libyaml guarantees it). Returns a new
 * reference, or NULL with *ret_r set. */
static json_t *scalar_resolve(const char *s, size_t len, bool plain, const char *tag, int *ret_r)
{
	static const char *const nulls[] = { "~", "null", "Null", "NULL", NULL };
	static const char *const trues[] = { "true", "True", "TRUE", NULL };
	static const char *const falses[] = { "false", "False", "FALSE", NULL };
	json_t *v;

	*ret_r = -ENOMEM;
	if (tag && (strcmp(tag, TAG_STR) == 0 || strcmp(tag, "!") == 0))
		plain = false;
	if (!plain)
		goto string;
	if (len == 0 || equals_any(s, len, nulls))
		return json_null();
	if (equals_any(s, len, trues))
		return json_true();
	if (equals_any(s, len, falses))
		return json_false();
	if (all_in(s + (s[0] == '-' || s[0] == '+'), len - (s[0] == '-' || s[0] == '+'),
		   "0123456789")) {
		long long n;
		char *end;

		errno = 0;
		n = strtoll(s, &end, 10);
		if (errno == 0 && end == s + len)
			return json_integer(n);
		/* Out of range for 64 bits: keep it as a number. */
		return json_real(strtod(s, NULL));
	}
	if (len > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
		bool octal = s[1] == 'o';

		if (all_in(s + 2, len - 2, octal ? "01234567" : "0123456789abcdefABCDEF")) {
			unsigned long long n;

			errno = 0;
			n = strtoull(s + 2, NULL, octal ? 8 : 16);
			if (errno == 0 && n <= (unsigned long long)LLONG_MAX)
				return json_integer((json_int_t)n);
		}
		goto string;
	}
	if (looks_float(s, len)) {
		double d = strtod(s, NULL);

		/* Overflowing literals like 1e999: JSON cannot hold infinity. */
		if (isfinite(d))
			return json_real(d);
	}
	/* .inf and .nan also end up here: JSON has no such numbers. */
string:
	v = json_stringn(s, len);
	if (!v) {
		*ret_r = -EINVAL;
		return NULL;
	}
	return v;
}

/* --- Building ------------------------------------------------------------ */

static void frame_done(struct frame *f)
{
	json_decref(f->node);
	json_decref(f->merge);
	free(f->key);
	free(f->anchor);
	memset(f, 0, sizeof(*f));
}

static void builder_reset_doc(struct builder *b)
{
	while (b->depth > 0)
		frame_done(&b->stack[--b->depth]);
	json_object_clear(b->anchors);
	json_object_clear(b->weights);
	json_decref(b->root);
	b->root = NULL;
}

/* An anchor's value, with its expanded node count and its height (levels
 * of containers it holds, itself included; 0 for a scalar): an alias
 * brings both, so neither the node budget nor the depth bound can be
 * dodged through aliases. */
static int anchor_register(struct builder *b, const char *name, json_t *v, size_t weight, size_t height)
{
	json_t *w = json_pack("[II]", (json_int_t)weight, (json_int_t)height);

	if (!w)
		return -ENOMEM;
	if (json_object_set(b->anchors, name, v) < 0 || json_object_set_new(b->weights, name, w) < 0)
		return -ENOMEM;
	return 0;
}

/* Merge the mapping m (or each mapping of a sequence m) into *into, earlier
 * keys winning, as the merge key type says. */
static int merge_collect(struct builder *b, json_t **into, json_t *m, const yaml_mark_t *mark)
{
	const char *k;
	json_t *v;

	if (json_is_array(m)) {
		size_t i;
		json_t *item;

		json_array_foreach(m, i, item) {
			if (!json_is_object(item))
				return fail(b->err, -EINVAL, mark, "merge key value must be a mapping or a list of mappings");
			int r = merge_collect(b, into, item, mark);
			if (r < 0)
				return r;
		}
		return 0;
	}
	if (!json_is_object(m))
		return fail(b->err, -EINVAL, mark, "merge key value must be a mapping or a list of mappings");
	if (!*into) {
		*into = json_object();
		if (!*into)
			return -ENOMEM;
	}
	json_object_foreach(m, k, v) {
		if (!json_object_get(*into, k) && json_object_set(*into, k, v) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* An item of the root mapping's "items" sequence is what the caller may take
 * as soon as it is complete. */
static bool is_list_item(const struct builder *b)
{
	const struct frame *root = &b->stack[0];

	return b->out && b->out->item && b->depth == 2 && json_is_object(root->node) &&
	       root->key && root->key_len == 5 && memcmp(root->key, "items", 5) == 0 &&
	       json_is_array(b->stack[1].node);
}

/* Attach a complete value (a reference we own) to the open container or make
 * it the document root. line is where the value starts. */
static int add_value(struct builder *b, json_t *v, const yaml_mark_t *mark, unsigned line)
{
	struct frame *f;
	int r;

	if (b->depth == 0) {
		json_decref(b->root);
		b->root = v;
		return 0;
	}
	f = &b->stack[b->depth - 1];
	if (is_list_item(b)) {
		r = b->out->item(b->out->userdata, b->stack[0].node, v, line);
		if (r != 0) {
			json_decref(v);
			return r < 0 ? sink_fail(b->err, r, mark, "list item", line) : 0;
		}
	}
	if (json_is_array(f->node))
		return json_array_append_new(f->node, v) < 0 ? -ENOMEM : 0;
	if (f->key_is_merge) {
		r = merge_collect(b, &f->merge, v, mark);
		json_decref(v);
		f->key_is_merge = false;
		free(f->key);
		f->key = NULL;
		return r;
	}
	if (json_object_getn(f->node, f->key, f->key_len)) {
		json_decref(v);
		return fail(b->err, -EINVAL, mark, "duplicate key \"%.64s\"", f->key);
	}
	r = json_object_setn_new(f->node, f->key, f->key_len, v);
	free(f->key);
	f->key = NULL;
	return r < 0 ? -ENOMEM : 0;
}

static bool expecting_key(const struct builder *b)
{
	const struct frame *f;

	if (b->depth == 0)
		return false;
	f = &b->stack[b->depth - 1];
	return json_is_object(f->node) && !f->key && !f->key_is_merge;
}

static int set_key(struct builder *b, const char *s, size_t len, bool merge, const yaml_mark_t *mark)
{
	struct frame *f = &b->stack[b->depth - 1];

	if (memchr(s, '\0', len))
		return fail(b->err, -EINVAL, mark, "mapping key contains a NUL character");
	if (merge) {
		if (f->merge)
			return fail(b->err, -EINVAL, mark, "duplicate key \"<<\"");
		f->key_is_merge = true;
		return 0;
	}
	f->key = strndup(s, len);
	if (!f->key)
		return -ENOMEM;
	f->key_len = len;
	return 0;
}

static int on_scalar(struct builder *b, const yaml_event_t *e)
{
	const char *s = (const char *)e->data.scalar.value;
	size_t len = e->data.scalar.length;
	const char *tag = (const char *)e->data.scalar.tag;
	const char *anchor = (const char *)e->data.scalar.anchor;
	bool plain = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	json_t *v;
	int r;

	b->nodes++;
	if (expecting_key(b)) {
		bool merge = plain && !tag && len == 2 && memcmp(s, "<<", 2) == 0;

		if (anchor) {
			v = json_stringn(s, len);
			if (!v)
				return fail(b->err, -EINVAL, &e->start_mark, "invalid mapping key");
			r = anchor_register(b, anchor, v, 1, 0);
			json_decref(v);
			if (r < 0)
				return r;
		}
		return set_key(b, s, len, merge, &e->start_mark);
	}
	v = scalar_resolve(s, len, plain, tag, &r);
	if (!v)
		return fail(b->err, r, &e->start_mark, "cannot store scalar (invalid UTF-8 or out of memory)");
	if (anchor) {
		r = anchor_register(b, anchor, v, 1, 0);
		if (r < 0) {
			json_decref(v);
			return r;
		}
	}
	return add_value(b, v, &e->start_mark, (unsigned)e->start_mark.line + 1);
}

static int on_alias(struct builder *b, const yaml_event_t *e)
{
	const char *name = (const char *)e->data.alias.anchor;
	json_t *v = json_object_get(b->anchors, name);
	json_t *w = json_object_get(b->weights, name);
	size_t weight, height;

	if (!v || !w)
		return fail(b->err, -EINVAL, &e->start_mark, "unknown alias *%.64s", name);
	weight = (size_t)json_integer_value(json_array_get(w, 0));
	height = (size_t)json_integer_value(json_array_get(w, 1));
	if (b->depth + height > b->lim.max_depth)
		return fail(b->err, -ELOOP, &e->start_mark, "nesting deeper than %u levels (through alias *%.64s)",
			    b->lim.max_depth, name);
	if (b->depth > 0 && b->stack[b->depth - 1].height < height)
		b->stack[b->depth - 1].height = height;
	b->alias_nodes += weight;
	b->nodes += weight;
	if (b->alias_nodes > b->lim.max_alias_nodes)
		return fail(b->err, -ELOOP, &e->start_mark,
			    "aliases expand to more than %zu nodes", b->lim.max_alias_nodes);
	if (expecting_key(b)) {
		if (!json_is_string(v))
			return fail(b->err, -EINVAL, &e->start_mark, "alias used as a key must name a string");
		return set_key(b, json_string_value(v), json_string_length(v), false, &e->start_mark);
	}
	return add_value(b, json_incref(v), &e->start_mark, (unsigned)e->start_mark.line + 1);
}

static int on_start(struct builder *b, const yaml_event_t *e, bool mapping)
{
	const char *anchor = mapping ? (const char *)e->data.mapping_start.anchor
				     : (const char *)e->data.sequence_start.anchor;
	struct frame *f;

	if (expecting_key(b))
		return fail(b->err, -EINVAL, &e->start_mark, "complex mapping keys are not supported");
	if (b->depth >= b->lim.max_depth)
		return fail(b->err, -ELOOP, &e->start_mark, "nesting deeper than %u levels",
			    b->lim.max_depth);
	f = &b->stack[b->depth];
	memset(f, 0, sizeof(*f));
	f->node = mapping ? json_object() : json_array();
	if (!f->node)
		return -ENOMEM;
	if (anchor) {
		f->anchor = strdup(anchor);
		if (!f->anchor) {
			frame_done(f);
			return -ENOMEM;
		}
	}
	f->start_nodes = b->nodes;
	f->line = (unsigned)e->start_mark.line + 1;
	b->nodes++;
	b->depth++;
	return 0;
}

static int on_end(struct builder *b, const yaml_event_t *e)
{
	struct frame f = b->stack[--b->depth];
	json_t *node = f.node;
	unsigned line = f.line;
	const char *k;
	json_t *v;
	int r = 0;

	memset(&b->stack[b->depth], 0, sizeof(f));
	if (f.merge) {
		json_object_foreach(f.merge, k, v) {
			if (!json_object_get(node, k) && json_object_set(node, k, v) < 0) {
				r = -ENOMEM;
				break;
			}
		}
	}
	/* The parent holds one more level than this container does. */
	if (b->depth > 0 && b->stack[b->depth - 1].height < f.height + 1)
		b->stack[b->depth - 1].height = f.height + 1;
	if (r == 0 && f.anchor)
		r = anchor_register(b, f.anchor, node, b->nodes - f.start_nodes, f.height + 1);
	f.node = NULL;
	frame_done(&f);
	if (r < 0) {
		json_decref(node);
		return r;
	}
	return add_value(b, node, &e->start_mark, line);
}

/* libyaml's read handler over the caller's reader. */
static int reader_read(void *data, unsigned char *buf, size_t size, size_t *ret_read)
{
	struct reader *rd = data;
	ssize_t k;

	*ret_read = 0;
	k = rd->in->read(rd->in->userdata, buf, size);
	if (k < 0) {
		rd->error = (int)k;
		return 0;
	}
	if ((size_t)k > rd->max_bytes - rd->n_read) {
		rd->error = -EFBIG;
		return 0;
	}
	rd->n_read += (size_t)k;
	*ret_read = (size_t)k;
	return 1;
}

static int reader_fail(const struct reader *rd, struct yaml_json_error *err)
{
	if (rd->error == -EFBIG)
		return fail(err, -EFBIG, NULL, "input is larger than %zu bytes", rd->max_bytes);
	return fail(err, rd->error, NULL, "read failed after %zu bytes: %s", rd->n_read,
		    strerror(-rd->error));
}

int yaml_json_parse_stream(const struct yaml_json_input *in, const struct yaml_json_limits *limits,
			   const struct yaml_json_output *out, struct yaml_json_error *ret_err)
{
	struct reader rd = { .in = in };
	struct builder b;
	yaml_parser_t parser;
	unsigned doc_line = 1;
	bool done = false;
	int r = 0;

	if (ret_err)
		memset(ret_err, 0, sizeof(*ret_err));
	memset(&b, 0, sizeof(b));
	limits_fill(&b.lim, limits);
	b.err = ret_err;
	b.out = out;
	rd.max_bytes = b.lim.max_bytes;

	b.stack = calloc(b.lim.max_depth, sizeof(*b.stack));
	b.anchors = json_object();
	b.weights = json_object();
	if (!b.stack || !b.anchors || !b.weights) {
		r = -ENOMEM;
		goto out;
	}
	if (!yaml_parser_initialize(&parser)) {
		r = -ENOMEM;
		goto out;
	}
	yaml_parser_set_input(&parser, reader_read, &rd);

	while (!done && r == 0) {
		yaml_event_t e;

		if (!yaml_parser_parse(&parser, &e)) {
			if (parser.error == YAML_READER_ERROR && rd.error)
				r = reader_fail(&rd, ret_err);
			else if (parser.error == YAML_MEMORY_ERROR)
				r = fail(ret_err, -ENOMEM, NULL, "out of memory");
			else
				r = fail(ret_err, -EINVAL, &parser.problem_mark, "%s%s%s",
					 parser.context ? parser.context : "",
					 parser.context ? ": " : "",
					 parser.problem ? parser.problem : "syntax error");
			break;
		}
		switch (e.type) {
		case YAML_DOCUMENT_START_EVENT:
			builder_reset_doc(&b);
			doc_line = (unsigned)e.start_mark.line + 1;
			break;
		case YAML_DOCUMENT_END_EVENT:
			if (b.root && !json_is_null(b.root)) {
				json_t *root = b.root;

				b.root = NULL;
				r = out->document(out->userdata, root, doc_line);
				if (r < 0)
					sink_fail(ret_err, r, &e.start_mark, "document", doc_line);
			}
			builder_reset_doc(&b);
			break;
		case YAML_SCALAR_EVENT:
			r = on_scalar(&b, &e);
			break;
		case YAML_ALIAS_EVENT:
			r = on_alias(&b, &e);
			break;
		case YAML_SEQUENCE_START_EVENT:
			r = on_start(&b, &e, false);
			break;
		case YAML_MAPPING_START_EVENT:
			r = on_start(&b, &e, true);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			r = on_end(&b, &e);
			break;
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		default:
			break;
		}
		yaml_event_delete(&e);
	}
	yaml_parser_delete(&parser);
	if (r == -ENOMEM && ret_err && !ret_err->message[0])
		fail(ret_err, r, NULL, "out of memory");

out:
	builder_reset_doc(&b);
	free(b.stack);
	json_decref(b.anchors);
	json_decref(b.weights);
	return r;
}

/* --- Buffers ------------------------------------------------------------- */

struct buffer_input {
	const char *buf;
	size_t len;
	size_t at;
};

static ssize_t buffer_read(void *userdata, void *buf, size_t size)
{
	struct buffer_input *bi = userdata;
	size_t n = bi->len - bi->at < size ? bi->len - bi->at : size;

	memcpy(buf, bi->buf + bi->at, n);
	bi->at += n;
	return (ssize_t)n;
}

/* Documents collected for the buffer API. */
struct doc_list {
	struct yaml_json_doc *docs;
	size_t n;
	size_t cap;
};

static int doc_list_push(void *userdata, json_t *root, unsigned line)
{
	struct doc_list *dl = userdata;

	return docs_push(&dl->docs, &dl->n, &dl->cap, root, line);
}

/* Run parse over a buffer and collect the documents, all or nothing. */
static int parse_buffer(int (*parse)(const struct yaml_json_input *, const struct yaml_json_limits *,
				     const struct yaml_json_output *, struct yaml_json_error *),
			const char *buf, size_t len, const struct yaml_json_limits *limits,
			struct yaml_json_doc **ret_docs, size_t *ret_n, struct yaml_json_error *ret_err)
{
	struct buffer_input bi = { .buf = buf, .len = len };
	const struct yaml_json_input in = { .read = buffer_read, .userdata = &bi };
	struct doc_list dl = { 0 };
	const struct yaml_json_output out = { .document = doc_list_push, .userdata = &dl };
	struct yaml_json_limits lim;
	int r;

	*ret_docs = NULL;
	*ret_n = 0;
	if (ret_err)
		memset(ret_err, 0, sizeof(*ret_err));
	limits_fill(&lim, limits);
	if (len > lim.max_bytes)
		return fail(ret_err, -EFBIG, NULL, "input is larger than %zu bytes", lim.max_bytes);
	r = parse(&in, &lim, &out, ret_err);
	if (r < 0) {
		yaml_json_docs_free(dl.docs, dl.n);
		return r;
	}
	*ret_docs = dl.docs;
	*ret_n = dl.n;
	return 0;
}

int yaml_json_parse(const char *buf, size_t len, const struct yaml_json_limits *limits,
		    struct yaml_json_doc **ret_docs, size_t *ret_n,
		    struct yaml_json_error *ret_err)
{
	return parse_buffer(yaml_json_parse_stream, buf, len, limits, ret_docs, ret_n, ret_err);
}

/* --- JSON ---------------------------------------------------------------- */

/* Depth of a jansson tree, giving up past max. jansson bounds its own parser
 * depth (2048), so this recursion is bounded too. */
static bool depth_exceeds(const json_t *v, unsigned depth, unsigned max)
{
	if (!json_is_object(v) && !json_is_array(v))
		return false;
	if (depth >= max)
		return true;
	if (json_is_array(v)) {
		size_t i;
		const json_t *item;

		json_array_foreach(v, i, item)
			if (depth_exceeds(item, depth + 1, max))
				return true;
	} else {
		const char *k;
		const json_t *item;

		json_object_foreach((json_t *)v, k, item)
			if (depth_exceeds(item, depth + 1, max))
				return true;
	}
	return false;
}

/* jansson's load callback over the caller's reader. */
static size_t json_reader(void *buf, size_t size, void *data)
{
	struct reader *rd = data;
	ssize_t k = rd->in->read(rd->in->userdata, buf, size);

	if (k < 0) {
		rd->error = (int)k;
		return (size_t)-1;
	}
	if ((size_t)k > rd->max_bytes - rd->n_read) {
		rd->error = -EFBIG;
		return (size_t)-1;
	}
	rd->n_read += (size_t)k;
	return (size_t)k;
}

int yaml_json_parse_json_stream(const struct yaml_json_input *in,
				const struct yaml_json_limits *limits,
				const struct yaml_json_output *out, struct yaml_json_error *ret_err)
{
	struct reader rd = { .in = in };
	struct yaml_json_limits lim;
	json_error_t jerr;
	json_t *root;
	int r;

	if (ret_err)
		memset(ret_err, 0, sizeof(*ret_err));
	limits_fill(&lim, limits);
	rd.max_bytes = lim.max_bytes;
	root = json_load_callback(json_reader, &rd,
				  JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!root) {
		if (rd.error)
			return reader_fail(&rd, ret_err);
		if (ret_err) {
			ret_err->line = jerr.line > 0 ? (unsigned)jerr.line : 0;
			ret_err->column = jerr.column > 0 ? (unsigned)jerr.column : 0;
			snprintf(ret_err->message, sizeof(ret_err->message), "%s", jerr.text);
		}
		return json_error_code(&jerr) == json_error_out_of_memory ? -ENOMEM : -EINVAL;
	}
	if (depth_exceeds(root, 0, lim.max_depth)) {
		json_decref(root);
		return fail(ret_err, -ELOOP, NULL, "nesting deeper than %u levels", lim.max_depth);
	}
	if (json_is_null(root)) {
		json_decref(root);
		return 0;
	}
	r = out->document(out->userdata, root, 1);
	if (r < 0)
		sink_fail(ret_err, r, NULL, "document", 1);
	return r;
}

int yaml_json_parse_json(const char *buf, size_t len, const struct yaml_json_limits *limits,
			 struct yaml_json_doc **ret_docs, size_t *ret_n,
			 struct yaml_json_error *ret_err)
{
	return parse_buffer(yaml_json_parse_json_stream, buf, len, limits, ret_docs, ret_n,
			    ret_err);
}
