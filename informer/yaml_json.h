/* Manifest text (YAML or JSON) turned into jansson values, with bounds.
 *
 * This is the only place that knows YAML. A buffer holding a stream of YAML
 * documents becomes one json_t per non-empty document. Plain scalars are
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

#include <jansson.h>

/* Defaults used when the caller passes no limits. */
#define YAML_JSON_MAX_DEPTH 64
#define YAML_JSON_MAX_ALIAS_NODES (1u << 20)
#define YAML_JSON_MAX_BYTES (16u << 20)

struct yaml_json_limits {
	unsigned max_depth;        /* deepest nesting of mappings/sequences */
	size_t max_alias_nodes;    /* nodes added by alias expansion, whole stream */
	size_t max_bytes;          /* input size */
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

/* Drop every document's reference and the array. Accepts NULL. */
void yaml_json_docs_free(struct yaml_json_doc *docs, size_t n);

#endif
