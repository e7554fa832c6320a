/* Mechanism: nf_tables sets and maps: their declaration, the layout of
 * their keys, and element messages, appended to a batch (nft_batch.h).
 *
 * Shared by every user of nf_tables in ferry. A user keeps its own
 * catalogue of sets and its own element type, and describes each set with
 * a struct nft_set_spec and each element with a struct nft_setelem when it
 * builds messages.
 *
 * Layout: a key (or map value) that concatenates fields holds each field
 * padded to a 32-bit register, in the order a rule loads them
 * (nft_expr.h), addresses and ports in network order, numgen values and
 * marks in host order. The nft_concat_put_* functions write that layout, so
 * that rules and elements agree by construction.
 *
 * Element lists: NEWSETELEM/DELSETELEM carry their elements in one netlink
 * attribute whose length field is 16 bits. The element writer below splits
 * any number of elements over as many messages as that bound (and the
 * caller's own cap) requires; the messages still go in the caller's one
 * transaction.
 */
#ifndef FERRY_NFT_SET_H
#define FERRY_NFT_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inet.h"

struct nlattr;
struct nlmsghdr;

struct nft_batch;
struct nftnl_set;

/* nft's datatype numbers (what `nft list` shows a key or value as). */
enum nft_dtype {
	NFT_DTYPE_IPV4_ADDR = 7,
	NFT_DTYPE_IPV6_ADDR = 8,
	NFT_DTYPE_INET_PROTO = 12,
	NFT_DTYPE_INET_SERVICE = 13,
	NFT_DTYPE_MARK = 19,
};

/* The type of a concatenation of n fields of types[] (6 bits each, first
 * field highest), as nft declares it. */
uint32_t nft_concat_type(const uint32_t *types, size_t n);

/* Append one field to the concatenation in buf at *off (room is the
 * caller's) and advance *off past its register padding. */
/* An address of a's family (4 or 16 bytes). */
void nft_concat_put_addr(uint8_t *buf, size_t *off, const struct inet_addr *a);
/* A transport protocol as IPPROTO_* (one byte, then padding). */
void nft_concat_put_proto(uint8_t *buf, size_t *off, enum inet_proto p);
/* A port, network order (two bytes, then padding). */
void nft_concat_put_port(uint8_t *buf, size_t *off, uint16_t port);
/* A 32-bit value in host order (a numgen slot, a mark). */
void nft_concat_put_u32(uint8_t *buf, size_t *off, uint32_t v);

/* A set or map declaration. */
struct nft_set_spec {
	const char *table, *name;
	int family;                 /* AF_INET or AF_INET6 */
	uint32_t flags;             /* NFT_SET_MAP, NFT_SET_INTERVAL, NFT_SET_TIMEOUT... */
	uint32_t key_len, key_type; /* bytes (register padded), nft_concat_type */
	/* Maps (NFT_SET_MAP) only: the value's type, NFT_DATA_VERDICT for a
	 * verdict map, and its length (0 for a verdict map). */
	uint32_t data_type, data_len;
	/* Concatenated ranges (NFT_SET_CONCAT): each field's unpadded length. */
	const uint8_t *field_len;
	uint32_t n_fields;
	/* Expected number of elements, 0: none. The kernel sizes a new set's
	 * hash from it and refuses elements past it (ENFILE); given for an
	 * existing set it replaces the old size when the transaction commits. */
	uint32_t size;
	uint64_t timeout_ms;        /* NFT_SET_TIMEOUT: default element lifetime, 0: none */
	/* Transaction-local id: the kernel refuses a NEWSET without one, even
	 * for a set that exists. Unique within a transaction. */
	uint32_t id;
};

/* Append a NEWSET for spec. create: the set is created if absent and
 * kept, elements and all, if present. Else the message only asserts that
 * the table and the set exist: the kernel refuses it with ENOENT when
 * they do not, so the transaction it is in fails whole (a cheap guard in
 * front of element updates). 0 or -ENOMEM. */
int nft_set_spec_msg(struct nft_batch *b, const struct nft_set_spec *spec, bool create);

/* Append a DELSETELEM without elements: the kernel removes every element
 * of set. 0 or -ENOMEM. */
int nft_setelem_flush_msg(struct nft_batch *b, int family, const char *table, const char *set);

/* One element as the kernel sees it. Pointers are read during
 * nft_setelem_writer_add only. */
struct nft_setelem {
	const void *key;
	size_t key_len;
	const void *key_end;        /* intervals: the last key of the range; NULL: none */
	size_t key_end_len;
	/* The value, for adds to a map (deletes name the key only and ignore
	 * it): data for a data map, or a verdict (NF_DROP, NFT_GOTO with
	 * chain...) for a verdict map. */
	const void *data;           /* NULL: none */
	size_t data_len;
	bool has_verdict;
	uint32_t verdict;
	const char *chain;          /* jump/goto target; NULL: none */
};

/* Builds NEWSETELEM (add) or DELSETELEM messages from a stream of
 * elements: consecutive elements of one set share a message until it is
 * full. Fields are private. */
struct nft_setelem_writer {
	struct nft_batch *b;
	bool add;
	size_t max_per_msg;         /* the caller's cap, 0: none */
	struct nlmsghdr *nlh;       /* the message being filled, in b; NULL: none */
	struct nlattr *list;        /* its element list */
	int family;                 /* of that message */
	const char *table_ptr, *set_ptr; /* the names as last passed (compared first) */
	char table[64], set[64];    /* the names of that message */
	size_t n, list_len;         /* elements in it, and the length of their list attribute */
	size_t done;                /* elements in earlier messages */
	int err;                    /* first failure */
};

/* Start a writer appending to b: adds, or deletes. max_per_msg caps the
 * elements of one message below what the attribute holds (0: no cap). */
void nft_setelem_writer_init(struct nft_setelem_writer *w, struct nft_batch *b, bool add, size_t max_per_msg);

/* Write e, an element of set in family's table, straight into the batch
 * (no libnftnl object). It joins the current message when that is for the
 * same set and has room, else a new one is started. While a writer has a
 * message open nothing else may be appended to the batch. 0, -ENOMEM or
 * -ENAMETOOLONG (a table or set name of 64 bytes or more); an error is
 * kept: nft_setelem_writer_finish returns it. */
int nft_setelem_writer_add(struct nft_setelem_writer *w, int family, const char *table, const char *set,
			   const struct nft_setelem *e);

/* Append the last message and release the writer's memory. Must be called
 * once for every writer started, also after an error. Returns the first
 * error of the writer's life, or 0. */
int nft_setelem_writer_finish(struct nft_setelem_writer *w);

/* Bytes e takes in an element list attribute (for tests and for callers
 * that size their own messages). add: with its value. */
size_t nft_setelem_list_bytes(const struct nft_setelem *e, bool add);

/* Longest element list (attribute payload) one message carries. */
#define NFT_SETELEM_LIST_MAX (UINT16_MAX - 4)

#endif
