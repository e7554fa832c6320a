/* Mechanism: one netlink request and its whole answer. See ipvs_nl.h.
 *
 * libnl's nl_recvmsgs runs the handlers set on nl->cb for every message
 * of the answer: data to on_valid, the end of a dump (NLMSG_DONE) or an ack
 * to on_end, an error to on_error, and a message flagged NLM_F_DUMP_INTR to
 * on_intr first. The handlers' argument is the struct exchange of the
 * request running, set anew by each request.
 */
#include "ipvs_nl.h"

#include <errno.h>
#include <stdbool.h>

#include <netlink/errno.h>
#include <netlink/handlers.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

int ipvs_nl_errno(int nl_err)
{
	switch (nl_err < 0 ? -nl_err : nl_err) {
	case NLE_SUCCESS: return 0;
	case NLE_INTR: return -EINTR;
	case NLE_BAD_SOCK: return -EBADF;
	case NLE_AGAIN: return -EAGAIN;
	case NLE_NOMEM: return -ENOMEM;
	case NLE_EXIST: return -EEXIST;
	case NLE_INVAL: return -EINVAL;
	case NLE_RANGE: return -ERANGE;
	case NLE_MSGSIZE: return -EMSGSIZE;
	case NLE_OPNOTSUPP: return -EOPNOTSUPP;
	case NLE_AF_NOSUPPORT: return -EAFNOSUPPORT;
	case NLE_OBJ_NOTFOUND: return -ENOENT;
	case NLE_NOATTR: return -ENOENT;
	case NLE_MISSING_ATTR: return -EBADMSG;
	case NLE_AF_MISMATCH: return -EAFNOSUPPORT;
	case NLE_SEQ_MISMATCH: return -EPROTO;
	case NLE_MSG_OVERFLOW: return -EOVERFLOW;
	case NLE_MSG_TRUNC: return -EMSGSIZE;
	case NLE_NOADDR: return -EADDRNOTAVAIL;
	case NLE_MSG_TOOSHORT: return -EBADMSG;
	case NLE_MSGTYPE_NOSUPPORT: return -EBADMSG;
	case NLE_BUSY: return -EBUSY;
	case NLE_PROTO_MISMATCH: return -EPROTONOSUPPORT;
	case NLE_NOACCESS: return -EACCES;
	case NLE_PERM: return -EPERM;
	case NLE_PARSE_ERR: return -EBADMSG;
	case NLE_NODEV: return -ENODEV;
	case NLE_DUMP_INTR: return -EAGAIN;
	case NLE_ATTRSIZE: return -EBADMSG;
	default: return -EIO;
	}
}

int ipvs_nl_init(struct ipvs_nl *nl, int protocol)
{
	int r;

	nl->busy = false;
	nl->sk = nl_socket_alloc();
	nl->cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!nl->sk || !nl->cb) {
		ipvs_nl_done(nl);
		return -ENOMEM;
	}
	r = nl_connect(nl->sk, protocol);
	if (r < 0) {
		ipvs_nl_done(nl);
		return ipvs_nl_errno(r);
	}
	return 0;
}

void ipvs_nl_done(struct ipvs_nl *nl)
{
	nl_cb_put(nl->cb);
	nl_socket_free(nl->sk);   /* closes the socket too */
	nl->cb = NULL;
	nl->sk = NULL;
	nl->busy = false;
}

/* ---- The exchange ---- */

/* State of one request/answer exchange, shared by the handlers below. */
struct exchange {
	ipvs_nl_reply_cb cb;
	void *ctx;
	bool done;   /* the answer ended: an ack, an error or NLMSG_DONE */
	bool intr;   /* a message carried NLM_F_DUMP_INTR */
	int err;     /* first error: the kernel's -errno, or cb's */
};

static int on_valid(struct nl_msg *msg, void *arg)
{
	struct exchange *x = arg;

	/* After an error keep reading, so the rest of a dump does not stay
	 * queued for the next exchange, but stop calling back. */
	if (x->cb && x->err == 0) {
		int r = x->cb(nlmsg_hdr(msg), x->ctx);
		if (r < 0)
			x->err = r;
	}
	return NL_OK;
}

static int on_end(struct nl_msg *msg, void *arg)
{
	struct exchange *x = arg;

	(void)msg;
	x->done = true;
	return NL_STOP;
}

static int on_intr(struct nl_msg *msg, void *arg)
{
	struct exchange *x = arg;

	(void)msg;
	x->intr = true;
	return NL_OK;   /* keep reading: the rest of the dump must be drained */
}

static int on_error(struct sockaddr_nl *who, struct nlmsgerr *e, void *arg)
{
	struct exchange *x = arg;

	(void)who;
	x->done = true;
	if (x->err == 0)
		x->err = e->error < 0 ? e->error : -e->error;
	return NL_STOP;
}

/* One request and its whole answer; x collects the outcome. */
static int exchange(struct ipvs_nl *nl, struct nl_msg *msg, struct exchange *x)
{
	int r;

	nl_cb_set(nl->cb, NL_CB_VALID, NL_CB_CUSTOM, on_valid, x);
	nl_cb_set(nl->cb, NL_CB_FINISH, NL_CB_CUSTOM, on_end, x);
	nl_cb_set(nl->cb, NL_CB_ACK, NL_CB_CUSTOM, on_end, x);
	nl_cb_set(nl->cb, NL_CB_DUMP_INTR, NL_CB_CUSTOM, on_intr, x);
	nl_cb_err(nl->cb, NL_CB_CUSTOM, on_error, x);

	r = nl_send_auto(nl->sk, msg);
	if (r < 0)
		return ipvs_nl_errno(r);
	while (!x->done) {
		r = nl_recvmsgs(nl->sk, nl->cb);
		/* After our error handler stopped, libnl returns its own lossy
		 * version of the kernel's errno: x->err has the real one. */
		if (r < 0 && !x->done)
			return ipvs_nl_errno(r);
	}
	if (x->err == 0 && x->intr)
		return -EAGAIN;
	return x->err;
}

int ipvs_nl_request(struct ipvs_nl *nl, struct nl_msg *msg, ipvs_nl_reply_cb cb, void *ctx)
{
	struct exchange x = { .cb = cb, .ctx = ctx };
	int r;

	if (!msg)
		return -EINVAL;
	/* A request from a callback of this socket would read the rest of
	 * the running exchange as its own answer. */
	if (nl->busy)
		return -EBUSY;
	nl->busy = true;
	r = exchange(nl, msg, &x);
	nl->busy = false;
	return r;
}
