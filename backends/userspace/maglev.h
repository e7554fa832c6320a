/* Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table of
 * prime size M in which every backend owns about M/N slots, built so that
 * removing one backend moves little more than that backend's own slots.
 *
 * Pure computation: no allocation except the scratch array maglev_build
 * needs, no locking, no logging.
 */
#ifndef FERRY_USERSPACE_MAGLEV_H
#define FERRY_USERSPACE_MAGLEV_H

#include <stddef.h>
#include <stdint.h>

/* The table size to use for n backends: a prime from 16381 up to 1048573.
 * Balance alone would be fine at M = 100 N (the paper's advice), but the
 * slots that change owner when one backend leaves grow like N^2 / M beyond
 * the ideal 1/N; measured here (worst case over which backend leaves):
 *   M=16381:  N=10 1.08/N, N=50 1.61/N
 *   M=65537:  N=50 1.25/N, N=100 1.62/N
 *   M=262139: N=100 1.25/N, N=200 1.64/N
 *   M=524287: N=200 1.40/N
 * so M grows in steps that keep it near or below 1.4/N up to 200 backends;
 * past that the 1048573 table (4 MiB) is the ceiling. */
size_t maglev_table_size(size_t n_backends);

/* A 64-bit hash of len bytes with a seed (a murmur-style mix, stable across
 * runs and hosts so tables are reproducible). */
uint64_t maglev_hash(const void *data, size_t len, uint64_t seed);

/* Fill table[0..m) with backend indexes 0..n-1. keys[i] is a stable identity
 * of backend i (e.g. the hash of its address and port): the same key gets the
 * same permutation in every build, which is what keeps disruption low.
 * m must be prime and larger than n; n may be 0 (the table is then filled
 * with UINT32_MAX). Returns 0, -EINVAL for a bad m, or -ENOMEM. */
int maglev_build(const uint64_t *keys, size_t n, size_t m, uint32_t *table);

#endif
