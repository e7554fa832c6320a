/* Fuzz target: the nf_tables message builders of netfilter/ (nft_table.c,
 * nft_set.c, nft_expr.c, through nft_batch.c), built, then parsed back
 * with libnftnl and compared. No socket, no kernel.
 *
 * The input is a little program: each operation takes an opcode byte and
 * its operands off the front (fuzz_check.h's reader; missing bytes read
 * as 0): add or delete a table; add a regular or base chain; empty or
 * delete a chain; declare a set or map (key fields laid out with
 * nft_concat_put_*); flush a set; write a run of up to 3000 elements over
 * one or two sets through one nft_setelem_writer (adds or deletes, keys,
 * interval ends, values, verdicts, a per-message cap); build a rule of up
 * to 32 expressions with an optional comment.
 *
 * Checked, message by message: header (type, NLM_F_ACK, family),
 * description, and every field libnftnl reads back against what was asked
 * for: table, chain, hook and priority; the set declaration; each element
 * in order, every element list under the 16-bit attribute bound and each
 * element no bigger than nft_setelem_list_bytes says, messages split only
 * when the set changes, the cap is reached or the list is full; each
 * rule's expressions one by one (kind, registers, offsets, data, set
 * names, verdicts), the parsed rule built again giving the same bytes, and
 * its text the same as a text-only builder's, cut at NFT_RULE_TEXT_MAX.
 * Seeds: corpus/nft_messages/ (binary programs). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include "fuzz_check.h"
#include "inet.h"
#include "nft_batch.h"
#include "nft_expr.h"
#include "nft_set.h"
#include "nft_table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME_MAX_LEN 48   /* tables, chains, sets: well inside one message */
#define MAX_OPS 24
#define MAX_EXPRS 32
#define MAX_ELEMS 3000
#define DATA_MAX 64       /* NFT_DATA_VALUE_MAXLEN */
#define RUN_MSGS 16       /* element messages one run may need, about */
#define MAX_MSGS (MAX_OPS * 2 * RUN_MSGS) /* generous: runs split by set, cap and size */

/* One expression as the harness asked for it. */
struct exp_expr {
	const char *name;           /* libnftnl kind */
	uint32_t a[6];              /* attribute values, per kind (see check_expr) */
	bool has_a5;                /* an optional attribute is present */
	uint8_t data[16], data2[16];
	uint32_t len;
	char str[NAME_MAX_LEN + 1]; /* set name or chain */
};

struct exp_elem {
	uint8_t key[DATA_MAX], key_end[DATA_MAX], data[DATA_MAX];
	uint32_t key_len, key_end_len, data_len;
	bool has_key_end, has_data, has_verdict, has_chain;
	uint32_t verdict;
	char chain[NAME_MAX_LEN + 1];
	int set;                    /* 0 or 1: which of the run's sets */
};

/* One message as the harness expects to read it back. */
struct exp_msg {
	uint16_t type;              /* NFT_MSG_* */
	int family;
	char table[NAME_MAX_LEN + 1], name[NAME_MAX_LEN + 1];
	bool create;
	/* chains */
	bool base;
	char chain_type[8];
	uint32_t hook;
	int32_t prio;
	/* sets */
	struct nft_set_spec spec;
	uint8_t field_len[8];
	/* element messages: a slice of the run's elements */
	const struct exp_elem *elems;
	size_t n_elems;
	/* rules */
	struct nftnl_rule *rule;    /* the builder's, owned here */
	struct exp_expr *exprs;
	size_t n_exprs;
	char text[NFT_RULE_TEXT_MAX];
};

struct prog {
	struct fuzz_reader in;
	struct nft_batch *b;
	struct exp_msg msgs[MAX_MSGS];
	size_t n_msgs;
	struct exp_elem *runs[MAX_OPS]; /* element arrays, freed at the end */
	size_t n_runs;
};

static int pick_family(struct fuzz_reader *in)
{
	return fuzz_bool(in) ? AF_INET6 : AF_INET;
}

static void pick_name(struct fuzz_reader *in, char *dst)
{
	fuzz_str(in, dst, NAME_MAX_LEN);
	if (!dst[0])
		snprintf(dst, NAME_MAX_LEN + 1, "f");
}

static struct exp_msg *msg_push(struct prog *p, uint16_t type, int family)
{
	struct exp_msg *m;

	FUZZ_CHECK(p->n_msgs < MAX_MSGS);
	m = &p->msgs[p->n_msgs++];
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->family = family;
	return m;
}

/* ---- building ---------------------------------------------------------- */

static void op_table(struct prog *p)
{
	int family = pick_family(&p->in);
	bool remove = fuzz_bool(&p->in);
	struct exp_msg *m = msg_push(p, remove ? NFT_MSG_DELTABLE : NFT_MSG_NEWTABLE, family);

	pick_name(&p->in, m->table);
	m->create = !remove;
	FUZZ_CHECK((remove ? nft_table_remove_msg : nft_table_add_msg)(p->b, family, m->table) == 0);
}

static void op_chain(struct prog *p)
{
	static const char *const types[] = { "filter", "nat", "route" };
	int family = pick_family(&p->in);
	struct exp_msg *m = msg_push(p, NFT_MSG_NEWCHAIN, family);
	struct nft_base_chain base;

	pick_name(&p->in, m->table);
	pick_name(&p->in, m->name);
	m->create = true;
	m->base = fuzz_bool(&p->in);
	if (m->base) {
		snprintf(m->chain_type, sizeof(m->chain_type), "%s", types[fuzz_u8(&p->in) % 3]);
		m->hook = fuzz_u8(&p->in) % NF_INET_NUMHOOKS;
		m->prio = (int32_t)fuzz_u32(&p->in);
		base = (struct nft_base_chain){ .type = m->chain_type, .hook = m->hook, .prio = m->prio };
		FUZZ_CHECK(strcmp(nft_hook_name(m->hook), "?") != 0);
	}
	FUZZ_CHECK(nft_chain_add_msg(p->b, family, m->table, m->name, m->base ? &base : NULL) == 0);
}

