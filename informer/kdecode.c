/* Kubernetes objects as jansson values to the structs of model-t.h.
 *
 * Every reader of a field goes through the field_* helpers below, which
 * check the JSON type and bounds and, on failure, record the full field path
 * in the error. Paths are built on the way down in small stack buffers
 * ("spec.ports[1]" then "spec.ports[1].port"), so an error always says
 * exactly where it is. Values quoted in messages are cut short and stripped
 * of control characters: they come from untrusted input and end up in logs.
 */
#include "kdecode.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inet.h"
#include "intern.h"
#include "kobj.h"

#define PATH_MAX_LEN 160
#define QUOTE_MAX 48

struct ctx {
	const struct kdecode_opts *opts;
	struct kdecode_error *err;
};

/* --- Errors and paths ------------------------------------------------------ */

/* Copy at most 32 bytes of s into buf (QUOTE_MAX bytes), non-printable and
 * non-ASCII bytes replaced by '?', "..." appended when cut. */
static const char *quote(char *buf, const char *s)
{
	size_t i, n = 0;

	for (i = 0; s[i] && i < 32; i++)
		buf[n++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (s[i]) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

static int fail(struct ctx *c, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct ctx *c, const char *path, const char *fmt, ...)
{
	va_list ap;

	snprintf(c->err->field, sizeof(c->err->field), "%s", path ? path : "");
	va_start(ap, fmt);
	vsnprintf(c->err->message, sizeof(c->err->message), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Paths are built for every field read, successful or not, so they are
 * assembled by hand: with snprintf they took a quarter of the decode time
 * of a large list. A path longer than PATH_MAX_LEN - 1 is cut short, which
 * still names the field well enough. */

/* Start buf with prefix (which may be buf itself); returns its length. */
static size_t path_start(char *buf, const char *prefix)
{
	size_t n = strnlen(prefix, PATH_MAX_LEN - 1);

	if (buf != prefix)
		memcpy(buf, prefix, n);
	return n;
}

/* Append n bytes of s at offset at, within the bound; returns the new length. */
static size_t path_put(char *buf, size_t at, const char *s, size_t n)
{
	if (n > PATH_MAX_LEN - 1 - at)
		n = PATH_MAX_LEN - 1 - at;
	memcpy(buf + at, s, n);
	return at + n;
}

/* "prefix.key", or "key" at the top. */
static const char *join(char *buf, const char *prefix, const char *key)
{
	size_t n = path_start(buf, prefix);

	if (n)
		n = path_put(buf, n, ".", 1);
	n = path_put(buf, n, key, strlen(key));
	buf[n] = '\0';
	return buf;
}

/* "prefix[i]". */
static const char *index_path(char *buf, const char *prefix, size_t i)
{
	char digits[24];
	size_t d = sizeof(digits), n = path_start(buf, prefix);

	digits[--d] = ']';
	do {
		digits[--d] = (char)('0' + i % 10);
		i /= 10;
	} while (i);
	digits[--d] = '[';
	n = path_put(buf, n, digits + d, sizeof(digits) - d);
	buf[n] = '\0';
	return buf;
}

/* "prefix[\"key\"]", for label and annotation keys that contain dots. */
static const char *map_path(char *buf, const char *prefix, const char *key)
{
	size_t n = path_start(buf, prefix);

	n = path_put(buf, n, "[\"", 2);
	n = path_put(buf, n, key, strlen(key));
	n = path_put(buf, n, "\"]", 2);
	buf[n] = '\0';
	return buf;
}

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "a mapping";
	case JSON_ARRAY: return "a list";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

/* --- Typed field readers ---------------------------------------------------
 * Each takes the parent object, the key and the parent's path. Absent and
 * null are the same; `required` turns them into an error. */

static const json_t *field_get(const json_t *parent, const char *key)
{
	const json_t *v = json_object_get(parent, key);

	return json_is_null(v) ? NULL : v;
}

static int check_string(struct ctx *c, const json_t *v, const char *path, size_t max,
			const char **ret)
{
	const char *s;

	if (!json_is_string(v))
		return fail(c, path, "expected a string, got %s", type_name(v));
	s = json_string_value(v);
	if (json_string_length(v) != strlen(s))
		return fail(c, path, "string contains a NUL character");
	if (json_string_length(v) > max)
		return fail(c, path, "string is longer than %zu bytes", max);
	*ret = s;
	return 0;
}

static int field_string(struct ctx *c, const json_t *parent, const char *key, const char *prefix,
			bool required, size_t max, const char **ret)
{
	char path[PATH_MAX_LEN];
	const json_t *v = field_get(parent, key);

	*ret = NULL;
	join(path, prefix, key);
	if (!v)
		return required ? fail(c, path, "is required") : 0;
	return check_string(c, v, path, max, ret);
}

static int check_int(struct ctx *c, const json_t *v, const char *path, long long min,
		     long long max, long long *ret)
{
	long long n;

	if (!json_is_integer(v))
		return fail(c, path, "expected an integer, got %s", type_name(v));
	n = json_integer_value(v);
	if (n < min || n > max)
		return fail(c, path, "%lld is out of range %lld-%lld", n, min, max);
	*ret = n;
	return 0;
}

/* *ret is left alone when the field is absent and not required. */
static int field_int(struct ctx *c, const json_t *parent, const char *key, const char *prefix,
		     bool required, long long min, long long max, long long *ret)
{
	char path[PATH_MAX_LEN];
	const json_t *v = field_get(parent, key);

	join(path, prefix, key);
	if (!v)
		return required ? fail(c, path, "is required") : 0;
	return check_int(c, v, path, min, max, ret);
}

static int field_bool(struct ctx *c, const json_t *parent, const char *key, const char *prefix,
		      bool *ret, bool *ret_present)
{
	char path[PATH_MAX_LEN];
	const json_t *v = field_get(parent, key);

	*ret_present = false;
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return fail(c, join(path, prefix, key), "expected a boolean, got %s", type_name(v));
	*ret = json_is_true(v);
	*ret_present = true;
	return 0;
}

static int field_object(struct ctx *c, const json_t *parent, const char *key, const char *prefix,
			bool required, const json_t **ret)
{
	char path[PATH_MAX_LEN];
	const json_t *v = field_get(parent, key);

	*ret = NULL;
	join(path, prefix, key);
	if (!v)
		return required ? fail(c, path, "is required") : 0;
	if (!json_is_object(v))
		return fail(c, path, "expected a mapping, got %s", type_name(v));
	*ret = v;
	return 0;
}

/* A list, NULL when absent; longer than max is an error. */
static int field_array(struct ctx *c, const json_t *parent, const char *key, const char *prefix,
		       size_t max, const json_t **ret)
{
	char path[PATH_MAX_LEN];
	const json_t *v = field_get(parent, key);

	*ret = NULL;
	if (!v)
		return 0;
	join(path, prefix, key);
	if (!json_is_array(v))
		return fail(c, path, "expected a list, got %s", type_name(v));
	if (json_array_size(v) > max)
		return fail(c, path, "has %zu entries, more than %zu", json_array_size(v), max);
	*ret = v;
	return 0;
}

/* --- Value checks ------------------------------------------------------------ */

static bool is_lower_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

/* DNS-1123 subdomain (dots allowed) or label (no dots), as Kubernetes
 * requires of object names and namespaces. */
static bool valid_dns_name(const char *s, size_t max, bool dots)
{
	size_t n = strlen(s);

	if (n == 0 || n > max || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '-' && !(dots && s[i] == '.'))
			return false;
	return true;
}

/* Port names: lower case letters, digits and '-', at most 63 bytes. */
static int check_port_name(struct ctx *c, const char *s, const char *path)
{
	char q[QUOTE_MAX];

	if (*s && !valid_dns_name(s, KOBJ_PORT_NAME_MAX - 1, false))
		return fail(c, path, "invalid port name \"%s\"", quote(q, s));
	return 0;
}

static int check_proto(struct ctx *c, const json_t *parent, const char *prefix,
		       enum inet_proto *ret)
{
	char path[PATH_MAX_LEN], q[QUOTE_MAX];
	const char *s;
	int r;

	r = field_string(c, parent, "protocol", prefix, false, 16, &s);
	if (r < 0)
		return r;
	*ret = INET_PROTO_TCP;
	if (s && inet_proto_parse(s, ret) < 0)
		return fail(c, join(path, prefix, "protocol"), "unknown protocol \"%s\"", quote(q, s));
	return 0;
}

/* An IP address as a cluster, external, load balancer or endpoint address. */
static int check_ip(struct ctx *c, const char *s, const char *path, struct inet_addr *ret)
{
	char q[QUOTE_MAX];

	if (inet_addr_parse(s, ret) < 0)
		return fail(c, path, "invalid IP address \"%s\"", quote(q, s));
	if (inet_addr_is_any(ret))
		return fail(c, path, "unspecified address %s is not allowed", quote(q, s));
	if (!c->opts->allow_loopback && inet_addr_is_loopback(ret))
		return fail(c, path, "loopback address %s is only allowed in standalone mode",
			    quote(q, s));
	return 0;
}

/* A list of address strings into a new array. */
static int ip_list(struct ctx *c, const json_t *parent, const char *key, const char *prefix,
		   size_t max, struct inet_addr **ret, size_t *ret_n)
{
	char lpath[PATH_MAX_LEN], ipath[PATH_MAX_LEN];
	const json_t *arr, *item;
	struct inet_addr *addrs;
	const char *s;
	size_t i;
	int r;

	r = field_array(c, parent, key, prefix, max, &arr);
	if (r < 0 || !arr || json_array_size(arr) == 0)
		return r;
	join(lpath, prefix, key);
	addrs = calloc(json_array_size(arr), sizeof(*addrs));
	if (!addrs)
		return -ENOMEM;
	json_array_foreach(arr, i, item) {
		index_path(ipath, lpath, i);
		r = check_string(c, item, ipath, KDECODE_MAX_STRING, &s);
		if (r == 0)
			r = check_ip(c, s, ipath, &addrs[i]);
		if (r < 0) {
			free(addrs);
			return r;
		}
	}
	*ret = addrs;
	*ret_n = json_array_size(arr);
	return 0;
}

/* --- Metadata ------------------------------------------------------------------ */

struct meta {
	const char *ns;
	const char *name;
	const json_t *labels;      /* NULL when absent */
	const json_t *annotations; /* NULL when absent */
};

/* Read metadata and name the object in the error struct, so that every later
 * error says which object it is about. */
static int meta_decode(struct ctx *c, const json_t *obj, const char *kind, struct meta *ret)
{
	char q[QUOTE_MAX], q2[QUOTE_MAX];
	const json_t *md;
	int r;

	memset(ret, 0, sizeof(*ret));
	snprintf(c->err->object, sizeof(c->err->object), "%s", kind);
	if (!json_is_object(obj))
		return fail(c, "", "expected a mapping, got %s", type_name(obj));
	r = field_object(c, obj, "metadata", "", true, &md);
	if (r < 0)
		return r;
	/* Name the object as best we can before judging the fields. */
	{
		const json_t *n = json_object_get(md, "name"), *ns = json_object_get(md, "namespace");

		snprintf(c->err->object, sizeof(c->err->object), "%s %s/%s", kind,
			 json_is_string(ns) && *json_string_value(ns) ?
				 quote(q, json_string_value(ns)) : KDECODE_DEFAULT_NAMESPACE,
			 json_is_string(n) ? quote(q2, json_string_value(n)) : "?");
	}
	r = field_string(c, md, "name", "metadata", true, KDECODE_MAX_STRING, &ret->name);
	if (r < 0)
		return r;
	if (!valid_dns_name(ret->name, KDECODE_MAX_STRING, true))
		return fail(c, "metadata.name", "invalid name \"%s\"", quote(q, ret->name));
	r = field_string(c, md, "namespace", "metadata", false, 63, &ret->ns);
	if (r < 0)
		return r;
	if (!ret->ns || !*ret->ns)
		ret->ns = KDECODE_DEFAULT_NAMESPACE;
	else if (!valid_dns_name(ret->ns, 63, false))
		return fail(c, "metadata.namespace", "invalid namespace \"%s\"", quote(q, ret->ns));
	/* Valid names fit: namespaces are at most 63 bytes, names KDECODE_MAX_STRING. */
	snprintf(c->err->ns, sizeof(c->err->ns), "%s", ret->ns);
	snprintf(c->err->name, sizeof(c->err->name), "%s", ret->name);
	r = field_object(c, md, "labels", "metadata", false, &ret->labels);
	if (r == 0)
		r = field_object(c, md, "annotations", "metadata", false, &ret->annotations);
	return r;
}

/* One label or annotation value: NULL when absent, error unless a string. */
static int meta_value(struct ctx *c, const json_t *map, const char *mapname, const char *key,
		      const char **ret)
{
	char path[PATH_MAX_LEN];
	const json_t *v = field_get(map, key);

	*ret = NULL;
	if (!v)
		return 0;
	return check_string(c, v, map_path(path, mapname, key), KDECODE_MAX_STRING, ret);
}

static int dup_str(const char *s, char **ret)
{
	*ret = NULL;
	if (!s)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

/* --- Service ------------------------------------------------------------------- */

static int service_ports(struct ctx *c, const json_t *spec, struct kobj_service *svc)
{
	char ppath[PATH_MAX_LEN], fpath[PATH_MAX_LEN], q[QUOTE_MAX];
	const json_t *arr, *p, *tp;
	const char *s;
	long long n;
	size_t i;
	int r;

	r = field_array(c, spec, "ports", "spec", KDECODE_MAX_ITEMS, &arr);
	if (r < 0 || !arr || json_array_size(arr) == 0)
		return r;
	svc->ports = calloc(json_array_size(arr), sizeof(*svc->ports));
	if (!svc->ports)
		return -ENOMEM;
	json_array_foreach(arr, i, p) {
		struct svc_port *sp = &svc->ports[i];

		svc->n_ports = i + 1;
		index_path(ppath, "spec.ports", i);
		if (!json_is_object(p))
			return fail(c, ppath, "expected a mapping, got %s", type_name(p));
		r = field_string(c, p, "name", ppath, false, KDECODE_MAX_STRING, &s);
		if (r == 0 && s)
			r = check_port_name(c, s, join(fpath, ppath, "name"));
		if (r == 0)
			r = kobj_port_name(s, &sp->name);
		if (r == 0)
			r = check_proto(c, p, ppath, &sp->proto);
		n = 0;
		if (r == 0)
			r = field_int(c, p, "port", ppath, true, 1, 65535, &n);
		sp->port = (uint16_t)n;
		n = 0;
		if (r == 0)
			r = field_int(c, p, "nodePort", ppath, false, 0, 65535, &n);
		sp->node_port = (uint16_t)n;
		if (r < 0)
			return r;

		tp = field_get(p, "targetPort");
		join(fpath, ppath, "targetPort");
		if (!tp) {
			sp->target_port = sp->port;
		} else if (json_is_integer(tp)) {
			r = check_int(c, tp, fpath, 1, 65535, &n);
			if (r < 0)
				return r;
			sp->target_port = (uint16_t)n;
		} else if (json_is_string(tp)) {
			r = check_string(c, tp, fpath, KDECODE_MAX_STRING, &s);
			if (r < 0)
				return r;
			if (*s && strspn(s, "0123456789") == strlen(s)) {
				/* "8080" written as a string: take the number. */
				n = strlen(s) <= 5 ? atoll(s) : 0;
				if (n < 1 || n > 65535)
					return fail(c, fpath, "%s is out of range 1-65535", quote(q, s));
				sp->target_port = (uint16_t)n;
			} else if (!*s) {
				return fail(c, fpath, "empty port name");
			} else {
				r = check_port_name(c, s, fpath);
				if (r == 0)
					r = kobj_port_name(s, &sp->target_port_name);
				if (r < 0)
					return r;
			}
		} else {
			return fail(c, fpath, "expected an integer or a port name, got %s",
				    type_name(tp));
		}

		/* Two entries for the same port, or the same name, are ambiguous. */
		for (size_t j = 0; j < i; j++) {
			const struct svc_port *o = &svc->ports[j];

			if (o->port == sp->port && o->proto == sp->proto)
				return fail(c, join(fpath, ppath, "port"),
					    "duplicate port %u/%s (also spec.ports[%zu])", sp->port,
					    inet_proto_name(sp->proto), j);
			if (sp->name && kobj_str_eq(o->name, sp->name))
				return fail(c, join(fpath, ppath, "name"),
					    "duplicate port name \"%s\" (also spec.ports[%zu])",
					    sp->name, j);
		}
	}
	return 0;
}

static int service_cluster_ips(struct ctx *c, const json_t *spec, struct kobj_service *svc)
{
	char ipath[PATH_MAX_LEN];
	const json_t *arr, *item;
	const char *cip, *s;
	size_t i;
	int r;

	r = field_string(c, spec, "clusterIP", "spec", false, KDECODE_MAX_STRING, &cip);
	if (r == 0)
		r = field_array(c, spec, "clusterIPs", "spec", 2, &arr);
	if (r < 0)
		return r;

	if (arr && json_array_size(arr) > 0) {
		svc->cluster_ips = calloc(json_array_size(arr), sizeof(*svc->cluster_ips));
		if (!svc->cluster_ips)
			return -ENOMEM;
		json_array_foreach(arr, i, item) {
			index_path(ipath, "spec.clusterIPs", i);
			r = check_string(c, item, ipath, KDECODE_MAX_STRING, &s);
			if (r < 0)
				return r;
			if (strcmp(s, "None") == 0) {
				if (i > 0 || json_array_size(arr) > 1)
					return fail(c, ipath, "\"None\" must be the only entry");
				svc->headless = true;
				break;
			}
			r = check_ip(c, s, ipath, &svc->cluster_ips[i]);
			if (r < 0)
				return r;
			svc->n_cluster_ips = i + 1;
		}
		if (svc->n_cluster_ips == 2 &&
		    svc->cluster_ips[0].family == svc->cluster_ips[1].family)
			return fail(c, "spec.clusterIPs", "two addresses of the same family");
		/* clusterIP, when given, must agree with the primary address. */
		if (cip && *cip) {
			struct inet_addr a;

			if (strcmp(cip, "None") == 0 ? !svc->headless
			    : (svc->headless || inet_addr_parse(cip, &a) < 0 ||
			       inet_addr_cmp(&a, &svc->cluster_ips[0]) != 0))
				return fail(c, "spec.clusterIP", "does not match spec.clusterIPs[0]");
		}
		return 0;
	}
	if (!cip || !*cip)
		return 0;
	if (strcmp(cip, "None") == 0) {
		svc->headless = true;
		return 0;
	}
	svc->cluster_ips = calloc(1, sizeof(*svc->cluster_ips));
	if (!svc->cluster_ips)
		return -ENOMEM;
	r = check_ip(c, cip, "spec.clusterIP", &svc->cluster_ips[0]);
	if (r == 0)
		svc->n_cluster_ips = 1;
	return r;
}

static int service_lb(struct ctx *c, const json_t *obj, const json_t *spec,
		      struct kobj_service *svc)
{
	char epath[PATH_MAX_LEN], fpath[PATH_MAX_LEN], q[QUOTE_MAX];
	const json_t *status, *lb, *arr, *item;
	const char *s;
	size_t i;
	int r;

	r = field_object(c, obj, "status", "", false, &status);
	if (r == 0 && status)
		r = field_object(c, status, "loadBalancer", "status", false, &lb);
	else
		lb = NULL;
	if (r == 0 && lb)
		r = field_array(c, lb, "ingress", "status.loadBalancer", KDECODE_MAX_ITEMS, &arr);
	else
		arr = NULL;
	if (r < 0)
		return r;
	if (arr && json_array_size(arr) > 0) {
		svc->lb_ips = calloc(json_array_size(arr), sizeof(*svc->lb_ips));
		if (!svc->lb_ips)
			return -ENOMEM;
		json_array_foreach(arr, i, item) {
			index_path(epath, "status.loadBalancer.ingress", i);
			if (!json_is_object(item))
				return fail(c, epath, "expected a mapping, got %s", type_name(item));
			r = field_string(c, item, "ip", epath, false, KDECODE_MAX_STRING, &s);
			if (r < 0)
				return r;
			if (!s || !*s)
				continue; /* hostname-only entries mean nothing to a proxy */
			r = check_ip(c, s, join(fpath, epath, "ip"), &svc->lb_ips[svc->n_lb_ips]);
			if (r < 0)
				return r;
			svc->n_lb_ips++;
		}
	}

	r = field_array(c, spec, "loadBalancerSourceRanges", "spec", KDECODE_MAX_ITEMS, &arr);
	if (r < 0 || !arr || json_array_size(arr) == 0)
		return r;
	svc->source_ranges = calloc(json_array_size(arr), sizeof(*svc->source_ranges));
	if (!svc->source_ranges)
		return -ENOMEM;
	json_array_foreach(arr, i, item) {
		char buf[INET_ENDPOINT_STRLEN];
		size_t len;

		index_path(epath, "spec.loadBalancerSourceRanges", i);
		r = check_string(c, item, epath, KDECODE_MAX_STRING, &s);
		if (r < 0)
			return r;
		/* Kubernetes tolerates surrounding spaces here. */
		s += strspn(s, " \t");
		len = strlen(s);
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (len >= sizeof(buf))
			return fail(c, epath, "invalid CIDR \"%s\"", quote(q, s));
		memcpy(buf, s, len);
		buf[len] = '\0';
		if (inet_prefix_parse(buf, &svc->source_ranges[i]) < 0)
			return fail(c, epath, "invalid CIDR \"%s\"", quote(q, buf));
		svc->n_source_ranges = i + 1;
	}
	return 0;
}

static int policy_parse(struct ctx *c, const json_t *spec, const char *key,
			enum traffic_policy *ret)
{
	char path[PATH_MAX_LEN], q[QUOTE_MAX];
	const char *s;
	int r;

	r = field_string(c, spec, key, "spec", false, KDECODE_MAX_STRING, &s);
	if (r < 0 || !s)
		return r;
	if (strcmp(s, "Cluster") == 0 || strcmp(s, "Global") == 0) /* Global: pre-1.14 name */
		*ret = TRAFFIC_POLICY_CLUSTER;
	else if (strcmp(s, "Local") == 0)
		*ret = TRAFFIC_POLICY_LOCAL;
	else
		return fail(c, join(path, "spec", key), "unknown traffic policy \"%s\"", quote(q, s));
	return 0;
}

static int service_spec_misc(struct ctx *c, const json_t *spec, struct kobj_service *svc)
{
	char ipath[PATH_MAX_LEN], q[QUOTE_MAX];
	const json_t *cfg, *cip, *arr, *item;
	const char *s;
	long long n;
	size_t i;
	int r;

	r = field_string(c, spec, "type", "spec", false, KDECODE_MAX_STRING, &s);
	if (r < 0)
		return r;
	if (!s || strcmp(s, "ClusterIP") == 0)
		svc->type = SVC_TYPE_CLUSTER_IP;
	else if (strcmp(s, "NodePort") == 0)
		svc->type = SVC_TYPE_NODE_PORT;
	else if (strcmp(s, "LoadBalancer") == 0)
		svc->type = SVC_TYPE_LOAD_BALANCER;
	else if (strcmp(s, "ExternalName") == 0)
		svc->type = SVC_TYPE_EXTERNAL_NAME;
	else
		return fail(c, "spec.type", "unknown service type \"%s\"", quote(q, s));

	r = field_string(c, spec, "sessionAffinity", "spec", false, KDECODE_MAX_STRING, &s);
	if (r < 0)
		return r;
	if (s && strcmp(s, "ClientIP") == 0)
		svc->affinity_client_ip = true;
	else if (s && strcmp(s, "None") != 0)
		return fail(c, "spec.sessionAffinity", "unknown session affinity \"%s\"", quote(q, s));
	r = field_object(c, spec, "sessionAffinityConfig", "spec", false, &cfg);
	if (r == 0 && cfg)
		r = field_object(c, cfg, "clientIP", "spec.sessionAffinityConfig", false, &cip);
	else
		cip = NULL;
	n = svc->affinity_timeout_s;
	if (r == 0 && cip)
		r = field_int(c, cip, "timeoutSeconds", "spec.sessionAffinityConfig.clientIP", false,
			      1, 86400, &n);
	svc->affinity_timeout_s = (uint32_t)n;
	if (r == 0)
		r = policy_parse(c, spec, "externalTrafficPolicy", &svc->external_policy);
	if (r == 0)
		r = policy_parse(c, spec, "internalTrafficPolicy", &svc->internal_policy);
	n = 0;
	if (r == 0)
		r = field_int(c, spec, "healthCheckNodePort", "spec", false, 0, 65535, &n);
	svc->health_check_node_port = (uint16_t)n;
	if (r == 0)
		r = field_array(c, spec, "ipFamilies", "spec", 2, &arr);
	if (r < 0)
		return r;
	json_array_foreach(arr, i, item) {
		index_path(ipath, "spec.ipFamilies", i);
		r = check_string(c, item, ipath, KDECODE_MAX_STRING, &s);
		if (r < 0)
			return r;
		if (strcmp(s, "IPv4") == 0)
			svc->ip_families[i] = AF_INET;
		else if (strcmp(s, "IPv6") == 0)
			svc->ip_families[i] = AF_INET6;
		else
			return fail(c, ipath, "unknown IP family \"%s\"", quote(q, s));
		if (i == 1 && svc->ip_families[0] == svc->ip_families[1])
			return fail(c, ipath, "duplicate IP family %s", s);
		svc->n_ip_families = i + 1;
	}
	return 0;
}

/* A whole number in a string annotation, within [min, max]. */
static int annotation_uint(struct ctx *c, const json_t *ann, const char *key, uint32_t min,
			   uint32_t max, uint32_t *ret)
{
	char path[PATH_MAX_LEN], q[QUOTE_MAX];
	const char *s;
	unsigned long long n;
	int r;

	r = meta_value(c, ann, "metadata.annotations", key, &s);
	if (r < 0 || !s)
		return r;
	map_path(path, "metadata.annotations", key);
	if (!*s || strlen(s) > 10 || strspn(s, "0123456789") != strlen(s))
		return fail(c, path, "\"%s\" is not a whole number", quote(q, s));
	n = strtoull(s, NULL, 10);
	if (n < min || n > max)
		return fail(c, path, "%llu is out of range %u-%u", n, min, max);
	*ret = (uint32_t)n;
	return 0;
}

static int service_annotations(struct ctx *c, const struct meta *md, struct kobj_service *svc)
{
	char path[PATH_MAX_LEN], q[QUOTE_MAX];
	const char *s;
	int r;

	r = meta_value(c, md->labels, "metadata.labels", "service.kubernetes.io/service-proxy-name", &s);
	if (r == 0)
		r = dup_str(s, &svc->proxy_name);
	if (r < 0)
		return r;
	if (json_object_get(md->labels, "service.kubernetes.io/headless"))
		svc->headless = true;

	r = meta_value(c, md->annotations, "metadata.annotations", "ferry.io/balance", &s);
	if (r < 0)
		return r;
	if (s && balance_algo_parse(s, &svc->balance) < 0)
		return fail(c, map_path(path, "metadata.annotations", "ferry.io/balance"),
			    "unknown balance algorithm \"%s\" (%s)", quote(q, s), balance_algo_names());

	r = meta_value(c, md->annotations, "metadata.annotations", "ferry.io/health-check", &s);
	if (r < 0)
		return r;
	if (s && strcmp(s, "tcp") == 0)
		svc->health.enabled = true;
	else if (s && strcmp(s, "none") != 0)
		return fail(c, map_path(path, "metadata.annotations", "ferry.io/health-check"),
			    "unknown health check \"%s\" (tcp, none)", quote(q, s));
	r = annotation_uint(c, md->annotations, "ferry.io/health-check-interval", 10, 86400000,
			    &svc->health.interval_ms);
	if (r == 0)
		r = annotation_uint(c, md->annotations, "ferry.io/health-check-timeout", 1, 86400000,
				    &svc->health.timeout_ms);
	if (r == 0)
		r = annotation_uint(c, md->annotations, "ferry.io/health-check-rise", 1, 1000,
				    &svc->health.rise);
	if (r == 0)
		r = annotation_uint(c, md->annotations, "ferry.io/health-check-fall", 1, 1000,
				    &svc->health.fall);
	return r;
}

int kdecode_service(const json_t *obj, const struct kdecode_opts *opts,
		    struct kobj_service **ret, struct kdecode_error *err)
{
	struct ctx c = { .opts = opts, .err = err };
	struct kobj_service *svc = NULL;
	const json_t *spec;
	struct meta md;
	int r;

	*ret = NULL;
	memset(err, 0, sizeof(*err));
	r = meta_decode(&c, obj, "Service", &md);
	if (r < 0)
		return r;
	svc = kobj_service_new();
	if (!svc)
		return -ENOMEM;
	r = dup_str(md.ns, &svc->ns);
	if (r == 0)
		r = dup_str(md.name, &svc->name);
	if (r == 0)
		r = dup_str(opts->source, &svc->source);
	if (r == 0)
		r = field_object(&c, obj, "spec", "", false, &spec);
	if (r == 0)
		r = service_spec_misc(&c, spec, svc);
	if (r == 0)
		r = service_cluster_ips(&c, spec, svc);
	if (r == 0)
		r = ip_list(&c, spec, "externalIPs", "spec", KDECODE_MAX_ITEMS, &svc->external_ips,
			    &svc->n_external_ips);
	if (r == 0)
		r = service_lb(&c, obj, spec, svc);
	if (r == 0)
		r = service_ports(&c, spec, svc);
	if (r == 0)
		r = service_annotations(&c, &md, svc);
	if (r < 0) {
		kobj_service_free(svc);
		return r;
	}
	*ret = svc;
	return 0;
}

/* --- EndpointSlice ------------------------------------------------------------- */

/* Fields an endpoint's addresses share (copied into each kobj_endpoint). */
struct ep_common {
	bool ready, serving, terminating;
	const char *node_name;
	const char *zone;
	const json_t *zones; /* hints.forZones, checked */
};

static int endpoint_fill(struct kobj_endpoint *ep, const struct ep_common *cm)
{
	const json_t *item;
	size_t i;
	int r;

	ep->ready = cm->ready;
	ep->serving = cm->serving;
	ep->terminating = cm->terminating;
	/* The endpoint's zone is checked but not kept: kube-proxy's topology
	 * routing reads the hints, never an endpoint's own zone. */
	r = dup_str(cm->node_name, &ep->node_name);
	if (r < 0 || !cm->zones || json_array_size(cm->zones) == 0)
		return r;
	ep->hint_zones = calloc(json_array_size(cm->zones), sizeof(char *));
	if (!ep->hint_zones)
		return -ENOMEM;
	json_array_foreach(cm->zones, i, item) {
		r = dup_str(json_string_value(json_object_get(item, "name")),
			    &ep->hint_zones[ep->n_hint_zones]);
		if (r < 0)
			return r;
		ep->n_hint_zones++;
	}
	return 0;
}

static int slice_endpoint_common(struct ctx *c, const json_t *e, const char *epath,
				 struct ep_common *cm)
{
	char path[PATH_MAX_LEN], lpath[PATH_MAX_LEN], zpath[PATH_MAX_LEN];
	const json_t *cond, *hints, *item;
	const char *s;
	bool present;
	size_t i;
	int r;

	memset(cm, 0, sizeof(*cm));
	cm->ready = true;
	r = field_object(c, e, "conditions", epath, false, &cond);
	if (r < 0)
		return r;
	if (cond) {
		join(path, epath, "conditions");
		r = field_bool(c, cond, "ready", path, &cm->ready, &present);
		if (r < 0)
			return r;
		r = field_bool(c, cond, "serving", path, &cm->serving, &present);
		if (r < 0)
			return r;
		if (!present)
			cm->serving = cm->ready;
		r = field_bool(c, cond, "terminating", path, &cm->terminating, &present);
		if (r < 0)
			return r;
	} else {
		cm->serving = true;
	}
	r = field_string(c, e, "nodeName", epath, false, KDECODE_MAX_STRING, &cm->node_name);
	if (r == 0)
		r = field_string(c, e, "zone", epath, false, KDECODE_MAX_STRING, &cm->zone);
	if (r == 0)
		r = field_object(c, e, "hints", epath, false, &hints);
	if (r < 0 || !hints)
		return r;
	join(path, epath, "hints");
	r = field_array(c, hints, "forZones", path, 64, &cm->zones);
	if (r < 0 || !cm->zones)
		return r;
	join(lpath, path, "forZones");
	json_array_foreach(cm->zones, i, item) {
		index_path(zpath, lpath, i);
		if (!json_is_object(item))
			return fail(c, zpath, "expected a mapping, got %s", type_name(item));
		r = field_string(c, item, "name", zpath, true, KDECODE_MAX_STRING, &s);
		if (r < 0)
			return r;
	}
	return 0;
}

static int slice_endpoints(struct ctx *c, const json_t *obj, struct kobj_slice *sl)
{
	char epath[PATH_MAX_LEN], apath[PATH_MAX_LEN], lpath[PATH_MAX_LEN], q[QUOTE_MAX];
	const json_t *arr, *e, *addrs, *a;
	struct ep_common cm;
	size_t i, j, total = 0;
	const char *s;
	int r;

	r = field_array(c, obj, "endpoints", "", KDECODE_MAX_ITEMS, &arr);
	if (r < 0 || !arr)
		return r;
	/* First pass: shapes and counts, so one allocation fits all. */
	json_array_foreach(arr, i, e) {
		index_path(epath, "endpoints", i);
		if (!json_is_object(e))
			return fail(c, epath, "expected a mapping, got %s", type_name(e));
		r = field_array(c, e, "addresses", epath, KDECODE_MAX_ADDRESSES, &addrs);
		if (r < 0)
			return r;
		if (!addrs || json_array_size(addrs) == 0)
			return fail(c, join(lpath, epath, "addresses"), "is required");
		total += json_array_size(addrs);
	}
	if (total == 0)
		return 0;
	sl->endpoints = calloc(total, sizeof(*sl->endpoints));
	if (!sl->endpoints)
		return -ENOMEM;
	json_array_foreach(arr, i, e) {
		index_path(epath, "endpoints", i);
		r = slice_endpoint_common(c, e, epath, &cm);
		if (r < 0)
			return r;
		addrs = json_object_get(e, "addresses");
		join(lpath, epath, "addresses");
		json_array_foreach(addrs, j, a) {
			struct kobj_endpoint *ep = &sl->endpoints[sl->n_endpoints];

			index_path(apath, lpath, j);
			r = check_string(c, a, apath, KDECODE_MAX_STRING, &s);
			if (r == 0)
				r = check_ip(c, s, apath, &ep->addr);
			if (r < 0)
				return r;
			if (ep->addr.family != sl->family)
				return fail(c, apath, "address %s does not match addressType %s",
					    quote(q, s), sl->family == AF_INET ? "IPv4" : "IPv6");
			sl->n_endpoints++;
			r = endpoint_fill(ep, &cm);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* Ports of a slice or of an Endpoints subset. With port_required false, an
 * entry without a port ("all ports") is skipped. */
static int slice_ports(struct ctx *c, const json_t *parent, const char *prefix,
		       bool port_required, struct kobj_slice *sl)
{
	char lpath[PATH_MAX_LEN], ppath[PATH_MAX_LEN], fpath[PATH_MAX_LEN];
	const json_t *arr, *p;
	const char *s;
	long long n;
	size_t i;
	int r;

	r = field_array(c, parent, "ports", prefix, KDECODE_MAX_ITEMS, &arr);
	if (r < 0 || !arr || json_array_size(arr) == 0)
		return r;
	join(lpath, prefix, "ports");
	sl->ports = calloc(json_array_size(arr), sizeof(*sl->ports));
	if (!sl->ports)
		return -ENOMEM;
	json_array_foreach(arr, i, p) {
		struct slice_port *sp = &sl->ports[sl->n_ports];

		index_path(ppath, lpath, i);
		if (!json_is_object(p))
			return fail(c, ppath, "expected a mapping, got %s", type_name(p));
		memset(sp, 0, sizeof(*sp));
		r = field_string(c, p, "name", ppath, false, KDECODE_MAX_STRING, &s);
		if (r == 0 && s)
			r = check_port_name(c, s, join(fpath, ppath, "name"));
		if (r == 0)
			r = check_proto(c, p, ppath, &sp->proto);
		n = 0;
		if (r == 0)
			r = field_int(c, p, "port", ppath, port_required, 1, 65535, &n);
		if (r < 0)
			return r;
		if (n == 0)
			continue;
		sp->port = (uint16_t)n;
		/* Shared last: a port left out or failed holds no reference. */
		r = kobj_port_name(s, &sp->name);
		if (r < 0)
			return r;
		sl->n_ports++;
	}
	return 0;
}

static int slice_new_named(struct ctx *c, const struct meta *md, const char *name,
			   const char *service_name, struct kobj_slice **ret)
{
	struct kobj_slice *sl = kobj_slice_new();
	int r;

	(void)c;
	*ret = NULL;
	if (!sl)
		return -ENOMEM;
	r = dup_str(md->ns, &sl->ns);
	if (r == 0)
		r = dup_str(name, &sl->name);
	if (r == 0)
		r = dup_str(service_name, &sl->service_name);
	if (r == 0)
		r = dup_str(c->opts->source, &sl->source);
	if (r < 0) {
		kobj_slice_free(sl);
		return r;
	}
	*ret = sl;
	return 0;
}

/* The slice's endpoints.kubernetes.io/last-change-trigger-time (RFC 3339,
 * UTC "Z" or an offset, optional fraction) as Unix seconds; 0 when absent
 * or malformed: it only feeds a metric (kube-proxy skips it the same way). */
static double kdecode_trigger_time(const json_t *annotations)
{
	const json_t *v = annotations ? json_object_get(annotations,
							"endpoints.kubernetes.io/last-change-trigger-time")
				      : NULL;
	const char *p;
	double frac = 0;
	struct tm tm;
	int off_h = 0, off_m = 0, sign = 0;
	time_t t;

	if (!json_is_string(v))
		return 0;
	memset(&tm, 0, sizeof(tm));
	p = strptime(json_string_value(v), "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return 0;
	if (*p == '.') {
		char *end;

		frac = strtod(p, &end);
		p = end;
	}
	if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		if (sscanf(p + 1, "%2d:%2d", &off_h, &off_m) != 2)
			return 0;
	} else if (strcmp(p, "Z") != 0) {
		return 0;
	}
	t = timegm(&tm);
	if (t == (time_t)-1)
		return 0;
	return (double)t + frac - sign * (off_h * 3600 + off_m * 60);
}

int kdecode_slice(const json_t *obj, const struct kdecode_opts *opts,
		  struct kobj_slice **ret, struct kdecode_error *err)
{
	static const char label[] = "kubernetes.io/service-name";
	struct ctx c = { .opts = opts, .err = err };
	char path[PATH_MAX_LEN], q[QUOTE_MAX];
	struct kobj_slice *sl = NULL;
	const char *svc_name, *at;
	sa_family_t family;
	struct meta md;
	int r;

	*ret = NULL;
	memset(err, 0, sizeof(*err));
	r = meta_decode(&c, obj, "EndpointSlice", &md);
	if (r < 0)
		return r;
	r = field_string(&c, obj, "addressType", "", true, KDECODE_MAX_STRING, &at);
	if (r < 0)
		return r;
	if (strcmp(at, "IPv4") == 0)
		family = AF_INET;
	else if (strcmp(at, "IPv6") == 0)
		family = AF_INET6;
	else if (strcmp(at, "FQDN") == 0)
		return KDECODE_IGNORED;
	else
		return fail(&c, "addressType", "unknown address type \"%s\"", quote(q, at));

	r = meta_value(&c, md.labels, "metadata.labels", label, &svc_name);
	if (r < 0)
		return r;
	map_path(path, "metadata.labels", label);
	if (!svc_name)
		return fail(&c, path, "is required (the slice names no service)");
	if (!valid_dns_name(svc_name, KDECODE_MAX_STRING, true))
		return fail(&c, path, "invalid service name \"%s\"", quote(q, svc_name));

	r = slice_new_named(&c, &md, md.name, svc_name, &sl);
	if (r < 0)
		return r;
	sl->family = family;
	sl->trigger_time_s = kdecode_trigger_time(md.annotations);
	r = slice_endpoints(&c, obj, sl);
	if (r == 0)
		r = slice_ports(&c, obj, "", false, sl);
	if (r < 0) {
		kobj_slice_free(sl);
		return r;
	}
	*ret = sl;
	return 0;
}

/* --- Endpoints ----------------------------------------------------------------- */

void kdecode_slices_free(struct kobj_slice **slices, size_t n)
{
	if (!slices)
		return;
	for (size_t i = 0; i < n; i++)
		kobj_slice_free(slices[i]);
	free(slices);
}

/* Append the addresses of one list (addresses or notReadyAddresses) of the
 * given family to sl. With family 0, only validate. */
static int endpoints_addresses(struct ctx *c, const json_t *subset, const char *spath,
			       const char *key, bool ready, sa_family_t family,
			       struct kobj_slice *sl, size_t *ret_count)
{
	char lpath[PATH_MAX_LEN], apath[PATH_MAX_LEN], fpath[PATH_MAX_LEN];
	const json_t *arr, *a;
	struct inet_addr addr;
	const char *ip, *node;
	size_t i;
	int r;

	r = field_array(c, subset, key, spath, KDECODE_MAX_ITEMS, &arr);
	if (r < 0 || !arr)
		return r;
	join(lpath, spath, key);
	json_array_foreach(arr, i, a) {
		index_path(apath, lpath, i);
		if (!json_is_object(a))
			return fail(c, apath, "expected a mapping, got %s", type_name(a));
		r = field_string(c, a, "ip", apath, true, KDECODE_MAX_STRING, &ip);
		if (r == 0)
			r = check_ip(c, ip, join(fpath, apath, "ip"), &addr);
		if (r == 0)
			r = field_string(c, a, "nodeName", apath, false, KDECODE_MAX_STRING, &node);
		if (r < 0)
			return r;
		if (family == 0) {
			(*ret_count)++;
			continue;
		}
		if (addr.family != family)
			continue;
		struct kobj_endpoint *ep = &sl->endpoints[sl->n_endpoints++];
		ep->addr = addr;
		ep->ready = ready;
		ep->serving = ready;
		ep->terminating = false;
		r = dup_str(node, &ep->node_name);
		if (r < 0)
			return r;
	}
	return 0;
}

int kdecode_endpoints(const json_t *obj, const struct kdecode_opts *opts,
		      struct kobj_slice ***ret_slices, size_t *ret_n,
		      struct kdecode_error *err)
{
	static const sa_family_t families[] = { AF_INET, AF_INET6 };
	struct ctx c = { .opts = opts, .err = err };
	char spath[PATH_MAX_LEN], name[KDECODE_MAX_STRING + 32];
	struct kobj_slice **out = NULL, *sl;
	const json_t *subsets, *subset;
	size_t i, n_out = 0;
	struct meta md;
	int r;

	*ret_slices = NULL;
	*ret_n = 0;
	memset(err, 0, sizeof(*err));
	r = meta_decode(&c, obj, "Endpoints", &md);
	if (r < 0)
		return r;
	r = field_array(&c, obj, "subsets", "", 1000, &subsets);
	if (r < 0 || !subsets || json_array_size(subsets) == 0)
		return r;
	out = calloc(2 * json_array_size(subsets), sizeof(*out));
	if (!out)
		return -ENOMEM;
	json_array_foreach(subsets, i, subset) {
		size_t count = 0;

		index_path(spath, "subsets", i);
		if (!json_is_object(subset)) {
			r = fail(&c, spath, "expected a mapping, got %s", type_name(subset));
			goto fail;
		}
		/* Validate everything once, counting addresses. */
		r = endpoints_addresses(&c, subset, spath, "addresses", true, 0, NULL, &count);
		if (r == 0)
			r = endpoints_addresses(&c, subset, spath, "notReadyAddresses", false, 0,
						NULL, &count);
		if (r < 0)
			goto fail;
		if (count == 0)
			continue;
		for (size_t f = 0; f < 2; f++) {
			snprintf(name, sizeof(name), "%s:%zu:%s", md.name, i,
				 families[f] == AF_INET ? "ipv4" : "ipv6");
			r = slice_new_named(&c, &md, name, md.name, &sl);
			if (r < 0)
				goto fail;
			out[n_out++] = sl;
			sl->family = families[f];
			sl->endpoints = calloc(count, sizeof(*sl->endpoints));
			if (!sl->endpoints) {
				r = -ENOMEM;
				goto fail;
			}
			r = endpoints_addresses(&c, subset, spath, "addresses", true, families[f],
						sl, NULL);
			if (r == 0)
				r = endpoints_addresses(&c, subset, spath, "notReadyAddresses", false,
							families[f], sl, NULL);
			if (r == 0)
				r = slice_ports(&c, subset, spath, true, sl);
			if (r < 0)
				goto fail;
			if (sl->n_endpoints == 0)
				out[--n_out] = kobj_slice_free(sl);
		}
	}
	if (n_out == 0) {
		free(out);
		out = NULL;
	}
	*ret_slices = out;
	*ret_n = n_out;
	return 0;
fail:
	kdecode_slices_free(out, n_out);
	return r;
}

/* --- Classification ------------------------------------------------------------ */

enum kdecode_kind kdecode_classify(const json_t *obj, const json_t *list)
{
	const char *kind, *api;
	char item_kind[128];

	if (!json_is_object(obj))
		return KDECODE_KIND_INVALID;
	kind = json_string_value(json_object_get(obj, "kind"));
	api = json_string_value(json_object_get(obj, "apiVersion"));
	if (!kind && list) {
		const char *lk = json_string_value(json_object_get(list, "kind"));
		size_t n = lk ? strlen(lk) : 0;

		/* ServiceList items from the API carry no kind of their own. */
		if (n > 4 && n < sizeof(item_kind) && strcmp(lk + n - 4, "List") == 0) {
			memcpy(item_kind, lk, n - 4);
			item_kind[n - 4] = '\0';
			kind = item_kind;
			if (!api)
				api = json_string_value(json_object_get(list, "apiVersion"));
		}
	}
	if (!kind)
		return KDECODE_KIND_INVALID;
	if (!api)
		api = "";
	if (strcmp(kind, "Service") == 0 && strcmp(api, "v1") == 0)
		return KDECODE_KIND_SERVICE;
	if (strcmp(kind, "EndpointSlice") == 0 && strcmp(api, "discovery.k8s.io/v1") == 0)
		return KDECODE_KIND_SLICE;
	if (strcmp(kind, "Endpoints") == 0 && strcmp(api, "v1") == 0)
		return KDECODE_KIND_ENDPOINTS;
	{
		size_t n = strlen(kind);

		if (n >= 4 && strcmp(kind + n - 4, "List") == 0 &&
		    json_is_array(json_object_get(obj, "items")))
			return KDECODE_KIND_LIST;
	}
	return KDECODE_KIND_OTHER;
}

/* --- Cost ------------------------------------------------------------------------ */

/* Length of obj[key] when it is an array, else 0. */
static size_t list_len(const json_t *obj, const char *key)
{
	return json_array_size(json_object_get(obj, key));
}

size_t kdecode_cost(const json_t *obj, enum kdecode_kind kind)
{
	const json_t *item;
	size_t i, cost = 1;

	switch (kind) {
	case KDECODE_KIND_SERVICE:
		return cost + list_len(json_object_get(obj, "spec"), "ports");
	case KDECODE_KIND_SLICE:
		cost += list_len(obj, "ports");
		json_array_foreach(json_object_get(obj, "endpoints"), i, item) {
			size_t zones = list_len(json_object_get(item, "hints"), "forZones");

			cost += 1 + list_len(item, "addresses") * (1 + zones);
		}
		return cost;
	case KDECODE_KIND_ENDPOINTS:
		/* Up to two slices per subset, each sized for all its addresses
		 * and holding its ports. */
		json_array_foreach(json_object_get(obj, "subsets"), i, item)
			cost += 2 * (1 + list_len(item, "ports") + list_len(item, "addresses") +
				     list_len(item, "notReadyAddresses"));
		return cost;
	default:
		return 0;
	}
}

/* --- Node ----------------------------------------------------------------------- */

/* What kube-proxy's healthz reads of a Node: a deletionTimestamp, and the
 * cluster autoscaler's ToBeDeletedByClusterAutoscaler taint. Read leniently
 * (a taint without a string key is not that taint): they only turn the
 * health answer to 503, never reject the Node. */
static void kdecode_node_eligibility(const json_t *obj, struct kobj_node *node)
{
	const json_t *md = json_object_get(obj, "metadata");
	const json_t *spec = json_object_get(obj, "spec");
	const json_t *taints = spec ? json_object_get(spec, "taints") : NULL;
	const json_t *t;
	size_t i;

	node->deleting = json_is_string(json_object_get(md, "deletionTimestamp"));
	json_array_foreach(taints, i, t) {
		const json_t *key = json_object_get(t, "key");

		if (json_is_string(key) &&
		    strcmp(json_string_value(key), "ToBeDeletedByClusterAutoscaler") == 0)
			node->to_be_deleted = true;
	}
}

int kdecode_node(const json_t *obj, const struct kdecode_opts *opts, struct kobj_node **ret,
		 struct kdecode_error *err)
{
	struct ctx c = { .opts = opts, .err = err };
	char path[PATH_MAX_LEN], apath[PATH_MAX_LEN];
	const json_t *status = NULL, *addrs = NULL, *a;
	const char *zone = NULL, *type, *addr;
	struct kobj_node *node;
	struct inet_addr ip;
	struct meta md;
	size_t i, n_internal = 0;
	int r;

	*ret = NULL;
	memset(err, 0, sizeof(*err));
	r = meta_decode(&c, obj, "Node", &md);
	if (r < 0)
		return r;
	/* The GA label first, the deprecated beta one as a fallback. */
	if (md.labels) {
		r = meta_value(&c, md.labels, "metadata.labels", "topology.kubernetes.io/zone", &zone);
		if (r == 0 && !zone)
			r = meta_value(&c, md.labels, "metadata.labels",
				       "failure-domain.beta.kubernetes.io/zone", &zone);
		if (r < 0)
			return r;
	}
	r = field_object(&c, obj, "status", "", false, &status);
	if (r == 0 && status)
		r = field_array(&c, status, "addresses", "status", 64, &addrs);
	if (r < 0)
		return r;
	node = kobj_node_new();
	if (!node)
		return -ENOMEM;
	r = dup_str(md.name, &node->name);
	if (r == 0)
		r = dup_str(zone && *zone ? zone : NULL, &node->zone);
	if (r == 0 && addrs && json_array_size(addrs)) {
		node->addrs = calloc(json_array_size(addrs), sizeof(*node->addrs));
		if (!node->addrs)
			r = -ENOMEM;
	}
	json_array_foreach(addrs, i, a) {
		if (r < 0)
			break;
		index_path(apath, "status.addresses", i);
		if (!json_is_object(a)) {
			r = fail(&c, apath, "expected a mapping, got %s", type_name(a));
			break;
		}
		r = field_string(&c, a, "type", apath, true, 64, &type);
		if (r == 0)
			r = field_string(&c, a, "address", apath, true, KDECODE_MAX_STRING, &addr);
		if (r < 0)
			break;
		/* Hostname, InternalDNS... are not addresses ferry can use. */
		if (strcmp(type, "InternalIP") != 0 && strcmp(type, "ExternalIP") != 0)
			continue;
		r = check_ip(&c, addr, join(path, apath, "address"), &ip);
		if (r < 0)
			break;
		/* InternalIPs first (in their order), then ExternalIPs: the first
		 * address of a family is the node's primary one. */
		if (strcmp(type, "InternalIP") == 0) {
			memmove(&node->addrs[n_internal + 1], &node->addrs[n_internal],
				(node->n_addrs - n_internal) * sizeof(node->addrs[0]));
			node->addrs[n_internal++] = ip;
		} else {
			node->addrs[node->n_addrs] = ip;
		}
		node->n_addrs++;
	}
	if (r < 0) {
		kobj_node_free(node);
		return r;
	}
	kdecode_node_eligibility(obj, node);
	*ret = node;
	return 0;
}
