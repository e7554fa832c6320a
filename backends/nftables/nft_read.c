/* Mechanism: netlink dumps of ferry's tables. See nft_read.h. */
#include "nft_read.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

/* Receive buffer: the kernel fills a dump message up to about 32 KiB when
 * the reader's buffer allows; more room costs nothing. */
#define DUMP_BUF (256 * 1024)

struct dump_ctx {
	int err;          /* first error of the callback; later messages are drained */
	void *data;
	int (*each)(const struct nlmsghdr *nlh, void *data);
};

/* What a set dump reports its progress to (NULL: nothing). */
static const struct nft_read_progress *dump_progress;

static int dump_cb(const struct nlmsghdr *nlh, void *data)
{
	struct dump_ctx *d = data;

	if (d->err)
		return MNL_CB_OK;
	if (nlh->nlmsg_flags & NLM_F_DUMP_INTR)
		d->err = -EINTR;
	else
		d->err = d->each(nlh, d->data);
	return MNL_CB_OK;
}

/* Send the dump request msg_type for family with a table attribute and
 * one name attribute (name_attr 0: none), and hand every reply message to
 * each. */
static int dump(struct mnl_socket *nl, uint16_t msg_type, int family, uint16_t name_attr, const char *name,
		int (*each)(const struct nlmsghdr *nlh, void *data), void *data)
{
	char req[256];
	uint32_t seq = (uint32_t)time(NULL) ^ 0x5eed0000u, portid = mnl_socket_get_portid(nl);
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(req, msg_type, (uint16_t)(family == AF_INET6 ? NFPROTO_IPV6
											     : NFPROTO_IPV4),
						     NLM_F_DUMP, seq);
	struct dump_ctx d = { .data = data, .each = each };
	char *buf;
	int r;

	mnl_attr_put_strz(nlh, msg_type == NFT_MSG_GETRULE ? NFTA_RULE_TABLE : NFTA_SET_ELEM_LIST_TABLE, "ferry");
	if (name_attr)
		mnl_attr_put_strz(nlh, name_attr, name);
	if (!(buf = malloc(DUMP_BUF)))
		return -ENOMEM;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		r = -errno;
		free(buf);
		return r;
	}
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, DUMP_BUF);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		r = mnl_cb_run(buf, (size_t)n, seq, portid, dump_cb, &d);
		if (dump_progress && dump_progress->fn)
			dump_progress->fn(dump_progress->ctx);
		if (r == MNL_CB_ERROR) {
			r = -errno;
			break;
		}
		if (r == MNL_CB_STOP) {
			r = d.err;
			break;
		}
	}
	free(buf);
	return r;
}

/* ---- the ruleset tag ---- */

struct tag_ctx {
	char *buf;
	size_t len;
	bool first_seen;
	bool found;
};

static int tag_each(const struct nlmsghdr *nlh, void *data)
{
	struct tag_ctx *t = data;
	const struct nlattr *a;

	if (t->first_seen)
		return 0;  /* only the chain's first rule carries it */
	t->first_seen = true;
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		const uint8_t *u, *end;

		if (mnl_attr_get_type(a) != NFTA_RULE_USERDATA)
			continue;
		/* User data: (type, length, value) records. */
		u = mnl_attr_get_payload(a);
		end = u + mnl_attr_get_payload_len(a);
		while (u + 2 <= end && u + 2 + u[1] <= end) {
			if (u[0] == NFTNL_UDATA_RULE_COMMENT && u[1] > 0 && u[1 + u[1]] == '\0') {
				if ((size_t)u[1] > t->len)
					return -ENAMETOOLONG;
				memcpy(t->buf, u + 2, u[1]);
				t->found = true;
			}
			u += 2 + u[1];
		}
	}
	return 0;
}

int nft_read_tag(struct mnl_socket *nl, int family, char *buf, size_t len)
{
	struct tag_ctx t = { .buf = buf, .len = len };
	int r = dump(nl, NFT_MSG_GETRULE, family, NFTA_RULE_CHAIN, "nat_prerouting", tag_each, &t);

	if (r < 0)
		return r;
	return t.found ? 0 : -ENOENT;
}

/* ---- chains ---- */

struct chains_ctx {
	char (*names)[NFT_CHAIN_NAME_MAX];
	size_t n, cap;
};

