/* Address lists as the IPVS host mechanism reports them
 * (ipvs_host_addr_list, ipvs_host_node_addrs), read back by its two tests:
 * tests/unit/test_ipvs_host.c (no dummy driver, on lo) and
 * tests/helpers/ipvs_host_check.c (in the VM, on the dummy). Header only,
 * as each of them is a program of its own; every function is static
 * inline, so a file that does not use one gets no warning. Addresses are
 * given parsed: each test reports an address it cannot parse its own way. */
#ifndef FERRY_TESTS_IPVS_HOST_ADDRS_H
#define FERRY_TESTS_IPVS_HOST_ADDRS_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "inet.h"

#define SEEN_MAX 16

/* The addresses (and prefix lengths) one ipvs_host_addr_list call gave. */
struct seen {
	struct inet_addr a[SEEN_MAX];
	uint8_t plen[SEEN_MAX];
	size_t n;
};

/* ipvs_host_addr_list callback that fills the struct seen at ctx. More
 * than SEEN_MAX addresses stop the list with -ENOSPC, which the list call
 * returns: the test fails rather than look at part of the list. */
static inline int seen_collect(const struct inet_addr *a, uint8_t prefix_len, void *ctx)
{
	struct seen *s = ctx;

	if (s->n == SEEN_MAX)
		return -ENOSPC;
	s->a[s->n] = *a;
	s->plen[s->n++] = prefix_len;
	return 0;
}

/* The index of a in v[0..n), or -1 when it is not there. */
static inline int addr_find(const struct inet_addr *v, size_t n, struct inet_addr a)
{
	for (size_t i = 0; i < n; i++)
		if (inet_addr_cmp(&v[i], &a) == 0)
			return (int)i;
	return -1;
}

/* The prefix length s saw a with, or -1 when it did not see a. */
static inline int seen_plen(const struct seen *s, struct inet_addr a)
{
	int i = addr_find(s->a, s->n, a);

	return i < 0 ? -1 : s->plen[i];
}

#endif
