/* Interception of non-local frontends to the userspace relay, with
 * nftables (see nft_intercept.h).
 *
 * The redirects last committed are kept in memory (sorted). A sync sends
 * only the difference (element deletes, then adds) in one transaction,
 * behind two assertions that the table and map still exist; the first sync,
 * the first after a failure or a cleanup, and any sync whose update the
 * kernel refuses (the table was deleted behind our back, an element we
 * delete is gone) replace everything instead: tables, chains, rules and
 * map, also in one transaction. Either way packets see the old map or the
 * new one, never a mix. Element lists are split over as many messages as
 * their 16-bit attribute length requires; the messages of one sync still
 * form one transaction.
 *
 * The state is process-wide because struct intercept_ops has no context:
 * sync and cleanup are called from the control thread only. */
#include "nft_intercept.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>

#include "log.h"
#include "nft_batch.h"

#define MAP_NAME "relay_ports"

/* Elements per NEWSETELEM/DELSETELEM message. The element list is one
 * netlink attribute whose length field is 16 bits; an IPv6 element takes
 * 48 bytes (list item, key nest and 24-byte value, data nest and value). */
#define ELEMS_PER_MSG 1024
#define ELEM_NLA_MAX 56
_Static_assert(ELEMS_PER_MSG * ELEM_NLA_MAX + 64 < 65535, "element list attribute overflows");

/* One redirect as the map holds it. key is laid out so that memcmp sorts
 * by family, address, protocol, port: the order the relay keeps its
 * frontends in, so its list usually arrives sorted. */
struct icpt_elem {
	uint8_t key[20];         /* family, address (IPv4 in the first 4 of 16), IPPROTO_*, port (network order) */
	uint16_t relay_port;     /* host order */
};

#define ELEM_FAMILY(e) ((e)->key[0])
#define ELEM_ADDR(e) (&(e)->key[1])
#define ELEM_PROTO(e) ((e)->key[17])
#define ELEM_PORT(e) (&(e)->key[18])

/* What the kernel holds, as far as we know, and the socket it was sent
 * over. The socket stays open between syncs: closing a netfilter socket
 * waits for the kernel to finish releasing the last transaction (an RCU
 * grace period, ~10 ms), which would dwarf a small update. */
static struct {
	struct icpt_elem *elems;
	size_t n;
	bool valid;              /* false: the next sync replaces everything */
	struct mnl_socket *nl;   /* NULL: opened by the next sync */
	unsigned long replaces;  /* full replacements committed */
} committed;

unsigned long nft_intercept_replace_count(void)
{
	return committed.replaces;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int nfproto(int family)
{
	return family == AF_INET6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
}

static struct nftnl_expr *add_expr(struct nftnl_rule *r, const char *name)
{
	struct nftnl_expr *e = nftnl_expr_alloc(name);
	if (e)
		nftnl_rule_add_expr(r, e);
	return e;
}

/* "meta l4proto P redirect to : daddr . l4proto . dport map @relay_ports" */
static int rule_msg(struct nft_batch *b, int family, const char *chain, uint8_t proto)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct nftnl_expr *e;
	struct nlmsghdr *nlh;
	uint32_t alen = family == AF_INET6 ? 16 : 4;
	uint32_t w = NFT_REG32_00;
	bool ok = r != NULL;

	if (!r)
		return -ENOMEM;
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, NFT_INTERCEPT_TABLE);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, (uint32_t)nfproto(family));
	if (ok && (ok = (e = add_expr(r, "meta")))) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_L4PROTO);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, w);
	}
	if (ok && (ok = (e = add_expr(r, "cmp")))) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, w);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
		nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, &proto, 1);
	}
	if (ok && (ok = (e = add_expr(r, "payload")))) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, family == AF_INET6 ? 24 : 16);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, alen);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, w);
	}
	if (ok && (ok = (e = add_expr(r, "meta")))) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_L4PROTO);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, w + alen / 4);
	}
	if (ok && (ok = (e = add_expr(r, "payload")))) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_TRANSPORT_HEADER);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, 2);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, 2);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, w + alen / 4 + 1);
	}
	if (ok && (ok = (e = add_expr(r, "lookup")))) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, w);
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, w);
		nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, MAP_NAME);
	}
	if (ok && (ok = (e = add_expr(r, "redir")))) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, w);
		nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
	}
	nlh = ok ? nft_batch_msg_begin(b, NFT_MSG_NEWRULE, (uint16_t)nfproto(family), NLM_F_CREATE | NLM_F_APPEND,
				       "add rule ferry_intercept redirect") : NULL;
	if (nlh) {
		nftnl_rule_nlmsg_build_payload(nlh, r);
		nft_batch_msg_end(b, nlh);
	}
	nftnl_rule_free(r);
	return nlh ? 0 : -ENOMEM;
}

