/* Printing a plan for people (ferry plan) and for programs (JSON).
 *
 * Both forms list frontends in plan order, then endpoint sets in key order,
 * so the output of one plan is byte-for-byte stable and can be diffed.
 */
#include "planner.h"

#include <jansson.h>

#include "kobj.h"
#include "log.h"

/* Stable lower-case name of a frontend kind, as printed in both formats
 * and in logs; "?" for a value outside the enum. Static storage. */
const char *frontend_kind_name(enum frontend_kind kind)
{
	switch (kind) {
	case FRONTEND_CLUSTER_IP:
		return "cluster-ip";
	case FRONTEND_NODE_PORT:
		return "node-port";
	case FRONTEND_EXTERNAL_IP:
		return "external-ip";
	case FRONTEND_LOAD_BALANCER:
		return "load-balancer";
	}
	return "?";
}

static const char *empty_verdict_name(enum empty_verdict v)
{
	return v == EMPTY_DROP ? "drop" : "reject";
}

static const char *prefix_format(const struct inet_prefix *p, char *buf)
{
	char a[INET_ADDR_STRLEN];

	snprintf(buf, INET_ENDPOINT_STRLEN, "%s/%u", inet_addr_format(&p->addr, a), p->len);
	return buf;
}

static void print_text(const struct plan *plan, FILE *out)
{
	char buf[INET_ENDPOINT_STRLEN];

	for (size_t i = 0; i < plan->n_frontends; i++) {
		const struct plan_frontend *f = &plan->frontends[i];

		fprintf(out, "%s %s/%s -> %s", frontend_kind_name(f->kind),
			inet_endpoint_format(&f->addr, f->port, buf), inet_proto_name(f->proto),
			f->epset ? f->epset->key : "?");
		if (f->masquerade == PLAN_MASQ_ALWAYS)
			fputs(" [masquerade]", out);
		else if (f->masquerade == PLAN_MASQ_UNLESS_LOCAL)
			fputs(" [masquerade unless local]", out);
		if (f->when_empty == EMPTY_DROP)
			fputs(" [drop-when-empty]", out);
		if (f->n_source_ranges) {
			fputs(" [ranges", out);
			for (size_t j = 0; j < f->n_source_ranges; j++)
				fprintf(out, "%s%s", j ? "," : " ", prefix_format(&f->source_ranges[j], buf));
			fputc(']', out);
		}
		fputc('\n', out);
	}
	for (size_t i = 0; i < plan->n_epsets; i++) {
		const struct plan_epset *e = &plan->epsets[i];

		fprintf(out, "\nendpoint-set %s\n  balance %s", e->key, balance_algo_name(e->balance));
		if (e->affinity)
			fprintf(out, ", affinity client-ip %us", e->affinity_timeout_s);
		if (e->health.enabled)
			fprintf(out, ", health tcp every %ums timeout %ums rise %u fall %u",
				e->health.interval_ms, e->health.timeout_ms, e->health.rise,
				e->health.fall);
		fputc('\n', out);
		if (!e->n_endpoints)
			fputs("  (no endpoints)\n", out);
		for (size_t j = 0; j < e->n_endpoints; j++) {
			const struct plan_endpoint *ep = &e->endpoints[j];
			fprintf(out, "  %s%s%s\n", inet_endpoint_format(&ep->addr, ep->port, buf),
				ep->terminating ? " [terminating]" : "", ep->local ? " [local]" : "");
		}
	}
	if (plan->n_health_checks)
		fputc('\n', out);
	for (size_t i = 0; i < plan->n_health_checks; i++) {
		const struct plan_health_check *hc = &plan->health_checks[i];
		fprintf(out, "health-check-node-port %u -> %s/%s (%zu local endpoints)\n", hc->port,
			hc->ns, hc->svc_name, hc->local_endpoints);
	}
}

/* json_*_set_new and json_array_append_new take the reference even when
 * they fail (and refuse a NULL value), so the builders below never leak;
 * a failed inner allocation can only lose a field, and a failed object
 * makes print_json give up with an error line. */
static json_t *frontend_json(const struct plan_frontend *f)
{
	char buf[INET_ENDPOINT_STRLEN];
	json_t *o = json_object(), *ranges = json_array();

	for (size_t j = 0; ranges && j < f->n_source_ranges; j++)
		json_array_append_new(ranges, json_string(prefix_format(&f->source_ranges[j], buf)));
	if (!o) {
		json_decref(ranges);
		return NULL;
	}
	json_object_set_new(o, "kind", json_string(frontend_kind_name(f->kind)));
	json_object_set_new(o, "address", json_string(inet_addr_format(&f->addr, buf)));
	json_object_set_new(o, "protocol", json_string(inet_proto_name(f->proto)));
	json_object_set_new(o, "port", json_integer(f->port));
	json_object_set_new(o, "endpointSet", f->epset ? json_string(f->epset->key) : json_null());
	json_object_set_new(o, "masquerade", json_boolean(f->masquerade == PLAN_MASQ_ALWAYS));
	if (f->masquerade == PLAN_MASQ_UNLESS_LOCAL)
		json_object_set_new(o, "masqueradeUnlessLocal", json_true());
	json_object_set_new(o, "whenEmpty", json_string(empty_verdict_name(f->when_empty)));
	json_object_set_new(o, "sourceRanges", ranges);
	return o;
}

