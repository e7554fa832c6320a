/* Mechanism: IPVS virtual servers and real servers over generic netlink
 * (libnl-3, libnl-genl-3), the interface ipvsadm and keepalived use.
 *
 * Three layers, each usable alone:
 *   - builders write one request into a caller-supplied struct nl_msg and
 *     parsers read one kernel message back into plain C structs; neither
 *     needs a socket, root or the ip_vs module, so tests round-trip them;
 *   - a small socket wrapper (ipvs_genl_open / _exec / _request) that sends a
 *     built message and returns the kernel's answer as 0 or a negative errno
 *     (the kernel's own errno, not libnl's lossy translation of it: the
 *     exchange itself is ipvs_nl.c's, shared with ipvs_host.c);
 *   - convenience calls that build, send and apply the idempotence rule:
 *     adding what exists and deleting what is gone are success.
 *
 * Nothing here logs or decides anything: the IPVS policy (plan -> these
 * calls) lives elsewhere and logs what it sent when the kernel refuses it.
 * A handle is not thread-safe; use one per thread.
 *
 * Byte order: ports and addresses in these structs are as ferry keeps them
 * elsewhere (ports in host order, struct inet_addr in network order); the
 * conversion to the kernel's __be16 / __be32 happens here.
 */
#ifndef FERRY_IPVS_GENL_H
#define FERRY_IPVS_GENL_H

#include <stdint.h>
#include <sys/socket.h>

#include "inet.h"

struct nl_msg;
struct nlmsghdr;
struct ipvs_genl;

/* Scheduler names are at most 15 characters (IP_VS_SCHEDNAME_MAXLEN - 1). */
#define IPVS_SCHED_NAME_MAX 16

/* What a builder or a convenience call does with its object. */
enum ipvs_genl_op {
	IPVS_GENL_ADD,   /* IPVS_CMD_NEW_SERVICE / IPVS_CMD_NEW_DEST */
	IPVS_GENL_EDIT,  /* IPVS_CMD_SET_SERVICE / IPVS_CMD_SET_DEST */
	IPVS_GENL_DEL,   /* IPVS_CMD_DEL_SERVICE / IPVS_CMD_DEL_DEST */
};

/* A virtual server. Its key is (af, protocol, addr, port), or (af, fwmark)
 * when fwmark is not 0; the other fields are its options. */
struct ipvs_service {
	sa_family_t af;          /* AF_INET or AF_INET6 */
	uint16_t protocol;       /* IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP; unused with fwmark */
	struct inet_addr addr;   /* virtual address, addr.family == af; unused with fwmark */
	uint16_t port;           /* host order; unused with fwmark */
	uint32_t fwmark;         /* 0, or the firewall mark this service matches */
	char sched_name[IPVS_SCHED_NAME_MAX]; /* "rr", "wrr", "lc", "wlc", "sh", "mh", "sed", "nq" */
	uint32_t flags;          /* IP_VS_SVC_F_PERSISTENT, _ONEPACKET, _SCHED1..3; parsers
				  * drop the kernel-internal IP_VS_SVC_F_HASHED */
	uint32_t timeout;        /* persistence timeout in seconds (with IP_VS_SVC_F_PERSISTENT) */
	uint8_t netmask;         /* persistence granularity as a prefix length (IPv4 1-32,
				  * IPv6 1-128); 0 when building means a whole address, and
				  * parsers always report the real length */
};

/* A real server of a virtual server. */
struct ipvs_dest {
	struct inet_addr addr;   /* its family is the destination's address family */
	uint16_t port;           /* host order */
	uint32_t conn_flags;     /* forwarding method: IP_VS_CONN_F_MASQ (0), _LOCALNODE,
				  * _TUNNEL or _DROUTE; other bits are not sent */
	uint32_t weight;         /* 0: no new connections (graceful termination); max INT32_MAX */
	uint32_t u_threshold;    /* stop scheduling above this many connections; 0: no limit */
	uint32_t l_threshold;    /* resume below this many; 0: no limit */
	/* Counters the kernel reports in dumps; builders ignore them. Graceful
	 * termination deletes a weight-0 destination once both counts reach 0. */
	uint32_t active_conns;   /* established connections */
	uint32_t inactive_conns; /* connections in other states (e.g. TIME_WAIT, UDP) */
	uint32_t persist_conns;  /* persistence templates pointing at it */
};

