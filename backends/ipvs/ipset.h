/* Mechanism: ipset membership sets through libipset's session API (never
 * the ipset binary), for the constant-size rules of the IPVS backend:
 * kube-proxy's IPVS mode keeps cluster IPs, external and load-balancer IPs
 * as hash:ip,port sets, the loopback hairpin as hash:ip,port,ip, source
 * ranges as hash:ip,port,net and node ports as bitmap:port; the guards of
 * the service range take plain addresses (hash:ip) and networks (hash:net).
 *
 * Every change is idempotent: the session runs with libipset's "exist"
 * option, so re-creating a set with the same type and options, adding a
 * member that is there and deleting one that is not are success; so is
 * destroying a set that is gone. Entries travel as structs; the text form
 * libipset parses and prints is made and read here
 * (ipvs_ipset_entry_format / _parse, usable without a kernel).
 *
 * Nothing here logs. When the kernel or libipset refuses something, the
 * call returns a negative errno and ipvs_ipset_error() gives libipset's
 * sentence for the log line of the caller. libipset keeps process-wide
 * state (its type list and a cache of set types): use ipset handles from
 * one thread only. Everything acts in the caller's network namespace.
 *
 * The prefix is ipvs_ipset_ because libipset owns ipset_*.
 */
#ifndef FERRY_IPVS_IPSET_H
#define FERRY_IPVS_IPSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "inet.h"

struct ipvs_ipset;

/* Set names are at most 31 characters (the kernel's IPSET_MAXNAMELEN - 1). */
#define IPVS_IPSET_NAME_MAX 32
/* Room for the text of any entry ipvs_ipset_entry_format writes. */
#define IPVS_IPSET_ENTRY_STRLEN 112

/* The set types the IPVS backend uses. */
enum ipvs_ipset_type {
	IPVS_IPSET_HASH_IP_PORT,      /* "hash:ip,port":     addr,proto:port */
	IPVS_IPSET_HASH_IP_PORT_IP,   /* "hash:ip,port,ip":  addr,proto:port,addr2 */
	IPVS_IPSET_HASH_IP_PORT_NET,  /* "hash:ip,port,net": addr,proto:port,addr2/cidr2 */
	IPVS_IPSET_BITMAP_PORT,       /* "bitmap:port":      port */
	IPVS_IPSET_HASH_IP,           /* "hash:ip":          addr */
	IPVS_IPSET_HASH_NET,          /* "hash:net":         addr/cidr */
};

/* What a set is: what ipvs_ipset_create makes, what ipvs_ipset_list reads. */
struct ipvs_ipset_spec {
	char name[IPVS_IPSET_NAME_MAX];
	enum ipvs_ipset_type type;
	sa_family_t family;     /* hash types: AF_INET or AF_INET6; bitmap:port has none (0) */
	uint32_t hashsize;      /* hash types: initial bucket count; 0: the kernel's default */
	uint32_t maxelem;       /* hash types: capacity; 0: the kernel's default (65536) */
	uint16_t port_from;     /* bitmap:port: the range of ports it can hold; */
	uint16_t port_to;       /* both 0 when creating means 0-65535 */
};

/* One member. Which fields count depends on the set type (see above);
 * the others are ignored when formatting and zero after parsing. */
struct ipvs_ipset_entry {
	struct inet_addr addr;  /* hash types; its family must be the set's */
	uint8_t cidr;           /* hash:net: prefix length of addr (1..32 or 1..128); 0
				 * when formatting means a whole address, parsers give
				 * the real length */
	uint8_t proto;          /* types with a port: IPPROTO_TCP, _UDP or _SCTP */
	uint16_t port;          /* host order */
	struct inet_addr addr2; /* hash:ip,port,ip and hash:ip,port,net */
	uint8_t cidr2;          /* hash:ip,port,net: prefix length of addr2; 0 when
				 * formatting means a whole address, parsers give the
				 * real length */
};

/* ---- Without a kernel. */

/* "hash:ip,port" etc., or NULL for a value outside the enum. */
const char *ipvs_ipset_type_name(enum ipvs_ipset_type type);

/* The enum for a type name. 0, or -EOPNOTSUPP for a type not listed above. */
int ipvs_ipset_type_parse(const char *name, enum ipvs_ipset_type *ret);

/* Write e as the element text libipset parses for a set of type and family
 * into buf (len bytes; IPVS_IPSET_ENTRY_STRLEN is always enough). Protocols
 * are written as numbers, so no /etc/protocols is needed. Returns 0,
 * -EINVAL for an entry such a set cannot hold (wrong family, no protocol,
 * a prefix too long), or -ENOSPC. */
