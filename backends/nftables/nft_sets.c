/* Mechanism: ferry's sets and maps, their elements and the messages that
 * declare, fill and empty them. See nft_sets.h for the layout rules.
 *
 * What is ferry's lives here: the catalogue of sets (set_defs), struct
 * nft_elem and its text form. The nf_tables side (declarations, the key
 * layout, element messages and their splitting) is netfilter/nft_set.h,
 * shared with the other users of nf_tables. */
#include "nft_sets.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "nft_batch.h"
#include "nft_set.h"

/* Field kinds of a key or data concatenation. */
enum fld { F_END = 0, F_ADDR, F_PROTO, F_PORT, F_SLOT, F_MARK };

struct set_def {
	const char *name;
	enum fld key[5];
	enum fld data[3];  /* F_END only: a set, or a verdict map when vmap */
	bool vmap;
	bool interval;
	const char *comment;
};

static const struct set_def set_defs[NFT_SET_COUNT] = {
	[NFT_SET_FE] = { "fe", { F_ADDR, F_PROTO, F_PORT }, { 0 }, true, false,
			 "frontend -> slot chain" },
	[NFT_SET_NP] = { "np", { F_PROTO, F_PORT }, { 0 }, true, false,
			 "node port on every local address -> slot chain" },
	[NFT_SET_EMPTY_FE] = { "empty_fe", { F_ADDR, F_PROTO, F_PORT }, { 0 }, true, false,
			       "frontend without endpoints -> reject or drop" },
	[NFT_SET_EMPTY_NP] = { "empty_np", { F_PROTO, F_PORT }, { 0 }, true, false,
			       "node port without endpoints -> reject or drop" },
	[NFT_SET_MASQ_FE] = { "masq_fe", { F_ADDR, F_PROTO, F_PORT }, { 0 }, false, false,
			      "frontends whose traffic is masqueraded" },
	[NFT_SET_LOCAL_FE] = { "local_fe", { F_ADDR, F_PROTO, F_PORT }, { 0 }, false, false,
			       "masqueraded unless the traffic is local (--detect-local-mode)" },
	[NFT_SET_MASQ_NP] = { "masq_np", { F_PROTO, F_PORT }, { 0 }, false, false,
			      "node ports whose traffic is masqueraded" },
	[NFT_SET_RANGED_FE] = { "ranged_fe", { F_ADDR, F_PROTO, F_PORT }, { 0 }, false, false,
				"frontends restricted by source ranges" },
	[NFT_SET_RANGES] = { "ranges", { F_ADDR, F_PROTO, F_PORT, F_ADDR }, { 0 }, false, true,
			     "allowed source ranges" },
	[NFT_SET_HAIRPIN] = { "hairpin", { F_ADDR, F_ADDR }, { 0 }, false, false,
			      "endpoint reaching itself" },
	[NFT_SET_SLOTS] = { "slots", { F_ADDR, F_PROTO, F_PORT, F_SLOT }, { F_ADDR, F_PORT }, false, false,
			    "slot table: frontend . slot -> endpoint" },
	[NFT_SET_NP_SLOTS] = { "np_slots", { F_PROTO, F_PORT, F_SLOT }, { F_ADDR, F_PORT }, false, false,
			       "slot table of wildcard node ports" },
	[NFT_SET_AFF_SLOTS] = { "aff_slots", { F_ADDR, F_PROTO, F_PORT, F_MARK }, { F_ADDR, F_PORT }, false, false,
				"slot table of ClientIP-affinity frontends (slot in the packet mark)" },
	[NFT_SET_NP_AFF_SLOTS] = { "np_aff_slots", { F_PROTO, F_PORT, F_MARK }, { F_ADDR, F_PORT }, false, false,
				   "slot table of ClientIP-affinity wildcard node ports" },
	[NFT_SET_SC_FE] = { "sc_fe", { F_ADDR, F_PROTO, F_PORT }, { 0 }, true, false,
			    "externalTrafficPolicy Local frontend -> its short-circuit (pods, the node)" },
	[NFT_SET_SC_NP] = { "sc_np", { F_PROTO, F_PORT }, { 0 }, true, false,
			    "the same for node ports on every local address" },
	[NFT_SET_CLUSTER_IPS] = { "cluster_ips", { F_ADDR }, { 0 }, false, false,
				  "cluster IPs: new connections to their other ports are rejected" },
	[NFT_SET_DIGEST] = { "digest", { F_ADDR, F_PROTO, F_PORT, F_MARK, F_MARK }, { 0 }, false, false,
			     "frontend . digest of its slots (read back at restart, not by rules)" },
	[NFT_SET_NP_DIGEST] = { "np_digest", { F_PROTO, F_PORT, F_MARK, F_MARK }, { 0 }, false, false,
				"wildcard node port . digest of its slots" },
};

