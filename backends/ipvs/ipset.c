/* Mechanism: ipset sets through libipset's session API. See ipset.h.
 *
 * How libipset is driven (its own CLI does the same, from parsed text):
 * the session holds one "data blob"; a command is prepared by setting the
 * set name, the type (looked up in the kernel: ipset_parse_typename for
 * create, ipset_type_get for add/del/test) and the element, parsed from
 * text by the type's own parsers (ipset_parse_elem), then ipset_cmd sends
 * it. Errors come back as sentences in the session's report, not as
 * numbers; report_errno turns the ones callers must tell apart back into
 * errnos. Listings come back as text through the print callback, in the
 * "save" format (create and add lines), and are parsed here.
 */
#include "ipset.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libipset/data.h>
#include <libipset/parse.h>
#include <libipset/session.h>
#include <libipset/types.h>

struct ipvs_ipset {
	struct ipset_session *s;
	char error[IPSET_ERRORBUFLEN];
	/* Listing text, collected by on_output during a LIST command. */
	char *out;
	size_t out_len, out_cap;
	int out_err;            /* -ENOMEM if some of it could not be kept */
};

static const char *const type_names[] = {
	[IPVS_IPSET_HASH_IP_PORT] = "hash:ip,port",
	[IPVS_IPSET_HASH_IP_PORT_IP] = "hash:ip,port,ip",
	[IPVS_IPSET_HASH_IP_PORT_NET] = "hash:ip,port,net",
	[IPVS_IPSET_BITMAP_PORT] = "bitmap:port",
	[IPVS_IPSET_HASH_IP] = "hash:ip",
	[IPVS_IPSET_HASH_NET] = "hash:net",
};

const char *ipvs_ipset_type_name(enum ipvs_ipset_type type)
{
	if ((unsigned)type >= sizeof(type_names) / sizeof(type_names[0]))
		return NULL;
	return type_names[type];
}

int ipvs_ipset_type_parse(const char *name, enum ipvs_ipset_type *ret)
{
	for (size_t i = 0; name && i < sizeof(type_names) / sizeof(type_names[0]); i++) {
		if (strcmp(name, type_names[i]) == 0) {
			*ret = (enum ipvs_ipset_type)i;
			return 0;
		}
	}
	return -EOPNOTSUPP;
}

static bool is_hash(enum ipvs_ipset_type type)
{
	return type != IPVS_IPSET_BITMAP_PORT;
}

/* Whether members of type carry a protocol and port. */
static bool has_port(enum ipvs_ipset_type type)
{
	return type != IPVS_IPSET_HASH_IP && type != IPVS_IPSET_HASH_NET;
}

static uint8_t max_prefix(sa_family_t family)
{
	return family == AF_INET ? 32 : 128;
}

/* ---- Entry text ---- */