static int chain_each(const struct nlmsghdr *nlh, void *data)
{
	struct chains_ctx *c = data;
	const struct nlattr *a;
	const char *table = NULL, *name = NULL;

	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0)
			continue;
		if (mnl_attr_get_type(a) == NFTA_CHAIN_TABLE)
			table = mnl_attr_get_str(a);
		else if (mnl_attr_get_type(a) == NFTA_CHAIN_NAME)
			name = mnl_attr_get_str(a);
	}
	/* The kernel dumps the chains of every table of the family. */
	if (!table || !name || strcmp(table, "ferry") != 0 || strlen(name) >= NFT_CHAIN_NAME_MAX)
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		char(*p)[NFT_CHAIN_NAME_MAX] = realloc(c->names, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		c->names = p;
		c->cap = cap;
	}
	snprintf(c->names[c->n++], NFT_CHAIN_NAME_MAX, "%s", name);
	return 0;
}

int nft_read_chains(struct mnl_socket *nl, int family, char (**ret)[NFT_CHAIN_NAME_MAX], size_t *ret_n)
{
	struct chains_ctx c = { 0 };
	int r = dump(nl, NFT_MSG_GETCHAIN, family, 0, NULL, chain_each, &c);

	if (r < 0) {
		free(c.names);
		return r;
	}
	*ret = c.names;
	*ret_n = c.n;
	return 0;
}

/* ---- set elements ---- */

struct set_ctx {
	enum nft_set_id set;
	int family;
	struct nft_elem_vec *out;
};

/* The value inside an NFTA_DATA_* nest. */
static void data_value(const struct nlattr *nest, const void **ret, size_t *ret_len)
{
	const struct nlattr *a;

	mnl_attr_for_each_nested(a, nest) {
		if (mnl_attr_get_type(a) == NFTA_DATA_VALUE) {
			*ret = mnl_attr_get_payload(a);
			*ret_len = mnl_attr_get_payload_len(a);
		}
	}
}

static void verdict_of(const struct nlattr *nest, struct nft_kernel_elem *k)
{
	const struct nlattr *a, *v;

	mnl_attr_for_each_nested(a, nest) {
		if (mnl_attr_get_type(a) == NFTA_DATA_VALUE) {
			k->data = mnl_attr_get_payload(a);
			k->data_len = mnl_attr_get_payload_len(a);
		} else if (mnl_attr_get_type(a) == NFTA_DATA_VERDICT) {
			k->has_verdict = true;
			mnl_attr_for_each_nested(v, a) {
				if (mnl_attr_get_type(v) == NFTA_VERDICT_CODE &&
				    mnl_attr_get_payload_len(v) == sizeof(uint32_t))
					k->verdict_code = ntohl(mnl_attr_get_u32(v));
				else if (mnl_attr_get_type(v) == NFTA_VERDICT_CHAIN &&
					 mnl_attr_validate(v, MNL_TYPE_NUL_STRING) == 0)
					k->chain = mnl_attr_get_str(v);
			}
		}
	}
}

static int elem_of(struct set_ctx *s, const struct nlattr *elem)
{
	struct nft_kernel_elem k = { 0 };
	const struct nlattr *a;
	struct nft_elem *e;

	mnl_attr_for_each_nested(a, elem) {
		switch (mnl_attr_get_type(a)) {
		case NFTA_SET_ELEM_KEY:
			data_value(a, &k.key, &k.key_len);
			break;
		case NFTA_SET_ELEM_KEY_END:
			data_value(a, &k.key_end, &k.key_end_len);
			break;
		case NFTA_SET_ELEM_DATA:
			verdict_of(a, &k);
			break;
		case NFTA_SET_ELEM_USERDATA:
			k.udata = mnl_attr_get_payload(a);
			k.udata_len = mnl_attr_get_payload_len(a);
			break;
		default:
			break;
		}
	}
	if (!(e = nft_elem_vec_push(s->out)))
		return -ENOMEM;
	if (nft_elem_from_kernel(e, s->set, s->family, &k) < 0) {
		s->out->n--;
		return -EPROTO;
	}
	return 0;
}

static int set_each(const struct nlmsghdr *nlh, void *data)
{
	struct set_ctx *s = data;
	const struct nlattr *a, *elem;

	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_get_type(a) != NFTA_SET_ELEM_LIST_ELEMENTS)
			continue;
		mnl_attr_for_each_nested(elem, a) {
			int r;

			if (mnl_attr_get_type(elem) != NFTA_LIST_ELEM)
				continue;
			if ((r = elem_of(s, elem)) < 0)
				return r;
		}
	}
	return 0;
}