/* The map declaration. create: add it if absent; else the message only
 * asserts that the table and the map exist (NEWSET without NLM_F_CREATE is
 * ENOENT when they do not, and a no-op when they do). 0 or -ENOMEM. */
static int map_msg(struct nft_batch *b, int family, bool create)
{
	uint16_t fam = (uint16_t)nfproto(family);
	struct nftnl_set *s = nftnl_set_alloc();
	struct nlmsghdr *nlh;

	if (!s)
		return -ENOMEM;
	nftnl_set_set_str(s, NFTNL_SET_TABLE, NFT_INTERCEPT_TABLE);
	nftnl_set_set_str(s, NFTNL_SET_NAME, MAP_NAME);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, fam);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, family == AF_INET6 ? 24 : 12);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, ((family == AF_INET6 ? 8u : 7u) << 12) | (12u << 6) | 13u);
	nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, 13);
	nftnl_set_set_u32(s, NFTNL_SET_DATA_LEN, 2);
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_MAP);
	/* The kernel refuses any NEWSET without an id (EINVAL), the check too. */
	nftnl_set_set_u32(s, NFTNL_SET_ID, 1);
	nlh = nft_batch_msg_begin(b, NFT_MSG_NEWSET, fam, create ? NLM_F_CREATE : 0,
				  create ? (family == AF_INET6 ? "add map ip6 ferry_intercept relay_ports"
							       : "add map ip ferry_intercept relay_ports")
					 : (family == AF_INET6 ? "check map ip6 ferry_intercept relay_ports exists"
							       : "check map ip ferry_intercept relay_ports exists"));
	if (nlh) {
		nftnl_set_nlmsg_build_payload(nlh, s);
		nft_batch_msg_end(b, nlh);
	}
	nftnl_set_free(s);
	return nlh ? 0 : -ENOMEM;
}

/* Table, map and chains (created if absent), chains emptied and refilled,
 * map emptied: the caller adds the elements after this. */
static int skeleton_msgs(struct nft_batch *b, int family)
{
	static const struct { const char *name; unsigned hook; } chains[] = {
		{ "nat_prerouting", NF_INET_PRE_ROUTING },
		{ "nat_output", NF_INET_LOCAL_OUT },
	};
	uint16_t fam = (uint16_t)nfproto(family);
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;
	int r = -ENOMEM;

	if (!t)
		goto out;
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, NFT_INTERCEPT_TABLE);
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, fam);
	if (!(nlh = nft_batch_msg_begin(b, NFT_MSG_NEWTABLE, fam, NLM_F_CREATE, "add table ferry_intercept")))
		goto out;
	nftnl_table_nlmsg_build_payload(nlh, t);
	nft_batch_msg_end(b, nlh);

	if (map_msg(b, family, true) < 0)
		goto out;

	for (size_t i = 0; i < 2; i++) {
		struct nftnl_chain *c = nftnl_chain_alloc();
		if (!c)
			goto out;
		nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, NFT_INTERCEPT_TABLE);
		nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, chains[i].name);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, fam);
		nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "nat");
		nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, chains[i].hook);
		nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, -100);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
		nlh = nft_batch_msg_begin(b, NFT_MSG_NEWCHAIN, fam, NLM_F_CREATE, "add chain ferry_intercept");
		if (nlh) {
			nftnl_chain_nlmsg_build_payload(nlh, c);
			nft_batch_msg_end(b, nlh);
		}
		nftnl_chain_free(c);
		if (!nlh || !(nlh = nft_batch_msg_begin(b, NFT_MSG_DELRULE, fam, 0, "flush chain ferry_intercept")))
			goto out;
		mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, NFT_INTERCEPT_TABLE);
		mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, chains[i].name);
		nft_batch_msg_end(b, nlh);
		if ((r = rule_msg(b, family, chains[i].name, IPPROTO_TCP)) < 0 ||
		    (r = rule_msg(b, family, chains[i].name, IPPROTO_UDP)) < 0)
			goto out;
		r = -ENOMEM;
	}
	if (!(nlh = nft_batch_msg_begin(b, NFT_MSG_DELSETELEM, fam, 0, "flush map ferry_intercept relay_ports")))
		goto out;
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, NFT_INTERCEPT_TABLE);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, MAP_NAME);
	nft_batch_msg_end(b, nlh);
	r = 0;
