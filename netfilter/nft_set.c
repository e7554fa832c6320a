/* Mechanism: set declarations, key layout and element messages (see
 * nft_set.h). */
#include "nft_set.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <libmnl/libmnl.h>
#include <libnftnl/set.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "nft_batch.h"

uint32_t nft_concat_type(const uint32_t *types, size_t n)
{
	uint32_t t = 0;

	for (size_t i = 0; i < n; i++)
		t = (t << 6) | types[i];
	return t;
}

void nft_concat_put_addr(uint8_t *buf, size_t *off, const struct inet_addr *a)
{
	size_t n = a->family == AF_INET6 ? 16 : 4;

	memcpy(buf + *off, a->u.bytes, n);
	*off += n;
}

void nft_concat_put_proto(uint8_t *buf, size_t *off, enum inet_proto p)
{
	buf[*off] = p == INET_PROTO_TCP ? IPPROTO_TCP : p == INET_PROTO_UDP ? IPPROTO_UDP : IPPROTO_SCTP;
	*off += 4;
}

void nft_concat_put_port(uint8_t *buf, size_t *off, uint16_t port)
{
	uint16_t be = htons(port);

	memcpy(buf + *off, &be, 2);
	*off += 4;
}

void nft_concat_put_u32(uint8_t *buf, size_t *off, uint32_t v)
{
	memcpy(buf + *off, &v, 4);
	*off += 4;
}

int nft_set_spec_msg(struct nft_batch *b, const struct nft_set_spec *spec, bool create)
{
	struct nftnl_set *s = nftnl_set_alloc();
	bool map = spec->flags & NFT_SET_MAP;
	struct nlmsghdr *nlh;
	char desc[96];

	if (!s)
		return -ENOMEM;
	nftnl_set_set_str(s, NFTNL_SET_TABLE, spec->table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, spec->name);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, nft_nfproto(spec->family));
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, spec->key_len);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, spec->key_type);
	if (map)
		nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, spec->data_type);
	if (map && spec->data_len)
		nftnl_set_set_u32(s, NFTNL_SET_DATA_LEN, spec->data_len);
	if (spec->n_fields)
		nftnl_set_set_data(s, NFTNL_SET_DESC_CONCAT, spec->field_len, spec->n_fields);
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, spec->flags);
	if (spec->size)
		nftnl_set_set_u32(s, NFTNL_SET_DESC_SIZE, spec->size);
	if (spec->timeout_ms)
		nftnl_set_set_u64(s, NFTNL_SET_TIMEOUT, spec->timeout_ms);
	nftnl_set_set_u32(s, NFTNL_SET_ID, spec->id);
	snprintf(desc, sizeof(desc), "%s %s %s %s %s%s", create ? "add" : "check", map ? "map" : "set",
		 nft_family_name(spec->family), spec->table, spec->name, create ? "" : " exists");
	/* Without NLM_F_CREATE the kernel answers ENOENT for a missing table
	 * or set and does nothing for an existing one. */
	nlh = nft_batch_msg_begin(b, NFT_MSG_NEWSET, nft_nfproto(spec->family), create ? NLM_F_CREATE : 0, desc);
	if (nlh) {
		nftnl_set_nlmsg_build_payload(nlh, s);
		nft_batch_msg_end(b, nlh);
	}
	nftnl_set_free(s);
	return nlh ? 0 : -ENOMEM;
}

int nft_setelem_flush_msg(struct nft_batch *b, int family, const char *table, const char *set)
{
	struct nlmsghdr *nlh;
	char desc[96];

	snprintf(desc, sizeof(desc), "flush set %s %s %s", nft_family_name(family), table, set);
	nlh = nft_batch_msg_begin(b, NFT_MSG_DELSETELEM, nft_nfproto(family), 0, desc);
	if (!nlh)
		return -ENOMEM;
	/* No element list: the kernel removes every element. */
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, table);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, set);
	nft_batch_msg_end(b, nlh);
	return 0;
}

/* Bytes of a nest holding one NFTA_DATA_VALUE of len bytes. */
static size_t value_nest_bytes(size_t len)
{
	return 2 * MNL_ATTR_HDRLEN + MNL_ALIGN(len);
}

size_t nft_setelem_list_bytes(const struct nft_setelem *e, bool add)
{
	/* The list item nest, then what libnftnl puts in it: key, key end,
	 * then a verdict (data nest, verdict nest, code, chain) or a value. */
	size_t n = MNL_ATTR_HDRLEN + value_nest_bytes(e->key_len);

	if (e->key_end)
		n += value_nest_bytes(e->key_end_len);
	if (add && e->has_verdict) {
		n += 2 * MNL_ATTR_HDRLEN + MNL_ATTR_HDRLEN + MNL_ALIGN(sizeof(uint32_t));
		if (e->chain)
			n += MNL_ATTR_HDRLEN + MNL_ALIGN(strlen(e->chain) + 1);
	} else if (add && e->data) {
		n += value_nest_bytes(e->data_len);
	}
	return n;
}