int nft_read_set(struct mnl_socket *nl, int family, enum nft_set_id set, struct nft_elem_vec *out,
		 const struct nft_read_progress *progress)
{
	struct set_ctx s = { .set = set, .family = family, .out = out };
	int r;

	dump_progress = progress;
	r = dump(nl, NFT_MSG_GETSETELEM, family, NFTA_SET_ELEM_LIST_SET, nft_set_name(set), set_each, &s);
	dump_progress = NULL;
	return r;
}

/* ---- elements by key ---- */

/* Keys per request: each reply is a message of its own (about 100 bytes)
 * queued on the socket until read. */
#define KEYS_PER_REQUEST 512
/* Datagrams per recvmmsg and the room for each (a reply is well under
 * 1 KiB; the final ack or error is smaller still). */
#define RECV_BATCH 64
#define RECV_SLOT 4096
_Static_assert(RECV_BATCH * RECV_SLOT <= DUMP_BUF, "recvmmsg slots fit the buffer");

struct keys_ctx {
	struct set_ctx set;
	size_t replies;   /* elements received for the current request */
	int err;
};

static int keys_cb(const struct nlmsghdr *nlh, void *data)
{
	struct keys_ctx *k = data;
	int r;

	if (k->err)
		return MNL_CB_OK;
	if ((r = set_each(nlh, &k->set)) < 0)
		k->err = r;
	k->replies++;
	return MNL_CB_OK;
}

/* One GETSETELEM request for keys[0..n) (n > 0). Returns 0 when every key
 * was found, or -errno of the first key that was not (*ret_done: how many
 * were answered before it). */
static int keys_request(struct mnl_socket *nl, char *buf, const struct nft_elem *keys, size_t n,
			struct keys_ctx *k, size_t *ret_done)
{
	uint32_t seq = (uint32_t)time(NULL) ^ 0x6e790000u, portid = mnl_socket_get_portid(nl);
	uint16_t nfproto = (uint16_t)(keys[0].family == AF_INET6 ? NFPROTO_IPV6 : NFPROTO_IPV4);
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM, nfproto, NLM_F_ACK, seq);
	size_t klen = nft_set_key_len((enum nft_set_id)keys[0].set, keys[0].family);
	struct nlattr *list;
	int r;

	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, "ferry");
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, nft_set_name((enum nft_set_id)keys[0].set));
	list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
	for (size_t i = 0; i < n; i++) {
		struct nlattr *elem = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
		struct nlattr *key = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_KEY);

		mnl_attr_put(nlh, NFTA_DATA_VALUE, klen, keys[i].key);
		mnl_attr_nest_end(nlh, key);
		mnl_attr_nest_end(nlh, elem);
	}
	mnl_attr_nest_end(nlh, list);
	k->replies = 0;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	/* Every element comes back as a datagram of its own: take many per
	 * system call. */
	for (r = MNL_CB_OK; r == MNL_CB_OK;) {
		struct mmsghdr mm[RECV_BATCH];
		struct iovec iov[RECV_BATCH];
		int got;

		for (int i = 0; i < RECV_BATCH; i++) {
			iov[i] = (struct iovec){ .iov_base = buf + (size_t)i * RECV_SLOT, .iov_len = RECV_SLOT };
			mm[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
		}
		got = recvmmsg(mnl_socket_get_fd(nl), mm, RECV_BATCH, MSG_WAITFORONE, NULL);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < got && r == MNL_CB_OK; i++) {
			if (mm[i].msg_hdr.msg_flags & MSG_TRUNC)
				return -EMSGSIZE;
			r = mnl_cb_run(iov[i].iov_base, mm[i].msg_len, seq, portid, keys_cb, k);
		}
	}
	r = r == MNL_CB_ERROR ? -errno : 0;
	*ret_done = k->replies;
	return k->err ? k->err : r;
}

int nft_read_keys(struct mnl_socket *nl, const struct nft_elem *keys, size_t n, struct nft_elem_vec *out)
{
	struct keys_ctx k = { 0 };
	char *buf;
	size_t i = 0;
	int r = 0;

	if (n == 0)
		return 0;
	k.set = (struct set_ctx){ .set = (enum nft_set_id)keys[0].set, .family = keys[0].family, .out = out };
	if (!(buf = malloc(DUMP_BUF)))
		return -ENOMEM;
	while (i < n && r == 0) {
		size_t chunk = n - i < KEYS_PER_REQUEST ? n - i : KEYS_PER_REQUEST, done = 0;

		r = keys_request(nl, buf, keys + i, chunk, &k, &done);
		if (r == -ENOENT) {
			/* keys[i + done] is absent: skip it, ask for the rest. */
			i += done + 1;
			r = 0;
		} else if (r == 0) {
			i += chunk;
		}
	}
	free(buf);
	return r;
}
