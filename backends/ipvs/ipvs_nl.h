/* Mechanism: one netlink request and its whole answer over libnl-3, for
 * both sockets of the IPVS backend: generic netlink (ipvs_genl.c) and
 * rtnetlink (ipvs_host.c). libnl reads the answer; our own handlers keep
 * what it would lose:
 *   - the kernel's errno exactly as the kernel sent it (libnl folds
 *     several errnos into one NLE_* code: EADDRNOTAVAIL and EEXIST, ENOENT
 *     and ESRCH, which the idempotence rules of both callers hinge on);
 *   - NLM_F_DUMP_INTR (the list changed while the kernel dumped it),
 *     reported as -EAGAIN once the whole dump is read;
 *   - the rest of an answer after an error or a callback that stopped,
 *     read and dropped, so that it never becomes the next request's answer.
 * Nothing here logs. A handle is not thread-safe; use one per thread.
 */
#ifndef FERRY_IPVS_NL_H
#define FERRY_IPVS_NL_H

#include <stdbool.h>

struct nl_sock;
struct nl_cb;
struct nl_msg;
struct nlmsghdr;

/* A connected socket and the handlers of its exchanges, embedded in the
 * handle of a mechanism file (ipvs_nl_init / ipvs_nl_done). */
struct ipvs_nl {
	struct nl_sock *sk;
	struct nl_cb *cb;   /* our handlers; their argument is set per exchange */
	bool busy;          /* inside an exchange: a callback must not start another */
};

/* One data message of an answer (a dump's messages, or a GET's reply).
 * Return 0 to go on, or a negative errno to stop calling back: the rest of
 * the answer is read and dropped, and that errno is the request's result. */
typedef int (*ipvs_nl_reply_cb)(struct nlmsghdr *nlh, void *ctx);

/* Open a netlink socket of protocol (NETLINK_GENERIC, NETLINK_ROUTE) in
 * the caller's network namespace and connect it. Returns 0, -ENOMEM, or
 * the -errno of the socket calls (e.g. -EPROTONOSUPPORT for a protocol the
 * kernel lacks). On failure nl is left empty: ipvs_nl_done is harmless. */
int ipvs_nl_init(struct ipvs_nl *nl, int protocol);

/* Close the socket and free the handlers. Accepts an empty or failed nl;
 * leaves it empty. */
void ipvs_nl_done(struct ipvs_nl *nl);

/* Send msg (the caller keeps it and frees it) and read the whole answer,
 * calling cb (may be NULL: data is discarded) for each data message.
 * Returns 0, cb's error, the kernel's -errno exactly (e.g. -EEXIST,
 * -ESRCH, -EADDRNOTAVAIL, -EPERM), -EAGAIN when the kernel flagged the
 * dump as inconsistent (repeat it), a libnl failure as -errno, -EINVAL
 * without msg, or -EBUSY when called from a callback of an exchange still
 * running on nl. Never applies an idempotence rule: callers do. */
int ipvs_nl_request(struct ipvs_nl *nl, struct nl_msg *msg, ipvs_nl_reply_cb cb, void *ctx);

/* A libnl error code (NLE_*, either sign) as a negative errno; 0 stays 0,
 * a code without an errno of its own is -EIO. */
int ipvs_nl_errno(int nl_err);

#endif