static void op_chain_del(struct prog *p)
{
	int family = pick_family(&p->in);
	bool remove = fuzz_bool(&p->in);
	struct exp_msg *m = msg_push(p, remove ? NFT_MSG_DELCHAIN : NFT_MSG_DELRULE, family);

	pick_name(&p->in, m->table);
	pick_name(&p->in, m->name);
	if (remove)
		FUZZ_CHECK(nft_chain_remove_msg(p->b, family, m->table, m->name) == 0);
	else
		FUZZ_CHECK(nft_chain_empty_msg(p->b, family, m->table, m->name) == 0);
}

/* Fields of a concatenated key: 0 address of the family, 1 protocol,
 * 2 port, 3 mark. Writes one key into buf and returns its length; types
 * and field lengths go to the caller's arrays. */
static size_t key_layout(struct fuzz_reader *in, int family, uint8_t *buf, uint32_t *types,
			 uint8_t *flen, size_t *ret_n)
{
	size_t n = 1 + fuzz_u8(in) % 4, off = 0;

	memset(buf, 0, DATA_MAX);
	for (size_t i = 0; i < n; i++) {
		size_t at = off;

		switch (fuzz_u8(in) % 4) {
		case 0: {
			struct inet_addr a = { .family = (sa_family_t)family };

			fuzz_bytes(in, a.u.bytes, family == AF_INET6 ? 16 : 4);
			nft_concat_put_addr(buf, &off, &a);
			types[i] = family == AF_INET6 ? NFT_DTYPE_IPV6_ADDR : NFT_DTYPE_IPV4_ADDR;
			flen[i] = family == AF_INET6 ? 16 : 4;
			FUZZ_CHECK(off - at == flen[i] && memcmp(buf + at, a.u.bytes, flen[i]) == 0);
			break;
		}
		case 1: {
			enum inet_proto pr = (enum inet_proto)(fuzz_u8(in) % 3);
			static const uint8_t ipproto[] = { IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP };

			nft_concat_put_proto(buf, &off, pr);
			types[i] = NFT_DTYPE_INET_PROTO;
			flen[i] = 1;
			FUZZ_CHECK(off - at == 4 && buf[at] == ipproto[pr] && !buf[at + 1] && !buf[at + 2] &&
				   !buf[at + 3]);
			break;
		}
		case 2: {
			uint16_t port = fuzz_u16(in);

			nft_concat_put_port(buf, &off, port);
			types[i] = NFT_DTYPE_INET_SERVICE;
			flen[i] = 2;
			FUZZ_CHECK(off - at == 4 && buf[at] == port >> 8 && buf[at + 1] == (port & 0xff) &&
				   !buf[at + 2] && !buf[at + 3]);
			break;
		}
		default: {
			uint32_t v = fuzz_u32(in);

			nft_concat_put_u32(buf, &off, v);
			types[i] = NFT_DTYPE_MARK;
			flen[i] = 4;
			FUZZ_CHECK(off - at == 4 && memcmp(buf + at, &v, 4) == 0);
			break;
		}
		}
	}
	*ret_n = n;
	return off;
}

static void op_set(struct prog *p)
{
	int family = pick_family(&p->in);
	bool create = fuzz_bool(&p->in);
	struct exp_msg *m = msg_push(p, NFT_MSG_NEWSET, family);
	struct nft_set_spec *s = &m->spec;
	uint8_t key[DATA_MAX];
	uint32_t types[4], t = 0;
	size_t n;

	pick_name(&p->in, m->table);
	pick_name(&p->in, m->name);
	m->create = create;
	s->table = m->table;
	s->name = m->name;
	s->family = family;
	s->flags = fuzz_u32(&p->in) & (NFT_SET_ANONYMOUS | NFT_SET_CONSTANT | NFT_SET_INTERVAL | NFT_SET_MAP |
				       NFT_SET_TIMEOUT | NFT_SET_EVAL | NFT_SET_CONCAT);
	s->key_len = (uint32_t)key_layout(&p->in, family, key, types, m->field_len, &n);
	s->key_type = nft_concat_type(types, n);
	for (size_t i = 0; i < n; i++)
		t = t << 6 | types[i];
	FUZZ_CHECK(s->key_type == t);
	if (s->flags & NFT_SET_MAP) {
		if (fuzz_bool(&p->in)) {
			s->data_type = NFT_DATA_VERDICT;
		} else {
			s->data_type = fuzz_u32(&p->in);
			s->data_len = 1 + fuzz_u8(&p->in) % DATA_MAX;
		}
	}
	if (s->flags & NFT_SET_CONCAT) {
		s->field_len = m->field_len;
		s->n_fields = (uint32_t)n;
	}
	s->size = fuzz_u32(&p->in);
	s->timeout_ms = fuzz_bool(&p->in) ? fuzz_u32(&p->in) : 0;
	s->id = fuzz_u32(&p->in);
	FUZZ_CHECK(nft_set_spec_msg(p->b, s, create) == 0);
}

static void op_flush(struct prog *p)
{
	int family = pick_family(&p->in);
	struct exp_msg *m = msg_push(p, NFT_MSG_DELSETELEM, family);

	pick_name(&p->in, m->table);
	pick_name(&p->in, m->name);
	FUZZ_CHECK(nft_setelem_flush_msg(p->b, family, m->table, m->name) == 0);
}

/* A run of elements through one writer, over one or two sets; then the
 * messages it should have made, found by packing the elements as the
 * writer's contract says. */
