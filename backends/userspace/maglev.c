/* Maglev table population: each backend walks its own permutation of the
 * slots (offset + j * skip mod M) and, taking turns, claims the first free
 * slot of its walk until the table is full. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "maglev.h"

size_t maglev_table_size(size_t n_backends)
{
	if (n_backends <= 10)
		return 16381;
	if (n_backends <= 50)
		return 65537;
	if (n_backends <= 100)
		return 262139;
	if (n_backends <= 200)
		return 524287;
	return 1048573;
}

static uint64_t mix64(uint64_t h)
{
	/* The murmur3 finaliser: every input bit affects every output bit. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

uint64_t maglev_hash(const void *data, size_t len, uint64_t seed)
{
	const uint8_t *p = data;
	uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ULL);

	while (len >= 8) {
		uint64_t k;

		memcpy(&k, p, 8);
		h = mix64(h ^ mix64(k));
		p += 8;
		len -= 8;
	}
	if (len > 0) {
		uint64_t k = 0;

		memcpy(&k, p, len);
		h = mix64(h ^ mix64(k ^ 0x5bd1e995ULL));
	}
	return mix64(h);
}

int maglev_build(const uint64_t *keys, size_t n, size_t m, uint32_t *table)
{
	uint64_t *offset, *skip, *next;
	size_t filled = 0;

	if (m < 3 || (n > 0 && m <= n))
		return -EINVAL;
	for (size_t s = 0; s < m; s++)
		table[s] = UINT32_MAX;
	if (n == 0)
		return 0;

	/* One allocation for the three per-backend arrays. */
	offset = calloc(3 * n, sizeof(*offset));
	if (!offset)
		return -ENOMEM;
	skip = offset + n;
	next = skip + n;
	for (size_t i = 0; i < n; i++) {
		offset[i] = mix64(keys[i] ^ 0x243f6a8885a308d3ULL) % m;
		skip[i] = mix64(keys[i] ^ 0x13198a2e03707344ULL) % (m - 1) + 1;
	}

	for (;;) {
		for (size_t i = 0; i < n; i++) {
			uint64_t c;

			/* Walk i's permutation to its next free slot; since m is
			 * prime every skip visits all slots, so this ends. */
			do {
				c = (offset[i] + next[i] * skip[i]) % m;
				next[i]++;
			} while (table[c] != UINT32_MAX);
			table[c] = (uint32_t)i;
			if (++filled == m)
				goto done;
		}
	}
done:
	free(offset);
	return 0;
}
