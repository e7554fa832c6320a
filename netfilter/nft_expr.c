/* Mechanism: rules as libnftnl expressions and nft text (see nft_expr.h). */
#include "nft_expr.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>

#include "nft_batch.h"

int nft_rule_builder_init(struct nft_rule_builder *rb, int family, const char *table, const char *chain)
{
	nft_rule_builder_init_text(rb, family);
	rb->rule = nftnl_rule_alloc();
	if (!rb->rule) {
		rb->err = -ENOMEM;
		return rb->err;
	}
	nftnl_rule_set_str(rb->rule, NFTNL_RULE_TABLE, table);
	nftnl_rule_set_str(rb->rule, NFTNL_RULE_CHAIN, chain);
	nftnl_rule_set_u32(rb->rule, NFTNL_RULE_FAMILY, nft_nfproto(family));
	return 0;
}

void nft_rule_builder_init_text(struct nft_rule_builder *rb, int family)
{
	rb->family = family;
	rb->rule = NULL;
	rb->text[0] = '\0';
	rb->text_len = 0;
	rb->err = 0;
}

void nft_rule_builder_done(struct nft_rule_builder *rb)
{
	if (rb->rule)
		nftnl_rule_free(rb->rule); /* and its expressions */
	rb->rule = NULL;
}

int nft_rule_builder_comment(struct nft_rule_builder *rb, const char *comment)
{
	struct nftnl_udata_buf *u;

	nft_expr_text(rb, " comment \"%s\"", comment);
	if (rb->err)
		return rb->err;
	/* nft's own limit (NFT_USERDATA_MAXLEN) is 128 bytes, the NUL included;
	 * the user data buffer would take a few more. */
	if (strlen(comment) + 1 > NFTNL_UDATA_COMMENT_MAXLEN)
		return rb->err = -EINVAL;
	if (!rb->rule)
		return 0;
	u = nftnl_udata_buf_alloc(NFTNL_UDATA_COMMENT_MAXLEN + 8);
	if (!u)
		return rb->err = -ENOMEM;
	if (!nftnl_udata_put_strz(u, NFTNL_UDATA_RULE_COMMENT, comment)) {
		nftnl_udata_buf_free(u);
		return rb->err = -EINVAL;
	}
	nftnl_rule_set_data(rb->rule, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(u), nftnl_udata_buf_len(u));
	nftnl_udata_buf_free(u);
	return 0;
}

int nft_rule_builder_msg(struct nft_rule_builder *rb, struct nft_batch *b)
{
	struct nlmsghdr *nlh;
	char desc[160];

	if (rb->err)
		return rb->err;
	if (!rb->rule)
		return -EINVAL;
	/* Cut to what a batch keeps of a description anyway. */
	snprintf(desc, sizeof(desc), "add rule %s %s %s %.96s", nft_family_name(rb->family),
		 nftnl_rule_get_str(rb->rule, NFTNL_RULE_TABLE), nftnl_rule_get_str(rb->rule, NFTNL_RULE_CHAIN),
		 rb->text);
	nlh = nft_batch_msg_begin(b, NFT_MSG_NEWRULE, nft_nfproto(rb->family), NLM_F_CREATE | NLM_F_APPEND, desc);
	if (!nlh)
		return -ENOMEM;
	nftnl_rule_nlmsg_build_payload(nlh, rb->rule);
	nft_batch_msg_end(b, nlh);
	return 0;
}

void nft_expr_text(struct nft_rule_builder *rb, const char *fmt, ...)
{
	size_t room = sizeof(rb->text) - rb->text_len;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(rb->text + rb->text_len, room, fmt, ap);
	va_end(ap);
	/* Cut, not overflowed: the length stops at the last byte. */
	if (n > 0)
		rb->text_len = (size_t)n < room ? rb->text_len + (size_t)n : sizeof(rb->text) - 1;
}

struct nftnl_expr *nft_expr_add(struct nft_rule_builder *rb, const char *name)
{
	struct nftnl_expr *e;

	if (!rb->rule || rb->err)
		return NULL;
	e = nftnl_expr_alloc(name);
	if (!e) {
		rb->err = -ENOMEM;
		return NULL;
	}
	nftnl_rule_add_expr(rb->rule, e); /* the rule owns it from here */
	return e;
}

uint32_t nft_expr_reg(unsigned word)
{
	return NFT_REG32_00 + word;
}