static void op_elems(struct prog *p)
{
	struct nft_setelem_writer w;
	int family[2];
	char table[2][NAME_MAX_LEN + 1], set[2][NAME_MAX_LEN + 1];
	bool add = fuzz_bool(&p->in);
	size_t cap = fuzz_u8(&p->in), n = fuzz_u8(&p->in);
	uint8_t switch_every = fuzz_u8(&p->in);
	uint32_t key_len = 1 + fuzz_u8(&p->in) % DATA_MAX, data_len = 1 + fuzz_u8(&p->in) % DATA_MAX;
	uint8_t shape = fuzz_u8(&p->in), seed = fuzz_u8(&p->in);
	char chain[NAME_MAX_LEN + 1];
	struct exp_elem *el;
	size_t list = 0, in_msg = 0;
	struct exp_msg *m = NULL;

	/* Long runs (to fill messages) only when asked: they are slow. */
	if (n >= 0xf0)
		n = fuzz_u16(&p->in) % (MAX_ELEMS + 1);
	cap = cap > 200 ? 0 : cap; /* mostly no cap: the byte bound decides */
	/* A bounded number of messages (each takes NFT_BATCH_MSG_MAX). */
	if (cap && n > cap * (RUN_MSGS / 2))
		n = cap * (RUN_MSGS / 2);
	if (switch_every && n > (size_t)switch_every * (RUN_MSGS / 2))
		n = (size_t)switch_every * (RUN_MSGS / 2);
	for (int i = 0; i < 2; i++) {
		family[i] = pick_family(&p->in);
		pick_name(&p->in, table[i]);
		pick_name(&p->in, set[i]);
	}
	/* Two sets of the same family, table and name are one set. */
	if (family[0] == family[1] && !strcmp(table[0], table[1]) && !strcmp(set[0], set[1]))
		switch_every = 0;
	pick_name(&p->in, chain);
	el = calloc(n ? n : 1, sizeof(*el));
	FUZZ_CHECK(el);
	p->runs[p->n_runs++] = el;

	nft_setelem_writer_init(&w, p->b, add, cap);
	for (size_t i = 0; i < n; i++) {
		struct exp_elem *e = &el[i];
		struct nft_setelem se = { 0 };
		size_t bytes;

		e->set = switch_every ? (int)(i / switch_every % 2) : 0;
		e->key_len = key_len;
		for (uint32_t k = 0; k < key_len; k++)
			e->key[k] = (uint8_t)(seed + i * 7 + k + (i >> 8));
		se.key = e->key;
		se.key_len = key_len;
		if (shape & 1) {
			e->has_key_end = true;
			e->key_end_len = key_len;
			memcpy(e->key_end, e->key, key_len);
			e->key_end[key_len - 1] ^= 0xff;
			se.key_end = e->key_end;
			se.key_end_len = key_len;
		}
		if (shape & 2) {
			/* A value with a verdict: the verdict wins (nft_set.h). */
			e->has_verdict = true;
			e->verdict = (shape & 4) ? (uint32_t)NFT_JUMP : (uint32_t)NF_DROP;
			se.has_verdict = true;
			se.verdict = e->verdict;
			if (shape & 4) {
				e->has_chain = true;
				snprintf(e->chain, sizeof(e->chain), "%s", chain);
				se.chain = e->chain;
			}
		}
		if (shape & 8) {
			e->has_data = true;
			e->data_len = data_len;
			for (uint32_t k = 0; k < data_len; k++)
				e->data[k] = (uint8_t)(seed ^ (i + k));
			se.data = e->data;
			se.data_len = data_len;
		}
		FUZZ_CHECK(nft_setelem_writer_add(&w, family[e->set], table[e->set], set[e->set], &se) == 0);

		/* The messages it should make: a new one when the set changes,
		 * the cap is reached or the list would pass its bound. */
		bytes = nft_setelem_list_bytes(&se, add);
		if (!m || el[i - 1].set != e->set || (cap && in_msg == cap) || list + bytes > NFT_SETELEM_LIST_MAX) {
			m = msg_push(p, add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM, family[e->set]);
			snprintf(m->table, sizeof(m->table), "%s", table[e->set]);
			snprintf(m->name, sizeof(m->name), "%s", set[e->set]);
			m->create = add;
			m->elems = e;
			list = in_msg = 0;
		}
		m->n_elems++;
		in_msg++;
		list += bytes;
	}
	FUZZ_CHECK(nft_setelem_writer_finish(&w) == 0);
}

/* ---- rules ---- */

struct rule_ctx {
	struct nft_rule_builder rb, tb; /* with a libnftnl rule, and text only */
	struct exp_msg *m;
	char text[4096];                /* the full text, uncut */
	size_t text_len;
};

