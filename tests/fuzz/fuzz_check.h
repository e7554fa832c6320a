/* Shared by the fuzz targets: a check that aborts (so libFuzzer keeps the
 * input as a crash artifact) with the failed condition and its place, and
 * a reader that takes structured values off the front of a fuzz input. */
#ifndef FERRY_FUZZ_CHECK_H
#define FERRY_FUZZ_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                                   \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                           \
		}                                                                          \
	} while (0)

/* A string buffer of n bytes holds a NUL. */
#define FUZZ_CHECK_TERMINATED(buf) FUZZ_CHECK(memchr((buf), '\0', sizeof(buf)) != NULL)

/* Bytes consumed from the front of an input; reads past the end give 0. */
struct fuzz_reader {
	const uint8_t *p;
	size_t left;
};

static inline uint8_t fuzz_u8(struct fuzz_reader *r)
{
	if (!r->left)
		return 0;
	r->left--;
	return *r->p++;
}

static inline uint16_t fuzz_u16(struct fuzz_reader *r)
{
	uint16_t lo = fuzz_u8(r);

	return (uint16_t)(lo | fuzz_u8(r) << 8);
}

static inline uint32_t fuzz_u32(struct fuzz_reader *r)
{
	uint32_t lo = fuzz_u16(r);

	return lo | (uint32_t)fuzz_u16(r) << 16;
}

static inline bool fuzz_bool(struct fuzz_reader *r)
{
	return fuzz_u8(r) & 1;
}

/* Copy n bytes (zeros past the end). */
static inline void fuzz_bytes(struct fuzz_reader *r, void *dst, size_t n)
{
	size_t k = n < r->left ? n : r->left;

	memcpy(dst, r->p, k);
	memset((uint8_t *)dst + k, 0, n - k);
	r->p += k;
	r->left -= k;
}

/* A NUL-free string of at most max bytes into dst (max + 1 bytes): a length
 * byte, then the bytes, NULs replaced. */
static inline void fuzz_str(struct fuzz_reader *r, char *dst, size_t max)
{
	size_t n = fuzz_u8(r) % (max + 1);

	fuzz_bytes(r, dst, n);
	for (size_t i = 0; i < n; i++)
		if (!dst[i])
			dst[i] = 'x';
	dst[n] = '\0';
}

#endif
