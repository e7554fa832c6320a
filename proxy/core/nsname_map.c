/* Open addressing with linear probing and backward-shift deletion (no
 * tombstones, so lookups stay short after many deletes). 32 bits of each
 * entry's hash are kept beside it: growing never rehashes strings, and
 * most mismatches are rejected without reading the value's key.
 *
 * The home slot of a hash h is (h * cap) >> 32 (a multiply instead of a
 * mask), so the table can have any size: it grows by half, not by double,
 * which keeps 100k entries in 177k slots rather than 262k. Probing wraps
 * from the last slot to the first. */
#include "nsname_map.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NSNAME_MAP_MIN_CAP 16

/* FNV-1a over ns, one NUL separator, then name: ("a", "bc") and ("ab", "c")
 * hash apart, then MurmurHash3's finalizer: FNV leaves the last bytes of a
 * key (svc-000001, svc-000002) in its low bits, while the home slot is
 * read from the high ones. The high 32 bits are kept. */
static uint32_t nsname_hash(const char *ns, const char *name)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const unsigned char *p = (const unsigned char *)ns; *p; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	h = (h ^ 0) * 0x100000001b3ULL;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (uint32_t)(h >> 32);
}

/* The slot where probing for hash starts, in [0, cap). */
static size_t home_slot(uint32_t hash, size_t cap)
{
	return (size_t)(((uint64_t)hash * cap) >> 32);
}

static size_t next_slot(size_t i, size_t cap)
{
	return i + 1 == cap ? 0 : i + 1;
}

/* How many steps forward from a to b, wrapping. */
static size_t distance(size_t a, size_t b, size_t cap)
{
	return b >= a ? b - a : b + cap - a;
}

/* The string at off in value: a pointer kept there, or, with
 * NSNAME_MAP_NAME_INLINE in off, the characters themselves. */
static const char *key_field(const void *value, size_t off)
{
	const char *field;

	if (off & NSNAME_MAP_NAME_INLINE)
		return (const char *)value + (off & ~NSNAME_MAP_NAME_INLINE);
	memcpy(&field, (const char *)value + off, sizeof(field));
	return field;
}

static bool slot_matches(const struct nsname_map *map, size_t i, uint32_t hash, const char *ns,
			 const char *name)
{
	const struct nsname_map_slot *s = &map->slots[i];

	return s->hash == hash && strcmp(key_field(s->value, map->ns_off), ns) == 0 &&
	       strcmp(key_field(s->value, map->name_off), name) == 0;
}

void nsname_map_init(struct nsname_map *map, size_t ns_off, size_t name_off)
{
	map->slots = NULL;
	map->cap = 0;
	map->n = 0;
	map->ns_off = ns_off;
	map->name_off = name_off;
}

void nsname_map_done(struct nsname_map *map)
{
	if (!map)
		return;
	free(map->slots);
	nsname_map_init(map, map->ns_off, map->name_off);
}

/* Index of the slot holding (ns, name), or of the free slot where it would
 * go. The table must have at least one free slot. */
static size_t find_slot(const struct nsname_map *map, uint32_t hash, const char *ns,
			const char *name)
{
	size_t i = home_slot(hash, map->cap);

	while (map->slots[i].value && !slot_matches(map, i, hash, ns, name))
		i = next_slot(i, map->cap);
	return i;
}

void *nsname_map_get(const struct nsname_map *map, const char *ns, const char *name)
{
	size_t i;

	if (!map->cap)
		return NULL;
	i = find_slot(map, nsname_hash(ns, name), ns, name);
	return map->slots[i].value;
}

static int grow(struct nsname_map *map)
{
	size_t cap = map->cap ? map->cap + map->cap / 2 : NSNAME_MAP_MIN_CAP;
	struct nsname_map_slot *slots = calloc(cap, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < map->cap; i++) {
		size_t j;

		if (!map->slots[i].value)
			continue;
		j = home_slot(map->slots[i].hash, cap);
		while (slots[j].value)
			j = next_slot(j, cap);
		slots[j] = map->slots[i];
	}
	free(map->slots);
	map->slots = slots;
	map->cap = cap;
	return 0;
}

int nsname_map_put(struct nsname_map *map, void *value, void **ret_old)
{
	const char *ns, *name;
	uint32_t hash;
	size_t i;

	if (ret_old)
		*ret_old = NULL;
	if (!value)
		return -EINVAL;
	ns = key_field(value, map->ns_off);
	name = key_field(value, map->name_off);
	hash = nsname_hash(ns, name);
	/* Keep the load at or under 3/4 so probe runs stay short. */
	if ((map->n + 1) * 4 > map->cap * 3) {
		int r = grow(map);
		if (r < 0)
			return r;
	}
	i = find_slot(map, hash, ns, name);
	if (map->slots[i].value) {
		if (ret_old)
			*ret_old = map->slots[i].value;
	} else {
		map->n++;
	}
	map->slots[i].hash = hash;
	map->slots[i].value = value;
	return 0;
}

void *nsname_map_remove(struct nsname_map *map, const char *ns, const char *name)
{
	size_t i, j;
	void *value;

	if (!map->cap)
		return NULL;
	i = find_slot(map, nsname_hash(ns, name), ns, name);
	value = map->slots[i].value;
	if (!value)
		return NULL;
	/* Backward shift: pull later entries of the same probe run into the
	 * hole whenever their home slot does not lie between hole and them. */
	j = i;
	for (;;) {
		size_t home;

		j = next_slot(j, map->cap);
		if (!map->slots[j].value)
			break;
		home = home_slot(map->slots[j].hash, map->cap);
		if (distance(home, j, map->cap) >= distance(i, j, map->cap)) {
			map->slots[i] = map->slots[j];
			i = j;
		}
	}
	map->slots[i].value = NULL;
	map->slots[i].hash = 0;
	map->n--;
	return value;
}

size_t nsname_map_size(const struct nsname_map *map)
{
	return map->n;
}

void *nsname_map_next(const struct nsname_map *map, size_t *iter)
{
	while (*iter < map->cap) {
		void *v = map->slots[(*iter)++].value;
		if (v)
			return v;
	}
	return NULL;
}