size_t nft_expr_addr_len(const struct nft_rule_builder *rb)
{
	return rb->family == AF_INET6 ? 16 : 4;
}

/* Words len bytes take (fields are padded to whole registers). */
static unsigned words_of(size_t len)
{
	return (unsigned)((len + 3) / 4);
}

unsigned nft_expr_load_payload(struct nft_rule_builder *rb, uint32_t base, uint32_t offset, uint32_t len,
			       unsigned word)
{
	struct nftnl_expr *e = nft_expr_add(rb, "payload");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, nft_expr_reg(word));
	}
	return word + words_of(len);
}

unsigned nft_expr_load_addr(struct nft_rule_builder *rb, bool dst, unsigned word)
{
	/* Offsets in the IPv4 and IPv6 headers. */
	uint32_t off = rb->family == AF_INET6 ? (dst ? 24 : 8) : (dst ? 16 : 12);

	nft_expr_text(rb, "%s %s", nft_family_name(rb->family), dst ? "daddr" : "saddr");
	return nft_expr_load_payload(rb, NFT_PAYLOAD_NETWORK_HEADER, off, (uint32_t)nft_expr_addr_len(rb), word);
}

unsigned nft_expr_load_l4proto(struct nft_rule_builder *rb, unsigned word)
{
	nft_expr_text(rb, "meta l4proto");
	return nft_expr_load_meta(rb, NFT_META_L4PROTO, word);
}

unsigned nft_expr_load_dport(struct nft_rule_builder *rb, unsigned word)
{
	nft_expr_text(rb, "th dport");
	return nft_expr_load_payload(rb, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, word);
}

unsigned nft_expr_load_numgen(struct nft_rule_builder *rb, unsigned mod, uint32_t offset, unsigned word)
{
	struct nftnl_expr *e = nft_expr_add(rb, "numgen");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_NG_DREG, nft_expr_reg(word));
		nftnl_expr_set_u32(e, NFTNL_EXPR_NG_MODULUS, mod);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NG_TYPE, NFT_NG_RANDOM);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NG_OFFSET, offset);
	}
	nft_expr_text(rb, "numgen random mod %u", mod);
	if (offset)
		nft_expr_text(rb, " offset %u", offset);
	return word + 1;
}

unsigned nft_expr_load_meta(struct nft_rule_builder *rb, uint32_t key, unsigned word)
{
	struct nftnl_expr *e = nft_expr_add(rb, "meta");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, nft_expr_reg(word));
	}
	/* Interface names take IFNAMSIZ bytes; every other key one register. */
	return word + (key == NFT_META_IIFNAME || key == NFT_META_OIFNAME ? 4 : 1);
}

unsigned nft_expr_load_ct(struct nft_rule_builder *rb, uint32_t key, unsigned word)
{
	struct nftnl_expr *e = nft_expr_add(rb, "ct");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, nft_expr_reg(word));
	}
	return word + 1;
}

/* "fib daddr|saddr type": the address type of one of the packet's
 * addresses (flags NFTA_FIB_F_DADDR or NFTA_FIB_F_SADDR). */
static unsigned load_fib_type(struct nft_rule_builder *rb, uint32_t flags, unsigned word)
{
	struct nftnl_expr *e = nft_expr_add(rb, "fib");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, flags);
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, nft_expr_reg(word));
	}
	return word + 1;
}

unsigned nft_expr_load_fib_daddr_type(struct nft_rule_builder *rb, unsigned word)
{
	return load_fib_type(rb, NFTA_FIB_F_DADDR, word);
}

void nft_expr_cmp(struct nft_rule_builder *rb, unsigned word, uint32_t op, const void *data, size_t len)
{
	struct nftnl_expr *e = nft_expr_add(rb, "cmp");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, nft_expr_reg(word));
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
		nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, (uint32_t)len);
	}
}

void nft_expr_bitwise(struct nft_rule_builder *rb, unsigned word, const void *mask, const void *xor, size_t len)
{
	struct nftnl_expr *e = nft_expr_add(rb, "bitwise");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, nft_expr_reg(word));
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, nft_expr_reg(word));
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, (uint32_t)len);
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, (uint32_t)len);
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, xor, (uint32_t)len);
	}
}

void nft_expr_lookup(struct nft_rule_builder *rb, unsigned key_word, const char *set, int dreg, bool inverted)
{
	struct nftnl_expr *e = nft_expr_add(rb, "lookup");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, nft_expr_reg(key_word));
		nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
		if (dreg >= 0)
			nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, (uint32_t)dreg);
		if (inverted)
			nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
	}
}

