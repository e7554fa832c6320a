/* A hash map keyed by a (namespace, name) pair of strings.
 *
 * Kubernetes objects are identified by namespace and name; the model needs
 * O(1) lookups by that pair for 100k objects. The map does not own its keys:
 * the caller passes key strings that live at least as long as the entry
 * (normally the ns/name fields of the stored object, so replacing an entry
 * also replaces its key pointers). Values are opaque and must not be NULL.
 * Not thread-safe.
 */
#ifndef FERRY_NSNAME_MAP_H
#define FERRY_NSNAME_MAP_H

#include <stddef.h>
#include <stdint.h>

struct nsname_map_slot {
	const char *ns;
	const char *name;
	uint64_t hash;
	void *value; /* NULL marks a free slot */
};

struct nsname_map {
	struct nsname_map_slot *slots;
	size_t cap; /* 0 or a power of two */
	size_t n;
};

/* Make an empty map (no allocation until the first put). */
void nsname_map_init(struct nsname_map *map);
/* Release the table. The values are not touched: free them first if the
 * map was their only reference. Accepts NULL. The map may be reused after
 * nsname_map_init. */
void nsname_map_done(struct nsname_map *map);

/* The value stored under (ns, name), or NULL. */
void *nsname_map_get(const struct nsname_map *map, const char *ns, const char *name);

/* Store value under (ns, name), replacing both the value and the key
 * pointers of an existing entry. *ret_old (if ret_old is not NULL) receives
 * the replaced value or NULL. Returns 0, -EINVAL for a NULL value, or
 * -ENOMEM (the map is then unchanged). */
int nsname_map_put(struct nsname_map *map, const char *ns, const char *name, void *value,
		   void **ret_old);

/* Remove (ns, name) and return its value, or NULL when absent. */
void *nsname_map_remove(struct nsname_map *map, const char *ns, const char *name);

/* Number of entries. */
size_t nsname_map_size(const struct nsname_map *map);

/* Iterate in no particular order: start with *iter = 0, call until it
 * returns NULL. The map must not change during an iteration. */
void *nsname_map_next(const struct nsname_map *map, size_t *iter);

#endif