bool nft_set_is_short_circuit(uint8_t set)
{
	return set == NFT_SET_SC_FE || set == NFT_SET_SC_NP;
}

bool nft_set_is_np(uint8_t set)
{
	return set == NFT_SET_NP || set == NFT_SET_SC_NP || set == NFT_SET_EMPTY_NP || set == NFT_SET_MASQ_NP ||
	       set == NFT_SET_NP_SLOTS || set == NFT_SET_NP_AFF_SLOTS || set == NFT_SET_NP_DIGEST;
}

bool nft_set_is_dispatch(uint8_t set)
{
	return set == NFT_SET_FE || set == NFT_SET_NP || nft_set_is_short_circuit(set);
}

uint32_t nft_sc_slot_base(uint32_t masq_mark)
{
	uint32_t base = 0x10000; /* above NFT_SLOTS_MAX (1024) slot numbers */

	while (base && (masq_mark & base))
		base <<= 1;
	return base;
}

unsigned nft_slots_for(size_t n)
{
	if (n == 0)
		return 1;
	return n <= NFT_SLOTS_EXACT_MAX ? (unsigned)n : NFT_SLOTS_MAX;
}

/* Bytes the field takes in the data path, and padded to a register. */
static size_t fld_size(enum fld f, int family)
{
	switch (f) {
	case F_ADDR:
		return family == AF_INET6 ? 16 : 4;
	case F_PROTO:
		return 1;
	case F_PORT:
		return 2;
	case F_SLOT:
	case F_MARK:
		return 4;
	default:
		return 0;
	}
}

static size_t fld_padded(enum fld f, int family)
{
	return (fld_size(f, family) + 3) & ~(size_t)3;
}

/* nft's datatype numbers, for the key/data type nft shows when listing. */
static uint32_t fld_type(enum fld f, int family)
{
	switch (f) {
	case F_ADDR:
		return family == AF_INET6 ? NFT_DTYPE_IPV6_ADDR : NFT_DTYPE_IPV4_ADDR;
	case F_PROTO:
		return NFT_DTYPE_INET_PROTO;
	case F_PORT:
		return NFT_DTYPE_INET_SERVICE;
	case F_SLOT:
	case F_MARK:
		return NFT_DTYPE_MARK;             /* a fixed 32-bit integer */
	default:
		return 0;
	}
}

static size_t flds_len(const enum fld *f, size_t max, int family)
{
	size_t len = 0;
	for (size_t i = 0; i < max && f[i]; i++)
		len += fld_padded(f[i], family);
	return len;
}

static uint32_t flds_type(const enum fld *f, size_t max, int family)
{
	uint32_t types[5] = { 0 };
	size_t n = 0;

	for (; n < max && n < 5 && f[n]; n++)
		types[n] = fld_type(f[n], family);
	return nft_concat_type(types, n);
}

const char *nft_set_name(enum nft_set_id set)
{
	return set < NFT_SET_COUNT ? set_defs[set].name : "?";
}

size_t nft_set_key_len(enum nft_set_id set, int family)
{
	return flds_len(set_defs[set].key, 5, family);
}

size_t nft_set_data_len(enum nft_set_id set, int family)
{
	return flds_len(set_defs[set].data, 3, family);
}

bool nft_set_is_vmap(enum nft_set_id set)
{
	return set_defs[set].vmap;
}

void nft_elem_init(struct nft_elem *e, enum nft_set_id set, int family)
{
	memset(e, 0, sizeof(*e));
	e->set = (uint8_t)set;
	e->family = (uint8_t)family;
}

/* The key's fields: the layout every user of nf_tables shares. The address
 * takes the element's family, whatever a says. */
