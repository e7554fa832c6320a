/* Open addressing with linear probing and backward-shift deletion (no
 * tombstones, so lookups stay short after many deletes). The hash of each
 * entry is kept in its slot: growing never rehashes strings, and most
 * mismatches are rejected without reading the value's key. */
#include "nsname_map.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NSNAME_MAP_MIN_CAP 16

/* FNV-1a over ns, one NUL separator, then name: ("a", "bc") and ("ab", "c")
 * hash apart. */
static uint64_t nsname_hash(const char *ns, const char *name)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const unsigned char *p = (const unsigned char *)ns; *p; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	h = (h ^ 0) * 0x100000001b3ULL;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	/* Mix the high bits down: the table index uses the low bits. */
	h ^= h >> 29;
	return h;
}

static const char *key_field(const void *value, size_t off)
{
	const char *field;

	memcpy(&field, (const char *)value + off, sizeof(field));
	return field;
}

static bool slot_matches(const struct nsname_map *map, const struct nsname_map_slot *s,
			 uint64_t hash, const char *ns, const char *name)
{
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
static size_t find_slot(const struct nsname_map *map, uint64_t hash, const char *ns,
			const char *name)
{
	size_t mask = map->cap - 1;
	size_t i = (size_t)hash & mask;

	while (map->slots[i].value && !slot_matches(map, &map->slots[i], hash, ns, name))
		i = (i + 1) & mask;
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
	size_t cap = map->cap ? map->cap * 2 : NSNAME_MAP_MIN_CAP;
	struct nsname_map_slot *slots = calloc(cap, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < map->cap; i++) {
		const struct nsname_map_slot *s = &map->slots[i];
		size_t j;

		if (!s->value)
			continue;
		j = (size_t)s->hash & (cap - 1);
		while (slots[j].value)
			j = (j + 1) & (cap - 1);
		slots[j] = *s;
	}
	free(map->slots);
	map->slots = slots;
	map->cap = cap;
	return 0;
}

int nsname_map_put(struct nsname_map *map, void *value, void **ret_old)
{
	const char *ns, *name;
	uint64_t hash;
	struct nsname_map_slot *s;
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
	s = &map->slots[i];
	if (s->value) {
		if (ret_old)
			*ret_old = s->value;
	} else {
		map->n++;
	}
	s->hash = hash;
	s->value = value;
	return 0;
}

void *nsname_map_remove(struct nsname_map *map, const char *ns, const char *name)
{
	size_t mask, i, j;
	void *value;

	if (!map->cap)
		return NULL;
	mask = map->cap - 1;
	i = find_slot(map, nsname_hash(ns, name), ns, name);
	value = map->slots[i].value;
	if (!value)
		return NULL;
	/* Backward shift: pull later entries of the same probe run into the
	 * hole whenever their home slot does not lie between hole and them. */
	j = i;
	for (;;) {
		size_t home;

		j = (j + 1) & mask;
		if (!map->slots[j].value)
			break;
		home = (size_t)map->slots[j].hash & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			map->slots[i] = map->slots[j];
			i = j;
		}
	}
	memset(&map->slots[i], 0, sizeof(map->slots[i]));
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
