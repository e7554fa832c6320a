/* Mechanism: the sets and maps of ferry's nftables tables, and element
 * add/delete messages for them.
 *
 * Every per-service fact lives in one of these sets (the rules are constant,
 * nft_rules.h). An element is plain data (struct nft_elem): its key and data
 * are laid out exactly as the kernel compares them, each field of a
 * concatenation padded to a 32-bit register, addresses and ports in network
 * order, slot numbers in host order (numgen writes host order): the layout
 * of netfilter/nft_set.h, which also builds the messages.
 */
#ifndef FERRY_NFT_SETS_H
#define FERRY_NFT_SETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "inet.h"

struct nft_batch;

/* Name of ferry's table in both families ("ip ferry", "ip6 ferry"). */
#define NFT_TABLE_NAME "ferry"

enum nft_set_id {
	NFT_SET_FE = 0,     /* map daddr . proto . dport : verdict (goto lb_S) */
	NFT_SET_NP,         /* map proto . dport : verdict (wildcard node ports, goto nplb_S) */
	NFT_SET_EMPTY_FE,   /* map daddr . proto . dport : verdict (goto do_reject, or drop) */
	NFT_SET_EMPTY_NP,   /* map proto . dport : verdict (wildcard node ports) */
	NFT_SET_MASQ_FE,    /* set daddr . proto . dport: always masquerade */
	NFT_SET_LOCAL_FE,   /* set daddr . proto . dport: masquerade unless local (--detect-local-mode) */
	NFT_SET_MASQ_NP,    /* set proto . dport: wildcard node ports that masquerade */
	NFT_SET_RANGED_FE,  /* set daddr . proto . dport: frontends with source ranges */
	NFT_SET_RANGES,     /* interval set daddr . proto . dport . saddr: allowed sources */
	NFT_SET_HAIRPIN,    /* set addr . addr: an endpoint reaching itself */
	NFT_SET_SLOTS,      /* map daddr . proto . dport . slot : addr . port */
	NFT_SET_NP_SLOTS,   /* map proto . dport . slot : addr . port */
	NFT_SET_AFF_SLOTS,  /* map daddr . proto . dport . mark : addr . port (affinity services) */
	NFT_SET_NP_AFF_SLOTS, /* map proto . dport . mark : addr . port */
	NFT_SET_SC_FE,      /* map daddr . proto . dport : verdict (jump sclb_S): the short-circuit */
	NFT_SET_SC_NP,      /* map proto . dport : verdict (jump scnplb_S) */
	NFT_SET_CLUSTER_IPS, /* set daddr: every cluster IP (the guard rejects its other ports) */
	/* The digest sets stay last: a frontend's elements are sorted with its
	 * digest appended (nft_elems.c). */
	NFT_SET_DIGEST,     /* set daddr . proto . dport . digest: slot digests (see below) */
	NFT_SET_NP_DIGEST,  /* set proto . dport . digest */
	NFT_SET_COUNT
};

/* Verdict of a verdict-map element (struct nft_elem.verdict). Values 1..
 * NFT_SLOTS_MAX are "goto the lb chain of that many slots" (in the
 * short-circuit maps "jump": a connection the chain does not take goes
 * back to the frontend's own dispatch). */
#define NFT_VERDICT_DROP 0xffff
#define NFT_VERDICT_REJECT 0xfffe

/* Slot-table sizes that have a chain: 1..32 exactly, and 1024 for larger
 * endpoint sets (slots filled round-robin; past 1024 endpoints some are
 * unused). */
#define NFT_SLOTS_EXACT_MAX 32
#define NFT_SLOTS_MAX 1024

/* Slots used for an endpoint set of n endpoints (n >= 1). */
unsigned nft_slots_for(size_t n);

/* The short-circuit of an externalTrafficPolicy Local frontend
 * (plan_frontend.short_circuit): connections from this cluster's pods or
 * from the node itself use the service's cluster-wide endpoints. Its
 * verdict-map element (NFT_SET_SC_FE / NFT_SET_SC_NP, keyed like the
 * frontend's) jumps to a chain that lets only those through, and its slots
 * share the frontend's slot table, numbered from nft_sc_slot_base: a bit
 * above every slot number (NFT_SLOTS_MAX) and other than the masquerade
 * mark, because affinity slot numbers travel in the packet mark. */
