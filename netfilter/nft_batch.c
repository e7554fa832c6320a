/* Mechanism: build nf_tables transactions in memory and send them with
 * libmnl, collecting one ack or error per message. See nft_batch.h. */
#include "nft_batch.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>

struct nft_batch_msg {
	size_t off;        /* offset of the message in buf */
	size_t len;
	char desc[96];
};

struct nft_batch {
	char *buf;
	size_t len, cap;
	/* Bytes [0, dirty) of buf may hold old messages, [dirty, zeroed)
	 * are zero, [zeroed, cap) not yet written since the buffer grew. A
	 * message's room is zeroed from that, not whole (96 KiB each), and
	 * room never used is never touched: a grown buffer's pages stay
	 * unmapped until a message needs them (a full sync at 100k services
	 * is some 60 MB of messages in a buffer of 128). */
	size_t dirty, zeroed;
	bool open;         /* a message begun and not ended */
	struct nft_batch_msg *msgs;
	size_t n_msgs, cap_msgs;
	uint32_t seq;      /* next sequence number */
	/* Replies of a commit: per batch, so that batches used from different
	 * threads (a backend's and an interception's) share nothing. */
	char rbuf[1 << 16];
};

uint16_t nft_nfproto(int family)
{
	return family == AF_INET6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
}

const char *nft_family_name(int family)
{
	return family == AF_INET6 ? "ip6" : "ip";
}

int nft_socket_open(struct mnl_socket **ret)
{
	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	int one = 1, size = 64 << 20, big = 1 << 30;

	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int r = -errno;
		mnl_socket_close(nl);
		return r;
	}
	/* Big transactions: the kernel handles one sendmsg as one skb, and every
	 * message is acked. FORCE variants need CAP_NET_ADMIN; fall back quietly. */
	if (setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)) == -1)
		setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	if (setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) == -1)
		setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	/* Errors need not echo the (possibly huge) refused message. */
	mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, sizeof(one));
	mnl_socket_setsockopt(nl, NETLINK_EXT_ACK, &one, sizeof(one));
	*ret = nl;
	return 0;
}

struct nft_batch *nft_batch_new(void)
{
	struct nft_batch *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->seq = (uint32_t)time(NULL);
	return b;
}

struct nft_batch *nft_batch_free(struct nft_batch *b)
{
	if (!b)
		return NULL;
	free(b->buf);
	free(b->msgs);
	free(b);
	return NULL;
}

/* A message begun and never ended may have written anywhere in its room. */
static void batch_close_open(struct nft_batch *b)
{
	if (b->open && b->dirty < b->len + NFT_BATCH_MSG_MAX)
		b->dirty = b->len + NFT_BATCH_MSG_MAX;
	b->open = false;
}

void nft_batch_clear(struct nft_batch *b)
{
	batch_close_open(b);
	b->len = 0;
	b->n_msgs = 0;
}

struct nlmsghdr *nft_batch_msg_begin(struct nft_batch *b, uint16_t type, uint16_t family,
				     uint16_t flags, const char *desc)
{
	size_t zero_end;

	batch_close_open(b);
	if (b->cap - b->len < NFT_BATCH_MSG_MAX) {
		size_t cap = b->cap ? b->cap * 2 : 4 * NFT_BATCH_MSG_MAX;
		char *buf;

		while (cap - b->len < NFT_BATCH_MSG_MAX)
			cap *= 2;
		buf = realloc(b->buf, cap);
		if (!buf)
			return NULL;
		/* The new room is left unwritten (past zeroed: zeroed when used). */
		b->buf = buf;
		b->cap = cap;
	}
	if (b->n_msgs == b->cap_msgs) {
		size_t cap = b->cap_msgs ? b->cap_msgs * 2 : 64;
		struct nft_batch_msg *m = realloc(b->msgs, cap * sizeof(*m));

		if (!m)
			return NULL;
		b->msgs = m;
		b->cap_msgs = cap;
	}
	snprintf(b->msgs[b->n_msgs].desc, sizeof(b->msgs[b->n_msgs].desc), "%s", desc ? desc : "");
	b->msgs[b->n_msgs].off = b->len;
	/* The room is zero (libnftnl leaves some padding unwritten): only
	 * what earlier messages used needs clearing. */
	zero_end = b->dirty < b->len + NFT_BATCH_MSG_MAX ? b->dirty : b->len + NFT_BATCH_MSG_MAX;
	if (zero_end > b->len)
		memset(b->buf + b->len, 0, zero_end - b->len);
	if (b->zeroed < b->len + NFT_BATCH_MSG_MAX) {
		size_t from = b->zeroed > b->len ? b->zeroed : b->len;

		memset(b->buf + from, 0, b->len + NFT_BATCH_MSG_MAX - from);
		b->zeroed = b->len + NFT_BATCH_MSG_MAX;
	}
	b->open = true;
	return nftnl_nlmsg_build_hdr(b->buf + b->len, type, family, flags | NLM_F_ACK, b->seq++);
}

void nft_batch_msg_describe(struct nft_batch *b, const char *desc)
{
	if (b->open)
		snprintf(b->msgs[b->n_msgs].desc, sizeof(b->msgs[b->n_msgs].desc), "%s", desc ? desc : "");
}

