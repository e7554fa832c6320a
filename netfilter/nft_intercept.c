/* Interception of non-local frontends to the userspace relay, with
 * nftables (see nft_intercept.h).
 *
 * The redirects last committed are kept in the provider's private state
 * (struct icpt, sorted). A sync sends only the difference (element deletes,
 * then adds) in one transaction, behind two assertions that the table and
 * map still exist; the first sync, the first after a failure, and any sync
 * whose update the kernel refuses (the table was deleted behind our back,
 * by a cleanup or by someone else; an element we delete is gone) replace
 * everything instead: tables, chains, rules and map, also in one
 * transaction. Either way packets see the old map or the new one, never a
 * mix.
 *
 * Messages are built with the shared nf_tables mechanism: tables and chains
 * (nft_table.h), the redirect rules (nft_expr.h), the map and its elements
 * (nft_set.h, which also splits long element lists over messages; the
 * messages of one sync still form one transaction).
 *
 * An entry on the wildcard address is a node port on every address of
 * this host: it goes to a second map, node_ports (proto . port : relay
 * port), matched with "fib daddr type local" after the VIP redirects.
 *
 * The guards of the service range (struct intercept_guards) follow the
 * redirects in both chains: a first packet that no redirect took and that
 * goes to a cluster IP (set @cluster_ips, kept up to date by difference like
 * the map) is rejected, TCP with a reset and the rest with ICMP port
 * unreachable; one to an address of the service CIDRs (one rule each; a
 * change of them, rare, is a full replace) is dropped. The chains are nat
 * chains, so only the first packet of a connection is judged, as kube-proxy
 * judges only "ct state new" ones.
 *
 * Nothing here is static and mutable: every piece of state lives in the
 * caller's priv, so two providers (a test's, say) never share any.
 */
#include "nft_intercept.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/rtnetlink.h>

#include "log.h"
#include "nft_batch.h"
#include "nft_expr.h"
#include "nft_set.h"
#include "nft_table.h"
#include "sorted_diff.h"

#define MAP_NAME "relay_ports"
#define IPS_NAME "cluster_ips"
#define NP_NAME "node_ports"

/* Elements per message, as this file has always sent them; the element
 * writer keeps each list within its 16-bit attribute by itself. */
#define ELEMS_PER_MSG 1024

/* One redirect as the map holds it: key is the map's key, address . proto
 * . port, each field padded to a register (nft_set.h), 12 bytes for IPv4
 * (the rest zero) and 24 for IPv6. Sorted by family then key bytes, which
 * is by address, protocol, port: the order the relay keeps its frontends
 * in, so its list usually arrives sorted. */
struct icpt_elem {
	uint8_t family;          /* AF_INET or AF_INET6 */
	uint8_t np;              /* 1: a node port on every local address: map
				  * node_ports, key proto . port (8 bytes) */
	uint8_t key[24];
	uint16_t relay_port;     /* host order */
};

/* A cluster IP as the guard set holds it: the address alone is the key.
 * Sorted by family then address. */
struct icpt_ip {
	uint8_t family;          /* AF_INET or AF_INET6 */
	uint8_t addr[16];        /* 4 or 16 bytes used, the rest zero */
};

/* The provider's private state (nftables_intercept_ops.priv_size). What
 * the kernel holds, as far as we know, and the socket it was sent over.
 * The socket stays open between syncs: closing a netfilter socket waits
 * for the kernel to finish releasing the last transaction (an RCU grace
 * period, ~10 ms), which would dwarf a small update. */
struct icpt {
	struct icpt_elem *elems; /* committed, sorted, one per key */
	size_t n;
	struct icpt_ip *ips;     /* committed cluster IPs, sorted, distinct */
	size_t n_ips;
	struct inet_prefix *cidrs; /* the service CIDRs the rules drop, sorted, distinct */
	size_t n_cidrs;
	bool valid;              /* false: the next sync replaces everything */
	struct mnl_socket *nl;   /* NULL: opened by the next sync */
	unsigned long replaces;  /* full replacements committed */
};

