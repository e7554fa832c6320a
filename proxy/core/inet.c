/* Address helpers: parsing, formatting and comparing inet_addr values. */
#include "inet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int inet_addr_parse(const char *text, struct inet_addr *ret)
{
	struct inet_addr a;

	if (!text || !*text)
		return -EINVAL;
	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, text, &a.u.v4) == 1) {
		a.family = AF_INET;
	} else if (inet_pton(AF_INET6, text, &a.u.v6) == 1) {
		a.family = AF_INET6;
	} else {
		return -EINVAL;
	}
	*ret = a;
	return 0;
}

int inet_prefix_parse(const char *text, struct inet_prefix *ret)
{
	char buf[INET_ENDPOINT_STRLEN];
	const char *slash;
	struct inet_prefix p;
	unsigned max, i;
	char *end;
	long len;

	if (!text)
		return -EINVAL;
	slash = strchr(text, '/');
	if (!slash) {
		if (inet_addr_parse(text, &p.addr) < 0)
			return -EINVAL;
		p.len = p.addr.family == AF_INET ? 32 : 128;
		*ret = p;
		return 0;
	}
	if ((size_t)(slash - text) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, text, (size_t)(slash - text));
	buf[slash - text] = '\0';
	if (inet_addr_parse(buf, &p.addr) < 0)
		return -EINVAL;
	if (!slash[1])
		return -EINVAL;
	errno = 0;
	len = strtol(slash + 1, &end, 10);
	max = p.addr.family == AF_INET ? 32 : 128;
	if (errno || *end || len < 0 || len > (long)max)
		return -EINVAL;
	p.len = (uint8_t)len;
	/* Clear host bits so equal prefixes compare equal. */
	for (i = 0; i < max / 8; i++) {
		unsigned bit = i * 8;
		if (bit >= p.len)
			p.addr.u.bytes[i] = 0;
		else if (bit + 8 > p.len)
			p.addr.u.bytes[i] &= (uint8_t)(0xff << (8 - (p.len - bit)));
	}
	*ret = p;
	return 0;
}

int inet_endpoint_parse(const char *text, struct inet_addr *ret_addr, uint16_t *ret_port)
{
	char host[INET_ENDPOINT_STRLEN];
	const char *colon, *start = text;
	size_t len;
	char *end;
	long port;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		start = text + 1;
		len = (size_t)(close - start);
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return -EINVAL;
		len = (size_t)(colon - text);
	}
	if (len == 0 || len >= sizeof(host))
		return -EINVAL;
	memcpy(host, start, len);
	host[len] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port < 0 || port > 65535)
		return -EINVAL;
	if (inet_addr_parse(host, ret_addr) < 0)
		return -EINVAL;
	*ret_port = (uint16_t)port;
	return 0;
}

const char *inet_addr_format(const struct inet_addr *a, char *buf)
{
	if (!a->family || !inet_ntop(a->family, a->u.bytes, buf, INET_ADDR_STRLEN))
		snprintf(buf, INET_ADDR_STRLEN, "?");
	return buf;
}

const char *inet_endpoint_format(const struct inet_addr *a, uint16_t port, char *buf)
{
	char tmp[INET_ADDR_STRLEN];

	inet_addr_format(a, tmp);
	if (a->family == AF_INET6)
		snprintf(buf, INET_ENDPOINT_STRLEN, "[%s]:%u", tmp, port);
	else
		snprintf(buf, INET_ENDPOINT_STRLEN, "%s:%u", tmp, port);
	return buf;
}

int inet_addr_cmp(const struct inet_addr *a, const struct inet_addr *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	return memcmp(a->u.bytes, b->u.bytes, a->family == AF_INET ? 4 : 16);
}

bool inet_addr_is_loopback(const struct inet_addr *a)
{
	if (a->family == AF_INET)
		return a->u.bytes[0] == 127;
	if (a->family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&a->u.v6);
	return false;
}

bool inet_addr_is_any(const struct inet_addr *a)
{
	if (a->family == AF_INET)
		return a->u.v4.s_addr == INADDR_ANY;
	if (a->family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&a->u.v6);
	return false;
}

struct inet_addr inet_addr_any(sa_family_t family)
{
	struct inet_addr a;

	memset(&a, 0, sizeof(a));
	a.family = family;
	return a;
}

bool inet_prefix_contains(const struct inet_prefix *p, const struct inet_addr *a)
{
	unsigned full, rest;

	if (p->addr.family != a->family)
		return false;
	full = p->len / 8;
	rest = p->len % 8;
	if (memcmp(p->addr.u.bytes, a->u.bytes, full) != 0)
		return false;
	if (rest) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));
		if ((p->addr.u.bytes[full] & mask) != (a->u.bytes[full] & mask))
			return false;
	}
	return true;
}

socklen_t inet_to_sockaddr(const struct inet_addr *a, uint16_t port,
			   struct sockaddr_storage *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (a->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ret;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		s6->sin6_addr = a->u.v6;
		return sizeof(*s6);
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ret;
	s4->sin_family = AF_INET;
	s4->sin_port = htons(port);
	s4->sin_addr = a->u.v4;
	return sizeof(*s4);
}

int inet_from_sockaddr(const struct sockaddr *sa, struct inet_addr *ret_addr,
		       uint16_t *ret_port)
{
	struct inet_addr a;

	memset(&a, 0, sizeof(a));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		a.family = AF_INET;
		a.u.v4 = s4->sin_addr;
		if (ret_port)
			*ret_port = ntohs(s4->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		a.family = AF_INET6;
		a.u.v6 = s6->sin6_addr;
		if (ret_port)
			*ret_port = ntohs(s6->sin6_port);
	} else {
		return -EAFNOSUPPORT;
	}
	if (ret_addr)
		*ret_addr = a;
	return 0;
}

const char *inet_proto_name(enum inet_proto p)
{
	switch (p) {
	case INET_PROTO_TCP:
		return "TCP";
	case INET_PROTO_UDP:
		return "UDP";
	case INET_PROTO_SCTP:
		return "SCTP";
	}
	return "?";
}

int inet_proto_parse(const char *text, enum inet_proto *ret)
{
	if (!text)
		return -EINVAL;
	if (strcmp(text, "TCP") == 0)
		*ret = INET_PROTO_TCP;
	else if (strcmp(text, "UDP") == 0)
		*ret = INET_PROTO_UDP;
	else if (strcmp(text, "SCTP") == 0)
		*ret = INET_PROTO_SCTP;
	else
		return -EINVAL;
	return 0;
}
