/* A hash map keyed by a (namespace, name) pair of strings.
 *
 * Kubernetes objects are identified by namespace and name; the model needs
 * O(1) lookups by that pair for 100k objects. Every value is a struct that
 * carries its own key: two string pointers at offsets the map is given at
 * init (NSNAME_MAP_KEY). A slot holds the value and 32 bits of the key's
 * hash only, packed in 12 bytes, and the key is read from the value when
 * hashes match; the table grows by half when 3/4 full, so it
 * holds between 1.33 and 2 slots per entry once grown. Values must not be
 * NULL, and their ns/name must not change while they are stored. Not
 * thread-safe.
 */
#ifndef FERRY_NSNAME_MAP_H
#define FERRY_NSNAME_MAP_H

#include <stddef.h>
#include <stdint.h>

/* Packed: the value pointer is unaligned, on purpose; a probe reads the
 * hash and the value beside it in one cache line (two arrays would cost
 * a second miss per lookup). Read the fields, never take their address. */
struct nsname_map_slot {
	uint32_t hash;
	void *value;       /* NULL marks a free slot */
} __attribute__((packed));

struct nsname_map {
	struct nsname_map_slot *slots;
	size_t cap;        /* 0, or 16 or more (not only powers of two) */
	size_t n;
	size_t ns_off, name_off; /* where a value keeps its char *ns and char *name */
};

/* The key of values of type TYPE: its fields NS and NAME (char pointers). */
#define NSNAME_MAP_KEY(TYPE, NS, NAME) offsetof(TYPE, NS), offsetof(TYPE, NAME)
/* The same when NAME is the value's own char array (a flexible array
 * member, say), not a pointer: 8 bytes less per value. */
#define NSNAME_MAP_NAME_INLINE ((size_t)1 << (sizeof(size_t) * 8 - 1))
#define NSNAME_MAP_KEY_INLINE_NAME(TYPE, NS, NAME) \
	offsetof(TYPE, NS), (offsetof(TYPE, NAME) | NSNAME_MAP_NAME_INLINE)

/* Make an empty map (no allocation until the first put) whose values keep
 * their key at ns_off and name_off: pass NSNAME_MAP_KEY(type, ns, name) or
 * NSNAME_MAP_KEY_INLINE_NAME(type, ns, name). */
void nsname_map_init(struct nsname_map *map, size_t ns_off, size_t name_off);
/* Release the table. The values are not touched: free them first if the
 * map was their only reference. Accepts NULL. The map may be reused after
 * nsname_map_init. */
void nsname_map_done(struct nsname_map *map);

/* The value stored under (ns, name), or NULL. */
void *nsname_map_get(const struct nsname_map *map, const char *ns, const char *name);

/* Store value under its own key, replacing the value of an existing entry
 * with an equal key. *ret_old (if ret_old is not NULL) receives the
 * replaced value or NULL. Returns 0, -EINVAL for a NULL value, or -ENOMEM
 * (the map is then unchanged). */
int nsname_map_put(struct nsname_map *map, void *value, void **ret_old);

/* Remove (ns, name) and return its value, or NULL when absent. */
void *nsname_map_remove(struct nsname_map *map, const char *ns, const char *name);

/* Number of entries. */
size_t nsname_map_size(const struct nsname_map *map);

/* Iterate in no particular order: start with *iter = 0, call until it
 * returns NULL. The map must not change during an iteration. */
void *nsname_map_next(const struct nsname_map *map, size_t *iter);

#endif