int ipvs_ipset_entry_format(enum ipvs_ipset_type type, sa_family_t family,
			    const struct ipvs_ipset_entry *e, char *buf, size_t len)
{
	char a[INET_ADDR_STRLEN], a2[INET_ADDR_STRLEN];
	int n;

	if (!e || !buf || !ipvs_ipset_type_name(type))
		return -EINVAL;
	if (type == IPVS_IPSET_BITMAP_PORT) {
		n = snprintf(buf, len, "%u", e->port);
		return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
	}
	if ((family != AF_INET && family != AF_INET6) || e->addr.family != family ||
	    (has_port(type) && e->proto == 0))
		return -EINVAL;
	inet_addr_format(&e->addr, a);
	switch (type) {
	case IPVS_IPSET_HASH_IP:
		n = snprintf(buf, len, "%s", a);
		break;
	case IPVS_IPSET_HASH_NET:
		if (e->cidr > max_prefix(family))
			return -EINVAL;
		n = snprintf(buf, len, "%s/%u", a, e->cidr ? e->cidr : max_prefix(family));
		break;
	case IPVS_IPSET_HASH_IP_PORT:
		n = snprintf(buf, len, "%s,%u:%u", a, e->proto, e->port);
		break;
	case IPVS_IPSET_HASH_IP_PORT_IP:
		if (e->addr2.family != family)
			return -EINVAL;
		n = snprintf(buf, len, "%s,%u:%u,%s", a, e->proto, e->port,
			     inet_addr_format(&e->addr2, a2));
		break;
	default: /* IPVS_IPSET_HASH_IP_PORT_NET */
		if (e->addr2.family != family || e->cidr2 > max_prefix(family))
			return -EINVAL;
		n = snprintf(buf, len, "%s,%u:%u,%s/%u", a, e->proto, e->port,
			     inet_addr_format(&e->addr2, a2), e->cidr2 ? e->cidr2 : max_prefix(family));
		break;
	}
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

/* A decimal number in [0, max], the whole of text. */
static int parse_uint(const char *text, unsigned long max, unsigned long *ret)
{
	char *end;

	if (!*text || *text < '0' || *text > '9')
		return -EINVAL;
	errno = 0;
	*ret = strtoul(text, &end, 10);
	if (errno || *end || *ret > max)
		return -EINVAL;
	return 0;
}

/* Protocol names as ipset prints them (getprotobynumber's), or numbers. */
static int parse_proto(const char *text, uint8_t *ret)
{
	static const struct { const char *name; uint8_t num; } names[] = {
		{ "tcp", IPPROTO_TCP }, { "udp", IPPROTO_UDP }, { "sctp", IPPROTO_SCTP },
		{ "udplite", IPPROTO_UDPLITE },
	};
	unsigned long n;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(text, names[i].name) == 0) {
			*ret = names[i].num;
			return 0;
		}
	}
	if (parse_uint(text, 255, &n) < 0 || n == 0)
		return -EINVAL;
	*ret = (uint8_t)n;
	return 0;
}

/* "proto:port" (a bare port is TCP, as ipset reads it). */
static int parse_proto_port(char *text, uint8_t *ret_proto, uint16_t *ret_port)
{
	char *colon = strchr(text, ':');
	unsigned long port;

	*ret_proto = IPPROTO_TCP;
	if (colon) {
		*colon = '\0';
		if (parse_proto(text, ret_proto) < 0)
			return -EINVAL;
		text = colon + 1;
	}
	if (parse_uint(text, 65535, &port) < 0)
		return -EINVAL;
	*ret_port = (uint16_t)port;
	return 0;
}

static int parse_addr(const char *text, sa_family_t family, struct inet_addr *ret)
{
	if (inet_addr_parse(text, ret) < 0 || ret->family != family)
		return -EINVAL;
	return 0;
}

int ipvs_ipset_entry_parse(enum ipvs_ipset_type type, sa_family_t family, const char *text,
			   struct ipvs_ipset_entry *ret)
{
	char buf[IPVS_IPSET_ENTRY_STRLEN], *part[3] = { NULL }, *p, *slash;
	size_t n = 0, want;
	unsigned long num;
	uint8_t proto;

	memset(ret, 0, sizeof(*ret));
	if (!text || strlen(text) >= sizeof(buf) || !ipvs_ipset_type_name(type))
		return -EINVAL;
	strcpy(buf, text);
	if (type == IPVS_IPSET_BITMAP_PORT)
		return parse_proto_port(buf, &proto, &ret->port);
	if (family != AF_INET && family != AF_INET6)
		return -EINVAL;
	if (type == IPVS_IPSET_HASH_IP)
		return parse_addr(buf, family, &ret->addr);
	if (type == IPVS_IPSET_HASH_NET) {
		/* ipset prints a whole address without "/len". */
		ret->cidr = max_prefix(family);
		slash = strchr(buf, '/');
		if (slash) {
			*slash = '\0';
			if (parse_uint(slash + 1, max_prefix(family), &num) < 0 || num == 0)
				return -EINVAL;
			ret->cidr = (uint8_t)num;
		}
		return parse_addr(buf, family, &ret->addr);
	}