void nft_batch_msg_end(struct nft_batch *b, struct nlmsghdr *nlh)
{
	b->msgs[b->n_msgs].len = NLMSG_ALIGN(nlh->nlmsg_len);
	b->len += NLMSG_ALIGN(nlh->nlmsg_len);
	if (b->dirty < b->len)
		b->dirty = b->len;
	b->open = false;
	b->n_msgs++;
}

int nft_batch_set_elems(struct nft_batch *b, struct nftnl_set *s, uint16_t family, int add, const char *desc)
{
	struct nlmsghdr *nlh = nft_batch_msg_begin(b, add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM, family,
						    add ? NLM_F_CREATE : 0, desc);

	if (!nlh)
		return -ENOMEM;
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	nft_batch_msg_end(b, nlh);
	return 0;
}

size_t nft_batch_count(const struct nft_batch *b)
{
	return b->n_msgs;
}

const void *nft_batch_data(const struct nft_batch *b, size_t *ret_len)
{
	*ret_len = b->len;
	return b->buf;
}

const char *nft_batch_desc(const struct nft_batch *b, size_t i)
{
	return i < b->n_msgs ? b->msgs[i].desc : "transaction";
}

/* Index of the message with sequence number seq in [first, first+n), or
 * SIZE_MAX (the BEGIN/END envelope). */
static size_t batch_index_of(const struct nft_batch *b, size_t first, size_t n, uint32_t seq)
{
	for (size_t i = first; i < first + n; i++) {
		const struct nlmsghdr *nlh = (const void *)(b->buf + b->msgs[i].off);
		if (nlh->nlmsg_seq == seq)
			return i;
	}
	return SIZE_MAX;
}

/* Send messages [first, first+n) as one transaction and read the replies. */
static int batch_send_chunk(struct mnl_socket *nl, struct nft_batch *b, size_t first, size_t n,
			    struct nft_batch_error *ret_err)
{
	char begin[MNL_NLMSG_HDRLEN * 2 + 64], end[MNL_NLMSG_HDRLEN * 2 + 64];
	struct nlmsghdr *bh, *eh;
	struct iovec iov[3];
	struct sockaddr_nl snl = { .nl_family = AF_NETLINK };
	struct msghdr msg = { .msg_name = &snl, .msg_namelen = sizeof(snl), .msg_iov = iov, .msg_iovlen = 3 };
	size_t replies = 0;
	int first_err = 0;
	char *rbuf = b->rbuf;

	memset(begin, 0, sizeof(begin));
	memset(end, 0, sizeof(end));
	bh = nftnl_batch_begin(begin, b->seq++);
	eh = nftnl_batch_end(end, b->seq++);
	iov[0] = (struct iovec){ begin, bh->nlmsg_len };
	iov[1] = (struct iovec){ b->buf + b->msgs[first].off,
				 b->msgs[first + n - 1].off + b->msgs[first + n - 1].len - b->msgs[first].off };
	iov[2] = (struct iovec){ end, eh->nlmsg_len };
	if (sendmsg(mnl_socket_get_fd(nl), &msg, 0) == -1) {
		if (ret_err)
			*ret_err = (struct nft_batch_error){ .err = -errno, .index = SIZE_MAX, .desc = "sendmsg" };
		return -errno;
	}
	/* nfnetlink processes the whole transaction inside sendmsg: every reply
	 * is already queued, so read until the queue is empty. */
	for (;;) {
		ssize_t len = recv(mnl_socket_get_fd(nl), rbuf, sizeof(b->rbuf), MSG_DONTWAIT);
		const struct nlmsghdr *nlh;
		int left;

		if (len == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (!first_err) {
				first_err = -errno;
				if (ret_err)
					*ret_err = (struct nft_batch_error){ .err = first_err, .index = SIZE_MAX,
									      .desc = "reading acks" };
			}
			break;
		}
		left = (int)len;
		for (nlh = (const void *)rbuf; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
			const struct nlmsgerr *e;

			if (nlh->nlmsg_type != NLMSG_ERROR)
				continue;
			e = mnl_nlmsg_get_payload(nlh);
			replies++;
			if (e->error && !first_err) {
				size_t idx = batch_index_of(b, first, n, nlh->nlmsg_seq);
				first_err = e->error;
				if (ret_err) {
					ret_err->err = e->error;
					ret_err->index = idx;
					snprintf(ret_err->desc, sizeof(ret_err->desc), "%s", nft_batch_desc(b, idx));
				}
			}
		}
	}
	if (!first_err && replies < n) {
		first_err = -EPROTO;
		if (ret_err)
			*ret_err = (struct nft_batch_error){ .err = first_err, .index = SIZE_MAX,
							      .desc = "missing acks" };
	}
	return first_err;
}

int nft_batch_commit(struct mnl_socket *nl, struct nft_batch *b, size_t chunk_msgs,
		     struct nft_batch_error *ret_err)
{
	if (b->n_msgs == 0)
		return 0;
	if (chunk_msgs == 0)
		chunk_msgs = b->n_msgs;
	for (size_t i = 0; i < b->n_msgs; i += chunk_msgs) {
		size_t n = b->n_msgs - i < chunk_msgs ? b->n_msgs - i : chunk_msgs;
		int r = batch_send_chunk(nl, b, i, n, ret_err);
		if (r < 0)
			return r;
	}
	return 0;
}