static void text(struct rule_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text(struct rule_ctx *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(c->text + c->text_len, sizeof(c->text) - c->text_len, fmt, ap);
	va_end(ap);
	FUZZ_CHECK(n >= 0 && (size_t)n < sizeof(c->text) - c->text_len);
	c->text_len += (size_t)n;
}

static struct exp_expr *expect(struct rule_ctx *c, const char *name)
{
	struct exp_expr *x = &c->m->exprs[c->m->n_exprs++];

	memset(x, 0, sizeof(*x));
	x->name = name;
	return x;
}

static unsigned pick_word(struct fuzz_reader *in)
{
	return fuzz_u8(in) % 16;
}

static void one_expr(struct prog *p, struct rule_ctx *c)
{
	struct fuzz_reader *in = &p->in;
	struct nft_rule_builder *rb = &c->rb, *tb = &c->tb;
	bool v6 = rb->family == AF_INET6;
	unsigned word = pick_word(in), w1, w2;
	struct exp_expr *x;

	switch (fuzz_u8(in) % 19) {
	case 0: { /* ip daddr / saddr */
		bool dst = fuzz_bool(in);

		w1 = nft_expr_load_addr(rb, dst, word);
		w2 = nft_expr_load_addr(tb, dst, word);
		FUZZ_CHECK(w1 == word + (v6 ? 4 : 1) && w2 == w1);
		x = expect(c, "payload");
		x->a[0] = NFT_PAYLOAD_NETWORK_HEADER;
		x->a[1] = v6 ? (dst ? 24 : 8) : (dst ? 16 : 12);
		x->a[2] = v6 ? 16 : 4;
		x->a[3] = nft_expr_reg(word);
		text(c, "%s %s", v6 ? "ip6" : "ip", dst ? "daddr" : "saddr");
		break;
	}
	case 1:
		w1 = nft_expr_load_l4proto(rb, word);
		w2 = nft_expr_load_l4proto(tb, word);
		FUZZ_CHECK(w1 == word + 1 && w2 == w1);
		x = expect(c, "meta");
		x->a[0] = NFT_META_L4PROTO;
		x->a[1] = nft_expr_reg(word);
		text(c, "meta l4proto");
		break;
	case 2:
		w1 = nft_expr_load_dport(rb, word);
		w2 = nft_expr_load_dport(tb, word);
		FUZZ_CHECK(w1 == word + 1 && w2 == w1);
		x = expect(c, "payload");
		x->a[0] = NFT_PAYLOAD_TRANSPORT_HEADER;
		x->a[1] = 2;
		x->a[2] = 2;
		x->a[3] = nft_expr_reg(word);
		text(c, "th dport");
		break;
	case 3: {
		unsigned mod = fuzz_u32(in);
		uint32_t off = fuzz_bool(in) ? fuzz_u32(in) : 0;

		w1 = nft_expr_load_numgen(rb, mod, off, word);
		w2 = nft_expr_load_numgen(tb, mod, off, word);
		FUZZ_CHECK(w1 == word + 1 && w2 == w1);
		x = expect(c, "numgen");
		x->a[0] = nft_expr_reg(word);
		x->a[1] = mod;
		x->a[2] = NFT_NG_RANDOM;
		x->a[3] = off;
		text(c, "numgen random mod %u", mod);
		if (off)
			text(c, " offset %u", off);
		break;
	}
	case 4: {
		static const uint32_t keys[] = { NFT_META_MARK, NFT_META_IIFNAME, NFT_META_OIFNAME,
						 NFT_META_NFPROTO, NFT_META_SKUID };
		uint32_t key = keys[fuzz_u8(in) % 5];
		bool ifname = key == NFT_META_IIFNAME || key == NFT_META_OIFNAME;

		w1 = nft_expr_load_meta(rb, key, word);
		w2 = nft_expr_load_meta(tb, key, word);
		FUZZ_CHECK(w1 == word + (ifname ? 4 : 1) && w2 == w1);
		x = expect(c, "meta");
		x->a[0] = key;
		x->a[1] = nft_expr_reg(word);
		break;
	}
	case 5: {
		uint32_t key = fuzz_u8(in) % 8;

		w1 = nft_expr_load_ct(rb, key, word);
		w2 = nft_expr_load_ct(tb, key, word);
		FUZZ_CHECK(w1 == word + 1 && w2 == w1);
		x = expect(c, "ct");
		x->a[0] = key;
		x->a[1] = nft_expr_reg(word);
		break;
	}
	case 6:
		w1 = nft_expr_load_fib_daddr_type(rb, word);
		w2 = nft_expr_load_fib_daddr_type(tb, word);
		FUZZ_CHECK(w1 == word + 1 && w2 == w1);
		x = expect(c, "fib");
		x->a[0] = NFT_FIB_RESULT_ADDRTYPE;
		x->a[1] = NFTA_FIB_F_DADDR;
		x->a[2] = nft_expr_reg(word);
		break;
	case 7: {
		uint32_t op = fuzz_u8(in) % 6; /* NFT_CMP_EQ..NFT_CMP_GTE */

		x = expect(c, "cmp");
		x->len = 1 + fuzz_u8(in) % 16;
		fuzz_bytes(in, x->data, x->len);
		x->a[0] = nft_expr_reg(word);
		x->a[1] = op;
		nft_expr_cmp(rb, word, op, x->data, x->len);
		nft_expr_cmp(tb, word, op, x->data, x->len);
		break;
	}
	case 8:
		x = expect(c, "bitwise");
		x->len = 1 + fuzz_u8(in) % 16;
		fuzz_bytes(in, x->data, x->len);
		fuzz_bytes(in, x->data2, x->len);
		x->a[0] = nft_expr_reg(word);
		nft_expr_bitwise(rb, word, x->data, x->data2, x->len);
		nft_expr_bitwise(tb, word, x->data, x->data2, x->len);
		break;
	case 9: {
		int dreg = fuzz_bool(in) ? -1 : fuzz_bool(in) ? NFT_REG_VERDICT : (int)nft_expr_reg(pick_word(in));
		bool inv = fuzz_bool(in);

		x = expect(c, "lookup");
		pick_name(in, x->str);
		x->a[0] = nft_expr_reg(word);
		x->a[1] = (uint32_t)dreg;
		x->has_a5 = dreg >= 0;
		x->a[2] = inv ? NFT_LOOKUP_F_INV : 0;
		nft_expr_lookup(rb, word, x->str, dreg, inv);
		nft_expr_lookup(tb, word, x->str, dreg, inv);
		break;
	}
	case 10: {
		unsigned dw = pick_word(in);

		x = expect(c, "dynset");
		pick_name(in, x->str);
		x->a[0] = nft_expr_reg(word);
		x->a[1] = nft_expr_reg(dw);
		nft_expr_dynset_update(rb, x->str, word, dw);
		nft_expr_dynset_update(tb, x->str, word, dw);
		break;
	}
	case 11: {
		uint32_t key = fuzz_bool(in) ? NFT_META_MARK : NFT_META_PRIORITY;

		x = expect(c, "meta");
		x->a[0] = key;
		x->a[1] = nft_expr_reg(word);
		x->has_a5 = true; /* a store: sreg, not dreg */
		nft_expr_store_meta(rb, key, word);
		nft_expr_store_meta(tb, key, word);
		break;
	}
	case 12: {
		static const int codes[] = { NF_ACCEPT, NF_DROP, NFT_RETURN, NFT_JUMP, NFT_GOTO, NFT_CONTINUE };
		int code = codes[fuzz_u8(in) % 6];
		bool jump = code == NFT_JUMP || code == NFT_GOTO;

		x = expect(c, "immediate");
		if (jump)
			pick_name(in, x->str);
		x->a[0] = (uint32_t)code;
		x->has_a5 = jump;
		nft_expr_verdict(rb, code, jump ? x->str : NULL);
		nft_expr_verdict(tb, code, jump ? x->str : NULL);
		switch (code) {
		case NF_ACCEPT: text(c, "accept"); break;
		case NF_DROP: text(c, "drop"); break;
		case NFT_RETURN: text(c, "return"); break;
		case NFT_JUMP: text(c, "jump %s", x->str); break;
		case NFT_GOTO: text(c, "goto %s", x->str); break;
		default: text(c, "continue"); break;
		}
		break;
	}
	case 13: {
		uint32_t type = fuzz_bool(in) ? NFT_NAT_DNAT : NFT_NAT_SNAT;
		int pw = fuzz_bool(in) ? -1 : (int)pick_word(in);

		x = expect(c, "nat");
		x->a[0] = type;
		x->a[1] = v6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
		x->a[2] = nft_expr_reg(word);
		x->a[3] = pw >= 0 ? nft_expr_reg((unsigned)pw) : 0;
		x->has_a5 = pw >= 0;
		nft_expr_nat(rb, type, word, pw);
		nft_expr_nat(tb, type, word, pw);
		break;
	}
	case 14:
		x = expect(c, "redir");
		x->a[0] = nft_expr_reg(word);
		nft_expr_redirect(rb, word);
		nft_expr_redirect(tb, word);
		break;
	case 15: {
		uint32_t flags = fuzz_u8(in) & (NF_NAT_RANGE_PROTO_RANDOM | NF_NAT_RANGE_PROTO_RANDOM_FULLY |
						NF_NAT_RANGE_PERSISTENT);
		const char *sep = " ";

		x = expect(c, "masq");
		x->a[0] = flags;
		nft_expr_masquerade(rb, flags);
		nft_expr_masquerade(tb, flags);
		text(c, "masquerade");
		if (flags & NF_NAT_RANGE_PROTO_RANDOM) {
			text(c, "%srandom", sep);
			sep = ",";
		}
		if (flags & NF_NAT_RANGE_PROTO_RANDOM_FULLY) {
			text(c, "%sfully-random", sep);
			sep = ",";
		}
		if (flags & NF_NAT_RANGE_PERSISTENT)
			text(c, "%spersistent", sep);
		break;
	}
	case 16:
		x = expect(c, "reject");
		x->a[0] = NFT_REJECT_TCP_RST;
		x->a[1] = 0;
		nft_expr_reject_tcp_reset(rb);
		nft_expr_reject_tcp_reset(tb);
		text(c, "reject with tcp reset");
		break;
	case 17:
		x = expect(c, "reject");
		x->a[0] = NFT_REJECT_ICMP_UNREACH;
		x->a[1] = v6 ? 4 : 3;
		nft_expr_reject_port_unreachable(rb);
		nft_expr_reject_port_unreachable(tb);
		text(c, "reject");
		break;
	default: { /* caller text between expressions */
		char s[NAME_MAX_LEN + 1];

		fuzz_str(in, s, NAME_MAX_LEN);
		nft_expr_text(rb, " %s ", s);
		nft_expr_text(tb, " %s ", s);
		text(c, " %s ", s);
		break;
	}
	}
	(void)w2;
}

static void op_rule(struct prog *p)
{
	int family = pick_family(&p->in);
	struct exp_msg *m = msg_push(p, NFT_MSG_NEWRULE, family);
	struct rule_ctx c = { .m = m };
	size_t n;
	int r;

	pick_name(&p->in, m->table);
	pick_name(&p->in, m->name);
	m->create = true;
	FUZZ_CHECK(nft_rule_builder_init(&c.rb, family, m->table, m->name) == 0);
	nft_rule_builder_init_text(&c.tb, family);
	FUZZ_CHECK(nft_expr_addr_len(&c.rb) == (family == AF_INET6 ? 16u : 4u));
	n = fuzz_u8(&p->in) % (MAX_EXPRS + 1);
	m->exprs = calloc(n ? n : 1, sizeof(*m->exprs));
	FUZZ_CHECK(m->exprs);
	for (size_t i = 0; i < n; i++)
		one_expr(p, &c);
	if (fuzz_bool(&p->in)) {
		char comment[160];
		int rt;

		fuzz_str(&p->in, comment, 127); /* nft's limit: 128 bytes with the NUL */
		r = nft_rule_builder_comment(&c.rb, comment);
		rt = nft_rule_builder_comment(&c.tb, comment);
		FUZZ_CHECK(r == 0 && rt == 0);
		text(&c, " comment \"%s\"", comment);
	}
	/* Both builders wrote the same text: the full one, cut. */
	FUZZ_CHECK(c.rb.text_len < NFT_RULE_TEXT_MAX && c.rb.text_len == strlen(c.rb.text));
	FUZZ_CHECK(c.tb.text_len == c.rb.text_len && strcmp(c.tb.text, c.rb.text) == 0);
	FUZZ_CHECK(c.rb.text_len == (c.text_len < NFT_RULE_TEXT_MAX ? c.text_len : NFT_RULE_TEXT_MAX - 1));
	FUZZ_CHECK(memcmp(c.rb.text, c.text, c.rb.text_len) == 0);
	snprintf(m->text, sizeof(m->text), "%s", c.rb.text);

	FUZZ_CHECK(nft_rule_builder_msg(&c.tb, p->b) == -EINVAL);
	FUZZ_CHECK(nft_rule_builder_msg(&c.rb, p->b) == 0);
	m->rule = c.rb.rule; /* kept for the comparison, freed at the end */
	c.rb.rule = NULL;
	nft_rule_builder_done(&c.rb);
	nft_rule_builder_done(&c.tb);
	nft_rule_builder_done(&c.tb); /* idempotent */
}

/* ---- reading back ------------------------------------------------------ */

static void check_str(const char *got, const char *want)
{
	FUZZ_CHECK(got && strcmp(got, want) == 0);
}

static void check_expr(struct nftnl_expr *e, const struct exp_expr *x)
{
	uint32_t len;
	const void *d;

	check_str(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), x->name);
	if (!strcmp(x->name, "payload")) {
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_BASE) == x->a[0]);
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET) == x->a[1]);
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_LEN) == x->a[2]);
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_DREG) == x->a[3]);
	} else if (!strcmp(x->name, "meta")) {
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_META_KEY) == x->a[0]);
		FUZZ_CHECK(nftnl_expr_is_set(e, NFTNL_EXPR_META_SREG) == x->has_a5);
		FUZZ_CHECK(nftnl_expr_is_set(e, NFTNL_EXPR_META_DREG) == !x->has_a5);
		FUZZ_CHECK(nftnl_expr_get_u32(e, x->has_a5 ? NFTNL_EXPR_META_SREG : NFTNL_EXPR_META_DREG) == x->a[1]);
	} else if (!strcmp(x->name, "numgen")) {
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_NG_DREG) == x->a[0]);
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_NG_MODULUS) == x->a[1]);
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_NG_TYPE) == x->a[2]);
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_NG_OFFSET) == x->a[3]);
	} else if (!strcmp(x->name, "ct")) {
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_CT_KEY) == x->a[0]);
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_CT_DREG) == x->a[1]);
	} else if (!strcmp(x->name, "fib")) {
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_FIB_RESULT) == x->a[0]);
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_FIB_FLAGS) == x->a[1]);
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_FIB_DREG) == x->a[2]);
	} else if (!strcmp(x->name, "cmp")) {
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_SREG) == x->a[0]);
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_OP) == x->a[1]);
		d = nftnl_expr_get(e, NFTNL_EXPR_CMP_DATA, &len);
		FUZZ_CHECK(d && len == x->len && memcmp(d, x->data, len) == 0);
	} else if (!strcmp(x->name, "bitwise")) {
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_SREG) == x->a[0]);
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_DREG) == x->a[0]);
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_LEN) == x->len);
		d = nftnl_expr_get(e, NFTNL_EXPR_BITWISE_MASK, &len);
		FUZZ_CHECK(d && len == x->len && memcmp(d, x->data, len) == 0);
		d = nftnl_expr_get(e, NFTNL_EXPR_BITWISE_XOR, &len);
		FUZZ_CHECK(d && len == x->len && memcmp(d, x->data2, len) == 0);
	} else if (!strcmp(x->name, "lookup")) {
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_SREG) == x->a[0]);
		check_str(nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET), x->str);
		FUZZ_CHECK(nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_DREG) == x->has_a5);
		if (x->has_a5)
			FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_DREG) == x->a[1]);
		FUZZ_CHECK((nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_FLAGS) ?
			    nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_FLAGS) : 0) == x->a[2]);
	} else if (!strcmp(x->name, "dynset")) {
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_DYNSET_SREG_KEY) == x->a[0]);
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_DYNSET_SREG_DATA) == x->a[1]);
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_DYNSET_OP) == NFT_DYNSET_OP_UPDATE);
		check_str(nftnl_expr_get_str(e, NFTNL_EXPR_DYNSET_SET_NAME), x->str);
	} else if (!strcmp(x->name, "immediate")) {
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_DREG) == NFT_REG_VERDICT);
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_VERDICT) == x->a[0]);
		FUZZ_CHECK(nftnl_expr_is_set(e, NFTNL_EXPR_IMM_CHAIN) == x->has_a5);
		if (x->has_a5)
			check_str(nftnl_expr_get_str(e, NFTNL_EXPR_IMM_CHAIN), x->str);
	} else if (!strcmp(x->name, "nat")) {
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_TYPE) == x->a[0]);
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_FAMILY) == x->a[1]);
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN) == x->a[2]);
		FUZZ_CHECK(nftnl_expr_is_set(e, NFTNL_EXPR_NAT_REG_PROTO_MIN) == x->has_a5);
		if (x->has_a5)
			FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN) == x->a[3]);
	} else if (!strcmp(x->name, "redir")) {
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN) == x->a[0]);
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_REDIR_FLAGS) == NF_NAT_RANGE_PROTO_SPECIFIED);
	} else if (!strcmp(x->name, "masq")) {
		/* No flags: no attribute, as nft sends it. */
		FUZZ_CHECK(nftnl_expr_is_set(e, NFTNL_EXPR_MASQ_FLAGS) == (x->a[0] != 0));
		if (x->a[0])
			FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_MASQ_FLAGS) == x->a[0]);
	} else if (!strcmp(x->name, "reject")) {
		FUZZ_CHECK(nftnl_expr_get_u32(e, NFTNL_EXPR_REJECT_TYPE) == x->a[0]);
		FUZZ_CHECK(nftnl_expr_get_u8(e, NFTNL_EXPR_REJECT_CODE) == x->a[1]);
	} else {
		FUZZ_CHECK(!"unexpected expression");
	}
}