unsigned long nft_intercept_replace_count(const void *priv)
{
	const struct icpt *ic = priv;

	return ic->replaces;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static size_t key_len(int family)
{
	return family == AF_INET6 ? 24 : 12;
}

/* The key length of e in its map. */
static size_t elem_key_len(const struct icpt_elem *e)
{
	return e->np ? 8 : key_len(e->family);
}

/* "meta l4proto P redirect to : ip daddr . meta l4proto . th dport map
 * @relay_ports": the map's key is loaded into words 0.., its value (the
 * relay port) lands in word 0, where redirect takes it. */
static int redirect_rule_msg(struct nft_batch *b, int family, const char *chain, uint8_t proto)
{
	struct nft_rule_builder rb;
	unsigned w;
	int r = nft_rule_builder_init(&rb, family, NFT_INTERCEPT_TABLE, chain);

	if (r == 0) {
		nft_expr_load_l4proto(&rb, 0);
		nft_expr_cmp(&rb, 0, NFT_CMP_EQ, &proto, 1);
		nft_expr_text(&rb, " %s redirect to : ", proto == IPPROTO_TCP ? "tcp" : "udp");
		w = nft_expr_load_addr(&rb, true, 0);
		nft_expr_text(&rb, " . ");
		w = nft_expr_load_l4proto(&rb, w);
		nft_expr_text(&rb, " . ");
		nft_expr_load_dport(&rb, w);
		nft_expr_lookup(&rb, 0, MAP_NAME, (int)nft_expr_reg(0), false);
		nft_expr_text(&rb, " map @%s", MAP_NAME);
		nft_expr_redirect(&rb, 0);
		r = nft_rule_builder_msg(&rb, b);
	}
	nft_rule_builder_done(&rb);
	return r;
}

/* "fib daddr type local redirect to : meta l4proto . th dport map
 * @node_ports": node ports on every address (the relay's wildcard
 * frontends), for any address of this host, after the VIP redirects. */
static int np_rule_msg(struct nft_batch *b, int family, const char *chain)
{
	struct nft_rule_builder rb;
	uint32_t local = RTN_LOCAL;
	unsigned w;
	int r = nft_rule_builder_init(&rb, family, NFT_INTERCEPT_TABLE, chain);

	if (r == 0) {
		nft_expr_load_fib_daddr_type(&rb, 0);
		nft_expr_cmp(&rb, 0, NFT_CMP_EQ, &local, 4);
		nft_expr_text(&rb, "fib daddr type local redirect to : ");
		w = nft_expr_load_l4proto(&rb, 0);
		nft_expr_text(&rb, " . ");
		nft_expr_load_dport(&rb, w);
		nft_expr_lookup(&rb, 0, NP_NAME, (int)nft_expr_reg(0), false);
		nft_expr_text(&rb, " map @%s", NP_NAME);
		nft_expr_redirect(&rb, 0);
		r = nft_rule_builder_msg(&rb, b);
	}
	nft_rule_builder_done(&rb);
	return r;
}

/* The guards match "ct state new": a nat chain also sees the packets
 * conntrack relates to a connection it has not NATed (ICMP errors, the
 * reset a reject sends back to a client); the guards judge new connections
 * only, as kube-proxy's. */

/* The reject guard: "ct state new ip daddr @cluster_ips meta l4proto tcp
 * reject with tcp reset" (tcp) or "ct state new ip daddr @cluster_ips
 * reject" (ICMP port unreachable). After the redirects: whatever reaches
 * it was not redirected, so no service defines its port. */
static int reject_rule_msg(struct nft_batch *b, int family, const char *chain, bool tcp)
{
	struct nft_rule_builder rb;
	uint8_t proto = IPPROTO_TCP;
	int r = nft_rule_builder_init(&rb, family, NFT_INTERCEPT_TABLE, chain);

	if (r == 0) {
		nft_expr_match_ct_new(&rb);
		nft_expr_load_addr(&rb, true, 0);
		nft_expr_lookup(&rb, 0, IPS_NAME, -1, false);
		nft_expr_text(&rb, " @%s ", IPS_NAME);
		if (tcp) {
			nft_expr_load_l4proto(&rb, 0);
			nft_expr_cmp(&rb, 0, NFT_CMP_EQ, &proto, 1);
			nft_expr_text(&rb, " tcp ");
			nft_expr_reject_tcp_reset(&rb);
		} else {
			nft_expr_reject_port_unreachable(&rb);
		}
		r = nft_rule_builder_msg(&rb, b);
	}
	nft_rule_builder_done(&rb);
	return r;
}

/* The drop guard of one service CIDR p (of the chain's family): "ct state
 * new ip daddr 10.96.0.0/12 drop". After the reject guards: a cluster IP
 * never gets here. */
static int drop_rule_msg(struct nft_batch *b, int family, const char *chain, const struct inet_prefix *p)
{
	struct nft_rule_builder rb;
	uint8_t mask[16] = { 0 }, zero[16] = { 0 };
	char buf[INET_ADDR_STRLEN];
	int r = nft_rule_builder_init(&rb, family, NFT_INTERCEPT_TABLE, chain);

	for (unsigned bit = 0; bit < p->len && bit < 128; bit++)
		mask[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
	if (r == 0) {
		nft_expr_match_ct_new(&rb);
		nft_expr_load_addr(&rb, true, 0);
		nft_expr_bitwise(&rb, 0, mask, zero, nft_expr_addr_len(&rb));
		nft_expr_cmp(&rb, 0, NFT_CMP_EQ, p->addr.u.bytes, nft_expr_addr_len(&rb));
		nft_expr_text(&rb, " %s/%u ", inet_addr_format(&p->addr, buf), p->len);
		nft_expr_verdict(&rb, NF_DROP, NULL);
		r = nft_rule_builder_msg(&rb, b);
	}
	nft_rule_builder_done(&rb);
	return r;
}

/* The declaration of the set of cluster IPs. create: add it if absent;
 * else the message only asserts that it exists. 0 or -ENOMEM. */
static int ips_msg(struct nft_batch *b, int family, bool create)
{
	const struct nft_set_spec spec = {
		.table = NFT_INTERCEPT_TABLE,
		.name = IPS_NAME,
		.family = family,
		.key_len = family == AF_INET6 ? 16 : 4,
		.key_type = family == AF_INET6 ? NFT_DTYPE_IPV6_ADDR : NFT_DTYPE_IPV4_ADDR,
		.id = 2, /* the map is 1 */
	};

	return nft_set_spec_msg(b, &spec, create);
}

/* The map declaration. create: add it if absent; else the message only
 * asserts that the table and the map exist. 0 or -ENOMEM. */
static int map_msg(struct nft_batch *b, int family, bool create)
{
	const uint32_t key_types[] = { family == AF_INET6 ? NFT_DTYPE_IPV6_ADDR : NFT_DTYPE_IPV4_ADDR,
				       NFT_DTYPE_INET_PROTO, NFT_DTYPE_INET_SERVICE };
	const struct nft_set_spec spec = {
		.table = NFT_INTERCEPT_TABLE,
		.name = MAP_NAME,
		.family = family,
		.flags = NFT_SET_MAP,
		.key_len = (uint32_t)key_len(family),
		.key_type = nft_concat_type(key_types, 3),
		.data_type = NFT_DTYPE_INET_SERVICE,
		.data_len = 2,
		.id = 1, /* the only set of its transaction */
	};

	return nft_set_spec_msg(b, &spec, create);
}

/* The declaration of the node port map (proto . port : relay port).
 * create: add it if absent; else the message only asserts it exists. */
static int np_map_msg(struct nft_batch *b, int family, bool create)
{
	const uint32_t key_types[] = { NFT_DTYPE_INET_PROTO, NFT_DTYPE_INET_SERVICE };
	const struct nft_set_spec spec = {
		.table = NFT_INTERCEPT_TABLE,
		.name = NP_NAME,
		.family = family,
		.flags = NFT_SET_MAP,
		.key_len = 8,
		.key_type = nft_concat_type(key_types, 2),
		.data_type = NFT_DTYPE_INET_SERVICE,
		.data_len = 2,
		.id = 3, /* the map is 1, the cluster IPs 2 */
	};

	return nft_set_spec_msg(b, &spec, create);
}

/* Table, map, set and chains (created if absent), chains emptied and
 * refilled (redirects, then the guards, with a drop rule for each of the
 * cidrs[0..n_cidrs) of family), map and set emptied: the caller adds the
 * elements after this. 0 or -ENOMEM. */
static int skeleton_msgs(struct nft_batch *b, int family, const struct inet_prefix *cidrs, size_t n_cidrs)
{
	static const struct {
		const char *name;
		struct nft_base_chain base;
	} chains[] = {
		{ "nat_prerouting", { "nat", NF_INET_PRE_ROUTING, -100 } },
		{ "nat_output", { "nat", NF_INET_LOCAL_OUT, -100 } },
	};
	int r = nft_table_add_msg(b, family, NFT_INTERCEPT_TABLE);

	if (r == 0)
		r = map_msg(b, family, true);
	if (r == 0)
		r = ips_msg(b, family, true);
	if (r == 0)
		r = np_map_msg(b, family, true);
	for (size_t i = 0; r == 0 && i < sizeof(chains) / sizeof(chains[0]); i++) {
		r = nft_chain_add_msg(b, family, NFT_INTERCEPT_TABLE, chains[i].name, &chains[i].base);
		if (r == 0)
			r = nft_chain_empty_msg(b, family, NFT_INTERCEPT_TABLE, chains[i].name);
		if (r == 0)
			r = redirect_rule_msg(b, family, chains[i].name, IPPROTO_TCP);
		if (r == 0)
			r = redirect_rule_msg(b, family, chains[i].name, IPPROTO_UDP);
		if (r == 0)
			r = np_rule_msg(b, family, chains[i].name);
		if (r == 0)
			r = reject_rule_msg(b, family, chains[i].name, true);
		if (r == 0)
			r = reject_rule_msg(b, family, chains[i].name, false);
		for (size_t k = 0; r == 0 && k < n_cidrs; k++)
			if (cidrs[k].addr.family == family)
				r = drop_rule_msg(b, family, chains[i].name, &cidrs[k]);
	}
	if (r == 0)
		r = nft_setelem_flush_msg(b, family, NFT_INTERCEPT_TABLE, MAP_NAME);
	if (r == 0)
		r = nft_setelem_flush_msg(b, family, NFT_INTERCEPT_TABLE, NP_NAME);
	return r == 0 ? nft_setelem_flush_msg(b, family, NFT_INTERCEPT_TABLE, IPS_NAME) : r;
}

static int elem_cmp(const struct icpt_elem *a, const struct icpt_elem *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	if (a->np != b->np)
		return a->np < b->np ? -1 : 1;
	return memcmp(a->key, b->key, sizeof(a->key));
}

static int elem_qsort_cmp(const void *a, const void *b)
{
	return elem_cmp(a, b);
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

	if (n > 0 && !(v = calloc(n, sizeof(*v))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct intercept_entry *en = &entries[i];
		size_t off = 0;

		if (en->addr.family != AF_INET && en->addr.family != AF_INET6)
			continue;
		if (en->proto != INET_PROTO_TCP && en->proto != INET_PROTO_UDP)
			continue;
		v[k].family = (uint8_t)en->addr.family;
		/* The wildcard address: a node port on every local address. */
		v[k].np = inet_addr_is_any(&en->addr);
		if (!v[k].np)
			nft_concat_put_addr(v[k].key, &off, &en->addr);
		nft_concat_put_proto(v[k].key, &off, en->proto);
		nft_concat_put_port(v[k].key, &off, en->port);
		v[k].relay_port = en->relay_port;
		if (k > 0 && elem_cmp(&v[k - 1], &v[k]) >= 0)
			sorted = false;
		k++;
	}
	if (!sorted)
		qsort(v, k, sizeof(*v), elem_qsort_cmp);
	for (size_t i = 0; i < k; i++)
		if (u == 0 || elem_cmp(&v[u - 1], &v[i]) != 0)
			v[u++] = v[i];
	*ret = v;
	*ret_n = u;
	return 0;
}

static int ip_cmp(const struct icpt_ip *a, const struct icpt_ip *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	return memcmp(a->addr, b->addr, sizeof(a->addr));
}

static int ip_qsort_cmp(const void *a, const void *b)
{
	return ip_cmp(a, b);
}

static int cidr_cmp(const struct inet_prefix *a, const struct inet_prefix *b)
{
	int c = inet_addr_cmp(&a->addr, &b->addr);

	return c ? c : (a->len > b->len) - (a->len < b->len);
}

static int cidr_qsort_cmp(const void *a, const void *b)
{
	return cidr_cmp(a, b);
}

/* What guards stand for: the cluster IPs sorted and distinct into *ret_ips,
 * the service CIDRs (host bits cleared) sorted and distinct into
 * *ret_cidrs; other families skipped. guards NULL: none. The caller frees
 * both arrays (NULL when empty). 0 or -ENOMEM (nothing left allocated). */
static int guards_normalize(const struct intercept_guards *g, struct icpt_ip **ret_ips, size_t *ret_n_ips,
			    struct inet_prefix **ret_cidrs, size_t *ret_n_cidrs)
{
	size_t n_ips = g ? g->n_cluster_ips : 0, n_cidrs = g ? g->n_service_cidrs : 0, k = 0, u = 0;
	struct icpt_ip *ips = NULL;
	struct inet_prefix *cidrs = NULL;

	if ((n_ips && !(ips = calloc(n_ips, sizeof(*ips)))) ||
	    (n_cidrs && !(cidrs = calloc(n_cidrs, sizeof(*cidrs))))) {
		free(ips);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n_ips; i++) {
		const struct inet_addr *a = &g->cluster_ips[i];

		if (a->family != AF_INET && a->family != AF_INET6)
			continue;
		ips[k].family = (uint8_t)a->family;
		memcpy(ips[k].addr, a->u.bytes, a->family == AF_INET6 ? 16 : 4);
		k++;
	}
	if (k > 1)
		qsort(ips, k, sizeof(*ips), ip_qsort_cmp);
	for (size_t i = 0; i < k; i++)
		if (u == 0 || ip_cmp(&ips[u - 1], &ips[i]) != 0)
			ips[u++] = ips[i];
	*ret_ips = ips;
	*ret_n_ips = u;
	k = u = 0;
	for (size_t i = 0; i < n_cidrs; i++) {
		struct inet_prefix p = g->service_cidrs[i];
		size_t bits = p.addr.family == AF_INET6 ? 128 : 32;

		if ((p.addr.family != AF_INET && p.addr.family != AF_INET6) || p.len > bits)
			continue;
		/* Host bits would make the rule's compare never match. */
		for (size_t bit = p.len; bit < bits; bit++)
			p.addr.u.bytes[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
		cidrs[k++] = p;
	}
	if (k > 1)
		qsort(cidrs, k, sizeof(*cidrs), cidr_qsort_cmp);
	for (size_t i = 0; i < k; i++)
		if (u == 0 || cidr_cmp(&cidrs[u - 1], &cidrs[i]) != 0)
			cidrs[u++] = cidrs[i];
	*ret_cidrs = cidrs;
	*ret_n_cidrs = u;
	return 0;
}

static bool cidrs_equal(const struct inet_prefix *a, size_t n_a, const struct inet_prefix *b, size_t n_b)
{
	if (n_a != n_b)
		return false;
	for (size_t i = 0; i < n_a; i++)
		if (cidr_cmp(&a[i], &b[i]) != 0)
			return false;
	return true;
}

/* Write cluster IP ip to w (the key alone, add or delete). */
static int ip_write(struct nft_setelem_writer *w, const struct icpt_ip *ip)
{
	struct nft_setelem k = { .key = ip->addr, .key_len = ip->family == AF_INET6 ? 16 : 4 };

	return nft_setelem_writer_add(w, ip->family, NFT_INTERCEPT_TABLE, IPS_NAME, &k);
}

/* Write e to w (an add carries the relay port, a delete the key alone). */
static int elem_write(struct nft_setelem_writer *w, const struct icpt_elem *e)
{
	uint16_t relay = htons(e->relay_port);
	struct nft_setelem k = { .key = e->key, .key_len = elem_key_len(e), .data = &relay, .data_len = 2 };

	return nft_setelem_writer_add(w, e->family, NFT_INTERCEPT_TABLE, e->np ? NP_NAME : MAP_NAME, &k);
}

/* What one sync asks for, normalized: redirects, cluster IPs, CIDRs. */
struct want {
	struct icpt_elem *elems;
	size_t n_elems;
	struct icpt_ip *ips;
	size_t n_ips;
	struct inet_prefix *cidrs;
	size_t n_cidrs;
};

static void want_done(struct want *w)
{
	free(w->elems);
	free(w->ips);
	free(w->cidrs);
	memset(w, 0, sizeof(*w));
}

/* Fill w from a sync's arguments. 0 or -ENOMEM (w then empty). */
static int want_init(struct want *w, const struct intercept_entry *entries, size_t n,
		     const struct intercept_guards *guards)
{
	int r;

	memset(w, 0, sizeof(*w));
	r = elems_from_entries(entries, n, &w->elems, &w->n_elems);
	if (r == 0)
		r = guards_normalize(guards, &w->ips, &w->n_ips, &w->cidrs, &w->n_cidrs);
	if (r < 0)
		want_done(w);
	return r;
}

/* Append a replacement of everything: both families' skeletons (map and
 * set emptied, a drop rule per CIDR), then every element. 0 or -ENOMEM. */
static int replace_msgs(struct nft_batch *b, const struct want *w)
{
	struct nft_setelem_writer wr;
	int r = 0;

	for (int fam = 0; r == 0 && fam < 2; fam++)
		r = skeleton_msgs(b, fam ? AF_INET6 : AF_INET, w->cidrs, w->n_cidrs);
	if (r < 0)
		return r;
	nft_setelem_writer_init(&wr, b, true, ELEMS_PER_MSG);
	for (size_t i = 0; i < w->n_elems && elem_write(&wr, &w->elems[i]) == 0; i++)
		;
	for (size_t i = 0; i < w->n_ips && ip_write(&wr, &w->ips[i]) == 0; i++)
		;
	return nft_setelem_writer_finish(&wr);
}

/* The difference between the committed items and the new ones, as the
 * sorted diff finds it: pointers into both lists (map elements or cluster
 * IPs, one kind per diff). */
struct diff {
	const void **dels, **adds;
	size_t n_dels, n_adds;
};

static int diff_cmp(const void *old_item, const void *new_item, void *ctx)
{
	(void)ctx;
	return elem_cmp(old_item, new_item);
}

static int diff_removed(const void *old_item, void *ctx)
{
	struct diff *d = ctx;

	d->dels[d->n_dels++] = old_item;
	return 0;
}

static int diff_added(const void *new_item, void *ctx)
{
	struct diff *d = ctx;

	d->adds[d->n_adds++] = new_item;
	return 0;
}

/* A map key has one value: a new relay port is a delete and an add. */
static int diff_kept(const void *old_item, const void *new_item, void *ctx)
{
	const struct icpt_elem *o = old_item, *n = new_item;

	if (o->relay_port == n->relay_port)
		return 0;
	diff_removed(o, ctx);
	return diff_added(n, ctx);
}

static const struct sorted_diff_ops diff_ops = {
	.cmp = diff_cmp,
	.removed = diff_removed,
	.added = diff_added,
	.kept = diff_kept,
};

static int ips_diff_cmp(const void *old_item, const void *new_item, void *ctx)
{
	(void)ctx;
	return ip_cmp(old_item, new_item);
}

/* A set element has no value: kept is unchanged. */
static const struct sorted_diff_ops ips_diff_ops = {
	.cmp = ips_diff_cmp,
	.removed = diff_removed,
	.added = diff_added,
};

/* Write the map elements (ips false) or cluster IPs (true) of list (n
 * pointers) to a new writer of kind add. 0 or -ENOMEM. */
static int elems_msgs(struct nft_batch *b, bool add, bool ips, const void *const *list, size_t n)
{
	struct nft_setelem_writer w;

	nft_setelem_writer_init(&w, b, add, ELEMS_PER_MSG);
	for (size_t i = 0; i < n && (ips ? ip_write(&w, list[i]) : elem_write(&w, list[i])) == 0; i++)
		;
	return nft_setelem_writer_finish(&w);
}

/* Append the update from what ic committed to w (same service CIDRs): a
 * check that each family's table, map and set exist, deletes of the keys
 * that went or whose relay port changed and of the cluster IPs that went,
 * then adds of the keys that came or changed and of the new cluster IPs.
 * The counts go to *ret_dels and *ret_adds. 0 or -ENOMEM. */
static int update_msgs(struct nft_batch *b, const struct icpt *ic, const struct want *w, size_t *ret_dels,
		       size_t *ret_adds)
{
	struct diff d = { .dels = malloc((ic->n + 1) * sizeof(*d.dels)),
			  .adds = malloc((w->n_elems + 1) * sizeof(*d.adds)) };
	struct diff di = { .dels = malloc((ic->n_ips + 1) * sizeof(*di.dels)),
			   .adds = malloc((w->n_ips + 1) * sizeof(*di.adds)) };
	int r = d.dels && d.adds && di.dels && di.adds ? 0 : -ENOMEM;

	if (r == 0)
		r = sorted_diff(ic->elems, ic->n, sizeof(*ic->elems), w->elems, w->n_elems, sizeof(*w->elems),
				&diff_ops, &d);
	if (r == 0)
		r = sorted_diff(ic->ips, ic->n_ips, sizeof(*ic->ips), w->ips, w->n_ips, sizeof(*w->ips),
				&ips_diff_ops, &di);
	for (int fam = 0; r == 0 && fam < 2; fam++) {
		r = map_msg(b, fam ? AF_INET6 : AF_INET, false);
		if (r == 0)
			r = ips_msg(b, fam ? AF_INET6 : AF_INET, false);
		if (r == 0)
			r = np_map_msg(b, fam ? AF_INET6 : AF_INET, false);
	}
	if (r == 0)
		r = elems_msgs(b, false, false, d.dels, d.n_dels);
	if (r == 0)
		r = elems_msgs(b, false, true, di.dels, di.n_dels);
	if (r == 0)
		r = elems_msgs(b, true, false, d.adds, d.n_adds);
	if (r == 0)
		r = elems_msgs(b, true, true, di.adds, di.n_adds);
	*ret_dels = d.n_dels + di.n_dels;
	*ret_adds = d.n_adds + di.n_adds;
	free(d.dels);
	free(d.adds);
	free(di.dels);
	free(di.adds);
	return r;
}

int nft_intercept_replace_msgs(struct nft_batch *b, const struct intercept_entry *entries, size_t n,
			       const struct intercept_guards *guards)
{
	struct want w;
	int r;

	if (n > NFT_INTERCEPT_MAX)
		return -E2BIG;
	r = want_init(&w, entries, n, guards);
	if (r == 0)
		r = replace_msgs(b, &w);
	want_done(&w);
	return r;
}

/* Forget the committed elements (the next sync replaces everything) and
 * close the socket: it may hold replies nobody read. */
static void icpt_clear(struct icpt *ic)
{
	free(ic->elems);
	ic->elems = NULL;
	ic->n = 0;
	free(ic->ips);
	ic->ips = NULL;
	ic->n_ips = 0;
	free(ic->cidrs);
	ic->cidrs = NULL;
	ic->n_cidrs = 0;
	ic->valid = false;
	if (ic->nl) {
		mnl_socket_close(ic->nl);
		ic->nl = NULL;
	}
}

/* Open ic's socket; on failure say so in be. 0 or -errno. */
static int icpt_open(struct icpt *ic, struct nft_batch_error *be)
{
	int r = nft_socket_open(&ic->nl);

	if (r < 0) {
		ic->nl = NULL;
		snprintf(be->desc, sizeof(be->desc), "opening the netfilter netlink socket");
	}
	return r;
}

static int intercept_init(void *priv)
{
	struct icpt *ic = priv;

	/* Zeroed by the caller: nothing committed, no socket yet (the first
	 * sync opens it, so that init needs no privilege). */
	*ic = (struct icpt){ 0 };
	return 0;
}

static int intercept_sync(void *priv, const struct intercept_entry *entries, size_t n,
			  const struct intercept_guards *guards)
{
	struct icpt *ic = priv;
	struct want w = { 0 };
	size_t n_dels = 0, n_adds = 0;
	struct nft_batch *b = NULL;
	struct nft_batch_error be = { 0 };
	double t0 = now_ms();
	int r;

	/* Permanent until the cluster shrinks: the caller retries with backoff,
	 * and this line says why at every try. */
	if (n > NFT_INTERCEPT_MAX || (guards && guards->n_cluster_ips > NFT_INTERCEPT_MAX))
		return log_errno(-E2BIG, "intercept: %zu frontends to redirect (%zu cluster IPs) exceed "
				 "the sanity bound NFT_INTERCEPT_MAX (%u); the previous redirects stay",
				 n, guards ? guards->n_cluster_ips : 0, NFT_INTERCEPT_MAX);
	r = want_init(&w, entries, n, guards);
	if (r == 0 && !(b = nft_batch_new()))
		r = -ENOMEM;
	if (r == 0 && !ic->nl)
		r = icpt_open(ic, &be);
	/* The CIDRs are rules: when they change, everything is replaced. */
	if (r == 0 && ic->valid && cidrs_equal(ic->cidrs, ic->n_cidrs, w.cidrs, w.n_cidrs)) {
		r = update_msgs(b, ic, &w, &n_dels, &n_adds);
		if (r == 0)
			r = nft_batch_commit(ic->nl, b, 0, &be);
		if (r == 0) {
			log_debug("intercept: %zu redirects, %zu cluster IPs, -%zu +%zu in one transaction "
				  "of %zu messages in %.1f ms", w.n_elems, w.n_ips, n_dels, n_adds,
				  nft_batch_count(b), now_ms() - t0);
			goto done;
		}
		if (r == -ENOMEM)
			goto done;
		/* Changed behind our back (deleted table, flushed map...): the
		 * refused transaction changed nothing, start from scratch. */
		log_warn("intercept: update of %zu redirects and %zu cluster IPs (-%zu +%zu) refused "
			 "at \"%s\": %s; replacing them all", w.n_elems, w.n_ips, n_dels, n_adds, be.desc,
			 strerror(-r));
		/* A new socket: the refused one may still hold replies. */
		icpt_clear(ic);
		nft_batch_clear(b);
		be = (struct nft_batch_error){ 0 };
		r = icpt_open(ic, &be);
	}
	/* b is empty here: nothing was sent yet, or the refused update was
	 * cleared. */
	if (r == 0)
		r = replace_msgs(b, &w);
	if (r == 0)
		r = nft_batch_commit(ic->nl, b, 0, &be);
	if (r == 0) {
		ic->replaces++;
		log_info("intercept: %zu redirects, %zu cluster IPs and %zu service CIDRs guarded, "
			 "programmed from scratch in one transaction of %zu messages in %.1f ms",
			 w.n_elems, w.n_ips, w.n_cidrs, nft_batch_count(b), now_ms() - t0);
	}
done:
	if (r == 0) {
		free(ic->elems);
		free(ic->ips);
		free(ic->cidrs);
		ic->elems = w.elems;
		ic->n = w.n_elems;
		ic->ips = w.ips;
		ic->n_ips = w.n_ips;
		ic->cidrs = w.cidrs;
		ic->n_cidrs = w.n_cidrs;
		ic->valid = true;
		memset(&w, 0, sizeof(w));
	} else {
		/* Whatever the kernel holds now, the next sync replaces it, over
		 * a new socket (this one may hold unread replies). */
		icpt_clear(ic);
		log_errno(r, "intercept: programming %zu redirects failed (refused: %s)", w.n_elems,
			  be.desc[0] ? be.desc : "nothing sent");
	}
	want_done(&w);
	nft_batch_free(b);
	return r;
}

static void intercept_fini(void *priv)
{
	icpt_clear(priv);
}

static int intercept_cleanup(void)
{
	struct mnl_socket *nl = NULL;
	struct nft_batch *b = nft_batch_new();
	int r, ret = 0;

	if (!b)
		return -ENOMEM;
	r = nft_socket_open(&nl);
	/* One transaction per family: a table that is absent (ENOENT) must
	 * not keep the other family's from going. */
	for (int fam = 0; r == 0 && fam < 2; fam++) {
		int rr;

		nft_batch_clear(b);
		r = nft_table_remove_msg(b, fam ? AF_INET6 : AF_INET, NFT_INTERCEPT_TABLE);
		if (r < 0)
			break;
		rr = nft_batch_commit(nl, b, 0, NULL);
		if (rr == 0)
			log_info("nftables: cleanup removed table %s %s", fam ? "ip6" : "ip", NFT_INTERCEPT_TABLE);
		if (rr < 0 && rr != -ENOENT)
			ret = rr;
	}
	nft_batch_free(b);
	if (nl)
		mnl_socket_close(nl);
	return r < 0 ? r : ret;
}

const struct intercept_ops nftables_intercept_ops = {
	.name = "nftables",
	/* The committed redirects, the socket, the replace counter. */
	.priv_size = sizeof(struct icpt),
	/* Nothing committed, no socket: no kernel change, no privilege. */
	.init = intercept_init,
	/* The first time (and after a failure, a refused update or new
	 * service CIDRs): tables, chains, rules, map and set replaced; then
	 * the difference. */
	.sync = intercept_sync,
	/* Memory and socket only; the tables stay for cleanup. */
	.fini = intercept_fini,
	/* Both families' ferry_intercept tables, absent or not. */
	.cleanup = intercept_cleanup,
};