/* IPVS's own connection timeouts, in seconds. In a set request, 0 leaves
 * that timeout as it is. */
struct ipvs_timeouts {
	uint32_t tcp;
	uint32_t tcp_fin;
	uint32_t udp;
};

/* What IPVS_CMD_GET_INFO reports. */
struct ipvs_info {
	uint32_t version;        /* IP_VS_VERSION_CODE of the kernel, e.g. 0x010201 */
	uint32_t conn_tab_size;  /* size of the connection hash table */
};

/* ---- Builders: one request in msg, which must be fresh from nlmsg_alloc().
 * family is the resolved id of the "IPVS" genl family (ipvs_genl_family_id,
 * or any number in tests). They return 0, -EINVAL (or -EAFNOSUPPORT for an
 * unknown af) for an object the kernel would refuse, or -EMSGSIZE when msg
 * is too small. After an error msg holds a partial message: free it. */

/* Add, edit or delete svc. ADD and EDIT send every option; DEL sends only
 * the key. ADD and EDIT need a scheduler name. */
int ipvs_genl_build_service(struct nl_msg *msg, int family, enum ipvs_genl_op op,
			    const struct ipvs_service *svc);

/* Add, edit or delete dest in the service keyed by svc (only svc's key is
 * sent). A destination of another family than svc's is accepted here; the
 * kernel allows that only with tunnelling. */
int ipvs_genl_build_dest(struct nl_msg *msg, int family, enum ipvs_genl_op op,
			 const struct ipvs_service *svc, const struct ipvs_dest *dest);

/* Delete every virtual server (and so every real server) in the netns. */
int ipvs_genl_build_flush(struct nl_msg *msg, int family);

/* Dump requests: every service; the destinations of the service keyed by
 * svc. Send them with ipvs_genl_request. */
int ipvs_genl_build_get_services(struct nl_msg *msg, int family);
int ipvs_genl_build_get_dests(struct nl_msg *msg, int family, const struct ipvs_service *svc);

/* Read or set the TCP, TCP FIN and UDP timeouts; read the version. */
int ipvs_genl_build_get_timeouts(struct nl_msg *msg, int family);
int ipvs_genl_build_set_timeouts(struct nl_msg *msg, int family, const struct ipvs_timeouts *t);
int ipvs_genl_build_get_info(struct nl_msg *msg, int family);

/* ---- Parsers: one generic netlink message (a kernel reply, or a message
 * a builder wrote) into a struct, which is fully overwritten. They return 0,
 * or -EBADMSG when the message is malformed or lacks the object. */

/* The service in IPVS_CMD_ATTR_SERVICE (dump replies, and the requests of
 * ipvs_genl_build_service and _build_dest). A fwmark service gets an
 * all-zero addr of its family, protocol 0 and port 0. */
int ipvs_genl_parse_service(struct nlmsghdr *nlh, struct ipvs_service *ret);

/* The destination in IPVS_CMD_ATTR_DEST (dump replies and
 * ipvs_genl_build_dest requests). default_af is the address family to assume
 * when the message has no IPVS_DEST_ATTR_ADDR_FAMILY (kernels before 4.3):
 * the family of the service it was dumped from. */
int ipvs_genl_parse_dest(struct nlmsghdr *nlh, sa_family_t default_af, struct ipvs_dest *ret);

/* The timeouts of a GET_CONFIG reply or a SET_CONFIG request; absent ones
 * read as 0. */
int ipvs_genl_parse_timeouts(struct nlmsghdr *nlh, struct ipvs_timeouts *ret);

/* The version and table size of a GET_INFO reply. */
int ipvs_genl_parse_info(struct nlmsghdr *nlh, struct ipvs_info *ret);

/* ---- Errors. (libnl's codes become errnos in ipvs_nl_errno, ipvs_nl.h.) */

/* The idempotence rule, in one place: err (a negative errno from sending an
 * op) becomes 0 when it only says the kernel is already in the wanted state:
 * -EEXIST for IPVS_GENL_ADD, and -ENOENT (no such destination) or -ESRCH (no
 * such service, so none of its destinations either) for IPVS_GENL_DEL.
 * Anything else, including EDIT of something absent, is returned as is.
 * Note that an ADD answered with -EEXIST changed nothing: options of the
 * existing object stay as they were (send an EDIT to change them). */