static json_t *epset_json(const struct plan_epset *e)
{
	char buf[INET_ADDR_STRLEN];
	json_t *o = json_object(), *aff = json_object(), *hc = json_object(), *eps = json_array();

	if (!o || !aff || !hc || !eps) {
		json_decref(o);
		json_decref(aff);
		json_decref(hc);
		json_decref(eps);
		return NULL;
	}
	json_object_set_new(aff, "clientIP", json_boolean(e->affinity));
	json_object_set_new(aff, "timeoutSeconds", json_integer(e->affinity_timeout_s));
	json_object_set_new(hc, "enabled", json_boolean(e->health.enabled));
	json_object_set_new(hc, "intervalMs", json_integer(e->health.interval_ms));
	json_object_set_new(hc, "timeoutMs", json_integer(e->health.timeout_ms));
	json_object_set_new(hc, "rise", json_integer(e->health.rise));
	json_object_set_new(hc, "fall", json_integer(e->health.fall));
	for (size_t j = 0; j < e->n_endpoints; j++) {
		const struct plan_endpoint *ep = &e->endpoints[j];
		json_t *x = json_object();

		if (x) {
			json_object_set_new(x, "address", json_string(inet_addr_format(&ep->addr, buf)));
			json_object_set_new(x, "port", json_integer(ep->port));
			json_object_set_new(x, "terminating", json_boolean(ep->terminating));
			json_object_set_new(x, "local", json_boolean(ep->local));
		}
		json_array_append_new(eps, x);
	}
	json_object_set_new(o, "key", json_string(e->key));
	json_object_set_new(o, "namespace", json_string(e->ns));
	json_object_set_new(o, "service", json_string(e->svc_name));
	json_object_set_new(o, "portName", json_string(e->port_name));
	json_object_set_new(o, "protocol", json_string(inet_proto_name(e->proto)));
	json_object_set_new(o, "balance", json_string(balance_algo_name(e->balance)));
	json_object_set_new(o, "sessionAffinity", aff);
	json_object_set_new(o, "healthCheck", hc);
	json_object_set_new(o, "endpoints", eps);
	return o;
}

static void print_json(const struct plan *plan, FILE *out)
{
	json_t *root = json_object(), *fes = json_array(), *sets = json_array();
	json_t *hcs = json_array();

	if (!root || !fes || !sets || !hcs)
		goto oom;
	for (size_t i = 0; i < plan->n_health_checks; i++) {
		const struct plan_health_check *hc = &plan->health_checks[i];
		if (json_array_append_new(hcs, json_pack("{s:i, s:s, s:s, s:I}", "port", hc->port,
							 "namespace", hc->ns, "service", hc->svc_name,
							 "localEndpoints",
							 (json_int_t)hc->local_endpoints)) < 0)
			goto oom;
	}
	for (size_t i = 0; i < plan->n_frontends; i++)
		if (json_array_append_new(fes, frontend_json(&plan->frontends[i])) < 0)
			goto oom;
	for (size_t i = 0; i < plan->n_epsets; i++)
		if (json_array_append_new(sets, epset_json(&plan->epsets[i])) < 0)
			goto oom;
	if (json_object_set(root, "frontends", fes) < 0 ||
	    json_object_set(root, "endpointSets", sets) < 0 ||
	    json_object_set(root, "healthCheckNodePorts", hcs) < 0)
		goto oom;
	/* Insertion order is kept (no JSON_SORT_KEYS): it is already fixed. */
	if (json_dumpf(root, out, JSON_INDENT(2)) == 0)
		fputc('\n', out);
	json_decref(fes);
	json_decref(sets);
	json_decref(hcs);
	json_decref(root);
	return;
oom:
	log_error("plan: out of memory while printing the plan as JSON");
	json_decref(fes);
	json_decref(sets);
	json_decref(hcs);
	json_decref(root);
}

/* Print plan to out in fmt (see planner.h). A NULL plan prints as an
 * empty one. Output errors are the caller's to detect with ferror(out);
 * an allocation failure in JSON mode is logged and prints nothing. */
void plan_print(const struct plan *plan, enum plan_format fmt, FILE *out)
{
	static const struct plan empty;

	if (!plan)
		plan = &empty;
	if (fmt == PLAN_FORMAT_JSON)
		print_json(plan, out);
	else
		print_text(plan, out);
}

void plan_print_json_string(FILE *out, const char *text, size_t len)
{
	fputc('"', out);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c == '\n')
			fprintf(out, "\\n");
		else if (c == '\t')
			fprintf(out, "\\t");
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}