out:
	nftnl_table_free(t);
	return r;
}

static int elem_key_cmp(const struct icpt_elem *a, const struct icpt_elem *b)
{
	return memcmp(a->key, b->key, sizeof(a->key));
}

static int elem_qsort_cmp(const void *a, const void *b)
{
	return elem_key_cmp(a, b);
}

/* The elements entries stand for, sorted by key, one per key (the relay
 * never asks for a key twice; if it did, one of its relay ports wins).
 * SCTP entries and unknown families are skipped: the relay serves neither.
 * *ret (the caller frees it) may be NULL when n is 0. 0 or -ENOMEM. */
static int elems_from_entries(const struct intercept_entry *entries, size_t n, struct icpt_elem **ret,
			      size_t *ret_n)
{
	struct icpt_elem *v = NULL;
	size_t k = 0, u = 0;
	bool sorted = true;
	uint16_t port;

	if (n > 0 && !(v = calloc(n, sizeof(*v))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct intercept_entry *en = &entries[i];

		if (en->addr.family != AF_INET && en->addr.family != AF_INET6)
			continue;
		if (en->proto != INET_PROTO_TCP && en->proto != INET_PROTO_UDP)
			continue;
		port = htons(en->port);
		ELEM_FAMILY(&v[k]) = (uint8_t)en->addr.family;
		memcpy(ELEM_ADDR(&v[k]), en->addr.u.bytes, en->addr.family == AF_INET6 ? 16 : 4);
		ELEM_PROTO(&v[k]) = en->proto == INET_PROTO_TCP ? IPPROTO_TCP : IPPROTO_UDP;
		memcpy(ELEM_PORT(&v[k]), &port, 2);
		v[k].relay_port = en->relay_port;
		if (k > 0 && elem_key_cmp(&v[k - 1], &v[k]) >= 0)
			sorted = false;
		k++;
	}
	if (!sorted)
		qsort(v, k, sizeof(*v), elem_qsort_cmp);
	for (size_t i = 0; i < k; i++)
		if (u == 0 || elem_key_cmp(&v[u - 1], &v[i]) != 0)
			v[u++] = v[i];
	*ret = v;
	*ret_n = u;
	return 0;
}

/* Append NEWSETELEM (add) or DELSETELEM messages for elems, which are
 * sorted (so each family is one run): ELEMS_PER_MSG elements a message,
 * as many messages as needed. 0 or -ENOMEM. */
static int elems_msgs(struct nft_batch *b, bool add, const struct icpt_elem *const *elems, size_t n)
{
	size_t i = 0;

	while (i < n) {
		int family = ELEM_FAMILY(elems[i]);
		size_t alen = family == AF_INET6 ? 16 : 4, j = i;
		struct nftnl_set *s = nftnl_set_alloc();
		char desc[96];
		int r = 0;

		if (!s)
			return -ENOMEM;
		nftnl_set_set_str(s, NFTNL_SET_TABLE, NFT_INTERCEPT_TABLE);
		nftnl_set_set_str(s, NFTNL_SET_NAME, MAP_NAME);
		nftnl_set_set_u32(s, NFTNL_SET_FAMILY, (uint32_t)nfproto(family));
		for (; j < n && j - i < ELEMS_PER_MSG && ELEM_FAMILY(elems[j]) == family; j++) {
			struct nftnl_set_elem *e = nftnl_set_elem_alloc();
			uint16_t relay = htons(elems[j]->relay_port);
			uint8_t key[24] = { 0 };

			if (!e) {
				r = -ENOMEM;
				break;
			}
			/* addr . proto . port, each field padded to a 32-bit register. */
			memcpy(key, ELEM_ADDR(elems[j]), alen);
			key[alen] = ELEM_PROTO(elems[j]);
			memcpy(key + alen + 4, ELEM_PORT(elems[j]), 2);
			nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key, (uint32_t)(alen + 8));
			if (add)
				nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, &relay, 2);
			nftnl_set_elem_add(s, e);
		}
		if (r == 0) {
			snprintf(desc, sizeof(desc), "%s %zu elements %s %s ferry_intercept relay_ports "
				 "(from index %zu)", add ? "add" : "delete", j - i, add ? "to" : "from",
				 family == AF_INET6 ? "ip6" : "ip", i);
			r = nft_batch_set_elems(b, s, (uint16_t)nfproto(family), add, desc);
		}
		nftnl_set_free(s);
		if (r < 0)
			return r;
		i = j;
	}
	return 0;
}

