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
#include <linux/netfilter/nf_tables.h>

#include "log.h"
#include "nft_batch.h"
#include "nft_expr.h"
#include "nft_set.h"
#include "nft_table.h"
#include "sorted_diff.h"

#define MAP_NAME "relay_ports"

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
	uint8_t key[24];
	uint16_t relay_port;     /* host order */
};

/* The provider's private state (nftables_intercept_ops.priv_size). What
 * the kernel holds, as far as we know, and the socket it was sent over.
 * The socket stays open between syncs: closing a netfilter socket waits
 * for the kernel to finish releasing the last transaction (an RCU grace
 * period, ~10 ms), which would dwarf a small update. */
struct icpt {
	struct icpt_elem *elems; /* committed, sorted, one per key */
	size_t n;
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

/* Table, map and chains (created if absent), chains emptied and refilled,
 * map emptied: the caller adds the elements after this. 0 or -ENOMEM. */
static int skeleton_msgs(struct nft_batch *b, int family)
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
	for (size_t i = 0; r == 0 && i < sizeof(chains) / sizeof(chains[0]); i++) {
		r = nft_chain_add_msg(b, family, NFT_INTERCEPT_TABLE, chains[i].name, &chains[i].base);
		if (r == 0)
			r = nft_chain_empty_msg(b, family, NFT_INTERCEPT_TABLE, chains[i].name);
		if (r == 0)
			r = redirect_rule_msg(b, family, chains[i].name, IPPROTO_TCP);
		if (r == 0)
			r = redirect_rule_msg(b, family, chains[i].name, IPPROTO_UDP);
	}
	return r == 0 ? nft_setelem_flush_msg(b, family, NFT_INTERCEPT_TABLE, MAP_NAME) : r;
}

static int elem_cmp(const struct icpt_elem *a, const struct icpt_elem *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
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

/* Write e to w (an add carries the relay port, a delete the key alone). */
static int elem_write(struct nft_setelem_writer *w, const struct icpt_elem *e)
{
	uint16_t relay = htons(e->relay_port);
	struct nft_setelem k = { .key = e->key, .key_len = key_len(e->family), .data = &relay, .data_len = 2 };

	return nft_setelem_writer_add(w, e->family, NFT_INTERCEPT_TABLE, MAP_NAME, &k);
}

/* Append a replacement of everything: both families' skeletons (map
 * emptied), then every element. 0 or -ENOMEM. */
static int replace_msgs(struct nft_batch *b, const struct icpt_elem *elems, size_t n)
{
	struct nft_setelem_writer w;
	int r = 0;

	for (int fam = 0; r == 0 && fam < 2; fam++)
		r = skeleton_msgs(b, fam ? AF_INET6 : AF_INET);
	if (r < 0)
		return r;
	nft_setelem_writer_init(&w, b, true, ELEMS_PER_MSG);
	for (size_t i = 0; i < n && elem_write(&w, &elems[i]) == 0; i++)
		;
	return nft_setelem_writer_finish(&w);
}

/* The difference between the committed elements and the new ones, as the
 * sorted diff finds it: pointers into both lists. */
struct diff {
	const struct icpt_elem **dels, **adds;
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

/* Write the elements of list (n pointers) to a new writer of kind add.
 * 0 or -ENOMEM. */
static int elems_msgs(struct nft_batch *b, bool add, const struct icpt_elem *const *list, size_t n)
{
	struct nft_setelem_writer w;

	nft_setelem_writer_init(&w, b, add, ELEMS_PER_MSG);
	for (size_t i = 0; i < n && elem_write(&w, list[i]) == 0; i++)
		;
	return nft_setelem_writer_finish(&w);
}

/* Append the update from old to new (both sorted): a check that each
 * family's table and map exist, deletes of the keys that went or whose relay
 * port changed, then adds of the keys that came or changed. The counts go
 * to *ret_dels and *ret_adds. 0 or -ENOMEM. */
static int update_msgs(struct nft_batch *b, const struct icpt_elem *old, size_t n_old,
		       const struct icpt_elem *new, size_t n_new, size_t *ret_dels, size_t *ret_adds)
{
	struct diff d = { .dels = malloc((n_old + 1) * sizeof(*d.dels)),
			  .adds = malloc((n_new + 1) * sizeof(*d.adds)) };
	int r = d.dels && d.adds ? 0 : -ENOMEM;

	if (r == 0)
		r = sorted_diff(old, n_old, sizeof(*old), new, n_new, sizeof(*new), &diff_ops, &d);
	for (int fam = 0; r == 0 && fam < 2; fam++)
		r = map_msg(b, fam ? AF_INET6 : AF_INET, false);
	if (r == 0)
		r = elems_msgs(b, false, d.dels, d.n_dels);
	if (r == 0)
		r = elems_msgs(b, true, d.adds, d.n_adds);
	free(d.dels);
	free(d.adds);
	*ret_dels = d.n_dels;
	*ret_adds = d.n_adds;
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

/* Forget the committed elements (the next sync replaces everything) and
 * close the socket: it may hold replies nobody read. */
static void icpt_clear(struct icpt *ic)
{
	free(ic->elems);
	ic->elems = NULL;
	ic->n = 0;
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

static int intercept_sync(void *priv, const struct intercept_entry *entries, size_t n)
{
	struct icpt *ic = priv;
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
	if (r == 0 && !ic->nl)
		r = icpt_open(ic, &be);
	if (r == 0 && ic->valid) {
		r = update_msgs(b, ic->elems, ic->n, elems, n_elems, &n_dels, &n_adds);
		if (r == 0)
			r = nft_batch_commit(ic->nl, b, 0, &be);
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
		/* A new socket: the refused one may still hold replies. */
		icpt_clear(ic);
		nft_batch_clear(b);
		be = (struct nft_batch_error){ 0 };
		r = icpt_open(ic, &be);
	}
	if (r == 0)
		r = replace_msgs(b, elems, n_elems);
	if (r == 0)
		r = nft_batch_commit(ic->nl, b, 0, &be);
	if (r == 0) {
		ic->replaces++;
		log_info("intercept: %zu redirects programmed from scratch in one transaction of %zu "
			 "messages in %.1f ms", n_elems, nft_batch_count(b), now_ms() - t0);
	}
done:
	if (r == 0) {
		free(ic->elems);
		ic->elems = elems;
		ic->n = n_elems;
		ic->valid = true;
		elems = NULL;
	} else {
		/* Whatever the kernel holds now, the next sync replaces it, over
		 * a new socket (this one may hold unread replies). */
		icpt_clear(ic);
		log_errno(r, "intercept: programming %zu redirects failed (refused: %s)", n_elems,
			  be.desc[0] ? be.desc : "nothing sent");
	}
	free(elems);
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
	/* The first time (and after a failure or a refused update): tables,
	 * chains, rules and map replaced; then the difference. */
	.sync = intercept_sync,
	/* Memory and socket only; the tables stay for cleanup. */
	.fini = intercept_fini,
	/* Both families' ferry_intercept tables, absent or not. */
	.cleanup = intercept_cleanup,
};