static int check_expr_cb(struct nftnl_expr *e, void *data)
{
	const struct exp_msg *m = ((void **)data)[0];
	size_t *i = ((void **)data)[1];

	FUZZ_CHECK(*i < m->n_exprs);
	check_expr(e, &m->exprs[(*i)++]);
	return 0;
}

/* The rule payload built again from what was parsed: the same bytes. */
static void check_rebuild(const struct nlmsghdr *nlh, struct nftnl_rule *parsed, const struct nftnl_rule *built)
{
	static char buf[NFT_BATCH_MSG_MAX + 256];
	uint8_t family = ((const struct nfgenmsg *)mnl_nlmsg_get_payload(nlh))->nfgen_family;
	size_t z = 2 * (size_t)nlh->nlmsg_len + 256;
	char s1[2048], s2[2048];
	struct nlmsghdr *a;

	/* Zeroed as nft_batch_msg_begin zeroes it: libnftnl leaves some
	 * padding unwritten. Past twice the original, lengths differ anyway. */
	memset(buf, 0, z < sizeof(buf) ? z : sizeof(buf));
	a = nftnl_nlmsg_build_hdr(buf, NFT_MSG_NEWRULE, family, 0, 0);
	nftnl_rule_nlmsg_build_payload(a, parsed);
	FUZZ_CHECK(a->nlmsg_len == nlh->nlmsg_len);
	FUZZ_CHECK(memcmp(mnl_nlmsg_get_payload(a), mnl_nlmsg_get_payload(nlh),
			  a->nlmsg_len - MNL_NLMSG_HDRLEN) == 0);
	/* And libnftnl prints the two rules alike. */
	nftnl_rule_snprintf(s1, sizeof(s1), parsed, NFTNL_OUTPUT_DEFAULT, 0);
	nftnl_rule_snprintf(s2, sizeof(s2), built, NFTNL_OUTPUT_DEFAULT, 0);
	FUZZ_CHECK(strcmp(s1, s2) == 0);
}