/* Append a replacement of everything: both families' skeletons (map
 * emptied), then every element. 0 or -ENOMEM. */
static int replace_msgs(struct nft_batch *b, const struct icpt_elem *elems, size_t n)
{
	const struct icpt_elem **p = NULL;
	int r = 0;

	if (n > 0 && !(p = malloc(n * sizeof(*p))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		p[i] = &elems[i];
	for (int fam = 0; r == 0 && fam < 2; fam++)
		r = skeleton_msgs(b, fam ? AF_INET6 : AF_INET);
	if (r == 0)
		r = elems_msgs(b, true, p, n);
	free(p);
	return r;
}

/* Append the update from old to new (both sorted): a check that each
 * family's table and map exist, deletes of the keys that went or whose relay
 * port changed, then adds of the keys that came or changed. The counts go
 * to *ret_dels and *ret_adds. 0 or -ENOMEM. */
static int update_msgs(struct nft_batch *b, const struct icpt_elem *old, size_t n_old,
		       const struct icpt_elem *new, size_t n_new, size_t *ret_dels, size_t *ret_adds)
{
	const struct icpt_elem **dels = malloc((n_old + 1) * sizeof(*dels));
	const struct icpt_elem **adds = malloc((n_new + 1) * sizeof(*adds));
	size_t nd = 0, na = 0, i = 0, k = 0;
	int r = 0;

	if (!dels || !adds)
		r = -ENOMEM;
	while (r == 0 && (i < n_old || k < n_new)) {
		int c = i == n_old ? 1 : k == n_new ? -1 : elem_key_cmp(&old[i], &new[k]);

		if (c < 0) {
			dels[nd++] = &old[i++];
		} else if (c > 0) {
			adds[na++] = &new[k++];
		} else {
			/* A map key has one value: a new relay port is delete + add. */
			if (old[i].relay_port != new[k].relay_port) {
				dels[nd++] = &old[i];
				adds[na++] = &new[k];
			}
			i++, k++;
		}
	}
	for (int fam = 0; r == 0 && fam < 2; fam++)
		r = map_msg(b, fam ? AF_INET6 : AF_INET, false);
	if (r == 0)
		r = elems_msgs(b, false, dels, nd);
	if (r == 0)
		r = elems_msgs(b, true, adds, na);
	free(dels);
	free(adds);
	*ret_dels = nd;
	*ret_adds = na;
	return r;
}

int nft_intercept_replace_msgs(struct nft_batch *b, const struct intercept_entry *entries, size_t n)
{
	struct icpt_elem *elems = NULL;
	size_t n_elems = 0;
	int r;

	if (n > NFT_INTERCEPT_MAX)
		return -E2BIG;
	r = elems_from_entries(entries, n, &elems, &n_elems);
	if (r == 0)
		r = replace_msgs(b, elems, n_elems);
	free(elems);
	return r;
}

/* Forget the committed elements (the next sync replaces everything) and,
 * if close_nl, close the socket too. */
static void committed_clear(bool close_nl)
{
	free(committed.elems);
	committed.elems = NULL;
	committed.n = 0;
	committed.valid = false;
	if (close_nl && committed.nl) {
		mnl_socket_close(committed.nl);
		committed.nl = NULL;
	}
}

static int intercept_sync(void *priv, const struct intercept_entry *entries, size_t n)
{
	(void)priv;
	struct icpt_elem *elems = NULL;
	size_t n_elems = 0, n_dels = 0, n_adds = 0;
	struct nft_batch *b = NULL;
	struct nft_batch_error be = { 0 };
	double t0 = now_ms();
	int r;

	/* Permanent until the cluster shrinks: the caller retries with backoff,
	 * and this line says why at every try. */
	if (n > NFT_INTERCEPT_MAX)
		return log_errno(-E2BIG, "intercept: %zu frontends to redirect exceed the sanity bound "
				 "NFT_INTERCEPT_MAX (%u); the previous redirects stay",
				 n, NFT_INTERCEPT_MAX);
	r = elems_from_entries(entries, n, &elems, &n_elems);
	if (r == 0 && !(b = nft_batch_new()))
		r = -ENOMEM;
	if (r == 0 && !committed.nl && (r = nft_socket_open(&committed.nl)) < 0) {
		committed.nl = NULL;
		snprintf(be.desc, sizeof(be.desc), "opening the netfilter netlink socket");
	}
	if (r == 0 && committed.valid) {
		r = update_msgs(b, committed.elems, committed.n, elems, n_elems, &n_dels, &n_adds);
		if (r == 0)
			r = nft_batch_commit(committed.nl, b, 0, &be);
		if (r == 0) {
			log_debug("intercept: %zu redirects, -%zu +%zu in one transaction of %zu messages "
				  "in %.1f ms", n_elems, n_dels, n_adds, nft_batch_count(b), now_ms() - t0);
			goto done;
		}
		if (r == -ENOMEM)
			goto done;
		/* Changed behind our back (deleted table, flushed map...): the
		 * refused transaction changed nothing, start from scratch. */
		log_warn("intercept: update of %zu redirects (-%zu +%zu) refused at \"%s\": %s; "
			 "replacing them all", n_elems, n_dels, n_adds, be.desc, strerror(-r));
		committed_clear(true);
		nft_batch_clear(b);
		be = (struct nft_batch_error){ 0 };
		/* A new socket: the refused one may still hold replies. */
		if ((r = nft_socket_open(&committed.nl)) < 0) {
			committed.nl = NULL;
			snprintf(be.desc, sizeof(be.desc), "opening the netfilter netlink socket");
		}
	}
	if (r == 0)
		r = replace_msgs(b, elems, n_elems);
	if (r == 0)
		r = nft_batch_commit(committed.nl, b, 0, &be);
	if (r == 0) {
		committed.replaces++;
		log_info("intercept: %zu redirects programmed from scratch in one transaction of %zu "
			 "messages in %.1f ms", n_elems, nft_batch_count(b), now_ms() - t0);
	}
done:
	if (r == 0) {
		free(committed.elems);
		committed.elems = elems;
		committed.n = n_elems;
		committed.valid = true;
		elems = NULL;
	} else {
		/* Whatever the kernel holds now, the next sync replaces it, over
		 * a new socket (this one may hold unread replies). */
		committed_clear(true);
		log_errno(r, "intercept: programming %zu redirects failed (refused: %s)", n_elems,
			  be.desc[0] ? be.desc : "nothing sent");
	}
	free(elems);
	nft_batch_free(b);
	return r;
}

static int intercept_cleanup(void)
{
	struct mnl_socket *nl = NULL;
	struct nft_batch *b = nft_batch_new();
	int r, ret = 0;

	/* Whatever happens below, the next sync starts from scratch. */
	committed_clear(true);
	if (!b)
		return -ENOMEM;
	r = nft_socket_open(&nl);
	for (int fam = 0; r == 0 && fam < 2; fam++) {
		struct nlmsghdr *nlh;
		int rr;

		nft_batch_clear(b);
		nlh = nft_batch_msg_begin(b, NFT_MSG_DELTABLE, (uint16_t)nfproto(fam ? AF_INET6 : AF_INET), 0,
					  "delete table ferry_intercept");
		if (!nlh) {
			r = -ENOMEM;
			break;
		}
		mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, NFT_INTERCEPT_TABLE);
		nft_batch_msg_end(b, nlh);
		rr = nft_batch_commit(nl, b, 0, NULL);
		if (rr < 0 && rr != -ENOENT)
			ret = rr;
	}
	nft_batch_free(b);
	if (nl)
		mnl_socket_close(nl);
	return r < 0 ? r : ret;
}

static int intercept_init(void *priv)
{
	(void)priv;
	return 0;
}

static void intercept_fini(void *priv)
{
	(void)priv;
	committed_clear(true);
}

const struct intercept_ops nftables_intercept_ops = {
	.name = "nftables",
	.priv_size = 1,
	.init = intercept_init,
	.sync = intercept_sync,
	.fini = intercept_fini,
	.cleanup = intercept_cleanup,
};