	want = type == IPVS_IPSET_HASH_IP_PORT ? 2 : 3;
	for (p = buf; n < 3; n++) {
		part[n] = p;
		p = strchr(p, ',');
		if (!p)
			break;
		*p++ = '\0';
	}
	if (p || n + 1 != want)
		return -EINVAL;
	if (parse_addr(part[0], family, &ret->addr) < 0 ||
	    parse_proto_port(part[1], &ret->proto, &ret->port) < 0)
		return -EINVAL;
	if (type == IPVS_IPSET_HASH_IP_PORT_IP)
		return parse_addr(part[2], family, &ret->addr2);
	if (type == IPVS_IPSET_HASH_IP_PORT_NET) {
		ret->cidr2 = max_prefix(family);
		slash = strchr(part[2], '/');
		if (slash) {
			*slash = '\0';
			if (parse_uint(slash + 1, max_prefix(family), &num) < 0 || num == 0)
				return -EINVAL;
			ret->cidr2 = (uint8_t)num;
		}
		return parse_addr(part[2], family, &ret->addr2);
	}
	return 0;
}

/* ---- Errors ---- */

/* libipset's sentences for the errors callers act on; anything else is
 * -EIO with the sentence kept for the log. */
static int report_errno(struct ipvs_ipset *h)
{
	static const struct { const char *needle; int err; } known[] = {
		{ "does not exist", -ENOENT },           /* set, or swap's second set */
		{ "already exists", -EEXIST },           /* create: another set of that name */
		{ "it is in use", -EBUSY },              /* destroy: referenced */
		{ "type does not match", -EINVAL },      /* swap */
		{ "Syntax error", -EINVAL },
		{ "is expected, but not received", -EINVAL },
		{ "out of the range", -ERANGE },
		{ "Hash is full", -ENOSPC },
		{ "Invalid protocol", -EINVAL },
		{ "CIDR parameter", -EINVAL },
	};
	static const char kernel[] = "Kernel error received: ";
	const char *msg = ipset_session_report_msg(h->s), *k;
	size_t len;

	snprintf(h->error, sizeof(h->error), "%s", msg ? msg : "");
	len = strlen(h->error);
	while (len && (h->error[len - 1] == '\n' || h->error[len - 1] == ' '))
		h->error[--len] = '\0';
	if (len == 0)
		snprintf(h->error, sizeof(h->error), "libipset failed without saying why");

	/* "Kernel error received: <strerror>": give the errno back. */
	k = strstr(h->error, kernel);
	if (k) {
		k += sizeof(kernel) - 1;
		for (int e = 1; e < 256; e++) {
			const char *d = strerrordesc_np(e);
			if (d && strcmp(d, k) == 0)
				return -e;
		}
	}
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strstr(h->error, known[i].needle))
			return known[i].err;
	return -EIO;
}

/* Start a command: no report, no data, no lineno left from the last one. */
static void begin(struct ipvs_ipset *h)
{
	h->error[0] = '\0';
	ipset_session_report_reset(h->s);
	ipset_data_reset(ipset_session_data(h->s));
	ipset_session_lineno(h->s, 0);
}

static int check_name(const char *name)
{
	size_t n = name ? strnlen(name, IPVS_IPSET_NAME_MAX) : 0;

	return n == 0 || n == IPVS_IPSET_NAME_MAX ? -EINVAL : 0;
}

/* Fail a command early (before libipset saw it) with our own sentence. */
static int fail(struct ipvs_ipset *h, int err, const char *what)
{
	snprintf(h->error, sizeof(h->error), "%s", what);
	return err;
}

/* Start a command on the set called name: begin, check the name, and put
 * it in the data blob. 0, or -EINVAL (no handle, a bad name) or
 * libipset's refusal, with h->error set. */
static int begin_named(struct ipvs_ipset *h, const char *name)
{
	if (!h)
		return -EINVAL;
	begin(h);
	if (check_name(name) < 0)
		return fail(h, -EINVAL, "bad set name");
	if (ipset_session_data_set(h->s, IPSET_SETNAME, name) < 0)
		return report_errno(h);
	return 0;
}

/* ---- Session ---- */

