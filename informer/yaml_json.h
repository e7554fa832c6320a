/* Manifest text (YAML or JSON) turned into jansson values, with bounds.
 *
 * This is the only place that knows YAML. A stream of YAML documents, from a
 * buffer or read piece by piece from any source, becomes one json_t per
 * non-empty document. The streaming form hands each document over as soon
 * as it ends and, for lists, each item of a document's "items" as soon as
 * that item ends, so a big `kubectl get -o yaml` dump is never in memory
 * whole: memory follows what the caller keeps, not the input size. Plain scalars are
 * typed as the YAML 1.2 core schema says (null, booleans, integers, floats,
 * else strings); quoted and block scalars are always strings. Anchors and
 * aliases work, but an alias shares the anchored value (no copy is made) and
 * the number of nodes that aliases add, counted as if expanded, is bounded:
 * a "billion laughs" document fails after a few hundred events instead of
 * growing. Nesting depth and input size are bounded too. The `<<` merge key
 * is supported (explicit keys win over merged ones); duplicate keys in one
 * mapping are an error, since which one Kubernetes would keep is unclear.
 *
 * Nothing here logs; errors come back in a struct yaml_json_error.
 * json_t values never leave informer/.
 */
#ifndef FERRY_YAML_JSON_H
#define FERRY_YAML_JSON_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

/* Defaults used when the caller passes no limits. */
#define YAML_JSON_MAX_DEPTH 64
#define YAML_JSON_MAX_ALIAS_NODES (1u << 20)
#define YAML_JSON_MAX_BYTES (16u << 20)

struct yaml_json_limits {
	unsigned max_depth;        /* deepest nesting of mappings/sequences */
	size_t max_alias_nodes;    /* nodes added by alias expansion, whole stream */
	size_t max_bytes;          /* input size; SIZE_MAX for no bound */
};

/* Where and why parsing failed. line is 1-based; 0 when not known. */
struct yaml_json_error {
	unsigned line;
	unsigned column;
	char message[192];
};

/* One document of a stream: its root value and the line it starts on. */
struct yaml_json_doc {
	json_t *root;              /* owned reference */
	unsigned line;             /* 1-based */
};

/* Parse a buffer of one or more YAML documents (len bytes; need not be
 * NUL-terminated). limits may be NULL for the defaults above. Empty documents
 * and documents whose root is null are skipped.
 *
 * On success returns 0 and sets *ret_docs to an array of *ret_n documents
 * (NULL when none) that the caller frees with yaml_json_docs_free. On failure
 * returns -EINVAL (syntax or unsupported construct), -ELOOP (depth or alias
 * bound exceeded), -EFBIG (input too large) or -ENOMEM, fills *ret_err
 * (which may be NULL) and returns no documents: a stream is all or nothing. */
int yaml_json_parse(const char *buf, size_t len, const struct yaml_json_limits *limits,
		    struct yaml_json_doc **ret_docs, size_t *ret_n,
		    struct yaml_json_error *ret_err);

/* Same contract, for a buffer holding exactly one JSON value (a .json file).
 * Uses jansson directly; duplicate keys are rejected, and the depth bound is
 * checked on the result. A top-level null gives zero documents. */
int yaml_json_parse_json(const char *buf, size_t len, const struct yaml_json_limits *limits,
			 struct yaml_json_doc **ret_docs, size_t *ret_n,
			 struct yaml_json_error *ret_err);

/* Where a stream's bytes come from. read puts at most size bytes in buf and
 * returns how many, 0 at the end of the input, or a negative errno, which
 * ends the parse with that code (a short read is not an error). */
struct yaml_json_input {
	ssize_t (*read)(void *userdata, void *buf, size_t size);
	void *userdata;
};

/* Where a stream's values go. Both callbacks run inside the parse; a
 * negative errno from either ends it with that code (the caller then
 * knows why; *ret_err only says where). */
struct yaml_json_output {
	/* A complete document whose root is not null; line is where it
	 * starts. Takes the root's reference in every case. */
	int (*document)(void *userdata, json_t *root, unsigned line);
	/* May be NULL. Each complete item of the sequence under the key
	 * "items" of a document's root mapping, as soon as the item ends and
	 * before the rest of the document is read. root is that mapping as
	 * read so far: keys after "items" (kubectl writes kind there) are not
	 * in it yet, nor are items that were dropped. item is borrowed.
	 * Return 1 to drop the item from the document (the caller has used
	 * it), 0 to leave it there. */
	int (*item)(void *userdata, const json_t *root, const json_t *item, unsigned line);
	void *userdata;
};

/* Parse a YAML stream read through in, document by document, handing the
 * values to out. limits as for yaml_json_parse; the alias bound counts over
 * the whole stream and max_bytes bounds the bytes read. Returns 0 when the
 * stream ended cleanly, else the errors of yaml_json_parse, the negative
 * errno of in->read, or that of a callback, with *ret_err (may be NULL)
 * filled. Documents and items handed over before an error stay handed
 * over: a caller that wants all or nothing keeps them aside until 0 comes
 * back. */
int yaml_json_parse_stream(const struct yaml_json_input *in, const struct yaml_json_limits *limits,
			   const struct yaml_json_output *out, struct yaml_json_error *ret_err);

/* The same for a stream holding one JSON value, with the contract of
 * yaml_json_parse_json: jansson reads it through in (no copy of the whole
 * text is made, but the value is built whole before out->document gets
 * it; out->item is not used). */
int yaml_json_parse_json_stream(const struct yaml_json_input *in,
				const struct yaml_json_limits *limits,
				const struct yaml_json_output *out, struct yaml_json_error *ret_err);

/* Drop every document's reference and the array. Accepts NULL. */
void yaml_json_docs_free(struct yaml_json_doc *docs, size_t n);

#endif
