/* Mechanism: delete conntrack entries over ctnetlink (libmnl), so UDP
 * clients of an endpoint that went away are not stuck on it. */
#ifndef FERRY_CONNTRACK_H
#define FERRY_CONNTRACK_H

#include <stddef.h>
#include <stdint.h>

/* A removed UDP endpoint: entries whose reply comes from it are stale. */
struct conntrack_target {
	uint8_t family;     /* AF_INET or AF_INET6 */
	uint8_t pad;
	uint16_t port_be;   /* network order */
	uint8_t addr[16];
};

/* Delete every UDP conntrack entry whose reply source is one of targets
 * (the DNATed flows to those endpoints). Dumps the family's table once and
 * deletes the matches; entries already gone are fine. Returns the number
 * deleted, or -errno. */
int conntrack_flush_udp(const struct conntrack_target *targets, size_t n);

#endif