int ipvs_genl_idempotent(enum ipvs_genl_op op, int err);

/* ---- The socket. */

/* Connect a generic netlink socket in the caller's network namespace and
 * resolve the "IPVS" family (which lets the kernel autoload ip_vs).
 * Returns 0 and *ret, or:
 *   -ENOENT        the kernel has no IPVS (ip_vs neither built in nor
 *                  loadable): the IPVS backend cannot run on this host;
 *   -EAFNOSUPPORT  the kernel has no generic netlink at all;
 *   -ENOMEM, or another -errno from the socket calls.
 * Resolving needs no privilege; changing IPVS needs CAP_NET_ADMIN (-EPERM). */
int ipvs_genl_open(struct ipvs_genl **ret);

/* ipvs_genl_open against the generic netlink family called name (same
 * errors, -ENOENT for an unknown name). Only tests need it: "nlctrl" exists
 * on every kernel, so the exchange code can run where IPVS does not. */
int ipvs_genl_open_family(const char *name, struct ipvs_genl **ret);

/* Close the socket and free the handle. Accepts NULL; returns NULL. */
struct ipvs_genl *ipvs_genl_close(struct ipvs_genl *h);

/* The resolved family id, for the builders. */
int ipvs_genl_family_id(const struct ipvs_genl *h);

/* Send msg (built by a builder; the caller keeps ownership and frees it) and
 * wait for the kernel's answer. Returns 0, or the kernel's -errno exactly
 * (e.g. -EEXIST, -ESRCH, -ENOENT, -EINVAL, -EPERM), or a libnl failure as
 * -errno. Does not apply the idempotence rule. If msg makes the kernel reply
 * with data (a GET), the data is discarded. */
int ipvs_genl_exec(struct ipvs_genl *h, struct nl_msg *msg);

/* One reply message of ipvs_genl_request. Return 0 to go on, or a
 * negative errno to stop: the remaining replies are read and discarded, and
 * that errno is returned. It runs inside the exchange: a request on the same
 * handle from here fails with -EBUSY. */
typedef int (*ipvs_genl_msg_cb)(struct nlmsghdr *nlh, void *ctx);

/* Send msg and call cb for each data message of the answer (a dump's
 * messages or a GET's single reply), then wait for its end. Returns 0, cb's
 * error, the kernel's -errno, -EAGAIN when the kernel flagged the dump as
 * inconsistent (repeat it), or -EBUSY when called from a callback of an
 * exchange still running on h. msg stays the caller's. */
int ipvs_genl_request(struct ipvs_genl *h, struct nl_msg *msg, ipvs_genl_msg_cb cb, void *ctx);

/* ---- Convenience: build, send, and apply ipvs_genl_idempotent. Each
 * returns 0 or a negative errno. */

int ipvs_genl_apply_service(struct ipvs_genl *h, enum ipvs_genl_op op,
			    const struct ipvs_service *svc);
int ipvs_genl_apply_dest(struct ipvs_genl *h, enum ipvs_genl_op op,
			 const struct ipvs_service *svc, const struct ipvs_dest *dest);
int ipvs_genl_flush(struct ipvs_genl *h);

/* Call cb for every virtual server in the netns, in the kernel's (hash)
 * order. cb returns 0 to go on or a negative errno to stop (returned). The
 * dump is read in full before the first call, so cb may use h (e.g. dump
 * that service's destinations). -ENOMEM if it cannot be held. */
int ipvs_genl_dump_services(struct ipvs_genl *h,
			    int (*cb)(const struct ipvs_service *svc, void *ctx), void *ctx);

/* Call cb for every real server of the service keyed by svc, with its
 * connection counts (read in full first, as above). A service that does not
 * exist has no destinations: the kernel answers an empty dump, so this
 * returns 0 without calling cb. */
int ipvs_genl_dump_dests(struct ipvs_genl *h, const struct ipvs_service *svc,
			 int (*cb)(const struct ipvs_dest *dest, void *ctx), void *ctx);

int ipvs_genl_get_timeouts(struct ipvs_genl *h, struct ipvs_timeouts *ret);
int ipvs_genl_set_timeouts(struct ipvs_genl *h, const struct ipvs_timeouts *t);
int ipvs_genl_get_info(struct ipvs_genl *h, struct ipvs_info *ret);

#endif