void nft_setelem_writer_init(struct nft_setelem_writer *w, struct nft_batch *b, bool add, size_t max_per_msg)
{
	memset(w, 0, sizeof(*w));
	w->b = b;
	w->add = add;
	w->max_per_msg = max_per_msg;
}

/* Close the message being filled, if any, and start none. Its
 * description, which names its element count, is only known here. */
static int writer_flush(struct nft_setelem_writer *w)
{
	char desc[256];

	if (!w->nlh)
		return w->err;
	mnl_attr_nest_end(w->nlh, w->list);
	snprintf(desc, sizeof(desc), "%s %zu elements %s %s %s %s (from index %zu)", w->add ? "add" : "delete", w->n,
		 w->add ? "to" : "from", nft_family_name(w->family), w->table, w->set, w->done);
	nft_batch_msg_describe(w->b, desc);
	nft_batch_msg_end(w->b, w->nlh);
	w->nlh = NULL;
	w->list = NULL;
	w->done += w->n;
	w->n = 0;
	w->list_len = 0;
	return w->err;
}

/* Whether the message being filled is for set of table in family. The
 * callers pass the same few names again and again: pointers first. */
static bool writer_same_set(const struct nft_setelem_writer *w, int family, const char *table, const char *set)
{
	return w->family == family && (w->set_ptr == set || strcmp(w->set, set) == 0) &&
	       (w->table_ptr == table || strcmp(w->table, table) == 0);
}

/* A nest of type holding one NFTA_DATA_VALUE of len bytes. */
static void put_value_nest(struct nlmsghdr *nlh, uint16_t type, const void *value, size_t len)
{
	struct nlattr *nest = mnl_attr_nest_start(nlh, type);

	mnl_attr_put(nlh, NFTA_DATA_VALUE, len, value);
	mnl_attr_nest_end(nlh, nest);
}

int nft_setelem_writer_add(struct nft_setelem_writer *w, int family, const char *table, const char *set,
			   const struct nft_setelem *e)
{
	size_t bytes = nft_setelem_list_bytes(e, w->add);
	struct nlattr *item;

	if (w->err)
		return w->err;
	if (strlen(table) >= sizeof(w->table) || strlen(set) >= sizeof(w->set))
		return w->err = -ENAMETOOLONG;
	if (w->nlh && (!writer_same_set(w, family, table, set) || (w->max_per_msg && w->n == w->max_per_msg) ||
		       w->list_len + bytes > NFT_SETELEM_LIST_MAX))
		writer_flush(w);
	if (!w->nlh) {
		/* Written straight into the batch: no libnftnl object per
		 * element (a million of them at 100k services). */
		w->nlh = nft_batch_msg_begin(w->b, w->add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM,
					     nft_nfproto(family), w->add ? NLM_F_CREATE : 0, NULL);
		if (!w->nlh)
			return w->err = -ENOMEM;
		w->family = family;
		snprintf(w->table, sizeof(w->table), "%s", table);
		snprintf(w->set, sizeof(w->set), "%s", set);
		w->table_ptr = table;
		w->set_ptr = set;
		mnl_attr_put_strz(w->nlh, NFTA_SET_ELEM_LIST_TABLE, table);
		mnl_attr_put_strz(w->nlh, NFTA_SET_ELEM_LIST_SET, set);
		w->list = mnl_attr_nest_start(w->nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
	}
	item = mnl_attr_nest_start(w->nlh, NFTA_LIST_ELEM);
	put_value_nest(w->nlh, NFTA_SET_ELEM_KEY, e->key, e->key_len);
	if (e->key_end)
		put_value_nest(w->nlh, NFTA_SET_ELEM_KEY_END, e->key_end, e->key_end_len);
	if (w->add && e->has_verdict) {
		struct nlattr *data = mnl_attr_nest_start(w->nlh, NFTA_SET_ELEM_DATA);
		struct nlattr *verdict = mnl_attr_nest_start(w->nlh, NFTA_DATA_VERDICT);

		mnl_attr_put_u32(w->nlh, NFTA_VERDICT_CODE, htonl(e->verdict));
		if (e->chain)
			mnl_attr_put_strz(w->nlh, NFTA_VERDICT_CHAIN, e->chain);
		mnl_attr_nest_end(w->nlh, verdict);
		mnl_attr_nest_end(w->nlh, data);
	} else if (w->add && e->data) {
		put_value_nest(w->nlh, NFTA_SET_ELEM_DATA, e->data, e->data_len);
	}
	mnl_attr_nest_end(w->nlh, item);
	w->n++;
	w->list_len += bytes;
	return 0;
}

int nft_setelem_writer_finish(struct nft_setelem_writer *w)
{
	return writer_flush(w);
}
