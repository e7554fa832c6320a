/* `ferry plan --backend userspace`: what the relay would listen on (or,
 * with interception, which frontends its shared relay sockets receive) and
 * where each forwards, without opening anything. */
#include <stdio.h>
#include <string.h>

#include "balancer.h"
#include "kobj.h"
#include "userspace.h"

static const char *kind_name(enum frontend_kind k)
{
	switch (k) {
	case FRONTEND_CLUSTER_IP:
		return "ClusterIP";
	case FRONTEND_NODE_PORT:
		return "NodePort";
	case FRONTEND_EXTERNAL_IP:
		return "ExternalIP";
	case FRONTEND_LOAD_BALANCER:
		return "LoadBalancer";
	}
	return "?";
}

static void json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void service_label(const struct plan_epset *e, char *buf, size_t len)
{
	if (!e)
		snprintf(buf, len, "(no endpoint set)");
	else if (e->port_name[0])
		snprintf(buf, len, "%s/%s:%s", e->ns ? e->ns : "?", e->svc_name ? e->svc_name : "?",
			 e->port_name);
	else
		snprintf(buf, len, "%s/%s", e->ns ? e->ns : "?", e->svc_name ? e->svc_name : "?");
}

/* Whether f would reach the relay through the interception (the shared
 * relay sockets) rather than a listener of its own: every frontend, with
 * a provider (userspace_frontends.c). */
static bool render_intercepted(const struct plan_frontend *f, bool intercept)
{
	(void)f;
	return intercept;
}

static void render_text(const struct plan *plan, unsigned workers, bool intercept, FILE *out)
{
	for (size_t i = 0; i < plan->n_frontends; i++) {
		const struct plan_frontend *f = &plan->frontends[i];
		const struct plan_epset *e = f->epset;
		char ep[INET_ENDPOINT_STRLEN], label[256];
		size_t n = e ? e->n_endpoints : 0;

		inet_endpoint_format(&f->addr, f->port, ep);
		if (f->proto == INET_PROTO_SCTP) {
			fprintf(out, "skip   %s/SCTP: not supported by the userspace relay\n", ep);
			continue;
		}
		service_label(e, label, sizeof(label));
		if (render_intercepted(f, intercept))
			fprintf(out, "intercept %s/%s to the shared relay -> %s (%s, %zu endpoint%s", ep,
				inet_proto_name(f->proto), label,
				balance_algo_name(e ? e->balance : BALANCE_ROUND_ROBIN), n, n == 1 ? "" : "s");
		else
			fprintf(out, "listen %s/%s x %u worker%s -> %s (%s, %zu endpoint%s", ep,
				inet_proto_name(f->proto), workers, workers == 1 ? "" : "s", label,
				balance_algo_name(e ? e->balance : BALANCE_ROUND_ROBIN), n, n == 1 ? "" : "s");
		if (n == 0)
			fprintf(out, ": %s", f->proto == INET_PROTO_TCP ? "refuse with RST" : "drop");
		if (e && e->affinity)
			fprintf(out, ", ClientIP affinity %us", e->affinity_timeout_s);
		if (e && e->health.enabled)
			fprintf(out, ", tcp check every %ums rise %u fall %u", e->health.interval_ms,
				e->health.rise, e->health.fall);
		if (f->n_source_ranges > 0)
			fprintf(out, ", %zu source range%s", f->n_source_ranges,
				f->n_source_ranges == 1 ? "" : "s");
		fprintf(out, ")\n");
	}
}

static void render_json(const struct plan *plan, bool intercept, FILE *out)
{
	bool first = true;

	fprintf(out, "{\"backend\":\"userspace\",\"listeners\":[");
	for (size_t i = 0; i < plan->n_frontends; i++) {
		const struct plan_frontend *f = &plan->frontends[i];
		const struct plan_epset *e = f->epset;
		char a[INET_ADDR_STRLEN], label[256];

		if (f->proto == INET_PROTO_SCTP)
			continue;
		service_label(e, label, sizeof(label));
		fprintf(out, "%s{\"address\":", first ? "" : ",");
		first = false;
		json_string(out, inet_addr_format(&f->addr, a));
		fprintf(out, ",\"port\":%u,\"protocol\":\"%s\",\"kind\":\"%s\",\"intercepted\":%s,\"service\":",
			f->port, inet_proto_name(f->proto), kind_name(f->kind),
			render_intercepted(f, intercept) ? "true" : "false");
		json_string(out, label);
		fprintf(out, ",\"balance\":\"%s\",\"whenEmpty\":\"%s\",\"endpoints\":[",
			balance_algo_name(e ? e->balance : BALANCE_ROUND_ROBIN),
			f->proto == INET_PROTO_TCP ? "reset" : "drop");
		for (size_t k = 0; e && k < e->n_endpoints; k++) {
			char ep[INET_ENDPOINT_STRLEN];

			fprintf(out, "%s", k ? "," : "");
			json_string(out, inet_endpoint_format(&e->endpoints[k].addr, e->endpoints[k].port, ep));
		}
		fprintf(out, "],\"affinityTimeoutSeconds\":");
		if (e && e->affinity)
			fprintf(out, "%u", e->affinity_timeout_s);
		else
			fprintf(out, "null");
		fprintf(out, ",\"healthCheck\":");
		if (e && e->health.enabled)
			fprintf(out, "{\"type\":\"tcp\",\"intervalMs\":%u,\"timeoutMs\":%u,\"rise\":%u,\"fall\":%u}",
				e->health.interval_ms, e->health.timeout_ms, e->health.rise, e->health.fall);
		else
			fprintf(out, "null");
		fprintf(out, ",\"sourceRanges\":[");
		for (size_t k = 0; k < f->n_source_ranges; k++) {
			char p[INET_ADDR_STRLEN];

			fprintf(out, "%s\"%s/%u\"", k ? "," : "",
				inet_addr_format(&f->source_ranges[k].addr, p), f->source_ranges[k].len);
		}
		fprintf(out, "]}");
	}
	fprintf(out, "],\"skipped\":[");
	first = true;
	for (size_t i = 0; i < plan->n_frontends; i++) {
		const struct plan_frontend *f = &plan->frontends[i];
		char a[INET_ADDR_STRLEN];

		if (f->proto != INET_PROTO_SCTP)
			continue;
		fprintf(out, "%s{\"address\":", first ? "" : ",");
		first = false;
		json_string(out, inet_addr_format(&f->addr, a));
		fprintf(out, ",\"port\":%u,\"protocol\":\"SCTP\",\"reason\":\"not supported by the userspace relay\"}",
			f->port);
	}
	fprintf(out, "]}\n");
}

void userspace_render(const struct plan *plan, const void *options, enum plan_format fmt, FILE *out)
{
	const struct userspace_options *opts = options;

	bool intercept = opts && opts->intercept;

	if (fmt == PLAN_FORMAT_JSON)
		render_json(plan, intercept, out);
	else /* text and rules: no kernel tool reads the relay's listeners */
		render_text(plan, opts && opts->workers ? opts->workers : 1, intercept, out);
}