void nft_elem_key_addr(struct nft_elem *e, size_t *off, const struct inet_addr *a)
{
	struct inet_addr fa = *a;

	fa.family = e->family;
	nft_concat_put_addr(e->key, off, &fa);
}

void nft_elem_key_proto(struct nft_elem *e, size_t *off, enum inet_proto p)
{
	nft_concat_put_proto(e->key, off, p);
}

void nft_elem_key_port(struct nft_elem *e, size_t *off, uint16_t port)
{
	nft_concat_put_port(e->key, off, port);
}

void nft_elem_key_slot(struct nft_elem *e, size_t *off, uint32_t slot)
{
	nft_concat_put_u32(e->key, off, slot);
}

void nft_elem_data_endpoint(struct nft_elem *e, const struct inet_addr *a, uint16_t port)
{
	struct inet_addr fa = *a;
	size_t off = 0;

	fa.family = e->family;
	nft_concat_put_addr(e->data, &off, &fa);
	nft_concat_put_port(e->data, &off, port);
}

int nft_elem_cmp(const struct nft_elem *a, const struct nft_elem *b, bool *ret_same_key)
{
	int c;

	if (ret_same_key)
		*ret_same_key = false;
	if (a->set != b->set)
		return a->set < b->set ? -1 : 1;
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	c = memcmp(a->key, b->key, sizeof(a->key));
	if (c)
		return c;
	if (a->plen != b->plen)
		return a->plen < b->plen ? -1 : 1;
	if (ret_same_key)
		*ret_same_key = true;
	if (a->verdict != b->verdict)
		return a->verdict < b->verdict ? -1 : 1;
	if (a->aff_timeout != b->aff_timeout)
		return a->aff_timeout < b->aff_timeout ? -1 : 1;
	if (a->aff_mode != b->aff_mode)
		return a->aff_mode < b->aff_mode ? -1 : 1;
	return memcmp(a->data, b->data, sizeof(a->data));
}

int nft_set_declare(struct nft_batch *b, int family, enum nft_set_id set)
{
	return nft_set_declare_sized(b, family, set, 0);
}

int nft_set_declare_sized(struct nft_batch *b, int family, enum nft_set_id set, uint32_t size)
{
	const struct set_def *d = &set_defs[set];
	uint8_t field_len[5];
	struct nft_set_spec spec = {
		.table = NFT_TABLE_NAME,
		.name = d->name,
		.family = family,
		.key_len = (uint32_t)nft_set_key_len(set, family),
		.key_type = flds_type(d->key, 5, family),
		.size = size,
		/* Unique in any transaction ferry builds: one per set and family
		 * (the affinity maps count from 1000). */
		.id = (uint32_t)(family == AF_INET6 ? 100 : 1) + (uint32_t)set,
	};

	if (d->vmap) {
		spec.flags |= NFT_SET_MAP;
		spec.data_type = NFT_DATA_VERDICT;
	} else if (d->data[0]) {
		spec.flags |= NFT_SET_MAP;
		spec.data_type = flds_type(d->data, 3, family);
		spec.data_len = (uint32_t)nft_set_data_len(set, family);
	}
	if (d->interval) {
		spec.flags |= NFT_SET_INTERVAL | NFT_SET_CONCAT;
		for (; spec.n_fields < 5 && d->key[spec.n_fields]; spec.n_fields++)
			field_len[spec.n_fields] = (uint8_t)fld_size(d->key[spec.n_fields], family);
		spec.field_len = field_len;
	}
	return nft_set_spec_msg(b, &spec, true);
}

int nft_set_flush(struct nft_batch *b, int family, enum nft_set_id set)
{
	return nft_set_flush_name(b, family, set_defs[set].name);
}

int nft_set_flush_name(struct nft_batch *b, int family, const char *name)
{
	return nft_setelem_flush_msg(b, family, NFT_TABLE_NAME, name);
}

/* The prefix of the chains a verdict map's elements go to: "sc" for the
 * short-circuit, then "np" for the wildcard node ports. */
static const char *chain_prefix(uint8_t set)
{
	bool sc = nft_set_is_short_circuit(set), np = nft_set_is_np(set);

	return sc ? (np ? "scnp" : "sc") : (np ? "np" : "");
}