bool nft_set_is_short_circuit(uint8_t set);
uint32_t nft_sc_slot_base(uint32_t masq_mark);
/* Whether set is keyed by proto . dport (the wildcard node ports). */
bool nft_set_is_np(uint8_t set);
/* Whether set is a verdict map whose elements go to slot chains: NFT_SET_FE,
 * NFT_SET_NP and their short-circuit maps. */
bool nft_set_is_dispatch(uint8_t set);

/* One element of one set; plain data, compare with nft_elem_cmp. */
struct nft_elem {
	uint8_t set;       /* enum nft_set_id */
	uint8_t family;    /* AF_INET or AF_INET6 */
	uint8_t plen;      /* NFT_SET_RANGES: prefix length of the source range */
	uint8_t aff_mode;  /* verdict maps with affinity: enum nft_aff_mode */
	uint16_t verdict;  /* verdict maps: NFT_VERDICT_* or a slot count */
	uint32_t aff_timeout; /* verdict maps: ClientIP affinity timeout (s), 0: none */
	uint8_t key[40];
	uint8_t data[20];
};

/* The slot digest of a frontend: a hash of the slot elements its
 * verdict-map element dispatches to, kept in the kernel as an element
 * of NFT_SET_DIGEST / NFT_SET_NP_DIGEST (frontend key . two 32-bit words),
 * which no rule reads. A changed endpoint changes the digest, and the
 * digest element is written after the slots and removed before them, so
 * a restarted ferry that finds the digest it would write knows the slots
 * without reading them (nftables.c). Sets e to the digest element of
 * verdict-map element v (NFT_SET_FE or NFT_SET_NP). */
void nft_elem_init_digest(struct nft_elem *e, const struct nft_elem *v, uint64_t digest);

/* The content digest: the sum (mod 2^64) of nft_elem_hash over every
 * element of ferry's sets in both tables, the table digests (below)
 * excepted, kept in the kernel as one element of ip ferry's
 * NFT_SET_DIGEST whose frontend part is zero (address 0.0.0.0, protocol
 * 0, port 0: no frontend's). Every transaction that changes elements
 * removes the old one first and writes the new one last, so a restarted
 * ferry that finds the digest of its own plan knows the kernel holds
 * exactly that plan without reading a set (nftables.c), and a partly
 * applied change leaves none. A sum, so that a change updates it from its
 * deletes and adds alone.
 *
 * The hairpin digest: the same over the elements of NFT_SET_HAIRPIN in
 * both tables, port 1 instead of 0, kept the same way by transactions
 * that change hairpin pairs. A restart after a change made while ferry
 * was down finds it when the pairs did not change, and need not dump a
 * million of them (a standalone node at 100k services). */
enum nft_table_digest {
	NFT_DIGEST_CONTENT = 0,
	NFT_DIGEST_HAIRPIN = 1,
	NFT_DIGEST_KINDS
};
uint64_t nft_elem_hash(const struct nft_elem *e);
/* Sets e to the table digest element of kind for digest. */
void nft_elem_init_table_digest(struct nft_elem *e, enum nft_table_digest kind, uint64_t digest);
/* Whether e is a table digest element (of any digest), its kind and the
 * digest it holds (ret_kind, ret_digest may be NULL). */
bool nft_elem_is_table_digest(const struct nft_elem *e, enum nft_table_digest *ret_kind, uint64_t *ret_digest);
/* The same for the content digest alone. */
void nft_elem_init_content_digest(struct nft_elem *e, uint64_t digest);
bool nft_elem_is_content_digest(const struct nft_elem *e, uint64_t *ret_digest);

/* How an affinity chain marks for masquerade: the slot number travels in
 * the packet mark, so the chain sets the masquerade bit itself. */
enum nft_aff_mode {
	NFT_AFF_PLAIN = 0,   /* never masquerade */
	NFT_AFF_MASQ,        /* always: slot numbers carry the bit (numgen offset) */
	NFT_AFF_LOCAL,       /* unless local (cluster CIDRs or input interface) */
};

/* Name of the chain a verdict-map element jumps to ("lb_3", "aff_10800_3_m",
 * "do_reject", "sclb_3", "scnpaff_60_2_l"...), into buf. */