static void check_rule(const struct nlmsghdr *nlh, const struct exp_msg *m)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	size_t i = 0;
	void *ctx[2] = { (void *)m, &i };

	FUZZ_CHECK(r && nftnl_rule_nlmsg_parse(nlh, r) == 0);
	check_str(nftnl_rule_get_str(r, NFTNL_RULE_TABLE), m->table);
	check_str(nftnl_rule_get_str(r, NFTNL_RULE_CHAIN), m->name);
	FUZZ_CHECK(nftnl_rule_get_u32(r, NFTNL_RULE_FAMILY) == (m->family == AF_INET6 ? NFPROTO_IPV6 : NFPROTO_IPV4));
	if (m->type == NFT_MSG_NEWRULE) {
		FUZZ_CHECK(nftnl_expr_foreach(r, check_expr_cb, ctx) == 0);
		FUZZ_CHECK(i == m->n_exprs);
		check_rebuild(nlh, r, m->rule);
	} else {
		FUZZ_CHECK(!nftnl_rule_is_set(r, NFTNL_RULE_HANDLE));
	}
	nftnl_rule_free(r);
}

static void check_chain(const struct nlmsghdr *nlh, const struct exp_msg *m)
{
	struct nftnl_chain *c = nftnl_chain_alloc();

	FUZZ_CHECK(c && nftnl_chain_nlmsg_parse(nlh, c) == 0);
	check_str(nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE), m->table);
	check_str(nftnl_chain_get_str(c, NFTNL_CHAIN_NAME), m->name);
	FUZZ_CHECK(nftnl_chain_is_set(c, NFTNL_CHAIN_HOOKNUM) == m->base);
	FUZZ_CHECK(nftnl_chain_is_set(c, NFTNL_CHAIN_TYPE) == m->base);
	if (m->base) {
		FUZZ_CHECK(nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM) == m->hook);
		FUZZ_CHECK(nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO) == m->prio);
		FUZZ_CHECK(nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY) == NF_ACCEPT);
		check_str(nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE), m->chain_type);
	}
	nftnl_chain_free(c);
}