const char *nft_verdict_chain(const struct nft_elem *e, char *buf, size_t len)
{
	static const char *const mode_suffix[] = { "", "_m", "_l" };

	if (e->verdict == NFT_VERDICT_REJECT)
		snprintf(buf, len, "do_reject");
	else if (e->aff_timeout)
		snprintf(buf, len, "%saff_%u_%u%s", chain_prefix(e->set), e->aff_timeout, e->verdict,
			 mode_suffix[e->aff_mode % 3]);
	else
		snprintf(buf, len, "%slb_%u", chain_prefix(e->set), e->verdict);
	return buf;
}

int nft_aff_map_declare(struct nft_batch *b, int family, uint32_t timeout_s)
{
	static const enum fld key[] = { F_ADDR, F_ADDR, F_PROTO, F_PORT };
	char name[32];
	struct nft_set_spec spec = {
		.table = NFT_TABLE_NAME,
		.name = name,
		.family = family,
		.flags = NFT_SET_MAP | NFT_SET_TIMEOUT | NFT_SET_EVAL,
		.key_len = (uint32_t)flds_len(key, 4, family),
		.key_type = flds_type(key, 4, family),
		.data_type = fld_type(F_MARK, family),
		.data_len = 4,
		.timeout_ms = (uint64_t)timeout_s * 1000,
		.id = 1000 + timeout_s % 100000,
	};

	snprintf(name, sizeof(name), "aff_%u", timeout_s);
	return nft_set_spec_msg(b, &spec, true);
}

void nft_aff_map_print(FILE *out, int family, uint32_t timeout_s)
{
	const char *ip = family == AF_INET6 ? "ip6" : "ip";

	fprintf(out, "add map %s %s aff_%u { typeof %s saddr . %s daddr . meta l4proto . th dport : meta mark; "
		     "flags dynamic,timeout; timeout %us; }\n",
		ip, NFT_TABLE_NAME, timeout_s, ip, ip, timeout_s);
}

void nft_elem_init_digest(struct nft_elem *e, const struct nft_elem *v, uint64_t digest)
{
	size_t off = nft_set_key_len((enum nft_set_id)v->set, v->family);

	nft_elem_init(e, nft_set_is_np(v->set) ? NFT_SET_NP_DIGEST : NFT_SET_DIGEST, v->family);
	memcpy(e->key, v->key, off);
	nft_elem_key_slot(e, &off, (uint32_t)(digest >> 32));
	nft_elem_key_slot(e, &off, (uint32_t)digest);
}

/* One step of the element hash: a 64-bit multiply-xorshift mix. */
static uint64_t hash_mix(uint64_t h, uint64_t w)
{
	h ^= w;
	h *= 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 29);
}