int ipvs_ipset_entry_format(enum ipvs_ipset_type type, sa_family_t family,
			    const struct ipvs_ipset_entry *e, char *buf, size_t len);

/* Read an element as libipset prints it in a listing ("10.0.0.1,tcp:80",
 * "fd00::1,udp:53,fd00::1", "10.0.0.1,sctp:9,10.0.0.0/8", "30080"), or as
 * ipvs_ipset_entry_format writes it. Protocols by name (tcp, udp, sctp,
 * udplite) or number. Returns 0 or -EINVAL. */
int ipvs_ipset_entry_parse(enum ipvs_ipset_type type, sa_family_t family, const char *text,
			   struct ipvs_ipset_entry *ret);

/* ---- Sessions. Every call returns 0 or a negative errno:
 *   -ENOENT  the set named does not exist (where that is not success);
 *   -EEXIST  create: a set of that name exists with another type, family
 *            or options;
 *   -EBUSY   destroy: the set is still referenced (by an iptables rule);
 *   -EINVAL  a name longer than 31 characters, an entry the set cannot
 *            hold, swapping sets of different types or families;
 *   -EPERM   without CAP_NET_ADMIN;
 *   -EIO     any other refusal: see ipvs_ipset_error. */

/* Start a libipset session and check that the kernel speaks its protocol.
 * Returns 0 and *ret, -ENOMEM, -EPERM, or another -errno when the kernel
 * has no ip_set. */
int ipvs_ipset_open(struct ipvs_ipset **ret);

/* End the session. Accepts NULL; returns NULL. */
struct ipvs_ipset *ipvs_ipset_close(struct ipvs_ipset *h);

/* libipset's explanation of the last failure (one line, no newline), or
 * "" after a success. Valid until the next call on h. */
const char *ipvs_ipset_error(const struct ipvs_ipset *h);

/* Create the set described by spec; an identical existing set is success. */
int ipvs_ipset_create(struct ipvs_ipset *h, const struct ipvs_ipset_spec *spec);

/* Destroy a set; a set that does not exist is success. */
int ipvs_ipset_destroy(struct ipvs_ipset *h, const char *name);

/* Remove every member of a set (-ENOENT if it does not exist). */
int ipvs_ipset_flush(struct ipvs_ipset *h, const char *name);

/* Exchange the contents of two existing sets of the same type and family
 * (-EINVAL otherwise; -ENOENT if either is missing), atomically for the
 * packets that look them up: build a new set under a temporary name, swap
 * it in, destroy the temporary. */
int ipvs_ipset_swap(struct ipvs_ipset *h, const char *a, const char *b);

/* Add or delete one member (present / absent already is success; a set
 * that does not exist is -ENOENT). Costs two kernel round trips (the set's
 * type is asked first); use _add_many / _del_many for more than a few. */
int ipvs_ipset_add(struct ipvs_ipset *h, const char *name, const struct ipvs_ipset_entry *e);
int ipvs_ipset_del(struct ipvs_ipset *h, const char *name, const struct ipvs_ipset_entry *e);

/* Add or delete n members in as few messages as libipset's buffer allows
 * (one kernel round trip per page of members). An entry the set cannot
 * hold stops the call before anything is sent; a member the kernel refuses
 * stops it there, with the members before it applied. *ret_failed (if not
 * NULL) is then the index of that entry, else n. */
int ipvs_ipset_add_many(struct ipvs_ipset *h, const char *name,
			const struct ipvs_ipset_entry *e, size_t n, size_t *ret_failed);
int ipvs_ipset_del_many(struct ipvs_ipset *h, const char *name,
			const struct ipvs_ipset_entry *e, size_t n, size_t *ret_failed);

/* 1 if e is a member of the set, 0 if not, or a negative errno. */
int ipvs_ipset_test(struct ipvs_ipset *h, const char *name, const struct ipvs_ipset_entry *e);

/* Call cb with the name of every set in the netns (also other programs'
 * sets: filter by a prefix). cb returns 0 to go on or a negative errno to
 * stop (returned). The names are read in full before the first call. */
int ipvs_ipset_list_names(struct ipvs_ipset *h, int (*cb)(const char *name, void *ctx), void *ctx);

/* Read the set called name: *ret_spec (if not NULL) gets its type, family
 * and options, and cb (if not NULL) each member, after the whole listing
 * has been read. -EOPNOTSUPP for a set of a type not listed above,
 * -EBADMSG for a member that cannot be read (the members before it have
 * been passed to cb), -ENOENT for a set that does not exist. */
int ipvs_ipset_list(struct ipvs_ipset *h, const char *name, struct ipvs_ipset_spec *ret_spec,
		    int (*cb)(const struct ipvs_ipset_entry *e, void *ctx), void *ctx);

#endif