static void check_table(const struct nlmsghdr *nlh, const struct exp_msg *m)
{
	struct nftnl_table *t = nftnl_table_alloc();

	FUZZ_CHECK(t && nftnl_table_nlmsg_parse(nlh, t) == 0);
	check_str(nftnl_table_get_str(t, NFTNL_TABLE_NAME), m->table);
	nftnl_table_free(t);
}

static void check_set(const struct nlmsghdr *nlh, const struct exp_msg *m)
{
	const struct nft_set_spec *sp = &m->spec;
	struct nftnl_set *s = nftnl_set_alloc();
	bool map = sp->flags & NFT_SET_MAP;

	FUZZ_CHECK(s && nftnl_set_nlmsg_parse(nlh, s) == 0);
	check_str(nftnl_set_get_str(s, NFTNL_SET_TABLE), m->table);
	check_str(nftnl_set_get_str(s, NFTNL_SET_NAME), m->name);
	FUZZ_CHECK(nftnl_set_get_u32(s, NFTNL_SET_FLAGS) == sp->flags);
	FUZZ_CHECK(nftnl_set_get_u32(s, NFTNL_SET_KEY_LEN) == sp->key_len);
	FUZZ_CHECK(nftnl_set_get_u32(s, NFTNL_SET_KEY_TYPE) == sp->key_type);
	FUZZ_CHECK(nftnl_set_get_u32(s, NFTNL_SET_ID) == sp->id);
	FUZZ_CHECK(nftnl_set_is_set(s, NFTNL_SET_DATA_TYPE) == map);
	if (map)
		FUZZ_CHECK(nftnl_set_get_u32(s, NFTNL_SET_DATA_TYPE) == sp->data_type);
	FUZZ_CHECK(nftnl_set_is_set(s, NFTNL_SET_DATA_LEN) == (map && sp->data_len));
	if (map && sp->data_len)
		FUZZ_CHECK(nftnl_set_get_u32(s, NFTNL_SET_DATA_LEN) == sp->data_len);
	FUZZ_CHECK(nftnl_set_is_set(s, NFTNL_SET_DESC_SIZE) == (sp->size != 0));
	if (sp->size)
		FUZZ_CHECK(nftnl_set_get_u32(s, NFTNL_SET_DESC_SIZE) == sp->size);
	FUZZ_CHECK(nftnl_set_is_set(s, NFTNL_SET_TIMEOUT) == (sp->timeout_ms != 0));
	if (sp->timeout_ms)
		FUZZ_CHECK(nftnl_set_get_u64(s, NFTNL_SET_TIMEOUT) == sp->timeout_ms);
	if (sp->n_fields) {
		uint32_t len;
		const uint8_t *fl = nftnl_set_get_data(s, NFTNL_SET_DESC_CONCAT, &len);

		FUZZ_CHECK(fl && len == sp->n_fields && memcmp(fl, m->field_len, len) == 0);
	}
	nftnl_set_free(s);
}

static void check_elem(struct nftnl_set_elem *e, const struct exp_elem *x, bool add)
{
	uint32_t len;
	const void *d;

	d = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len);
	FUZZ_CHECK(d && len == x->key_len && memcmp(d, x->key, len) == 0);
	FUZZ_CHECK(nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_KEY_END) == x->has_key_end);
	if (x->has_key_end) {
		d = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY_END, &len);
		FUZZ_CHECK(d && len == x->key_end_len && memcmp(d, x->key_end, len) == 0);
	}
	/* Deletes name the key only; a verdict wins over a value. */
	FUZZ_CHECK(nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_VERDICT) == (add && x->has_verdict));
	FUZZ_CHECK(nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_CHAIN) == (add && x->has_verdict && x->has_chain));
	FUZZ_CHECK(nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_DATA) == (add && !x->has_verdict && x->has_data));
	if (add && x->has_verdict) {
		FUZZ_CHECK(nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_VERDICT) == x->verdict);
		if (x->has_chain)
			check_str(nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN), x->chain);
	} else if (add && x->has_data) {
		d = nftnl_set_elem_get(e, NFTNL_SET_ELEM_DATA, &len);
		FUZZ_CHECK(d && len == x->data_len && memcmp(d, x->data, len) == 0);
	}
}

/* The element list attribute, read with libmnl: under its 16-bit bound,
 * each element no bigger than nft_setelem_list_bytes counts it. */