void nft_expr_dynset_update(struct nft_rule_builder *rb, const char *set, unsigned key_word, unsigned data_word)
{
	struct nftnl_expr *e = nft_expr_add(rb, "dynset");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SREG_KEY, nft_expr_reg(key_word));
		nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SREG_DATA, nft_expr_reg(data_word));
		nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
		nftnl_expr_set_str(e, NFTNL_EXPR_DYNSET_SET_NAME, set);
	}
}

void nft_expr_store_meta(struct nft_rule_builder *rb, uint32_t key, unsigned word)
{
	struct nftnl_expr *e = nft_expr_add(rb, "meta");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, nft_expr_reg(word));
	}
}

void nft_expr_verdict(struct nft_rule_builder *rb, int code, const char *chain)
{
	struct nftnl_expr *e = nft_expr_add(rb, "immediate");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)code);
		if (chain)
			nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
	}
	switch (code) {
	case NF_DROP:
		nft_expr_text(rb, "drop");
		break;
	case NF_ACCEPT:
		nft_expr_text(rb, "accept");
		break;
	case NFT_RETURN:
		nft_expr_text(rb, "return");
		break;
	case NFT_JUMP:
		nft_expr_text(rb, "jump %s", chain);
		break;
	case NFT_GOTO:
		nft_expr_text(rb, "goto %s", chain);
		break;
	default:
		nft_expr_text(rb, "continue");
		break;
	}
}

void nft_expr_nat(struct nft_rule_builder *rb, uint32_t type, unsigned addr_word, int proto_word)
{
	struct nftnl_expr *e = nft_expr_add(rb, "nat");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, type);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, nft_nfproto(rb->family));
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, nft_expr_reg(addr_word));
		if (proto_word >= 0)
			nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, nft_expr_reg((unsigned)proto_word));
	}
}

void nft_expr_redirect(struct nft_rule_builder *rb, unsigned proto_word)
{
	struct nftnl_expr *e = nft_expr_add(rb, "redir");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, nft_expr_reg(proto_word));
		nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
	}
}

void nft_expr_masquerade(struct nft_rule_builder *rb, uint32_t flags)
{
	static const struct { uint32_t flag; const char *name; } names[] = {
		{ NF_NAT_RANGE_PROTO_RANDOM, "random" },
		{ NF_NAT_RANGE_PROTO_RANDOM_FULLY, "fully-random" },
		{ NF_NAT_RANGE_PERSISTENT, "persistent" },
	};
	struct nftnl_expr *e = nft_expr_add(rb, "masq");
	const char *sep = " ";

	/* No flags: no attribute at all, as nft sends it. */
	if (e && flags)
		nftnl_expr_set_u32(e, NFTNL_EXPR_MASQ_FLAGS, flags);
	nft_expr_text(rb, "masquerade");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (flags & names[i].flag) {
			nft_expr_text(rb, "%s%s", sep, names[i].name);
			sep = ",";
		}
	}
}

void nft_expr_reject_tcp_reset(struct nft_rule_builder *rb)
{
	struct nftnl_expr *e = nft_expr_add(rb, "reject");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_TCP_RST);
		nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, 0);
	}
	nft_expr_text(rb, "reject with tcp reset");
}

void nft_expr_reject_port_unreachable(struct nft_rule_builder *rb)
{
	struct nftnl_expr *e = nft_expr_add(rb, "reject");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_ICMP_UNREACH);
		/* ICMP port unreachable (3) / ICMPv6 port unreachable (4) */
		nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, rb->family == AF_INET6 ? 4 : 3);
	}
	nft_expr_text(rb, "reject");
}

unsigned nft_expr_load_fib_saddr_type(struct nft_rule_builder *rb, unsigned word)
{
	return load_fib_type(rb, NFTA_FIB_F_SADDR, word);
}

void nft_expr_match_ct_new(struct nft_rule_builder *rb)
{
	uint32_t bit = NF_CT_STATE_BIT(IP_CT_NEW), zero = 0;

	nft_expr_load_ct(rb, NFT_CT_STATE, 0);
	nft_expr_bitwise(rb, 0, &bit, &zero, 4);
	nft_expr_cmp(rb, 0, NFT_CMP_NEQ, &zero, 4);
	nft_expr_text(rb, "ct state new ");
}