const char *nft_verdict_chain(const struct nft_elem *e, char *buf, size_t len);

/* Append a NEWSET message declaring the affinity map aff_<timeout_s> of
 * family (ip saddr . daddr . proto . dport : slot mark, dynamic, entries
 * expire timeout_s after their last use). 0 or -ENOMEM. */
int nft_aff_map_declare(struct nft_batch *b, int family, uint32_t timeout_s);
void nft_aff_map_print(FILE *out, int family, uint32_t timeout_s);

/* Name of a set ("fe", "slots", ...). */
const char *nft_set_name(enum nft_set_id set);
/* Key and data lengths in bytes (register padded) for family. data is 0
 * for sets and for verdict maps. */
size_t nft_set_key_len(enum nft_set_id set, int family);
size_t nft_set_data_len(enum nft_set_id set, int family);
bool nft_set_is_vmap(enum nft_set_id set);

/* Element construction: start an element of set for family (zeroed), then
 * append key fields in the set's order, then data fields. */
void nft_elem_init(struct nft_elem *e, enum nft_set_id set, int family);
void nft_elem_key_addr(struct nft_elem *e, size_t *off, const struct inet_addr *a);
void nft_elem_key_proto(struct nft_elem *e, size_t *off, enum inet_proto p);
void nft_elem_key_port(struct nft_elem *e, size_t *off, uint16_t port);
void nft_elem_key_slot(struct nft_elem *e, size_t *off, uint32_t slot);
void nft_elem_data_endpoint(struct nft_elem *e, const struct inet_addr *a, uint16_t port);

/* Total order on (set, family, key, plen), then data and verdict: elements
 * that compare 0 on the first part are the same kernel element. Returns
 * <0/0/>0; *ret_same_key, if not NULL, tells whether the keys match. */
int nft_elem_cmp(const struct nft_elem *a, const struct nft_elem *b, bool *ret_same_key);

/* Append a NEWSET message declaring set in family's table (no EXCL:
 * existing is fine). Returns 0 or -ENOMEM. */
int nft_set_declare(struct nft_batch *b, int family, enum nft_set_id set);
/* The same with a size (0: none). The kernel sizes the set's hash from it
 * when it creates the set, and also refuses elements past it (ENFILE); a
 * size given to an existing set replaces the old one when the transaction
 * commits, not before. Declaring without a size keeps the current one. */
int nft_set_declare_sized(struct nft_batch *b, int family, enum nft_set_id set, uint32_t size);
/* Append a message removing every element of set. 0 or -ENOMEM. */
int nft_set_flush(struct nft_batch *b, int family, enum nft_set_id set);
/* The same for a set named name (the affinity maps). */
int nft_set_flush_name(struct nft_batch *b, int family, const char *name);
/* Append NEWSETELEM (add) or DELSETELEM messages for elems (all of the same
 * family; any sets, consecutive runs of one set share a message). 0 or
 * -ENOMEM. */
int nft_elems_msgs(struct nft_batch *b, bool add, const struct nft_elem *const *elems, size_t n);

/* One element as a set dump returns it: the raw key (and the end of an
 * interval), the data of a data map, or the verdict of a verdict map. */
struct nft_kernel_elem {
	const void *key, *key_end, *data;  /* NULL: absent */
	size_t key_len, key_end_len, data_len;
	bool has_verdict;
	uint32_t verdict_code;             /* NF_DROP, NFT_GOTO... (host order) */
	const char *chain;                 /* goto/jump target; NULL: none */
	const void *udata;                 /* user data (a comment); ferry writes none */
	size_t udata_len;
};

/* Read k, an element of family's set, back into e: the inverse of what
 * nft_elems_msgs sends. Returns 0, or -EPROTO when ferry would not have
 * written it (lengths that do not fit the set, an unknown chain, a range
 * that is not a prefix), so that the caller can replace the set. */
int nft_elem_from_kernel(struct nft_elem *e, enum nft_set_id set, int family, const struct nft_kernel_elem *k);

/* nft syntax: the declaration of a set ("map fe { ... }") and an element
 * ("10.0.0.1 . tcp . 80 : goto lb_3"). */
void nft_set_decl_print(FILE *out, int family, enum nft_set_id set);
void nft_elem_print(FILE *out, const struct nft_elem *e);

#endif