static void check_elem_sizes(const struct nlmsghdr *nlh, const struct exp_msg *m)
{
	const struct nlattr *a, *list = NULL, *item;
	size_t i = 0;

	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
		if (mnl_attr_get_type(a) == NFTA_SET_ELEM_LIST_ELEMENTS)
			list = a;
	FUZZ_CHECK(list);
	FUZZ_CHECK(mnl_attr_get_payload_len(list) <= NFT_SETELEM_LIST_MAX);
	mnl_attr_for_each_nested(item, list) {
		const struct exp_elem *x = &m->elems[i++];
		struct nft_setelem se = {
			.key = x->key, .key_len = x->key_len,
			.key_end = x->has_key_end ? x->key_end : NULL, .key_end_len = x->key_end_len,
			.data = x->has_data ? x->data : NULL, .data_len = x->data_len,
			.has_verdict = x->has_verdict, .verdict = x->verdict,
			.chain = x->has_chain ? x->chain : NULL,
		};

		FUZZ_CHECK(MNL_ALIGN(item->nla_len) <= nft_setelem_list_bytes(&se, m->type == NFT_MSG_NEWSETELEM));
	}
	FUZZ_CHECK(i == m->n_elems);
}

/* libnftnl (1.2.4) numbers the items of an element list 1, 2, 3... when
 * it builds one, as the kernel allows, but its parser takes only
 * NFTA_LIST_ELEM (1): a copy with every item renumbered is parsed. */
static const struct nlmsghdr *renumbered(const struct nlmsghdr *nlh)
{
	static char buf[NFT_BATCH_MSG_MAX + 256];
	struct nlmsghdr *copy = (struct nlmsghdr *)buf;
	struct nlattr *a, *item;

	FUZZ_CHECK(nlh->nlmsg_len <= sizeof(buf));
	memcpy(buf, nlh, nlh->nlmsg_len);
	mnl_attr_for_each(a, copy, sizeof(struct nfgenmsg))
		if (mnl_attr_get_type(a) == NFTA_SET_ELEM_LIST_ELEMENTS)
			mnl_attr_for_each_nested(item, a) {
				FUZZ_CHECK(mnl_attr_get_type(item) != 0);
				item->nla_type = (uint16_t)((item->nla_type & ~NLA_TYPE_MASK) | NFTA_LIST_ELEM);
			}
	return copy;
}

static void check_elems(const struct nlmsghdr *nlh, const struct exp_msg *m)
{
	struct nftnl_set *s = nftnl_set_alloc();
	struct nftnl_set_elems_iter *it;
	struct nftnl_set_elem *e;
	size_t i = 0;

	FUZZ_CHECK(s && nftnl_set_elems_nlmsg_parse(renumbered(nlh), s) == 0);
	check_str(nftnl_set_get_str(s, NFTNL_SET_TABLE), m->table);
	check_str(nftnl_set_get_str(s, NFTNL_SET_NAME), m->name);
	it = nftnl_set_elems_iter_create(s);
	FUZZ_CHECK(it);
	while ((e = nftnl_set_elems_iter_next(it))) {
		FUZZ_CHECK(i < m->n_elems);
		check_elem(e, &m->elems[i++], m->type == NFT_MSG_NEWSETELEM);
	}
	nftnl_set_elems_iter_destroy(it);
	FUZZ_CHECK(i == m->n_elems);
	if (m->elems)
		check_elem_sizes(nlh, m);
	nftnl_set_free(s);
}

static void check_batch(struct prog *p)
{
	size_t len, i = 0;
	const void *buf = nft_batch_data(p->b, &len);
	const struct nlmsghdr *nlh;
	int left = (int)len;

	FUZZ_CHECK(nft_batch_count(p->b) == p->n_msgs);
	for (nlh = buf; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left), i++) {
		const struct exp_msg *m = &p->msgs[i];
		const struct nfgenmsg *g = mnl_nlmsg_get_payload(nlh);
		uint16_t want_flags = NLM_F_REQUEST | NLM_F_ACK;
		const char *desc = nft_batch_desc(p->b, i);

		FUZZ_CHECK(i < p->n_msgs);
		FUZZ_CHECK(nlh->nlmsg_type == (NFNL_SUBSYS_NFTABLES << 8 | m->type));
		if (m->type == NFT_MSG_NEWRULE)
			want_flags |= NLM_F_CREATE | NLM_F_APPEND;
		else if (m->create)
			want_flags |= NLM_F_CREATE;
		FUZZ_CHECK(nlh->nlmsg_flags == want_flags);
		FUZZ_CHECK(g->nfgen_family == nft_nfproto(m->family));
		FUZZ_CHECK(desc && desc[0] && strlen(desc) < 96);
		switch (m->type) {
		case NFT_MSG_NEWTABLE:
		case NFT_MSG_DELTABLE:
			check_table(nlh, m);
			break;
		case NFT_MSG_NEWCHAIN:
		case NFT_MSG_DELCHAIN:
			check_chain(nlh, m);
			break;
		case NFT_MSG_NEWRULE:
		case NFT_MSG_DELRULE:
			check_rule(nlh, m);
			break;
		case NFT_MSG_NEWSET:
			check_set(nlh, m);
			break;
		default:
			check_elems(nlh, m);
			break;
		}
	}
	FUZZ_CHECK(left == 0 && i == p->n_msgs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct prog p;

	/* Messages are cleared as they are used (msg_push). */
	p.n_msgs = 0;
	p.n_runs = 0;
	p.in = (struct fuzz_reader){ data, size };
	/* One batch for the whole run, cleared after each input, as a backend
	 * keeps its own: its buffers are reused (and a fresh one per input
	 * would cost more than the input). */
	if (!p.b)
		p.b = nft_batch_new();
	FUZZ_CHECK(p.b);
	for (int op = 0; op < MAX_OPS && p.in.left; op++) {
		switch (fuzz_u8(&p.in) % 8) {
		case 0: op_table(&p); break;
		case 1: op_chain(&p); break;
		case 2: op_chain_del(&p); break;
		case 3: op_set(&p); break;
		case 4: op_flush(&p); break;
		case 5: op_elems(&p); break;
		default: op_rule(&p); break;
		}
	}
	check_batch(&p);
	nft_batch_clear(p.b);
	FUZZ_CHECK(nft_batch_count(p.b) == 0);
	for (size_t i = 0; i < p.n_msgs; i++) {
		if (p.msgs[i].rule)
			nftnl_rule_free(p.msgs[i].rule);
		free(p.msgs[i].exprs);
	}
	for (size_t i = 0; i < p.n_runs; i++)
		free(p.runs[i]);
	return 0;
}
