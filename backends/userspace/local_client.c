/* Whether a relay client starts on this node, for externalTrafficPolicy
 * Local's short-circuit (relay.h, relay_client_is_local).
 *
 * kube-proxy short-circuits two kinds of connections to all endpoints:
 * those of this cluster's pods (its local-traffic detection; here the
 * ClusterCIDR mode, a source inside --cluster-cidr: the interface modes
 * look at the packet's input interface, which an accepted socket does not
 * show), and those of the node itself, which its nftables mode tells by
 * "fib saddr type local": the source is one of the host's addresses.
 *
 * The relay asks the kernel the same question at the moment the client
 * arrives, without keeping a copy of the host's addresses: a UDP socket
 * connected to the client's address gets, as its source, the address the
 * routing table prefers for that destination, and for a local destination
 * that is the destination itself (the local route's preferred source, or
 * the address when the route names none; IPv6 source selection prefers the
 * destination itself, RFC 6724 rule 1). So "getsockname() == client" holds
 * exactly for the host's own addresses, whenever they were added or
 * removed, with no cache to refresh. It costs four system calls and no
 * packet (connect on UDP sends nothing), and is made only for new
 * connections and flows to a short-circuit frontend whose client is
 * neither loopback nor inside the cluster CIDRs. A bind() probe would
 * answer "yes" for every address under net.ipv4.ip_nonlocal_bind=1; a
 * getifaddrs() cache would miss addresses added between two syncs.
 *
 * No state, no lock: called by any worker thread.
 */
#include <sys/socket.h>
#include <unistd.h>

#include "relay.h"

/* Whether a is one of this host's addresses, by the route lookup above.
 * An address the lookup cannot route (no route at all, a link-local
 * address without a scope) is not one. */
static bool addr_is_host(const struct inet_addr *a)
{
	struct sockaddr_storage to, me;
	socklen_t len = sizeof(me);
	struct inet_addr got;
	int fd;
	bool yes = false;

	if (a->family != AF_INET && a->family != AF_INET6)
		return false;
	fd = socket(a->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return false;
	if (connect(fd, (struct sockaddr *)&to, inet_to_sockaddr(a, 9, &to)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&me, &len) == 0 &&
	    inet_from_sockaddr((struct sockaddr *)&me, &got, NULL) == 0)
		yes = inet_addr_cmp(&got, a) == 0;
	close(fd);
	return yes;
}

bool relay_client_is_local(const struct inet_addr *client, const struct inet_prefix *cidrs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (cidrs[i].addr.family == client->family && inet_prefix_contains(&cidrs[i], client))
			return true;
	return inet_addr_is_loopback(client) || addr_is_host(client);
}
