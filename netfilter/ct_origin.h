/* Mechanism: where a packet that the kernel redirected (nftables
 * `redirect`, a DNAT to this host) was first sent, asked of conntrack.
 *
 * A TCP socket learns its connection's original destination with
 * getsockopt(SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST); the kernel offers no
 * such option for UDP, and IP_RECVORIGDSTADDR shows the address after the
 * NAT. So a UDP relay receiving redirected datagrams on one shared socket
 * asks conntrack for the entry whose reply tuple is (the address and port
 * the datagram reached -> its sender) and reads the original tuple's
 * destination. One netlink request and its answer per new flow.
 */
#ifndef FERRY_CT_ORIGIN_H
#define FERRY_CT_ORIGIN_H

#include <stdint.h>

#include "inet.h"

struct mnl_socket;

/* One NETLINK_NETFILTER socket and its sequence numbers. Zeroed: closed;
 * ct_origin_lookup opens it on first use. Used by one thread at a time. */
struct ct_origin {
	struct mnl_socket *nl;
	uint32_t seq;
};

/* The original destination of the connection (proto: IPPROTO_UDP or
 * IPPROTO_TCP) whose packets from peer:peer_port reached this host's
 * local:local_port after a NAT: *ret_dst and *ret_port. 0, -ENOENT (no
 * such entry: not NATed, or expired), or -errno (socket, message).
 * Blocks only for the kernel's synchronous answer. */
int ct_origin_lookup(struct ct_origin *c, uint8_t proto, const struct inet_addr *local, uint16_t local_port,
		     const struct inet_addr *peer, uint16_t peer_port, struct inet_addr *ret_dst,
		     uint16_t *ret_port);

/* Close the socket. A zeroed or closed c is a no-op. */
void ct_origin_done(struct ct_origin *c);

#endif