static int on_output(struct ipset_session *s, void *p, const char *fmt, ...)
{
	struct ipvs_ipset *h = p;
	va_list ap;
	int n;

	(void)s;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return 0;
	if (h->out_len + (size_t)n + 1 > h->out_cap) {
		size_t cap = h->out_cap ? h->out_cap : 4096;
		char *out;

		while (cap < h->out_len + (size_t)n + 1)
			cap *= 2;
		out = realloc(h->out, cap);
		if (!out) {
			/* Keep consuming the listing, so libipset reads it to its
			 * end; the command then fails with -ENOMEM. */
			h->out_err = -ENOMEM;
			return n;
		}
		h->out = out;
		h->out_cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(h->out + h->out_len, h->out_cap - h->out_len, fmt, ap);
	va_end(ap);
	h->out_len += (size_t)n;
	return n;
}

int ipvs_ipset_open(struct ipvs_ipset **ret)
{
	struct ipvs_ipset *h;
	int r;

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	ipset_load_types();
	h->s = ipset_session_init(on_output, h);
	if (!h->s) {
		free(h);
		return -ENOMEM;
	}
	/* Idempotence: create of an identical set, add of a member, del of a
	 * non-member all succeed. */
	ipset_envopt_set(h->s, IPSET_ENV_EXIST);
	begin(h);
	/* IPSET_CMD_NONE only checks the protocol version with the kernel. */
	if (ipset_cmd(h->s, IPSET_CMD_NONE, 0) < 0) {
		r = report_errno(h);
		ipvs_ipset_close(h);
		return r == -EIO ? -EPROTONOSUPPORT : r;
	}
	*ret = h;
	return 0;
}

struct ipvs_ipset *ipvs_ipset_close(struct ipvs_ipset *h)
{
	if (!h)
		return NULL;
	if (h->s)
		ipset_session_fini(h->s);
	free(h->out);
	free(h);
	return NULL;
}

const char *ipvs_ipset_error(const struct ipvs_ipset *h)
{
	return h ? h->error : "";
}

/* Run the prepared command; 0 or the errno of libipset's report. */
static int run(struct ipvs_ipset *h, enum ipset_cmd cmd)
{
	if (ipset_cmd(h->s, cmd, 0) < 0)
		return report_errno(h);
	return 0;
}

int ipvs_ipset_create(struct ipvs_ipset *h, const struct ipvs_ipset_spec *spec)
{
	struct ipset_session *s;
	const char *tname;

	if (!h || !spec)
		return -EINVAL;
	s = h->s;
	begin(h);
	tname = ipvs_ipset_type_name(spec->type);
	if (check_name(spec->name) < 0 || !tname)
		return fail(h, -EINVAL, "bad set name or type");
	if (is_hash(spec->type) && spec->family != AF_INET && spec->family != AF_INET6)
		return fail(h, -EINVAL, "a hash set needs family AF_INET or AF_INET6");

	if (ipset_session_data_set(s, IPSET_SETNAME, spec->name) < 0)
		return report_errno(h);
	if (is_hash(spec->type)) {
		/* NFPROTO_IPV4/6 have the values of AF_INET/6. The family must
		 * be known before the type is looked up. */
		uint8_t family = (uint8_t)spec->family;

		if (ipset_session_data_set(s, IPSET_OPT_FAMILY, &family) < 0)
			return report_errno(h);
	}
	/* Asks the kernel which revisions of the type it has. */
	if (ipset_parse_typename(s, IPSET_OPT_TYPENAME, tname) < 0)
		return report_errno(h);
	if (is_hash(spec->type)) {
		if ((spec->hashsize && ipset_session_data_set(s, IPSET_OPT_HASHSIZE, &spec->hashsize) < 0) ||
		    (spec->maxelem && ipset_session_data_set(s, IPSET_OPT_MAXELEM, &spec->maxelem) < 0))
			return report_errno(h);
	} else {
		uint16_t from = spec->port_from, to = spec->port_to;

		if (from == 0 && to == 0)
			to = 65535;
		if (from > to)
			return fail(h, -EINVAL, "bitmap:port range ends before it starts");
		if (ipset_session_data_set(s, IPSET_OPT_PORT, &from) < 0 ||
		    ipset_session_data_set(s, IPSET_OPT_PORT_TO, &to) < 0)
			return report_errno(h);
	}
	return run(h, IPSET_CMD_CREATE);
}

/* A command that takes a set name only. */
static int by_name(struct ipvs_ipset *h, enum ipset_cmd cmd, const char *name)
{
	int r = begin_named(h, name);

	return r < 0 ? r : run(h, cmd);
}

int ipvs_ipset_destroy(struct ipvs_ipset *h, const char *name)
{
	int r = by_name(h, IPSET_CMD_DESTROY, name);

	if (r == -ENOENT) {
		h->error[0] = '\0';
		return 0;
	}
	return r;
}

int ipvs_ipset_flush(struct ipvs_ipset *h, const char *name)
{
	return by_name(h, IPSET_CMD_FLUSH, name);
}

int ipvs_ipset_swap(struct ipvs_ipset *h, const char *a, const char *b)
{
	if (!h)
		return -EINVAL;
	begin(h);
	if (check_name(a) < 0 || check_name(b) < 0)
		return fail(h, -EINVAL, "bad set name");
	if (ipset_session_data_set(h->s, IPSET_SETNAME, a) < 0 ||
	    ipset_session_data_set(h->s, IPSET_OPT_SETNAME2, b) < 0)
		return report_errno(h);
	return run(h, IPSET_CMD_SWAP);
}

/* Look the type of the set begin_named named up in the kernel (HEADER),
 * as add/del/test need it. */
static int lookup_type(struct ipvs_ipset *h, enum ipset_cmd cmd, const struct ipset_type **ret_type,
		       uint8_t *ret_family)
{
	const struct ipset_type *t;

	t = ipset_type_get(h->s, cmd);
	if (!t)
		return report_errno(h);
	*ret_type = t;
	*ret_family = ipset_data_family(ipset_session_data(h->s));
	return 0;
}

/* Which of our types is t, so entries can be formatted for it. */
static int our_type(const struct ipset_type *t, enum ipvs_ipset_type *ret)
{
	return ipvs_ipset_type_parse(t->name, ret);
}

/* Put entry e (formatted for the set's type) into the data blob for cmd. */
static int put_entry(struct ipvs_ipset *h, const char *name, const struct ipset_type *t,
		     uint8_t family, const struct ipvs_ipset_entry *e)
{
	char text[IPVS_IPSET_ENTRY_STRLEN];
	enum ipvs_ipset_type type;
	int r;

	r = our_type(t, &type);
	if (r < 0)
		return fail(h, r, "the set has a type ferry does not use");
	r = ipvs_ipset_entry_format(type, family, e, text, sizeof(text));
	if (r < 0)
		return fail(h, r, "the entry does not fit the set's type or family");
	/* The blob was reset by the last command: name, type and family again
	 * (what libipset's own type cache would set). */
	if (ipset_session_data_set(h->s, IPSET_SETNAME, name) < 0 ||
	    ipset_session_data_set(h->s, IPSET_OPT_FAMILY, &family) < 0 ||
	    ipset_session_data_set(h->s, IPSET_OPT_TYPE, t) < 0)
		return report_errno(h);
	if (ipset_parse_elem(h->s, t->last_elem_optional, text) < 0)
		return report_errno(h);
	return 0;
}

/* Add or delete entries e[0..n): one HEADER for the type, then the members
 * aggregated (libipset's restore mode: a nonzero line number per member,
 * which the kernel echoes back in an error). */
static int change_many(struct ipvs_ipset *h, enum ipset_cmd cmd, const char *name,
		       const struct ipvs_ipset_entry *e, size_t n, size_t *ret_failed)
{
	const struct ipset_type *t = NULL;
	enum ipvs_ipset_type type;
	char text[IPVS_IPSET_ENTRY_STRLEN];
	uint8_t family = 0;
	unsigned line;
	int r;

	if (ret_failed)
		*ret_failed = n;
	if (n && !e)
		return -EINVAL;
	r = begin_named(h, name);
	if (r < 0)
		return r;
	r = lookup_type(h, cmd, &t, &family);
	if (r < 0)
		return r;
	/* Check every entry before sending any. */
	r = our_type(t, &type);
	if (r < 0)
		return fail(h, r, "the set has a type ferry does not use");
	for (size_t i = 0; i < n; i++) {
		r = ipvs_ipset_entry_format(type, family, &e[i], text, sizeof(text));
		if (r < 0) {
			if (ret_failed)
				*ret_failed = i;
			return fail(h, r, "an entry does not fit the set's type or family");
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (i >= UINT32_MAX - 1)
			return fail(h, -E2BIG, "too many entries for one call");
		r = put_entry(h, name, t, family, &e[i]);
		if (r == 0 && ipset_cmd(h->s, cmd, (uint32_t)(i + 1)) < 0)
			r = report_errno(h);
		if (r < 0)
			goto failed;
	}
	if (ipset_commit(h->s) < 0) {
		r = report_errno(h);
		goto failed;
	}
	ipset_session_lineno(h->s, 0);
	return 0;

failed:
	/* "Error in line N: ..." names the refused member. */
	if (ret_failed && sscanf(h->error, "Error in line %u:", &line) == 1 && line >= 1 && line <= n)
		*ret_failed = line - 1;
	ipset_session_lineno(h->s, 0);
	return r;
}

int ipvs_ipset_add_many(struct ipvs_ipset *h, const char *name,
			const struct ipvs_ipset_entry *e, size_t n, size_t *ret_failed)
{
	return change_many(h, IPSET_CMD_ADD, name, e, n, ret_failed);
}

int ipvs_ipset_del_many(struct ipvs_ipset *h, const char *name,
			const struct ipvs_ipset_entry *e, size_t n, size_t *ret_failed)
{
	return change_many(h, IPSET_CMD_DEL, name, e, n, ret_failed);
}

/* One member, without restore mode: errors read plainly. */
static int change_one(struct ipvs_ipset *h, enum ipset_cmd cmd, const char *name,
		      const struct ipvs_ipset_entry *e)
{
	const struct ipset_type *t = NULL;
	uint8_t family = 0;
	int r;

	if (!e)
		return -EINVAL;
	r = begin_named(h, name);
	if (r < 0)
		return r;
	r = lookup_type(h, cmd, &t, &family);
	if (r == 0)
		r = put_entry(h, name, t, family, e);
	if (r == 0)
		r = run(h, cmd);
	return r;
}

int ipvs_ipset_add(struct ipvs_ipset *h, const char *name, const struct ipvs_ipset_entry *e)
{
	return change_one(h, IPSET_CMD_ADD, name, e);
}

int ipvs_ipset_del(struct ipvs_ipset *h, const char *name, const struct ipvs_ipset_entry *e)
{
	return change_one(h, IPSET_CMD_DEL, name, e);
}

int ipvs_ipset_test(struct ipvs_ipset *h, const char *name, const struct ipvs_ipset_entry *e)
{
	int r = change_one(h, IPSET_CMD_TEST, name, e);

	if (r == 0)
		return 1;
	/* Absent: libipset reports "... is NOT in set" as a notice, not an
	 * error (the kernel answered IPSET_ERR_EXIST). */
	if (ipset_session_report_type(h->s) == IPSET_NOTICE) {
		h->error[0] = '\0';
		return 0;
	}
	return r;
}

/* ---- Listings ---- */

/* Run a LIST command with its text collected in h->out (NUL-terminated). */
static int run_list(struct ipvs_ipset *h, enum ipset_output_mode mode)
{
	int r;

	h->out_len = 0;
	h->out_err = 0;
	ipset_session_output(h->s, mode);
	r = run(h, IPSET_CMD_LIST);
	if (r == 0 && h->out_err)
		r = fail(h, h->out_err, "out of memory while reading the listing");
	if (r == 0 && !h->out)
		h->out = calloc(1, 1);
	if (r == 0 && !h->out)
		r = fail(h, -ENOMEM, "out of memory");
	if (r == 0)
		h->out[h->out_len] = '\0';
	return r;
}

int ipvs_ipset_list_names(struct ipvs_ipset *h, int (*cb)(const char *name, void *ctx), void *ctx)
{
	char *line, *save = NULL;
	int r;

	if (!h || !cb)
		return -EINVAL;
	begin(h);
	ipset_envopt_set(h->s, IPSET_ENV_LIST_SETNAME);
	r = run_list(h, IPSET_LIST_PLAIN);
	ipset_envopt_unset(h->s, IPSET_ENV_LIST_SETNAME);
	if (r < 0)
		return r;
	for (line = strtok_r(h->out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		r = cb(line, ctx);
		if (r < 0)
			return r;
	}
	return 0;
}

/* "create NAME TYPE family inet hashsize 1024 maxelem 65536 ...". */
static int parse_create_line(char *line, struct ipvs_ipset_spec *ret)
{
	char *save = NULL, *tok, *key;
	unsigned long num, to;
	int r;

	memset(ret, 0, sizeof(*ret));
	tok = strtok_r(line, " ", &save);           /* "create" */
	tok = strtok_r(NULL, " ", &save);           /* name */
	if (!tok || strlen(tok) >= sizeof(ret->name))
		return -EBADMSG;
	strcpy(ret->name, tok);
	tok = strtok_r(NULL, " ", &save);           /* type */
	if (!tok)
		return -EBADMSG;
	r = ipvs_ipset_type_parse(tok, &ret->type);
	if (r < 0)
		return r;
	while ((key = strtok_r(NULL, " ", &save))) {
		/* Flags without a value (counters, comment, forceadd) are
		 * skipped; every option we read has one. */
		if (strcmp(key, "family") != 0 && strcmp(key, "hashsize") != 0 &&
		    strcmp(key, "maxelem") != 0 && strcmp(key, "range") != 0)
			continue;
		tok = strtok_r(NULL, " ", &save);
		if (!tok)
			return -EBADMSG;
		if (strcmp(key, "family") == 0) {
			if (strcmp(tok, "inet") == 0)
				ret->family = AF_INET;
			else if (strcmp(tok, "inet6") == 0)
				ret->family = AF_INET6;
			else
				return -EBADMSG;
		} else if (strcmp(key, "range") == 0) {
			char *dash = strchr(tok, '-');
			if (!dash)
				return -EBADMSG;
			*dash = '\0';
			if (parse_uint(tok, 65535, &num) < 0 || parse_uint(dash + 1, 65535, &to) < 0)
				return -EBADMSG;
			ret->port_from = (uint16_t)num;
			ret->port_to = (uint16_t)to;
		} else {
			if (parse_uint(tok, UINT32_MAX, &num) < 0)
				return -EBADMSG;
			if (strcmp(key, "hashsize") == 0)
				ret->hashsize = (uint32_t)num;
			else
				ret->maxelem = (uint32_t)num;
		}
	}
	return 0;
}

int ipvs_ipset_list(struct ipvs_ipset *h, const char *name, struct ipvs_ipset_spec *ret_spec,
		    int (*cb)(const struct ipvs_ipset_entry *e, void *ctx), void *ctx)
{
	struct ipvs_ipset_spec spec;
	struct ipvs_ipset_entry e;
	char *line, *save = NULL, *tok, *tsave;
	bool header = false;
	int r;

	r = begin_named(h, name);
	if (r < 0)
		return r;
	r = run_list(h, IPSET_LIST_SAVE);
	if (r < 0)
		return r;
	for (line = strtok_r(h->out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "create ", 7) == 0) {
			r = parse_create_line(line, &spec);
			if (r == -EOPNOTSUPP)
				return fail(h, r, "the set has a type ferry does not use");
			if (r < 0)
				return fail(h, r, "unreadable create line in the listing");
			header = true;
			if (ret_spec)
				*ret_spec = spec;
			continue;
		}
		if (strncmp(line, "add ", 4) != 0)
			continue;
		if (!header)
			return fail(h, -EBADMSG, "a member before the set's create line");
		/* "add NAME ELEM [options]": the element is the third word. */
		tsave = NULL;
		strtok_r(line, " ", &tsave);
		strtok_r(NULL, " ", &tsave);
		tok = strtok_r(NULL, " ", &tsave);
		if (!tok || ipvs_ipset_entry_parse(spec.type, spec.family, tok, &e) < 0) {
			snprintf(h->error, sizeof(h->error), "unreadable member \"%s\"", tok ? tok : "");
			return -EBADMSG;
		}
		if (cb) {
			r = cb(&e, ctx);
			if (r < 0)
				return r;
		}
	}
	if (!header)
		return fail(h, -EBADMSG, "the listing has no create line");
	return 0;
}
