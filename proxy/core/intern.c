/* Shared copies of repeated strings (intern.h): an open hash table of
 * reference-counted entries; a string's entry sits right before its text,
 * so a release finds it without a lookup. */
#include "intern.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* 16 bytes before the text: a service name (interned once per service
 * for its slices) then fits a 32-byte heap chunk. */
struct intern_entry {
	struct intern_entry *next; /* bucket chain */
	uint32_t hash;
	uint32_t refs;             /* saturated: intern() then fails (no memory
				    * holds 4 billion referrers) */
	char text[];
};

static pthread_mutex_t intern_lock = PTHREAD_MUTEX_INITIALIZER;
static struct intern_entry **intern_buckets;
static size_t intern_cap; /* 0 or a power of two */
static unsigned long intern_n;

static uint32_t intern_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (uint32_t)(h ^ (h >> 32));
}

/* Double the table (or make it). 0 or -1. */
static int intern_grow(void)
{
	size_t cap = intern_cap ? intern_cap * 2 : 256;
	struct intern_entry **b = calloc(cap, sizeof(*b));

	if (!b)
		return -1;
	for (size_t i = 0; i < intern_cap; i++) {
		struct intern_entry *e = intern_buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (cap - 1)];
			b[e->hash & (cap - 1)] = e;
		}
	}
	free(intern_buckets);
	intern_buckets = b;
	intern_cap = cap;
	return 0;
}

const char *intern(const char *s)
{
	uint32_t h = intern_hash(s);
	struct intern_entry *e;
	const char *ret = NULL;
	size_t len;

	pthread_mutex_lock(&intern_lock);
	if (intern_cap) {
		for (e = intern_buckets[h & (intern_cap - 1)]; e; e = e->next) {
			if (e->hash == h && strcmp(e->text, s) == 0) {
				if (e->refs == UINT32_MAX)
					goto out;
				e->refs++;
				ret = e->text;
				goto out;
			}
		}
	}
	/* Chains of one entry on average at most: a bucket per entry. */
	if (intern_n + 1 > intern_cap && intern_grow() < 0)
		goto out;
	len = strlen(s) + 1;
	e = malloc(sizeof(*e) + len);
	if (!e)
		goto out;
	e->hash = h;
	e->refs = 1;
	memcpy(e->text, s, len);
	e->next = intern_buckets[h & (intern_cap - 1)];
	intern_buckets[h & (intern_cap - 1)] = e;
	intern_n++;
	ret = e->text;
out:
	pthread_mutex_unlock(&intern_lock);
	return ret;
}

void intern_release(const char *s)
{
	struct intern_entry *e, **pp;

	if (!s)
		return;
	e = (struct intern_entry *)(void *)(s - offsetof(struct intern_entry, text));
	pthread_mutex_lock(&intern_lock);
	if (--e->refs == 0) {
		for (pp = &intern_buckets[e->hash & (intern_cap - 1)]; *pp; pp = &(*pp)->next) {
			if (*pp == e) {
				*pp = e->next;
				break;
			}
		}
		intern_n--;
		free(e);
	}
	pthread_mutex_unlock(&intern_lock);
}

unsigned long intern_count(void)
{
	unsigned long n;

	pthread_mutex_lock(&intern_lock);
	n = intern_n;
	pthread_mutex_unlock(&intern_lock);
	return n;
}