uint64_t nft_elem_hash(const struct nft_elem *e)
{
	uint64_t h = 0x243f6a8885a308d3ull, w;

	/* Everything nft_elem_cmp compares, eight bytes at a time (the key
	 * and data arrays are zero past their fields). */
	h = hash_mix(h, (uint64_t)e->set | (uint64_t)e->family << 8 | (uint64_t)e->plen << 16 |
				(uint64_t)e->aff_mode << 24 | (uint64_t)e->verdict << 32);
	h = hash_mix(h, e->aff_timeout);
	for (size_t i = 0; i + 8 <= sizeof(e->key); i += 8) {
		memcpy(&w, e->key + i, 8);
		h = hash_mix(h, w);
	}
	for (size_t i = 0; i < sizeof(e->data); i += 8) {
		w = 0;
		memcpy(&w, e->data + i, sizeof(e->data) - i < 8 ? sizeof(e->data) - i : 8);
		h = hash_mix(h, w);
	}
	/* Final avalanche (the splitmix64 finaliser's constants). */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

/* Offset of the protocol field in a digest key of family (after the
 * frontend address). */
static size_t digest_proto_off(int family)
{
	return fld_padded(F_ADDR, family);
}

void nft_elem_init_table_digest(struct nft_elem *e, enum nft_table_digest kind, uint64_t digest)
{
	size_t off = digest_proto_off(AF_INET) + fld_padded(F_PROTO, AF_INET);

	/* Address and protocol stay zero; the port is the kind. */
	nft_elem_init(e, NFT_SET_DIGEST, AF_INET);
	nft_elem_key_port(e, &off, (uint16_t)kind);
	nft_elem_key_slot(e, &off, (uint32_t)(digest >> 32));
	nft_elem_key_slot(e, &off, (uint32_t)digest);
}

bool nft_elem_is_table_digest(const struct nft_elem *e, enum nft_table_digest *ret_kind, uint64_t *ret_digest)
{
	size_t port_off = digest_proto_off(AF_INET) + fld_padded(F_PROTO, AF_INET);
	size_t off = port_off + fld_padded(F_PORT, AF_INET);
	uint16_t port_be;
	uint32_t hi, lo;

	if (e->set != NFT_SET_DIGEST || e->family != AF_INET || e->key[digest_proto_off(AF_INET)] != 0)
		return false;
	memcpy(&port_be, e->key + port_off, 2);
	if (ntohs(port_be) >= NFT_DIGEST_KINDS)
		return false;
	if (ret_kind)
		*ret_kind = (enum nft_table_digest)ntohs(port_be);
	if (ret_digest) {
		memcpy(&hi, e->key + off, 4);
		memcpy(&lo, e->key + off + 4, 4);
		*ret_digest = (uint64_t)hi << 32 | lo;
	}
	return true;
}

void nft_elem_init_content_digest(struct nft_elem *e, uint64_t digest)
{
	nft_elem_init_table_digest(e, NFT_DIGEST_CONTENT, digest);
}

bool nft_elem_is_content_digest(const struct nft_elem *e, uint64_t *ret_digest)
{
	enum nft_table_digest kind;

	return nft_elem_is_table_digest(e, &kind, ret_digest) && kind == NFT_DIGEST_CONTENT;
}

/* The end of e's source range (NFT_SET_RANGES): the key with every bit
 * of the last field past the prefix length set. */
static void range_end(const struct nft_elem *e, size_t klen, uint8_t *end)
{
	size_t alen = e->family == AF_INET6 ? 16 : 4, start = klen - alen;

	memcpy(end, e->key, klen);
	for (size_t bit = e->plen; bit < alen * 8; bit++)
		end[start + bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
}

/* The kernel form of e into k, pointing into e and the caller's end (room
 * for a key) and chain (room for a chain name). */
static void elem_to_setelem(const struct nft_elem *e, struct nft_setelem *k, uint8_t *end, char *chain,
			    size_t chain_len)
{
	enum nft_set_id set = e->set;
	size_t klen = nft_set_key_len(set, e->family);

	*k = (struct nft_setelem){ .key = e->key, .key_len = klen };
	if (set_defs[set].interval) {
		/* Last address of the range: the source field is the last one. */
		range_end(e, klen, end);
		k->key_end = end;
		k->key_end_len = klen;
	}
	if (set_defs[set].vmap) {
		k->has_verdict = true;
		if (e->verdict == NFT_VERDICT_DROP) {
			k->verdict = NF_DROP;
		} else {
			k->verdict = (uint32_t)(nft_set_is_short_circuit(set) ? NFT_JUMP : NFT_GOTO);
			k->chain = nft_verdict_chain(e, chain, chain_len);
		}
	} else if (set_defs[set].data[0]) {
		k->data = e->data;
		k->data_len = nft_set_data_len(set, e->family);
	}
}

/* The verdict of a verdict-map element of e's set from its chain name:
 * the inverse of nft_verdict_chain, checked by formatting the result back
 * (so a chain of another map's kind, "nplb_3" in @fe, is refused). */
static int verdict_from_chain(struct nft_elem *e, const char *chain)
{
	const char *prefix = chain_prefix(e->set), *p = chain;
	char mode[3] = "", back[48];
	unsigned a = 0, b = 0;
	int used = 0;

	if (strcmp(chain, "do_reject") == 0) {
		if (nft_set_is_short_circuit(e->set))
			return -EPROTO;
		e->verdict = NFT_VERDICT_REJECT;
	} else if (strncmp(p, prefix, strlen(prefix)) != 0) {
		return -EPROTO;
	} else if (p += strlen(prefix), sscanf(p, "aff_%u_%u%n", &a, &b, &used) == 2) {
		if (p[used] == '_' && p[used + 1] && !p[used + 2])
			snprintf(mode, sizeof(mode), "%s", p + used);
		e->aff_timeout = a;
		e->verdict = (uint16_t)b;
		e->aff_mode = strcmp(mode, "_m") == 0 ? NFT_AFF_MASQ
			      : strcmp(mode, "_l") == 0 ? NFT_AFF_LOCAL
							: NFT_AFF_PLAIN;
	} else if (sscanf(p, "lb_%u", &b) == 1) {
		e->verdict = (uint16_t)b;
	} else {
		return -EPROTO;
	}
	if (e->verdict == 0 || (e->verdict > NFT_SLOTS_MAX && e->verdict != NFT_VERDICT_REJECT))
		return -EPROTO;
	return strcmp(nft_verdict_chain(e, back, sizeof(back)), chain) == 0 ? 0 : -EPROTO;
}

int nft_elem_from_kernel(struct nft_elem *e, enum nft_set_id set, int family, const struct nft_kernel_elem *k)
{
	const struct set_def *d = &set_defs[set];
	size_t klen = nft_set_key_len(set, family), dlen = nft_set_data_len(set, family);

	nft_elem_init(e, set, family);
	if (!k->key || k->key_len != klen || klen > sizeof(e->key))
		return -EPROTO;
	memcpy(e->key, k->key, klen);
	if (d->interval) {
		/* A prefix: the longest length whose end is the kernel's end
		 * (a shorter one can match too when the start has low bits set,
		 * 10.0.1.0/23 ends where 10.0.1.0/24 does). */
		uint8_t end[sizeof(e->key)];
		size_t alen = family == AF_INET6 ? 16 : 4;
		bool found = false;

		if (!k->key_end || k->key_end_len != klen)
			return -EPROTO;
		for (size_t plen = alen * 8 + 1; plen-- > 0 && !found;) {
			e->plen = (uint8_t)plen;
			range_end(e, klen, end);
			found = memcmp(end, k->key_end, klen) == 0;
		}
		if (!found)
			return -EPROTO;
	} else if (k->key_end) {
		return -EPROTO;
	}
	if (k->udata)
		return -EPROTO;
	if (d->vmap) {
		if (!k->has_verdict)
			return -EPROTO;
		if (k->verdict_code == NF_DROP && !k->chain && !nft_set_is_short_circuit(set)) {
			e->verdict = NFT_VERDICT_DROP;
			return 0;
		}
		if (k->verdict_code != (uint32_t)(nft_set_is_short_circuit(set) ? NFT_JUMP : NFT_GOTO) || !k->chain)
			return -EPROTO;
		return verdict_from_chain(e, k->chain);
	}
	if (k->has_verdict)
		return -EPROTO;
	if (dlen) {
		if (!k->data || k->data_len != dlen || dlen > sizeof(e->data))
			return -EPROTO;
		memcpy(e->data, k->data, dlen);
	} else if (k->data) {
		return -EPROTO;
	}
	return 0;
}

/* Elements per message: as many as one element list holds (64 KiB, the
 * writer keeps to it by itself): about 1,500 slot elements, so a million
 * take some 700 messages, and as many acks, instead of 4,000. */
#define ELEMS_PER_MSG 0

int nft_elems_msgs(struct nft_batch *b, bool add, const struct nft_elem *const *elems, size_t n)
{
	struct nft_setelem_writer w;

	nft_setelem_writer_init(&w, b, add, ELEMS_PER_MSG);
	for (size_t i = 0; i < n; i++) {
		const struct nft_elem *e = elems[i];
		uint8_t end[sizeof(e->key)];
		char chain[32];
		struct nft_setelem k;

		elem_to_setelem(e, &k, end, chain, sizeof(chain));
		if (nft_setelem_writer_add(&w, e->family, NFT_TABLE_NAME, set_defs[e->set].name, &k) < 0)
			break;
	}
	return nft_setelem_writer_finish(&w);
}

static const char *fld_typeof(enum fld f, int family, bool key, size_t idx)
{
	const char *ip = family == AF_INET6 ? "ip6" : "ip";
	static char buf[32];

	switch (f) {
	case F_ADDR:
		/* The source-range and hairpin sets hold source addresses first. */
		snprintf(buf, sizeof(buf), "%s %s", ip, key && idx == 0 ? "daddr" : "saddr");
		return buf;
	case F_PROTO:
		return "meta l4proto";
	case F_PORT:
		return "th dport";
	case F_SLOT:
		return "numgen random mod 1";
	case F_MARK:
		return "meta mark";
	default:
		return "";
	}
}

static const char *fld_typename(enum fld f, int family)
{
	switch (f) {
	case F_ADDR:
		return family == AF_INET6 ? "ipv6_addr" : "ipv4_addr";
	case F_PROTO:
		return "inet_proto";
	case F_PORT:
		return "inet_service";
	case F_SLOT:
	case F_MARK:
		return "mark";
	default:
		return "";
	}
}

void nft_set_decl_print(FILE *out, int family, enum nft_set_id set)
{
	const struct set_def *d = &set_defs[set];
	bool typeof_form = d->data[0] != F_END;

	fprintf(out, "\t# %s\n\t%s %s {\n\t\t%s ", d->comment, d->vmap || d->data[0] ? "map" : "set",
		d->name, typeof_form ? "typeof" : "type");
	for (size_t i = 0; i < 5 && d->key[i]; i++)
		fprintf(out, "%s%s", i ? " . " : "",
			typeof_form ? fld_typeof(d->key[i], family, true, i) : fld_typename(d->key[i], family));
	if (d->vmap) {
		fprintf(out, " : verdict");
	} else if (d->data[0]) {
		fprintf(out, " :");
		for (size_t i = 0; i < 3 && d->data[i]; i++)
			fprintf(out, "%s %s", i ? " ." : "",
				d->data[i] == F_ADDR ? (family == AF_INET6 ? "ip6 daddr" : "ip daddr") : "th dport");
	}
	fprintf(out, "\n");
	if (d->interval)
		fprintf(out, "\t\tflags interval\n");
	fprintf(out, "\t}\n");
}

/* Print the fields of one concatenation held in bytes. */
static void flds_print(FILE *out, const enum fld *f, size_t max, const uint8_t *bytes, int family,
		       uint8_t plen, bool last_is_range)
{
	size_t off = 0;

	for (size_t i = 0; i < max && f[i]; i++) {
		char buf[INET_ADDR_STRLEN];
		struct inet_addr a = { .family = (sa_family_t)family };
		uint16_t port;
		uint32_t slot;

		if (i)
			fprintf(out, " . ");
		switch (f[i]) {
		case F_ADDR:
			memcpy(a.u.bytes, bytes + off, family == AF_INET6 ? 16 : 4);
			fprintf(out, "%s", inet_addr_format(&a, buf));
			if (last_is_range && (i + 1 == max || !f[i + 1]))
				fprintf(out, "/%u", plen);
			break;
		case F_PROTO:
			fprintf(out, "%s", bytes[off] == IPPROTO_TCP ? "tcp" : bytes[off] == IPPROTO_UDP ? "udp" : "sctp");
			break;
		case F_PORT:
			memcpy(&port, bytes + off, 2);
			fprintf(out, "%u", ntohs(port));
			break;
		case F_SLOT:
			memcpy(&slot, bytes + off, 4);
			fprintf(out, "%u", slot);
			break;
		case F_MARK:
			memcpy(&slot, bytes + off, 4);
			fprintf(out, "0x%08x", slot);
			break;
		default:
			break;
		}
		off += fld_padded(f[i], family);
	}
}

void nft_elem_print(FILE *out, const struct nft_elem *e)
{
	const struct set_def *d = &set_defs[e->set];
	char chain[32];

	flds_print(out, d->key, 5, e->key, e->family, e->plen, d->interval);
	if (d->vmap) {
		if (e->verdict == NFT_VERDICT_DROP)
			fprintf(out, " : drop");
		else
			fprintf(out, " : %s %s", nft_set_is_short_circuit(e->set) ? "jump" : "goto",
				nft_verdict_chain(e, chain, sizeof(chain)));
	} else if (d->data[0]) {
		fprintf(out, " : ");
		flds_print(out, d->data, 3, e->data, e->family, 0, false);
	}
}
