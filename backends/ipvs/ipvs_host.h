/* Mechanism: the host side of the IPVS backend, over rtnetlink (libnl-3,
 * libnl-route-3) and /proc/sys; never the ip binary.
 *
 *   - The dummy interface that holds the service VIPs (kube-proxy's
 *     kube-ipvs0; ferry's is "ferry-ipvs0"). IPVS only sees packets the
 *     kernel delivers locally, and an address bound on any interface makes
 *     the kernel do that: a local route in the "local" table.
 *   - The VIPs on it, as /32 and /128 host addresses.
 *   - The node's own addresses, for node ports on every address.
 *   - The sysctls the backend needs (net/ipv4/vs/..., ARP behaviour).
 *
 * The dummy stays DOWN, as kube-ipvs0 does. Both families are delivered
 * locally all the same, from the node itself and from other hosts routed
 * to it (checked on Debian 12's 6.1 kernel by tests/vm/guest/ipvs_host.sh):
 * the IPv4 local route is made whatever the link state, and an IPv6
 * address added with IFA_F_NODAD on a down link is not left tentative but
 * usable at once, with its local route. Down, the link has no IPv6
 * link-local address, no multicast route and no route in the main table,
 * so it is only the bag of addresses it is meant to be. One trap: taking
 * an UP dummy down removes its IPv6 addresses (keep_addr_on_down is 0)
 * and keeps the IPv4 ones, so ipvs_host_dummy_ensure never changes the
 * state of a dummy it finds.
 *
 * Idempotence as elsewhere in ferry: creating what exists, adding what is
 * bound and deleting what is gone are success; the errnos are named per
 * call. Nothing here logs or decides anything (the IPVS policy does, and
 * logs what it sent). A handle is not thread-safe; use one per thread.
 * Everything acts in the caller's network namespace, /proc/sys included
 * (net sysctls are those of the netns of the process that opens them).
 */
#ifndef FERRY_IPVS_HOST_H
#define FERRY_IPVS_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "inet.h"

/* The name ferry gives its dummy interface (at most 15 characters). */
#define IPVS_HOST_DUMMY_NAME "ferry-ipvs0"

struct ipvs_host;

/* ---- The handle: one rtnetlink socket. */

/* Open an rtnetlink socket in the caller's network namespace. Needs no
 * privilege; changing links and addresses needs CAP_NET_ADMIN (-EPERM).
 * Returns 0 and *ret (close it with ipvs_host_close), or -ENOMEM, or the
 * -errno of the socket calls. */
int ipvs_host_open(struct ipvs_host **ret);

/* Close the socket and free the handle. Accepts NULL; returns NULL. */
struct ipvs_host *ipvs_host_close(struct ipvs_host *h);

/* ---- The dummy interface. */

/* Make sure a dummy interface called name exists and give its ifindex.
 * When absent it is created, DOWN (see the top of this file); one that
 * exists is taken as it is, addresses and link state untouched, so a
 * restarted ferry finds its VIPs still bound and still served.
 * Returns 0 and *ret_ifindex (> 0), or:
 *   -EINVAL      name is empty or longer than 15 characters;
 *   -EBUSY       an interface of another kind (not a dummy) holds the name;
 *   -EOPNOTSUPP  the kernel has no dummy driver (neither built in nor
 *                loadable: "Unknown device type");
 *   -EPERM, or another kernel -errno.
 * A creation that races with another creator (-EEXIST) is looked up again. */
int ipvs_host_dummy_ensure(struct ipvs_host *h, const char *name, int *ret_ifindex);

/* Delete the dummy interface called name, and with it every address on
 * it. Absent (-ENODEV from the kernel) is success. Returns 0, -EINVAL for
 * a bad name, -EBUSY when the name belongs to an interface that is not a
 * dummy (which is left alone), or a kernel -errno. */
int ipvs_host_dummy_remove(struct ipvs_host *h, const char *name);

/* ---- Addresses on an interface (the dummy, by its ifindex). */

/* Bind addr on ifindex as a host address (/32 or /128; IPv6 with
 * IFA_F_NODAD, so no duplicate address detection delays it). Already bound
 * with that prefix length (-EEXIST) is success. Returns 0, -EINVAL (bad
 * ifindex, addr of no known family), -ENODEV (no such interface), -EACCES
 * (IPv6 disabled on it: disable_ipv6), or another kernel -errno. */
int ipvs_host_addr_add(struct ipvs_host *h, int ifindex, const struct inet_addr *addr);

/* Unbind the host address addr (/32 or /128) from ifindex. Not bound is
 * success: the kernel says -EADDRNOTAVAIL for both families; -ENOENT,
 * ferry's usual "already gone", is taken as success too. An address of
 * the same value but another prefix length (put there by hand) is not
 * touched. An interface that does not exist is an error: -ENODEV (the
 * caller's ifindex is stale: the dummy was removed). Returns 0, -EINVAL,
 * -ENODEV, or another kernel -errno. */
int ipvs_host_addr_del(struct ipvs_host *h, int ifindex, const struct inet_addr *addr);

/* Call cb for every address bound on ifindex (both families, whatever
 * their prefix length and scope: link-local ones included), e.g. to take
 * over the VIPs a previous ferry left. cb returns 0 to go on or a negative
 * errno to stop (returned). The list is read whole before the first call,
 * so cb may add or delete addresses. An ifindex that does not exist has
 * no addresses (0, cb never called). Returns 0, cb's error, -ENOMEM, or a
 * kernel -errno. */
int ipvs_host_addr_list(struct ipvs_host *h, int ifindex,
			int (*cb)(const struct inet_addr *addr, uint8_t prefix_len, void *ctx),
			void *ctx);

/* ---- The node's addresses. */

/* Every address of every interface except exclude_ifindex (the dummy; 0
 * excludes nothing), both families, in the kernel's order, duplicates
 * (one address on two interfaces) kept. Loopback and link-local addresses
 * are included: the caller filters. Interfaces that are down count too.
 * Returns 0 with *ret (malloc'ed, free it with free(); NULL when *ret_n is
 * 0) and *ret_n, or -ENOMEM or a kernel -errno (then *ret is NULL and
 * *ret_n 0). */
int ipvs_host_node_addrs(struct ipvs_host *h, int exclude_ifindex,
			 struct inet_addr **ret, size_t *ret_n);

/* ---- Sysctls under /proc/sys. path is relative to /proc/sys with slashes
 * ("net/ipv4/vs/conntrack", "net/ipv4/conf/all/arp_ignore"): unlike the
 * dotted form it can name an interface whose name has a dot. No handle:
 * these are plain files. */

/* Write value (e.g. "1"; no newline needed) to /proc/sys/path. Writing the
 * value it already has is a harmless no-op. Returns 0, or:
 *   -EINVAL  path is empty, absolute, or has a ".." component; or the
 *            kernel refused the value;
 *   -ENOENT  no such sysctl (e.g. net/ipv4/vs/... without IPVS);
 *   -EACCES, -EPERM, -EROFS  not allowed (no root, read-only /proc/sys);
 *   -EIO     the kernel took only part of the value. */
int ipvs_host_sysctl_set(const char *path, const char *value);

/* Read /proc/sys/path into ret (size bytes), NUL-terminated, without the
 * trailing newline. Returns 0, -EINVAL (bad path, as above; or size 0),
 * -ENOENT (no such sysctl), -ERANGE (the value does not fit in size - 1
 * bytes; ret then holds a truncated value), or the -errno of the read. */
int ipvs_host_sysctl_get(const char *path, size_t size, char *ret);

#endif
