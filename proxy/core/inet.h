/* Addresses, prefixes and protocols as the whole of ferry handles them.
 *
 * A struct inet_addr holds either an IPv4 or an IPv6 address in network byte
 * order; it is plain data (copy it with =, compare it with inet_addr_cmp).
 */
#ifndef FERRY_INET_H
#define FERRY_INET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

/* Long enough for any address inet_addr_format writes, with a NUL. */
#define INET_ADDR_STRLEN 46
/* Long enough for "[addr]:port" or "addr/len", with a NUL. */
#define INET_ENDPOINT_STRLEN 56

struct inet_addr {
	sa_family_t family;   /* AF_INET or AF_INET6; 0 means "unset" */
	union {
		struct in_addr v4;
		struct in6_addr v6;
		uint8_t bytes[16];
	} u;
};

struct inet_prefix {
	struct inet_addr addr; /* host bits are zeroed by inet_prefix_parse */
	uint8_t len;           /* prefix length in bits */
};

/* L4 protocols a Service port may name. */
enum inet_proto {
	INET_PROTO_TCP = 0,
	INET_PROTO_UDP = 1,
	INET_PROTO_SCTP = 2,
};

/* Parse a textual IPv4 or IPv6 address (no brackets, no zone).
 * Returns 0 and fills *ret, or -EINVAL. */
int inet_addr_parse(const char *text, struct inet_addr *ret);

/* Parse "addr/len" (or a bare address, taken as a host prefix).
 * Host bits past len are cleared. Returns 0 or -EINVAL. */
int inet_prefix_parse(const char *text, struct inet_prefix *ret);

/* Split "ADDR:PORT" (IPv4) or "[ADDR]:PORT" (IPv6) into an address and a
 * port (0-65535). Returns 0 or -EINVAL. */
int inet_endpoint_parse(const char *text, struct inet_addr *ret_addr, uint16_t *ret_port);

/* Write the address in its canonical text form into buf (at least
 * INET_ADDR_STRLEN bytes). Returns buf, so it can be used in printf. */
const char *inet_addr_format(const struct inet_addr *a, char *buf);

/* Write "a:port" (IPv4) or "[a]:port" (IPv6) into buf (at least
 * INET_ENDPOINT_STRLEN bytes). Returns buf. */
const char *inet_endpoint_format(const struct inet_addr *a, uint16_t port, char *buf);

/* Total order: family first, then address bytes. */
int inet_addr_cmp(const struct inet_addr *a, const struct inet_addr *b);

/* True for 127.0.0.0/8 and ::1. */
bool inet_addr_is_loopback(const struct inet_addr *a);

/* True for 0.0.0.0 and ::. */
bool inet_addr_is_any(const struct inet_addr *a);

/* The wildcard address of a family. */
struct inet_addr inet_addr_any(sa_family_t family);

/* True if a lies inside p (families must match). */
bool inet_prefix_contains(const struct inet_prefix *p, const struct inet_addr *a);

/* Fill a sockaddr_storage for (a, port); returns its length. */
socklen_t inet_to_sockaddr(const struct inet_addr *a, uint16_t port,
			   struct sockaddr_storage *ret);

/* Read (address, port) back from a sockaddr. Returns 0 or -EAFNOSUPPORT. */
int inet_from_sockaddr(const struct sockaddr *sa, struct inet_addr *ret_addr,
		       uint16_t *ret_port);

/* "TCP", "UDP", "SCTP". */
const char *inet_proto_name(enum inet_proto p);

/* Parse a Kubernetes protocol name (exact, upper case). Returns 0 or -EINVAL. */
int inet_proto_parse(const char *text, enum inet_proto *ret);

#endif
