/* Planner rules, table-driven: each case lists Services, EndpointSlices and
 * the node, and the expected plan in a compact text form (rendered by
 * summarize() below, independent of plan_print). Also: the plan diff over a
 * sequence of model changes, and a 10k-service run for scale. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kobj.h"
#include "model.h"
#include "planner.h"

/* ---- fixtures: compact descriptions of Kubernetes objects ---- */

struct t_ep {
	const char *addr;  /* NULL ends the list */
	const char *cond;  /* NULL/"r" ready, "st" serving+terminating,
			    * "t" terminating not serving, "n" not ready */
	const char *node;
	const char *hints; /* space-separated zones */
};

struct t_slice {
	const char *ns;    /* NULL ends the list */
	const char *name;
	const char *svc;
	int family;        /* 4 or 6 */
	const char *ports; /* "name/PROTO/port ..." ("-" for no name); NULL: none */
	struct t_ep eps[6];
};

struct t_svc {
	const char *ns;    /* NULL ends the list */
	const char *name;
	enum svc_type type;
	const char *cluster_ips; /* space-separated */
	const char *ports; /* "name/PROTO/port/nodePort/target ..." ("-" for no name) */
	const char *external_ips;
	const char *lb_ips;
	const char *ranges;
	const char *families;    /* "4 6"; NULL: from the cluster IPs */
	bool headless;
	const char *proxy_name;
	bool affinity;
	uint32_t affinity_timeout;
	bool affinity_timeout_zero; /* a model object without the default (a decoder bug) */
	enum traffic_policy etp;
	enum traffic_policy itp;
	enum balance_algo balance;
	bool health;
	uint16_t hc_port; /* healthCheckNodePort */
};

struct t_case {
	const char *name;
	struct t_svc svcs[4];
	struct t_slice slices[5];
	const char *node_name;   /* planner config and the node object */
	const char *node_zone;
	const char *node_addrs;
	const char *proxy_name;  /* planner config */
	const char *np_prefixes; /* planner config */
	bool np_primary;         /* planner config: --nodeport-addresses primary */
	bool np_localhost;       /* planner config: --nodeport-addresses localhost */
	bool np_all;             /* planner config: --nodeport-addresses all */
	const char *host_addrs;  /* the host's interface addresses (model) */
	const char *host_default; /* the default routes' source addresses (model) */
	bool no_topology;
	bool masquerade_all;     /* planner config: --masquerade-all */
	const char *node_ip;     /* planner config: kube-proxy's bindAddress (node_ip_override) */
	const char *expect;
};

static size_t count_words(const char *s)
{
	size_t n = 0;
	bool in = false;

	for (; s && *s; s++) {
		if (*s == ' ') {
			in = false;
		} else if (!in) {
			in = true;
			n++;
		}
	}
	return n;
}

/* Split a space-separated list into a malloc'ed copy and word pointers. */
static char *split(const char *s, char ***ret_words, size_t *ret_n)
{
	size_t n = count_words(s), i = 0;
	char *copy = strdup(s ? s : ""), *save = NULL, *w;
	char **words = calloc(n + 1, sizeof(*words));

	cr_assert(copy && words);
	for (w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
		words[i++] = w;
	*ret_words = words;
	*ret_n = n;
	return copy;
}

static void parse_addrs(const char *s, struct inet_addr **ret, size_t *ret_n)
{
	char **w;
	size_t n;
	char *copy = split(s, &w, &n);

	*ret = calloc(n + 1, sizeof(**ret));
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(inet_addr_parse(w[i], &(*ret)[i]), 0, "bad address %s", w[i]);
	*ret_n = n;
	free(w);
	free(copy);
}

static struct kobj_service *mk_svc(const struct t_svc *t)
{
	struct kobj_service *svc = kobj_service_new();
	char **w;
	size_t n;
	char *copy;

	cr_assert(svc);
	svc->ns = strdup(t->ns);
	svc->name = strdup(t->name);
	svc->type = t->type;
	svc->headless = t->headless;
	svc->proxy_name = t->proxy_name ? strdup(t->proxy_name) : NULL;
	svc->health_check_node_port = t->hc_port;
	parse_addrs(t->cluster_ips, &svc->cluster_ips, &svc->n_cluster_ips);
	parse_addrs(t->external_ips, &svc->external_ips, &svc->n_external_ips);
	parse_addrs(t->lb_ips, &svc->lb_ips, &svc->n_lb_ips);

	copy = split(t->ranges, &w, &n);
	svc->source_ranges = calloc(n + 1, sizeof(*svc->source_ranges));
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(inet_prefix_parse(w[i], &svc->source_ranges[i]), 0);
	svc->n_source_ranges = n;
	free(w);
	free(copy);

	if (t->families) {
		copy = split(t->families, &w, &n);
		for (size_t i = 0; i < n && i < 2; i++)
			svc->ip_families[svc->n_ip_families++] = w[i][0] == '6' ? AF_INET6 : AF_INET;
		free(w);
		free(copy);
	} else {
		for (size_t i = 0; i < svc->n_cluster_ips && svc->n_ip_families < 2; i++)
			svc->ip_families[svc->n_ip_families++] = svc->cluster_ips[i].family;
	}

	copy = split(t->ports, &w, &n);
	svc->ports = calloc(n + 1, sizeof(*svc->ports));
	for (size_t i = 0; i < n; i++) {
		char name[64], proto[8], target[64];
		unsigned port, node_port;
		struct svc_port *p = &svc->ports[i];

		cr_assert_eq(sscanf(w[i], "%63[^/]/%7[^/]/%u/%u/%63s", name, proto, &port, &node_port,
				    target), 5, "bad port %s", w[i]);
		kobj_port_name(strcmp(name, "-") ? name : "", &p->name);
		cr_assert_eq(inet_proto_parse(proto, &p->proto), 0);
		p->port = (uint16_t)port;
		p->node_port = (uint16_t)node_port;
		if (target[0] >= '0' && target[0] <= '9')
			p->target_port = (uint16_t)atoi(target);
		else
			kobj_port_name(target, &p->target_port_name);
	}
	svc->n_ports = n;
	free(w);
	free(copy);

	svc->affinity_client_ip = t->affinity;
	if (t->affinity_timeout)
		svc->affinity_timeout_s = t->affinity_timeout;
	if (t->affinity_timeout_zero)
		svc->affinity_timeout_s = 0;
	svc->external_policy = t->etp;
	svc->internal_policy = t->itp;
	svc->balance = t->balance;
	svc->health.enabled = t->health;
	return svc;
}

static struct kobj_slice *mk_slice(const struct t_slice *t)
{
	struct kobj_slice *s = kobj_slice_new();
	char **w;
	size_t n, ne = 0;
	char *copy;

	cr_assert(s);
	s->ns = strdup(t->ns);
	s->name = strdup(t->name);
	s->service_name = t->svc ? strdup(t->svc) : NULL;
	s->family = t->family == 6 ? AF_INET6 : AF_INET;

	copy = split(t->ports, &w, &n);
	s->ports = calloc(n + 1, sizeof(*s->ports));
	for (size_t i = 0; i < n; i++) {
		char name[64], proto[8];
		unsigned port;

		cr_assert_eq(sscanf(w[i], "%63[^/]/%7[^/]/%u", name, proto, &port), 3);
		kobj_port_name(strcmp(name, "-") ? name : "", &s->ports[i].name);
		cr_assert_eq(inet_proto_parse(proto, &s->ports[i].proto), 0);
		s->ports[i].port = (uint16_t)port;
	}
	s->n_ports = n;
	free(w);
	free(copy);

	while (ne < 6 && t->eps[ne].addr)
		ne++;
	s->endpoints = calloc(ne + 1, sizeof(*s->endpoints));
	for (size_t i = 0; i < ne; i++) {
		const struct t_ep *te = &t->eps[i];
		struct kobj_endpoint *ep = &s->endpoints[i];
		const char *c = te->cond ? te->cond : "r";

		cr_assert_eq(inet_addr_parse(te->addr, &ep->addr), 0);
		ep->ready = strcmp(c, "r") == 0;
		ep->serving = ep->ready || strcmp(c, "st") == 0;
		ep->terminating = c[strlen(c) - 1] == 't';
		ep->node_name = te->node ? strdup(te->node) : NULL;
		if (te->hints) {
			char **hw;
			size_t hn;
			char *hc = split(te->hints, &hw, &hn);

			ep->hint_zones = calloc(hn + 1, sizeof(char *));
			for (size_t j = 0; j < hn; j++)
				ep->hint_zones[j] = strdup(hw[j]);
			ep->n_hint_zones = hn;
			free(hw);
			free(hc);
		}
	}
	s->n_endpoints = ne;
	return s;
}

/* ---- the compact plan form ---- */

struct strbuf {
	char *buf;
	size_t len;
};

static FILE *sb_open(struct strbuf *sb)
{
	FILE *f = open_memstream(&sb->buf, &sb->len);

	cr_assert(f);
	return f;
}

/* "F kind addr:port/PROTO -> key[ masq][ drop][ sc=key][ ranges=a,b]" per frontend,
 * then "E key = ep ep ...[ | policy]" per set; endpoints carry "/term" and
 * "/local" marks. */
static char *summarize(const struct plan *plan)
{
	struct strbuf sb = { 0 };
	FILE *f = sb_open(&sb);
	char b[INET_ENDPOINT_STRLEN];

	for (size_t i = 0; i < plan->n_frontends; i++) {
		const struct plan_frontend *fe = &plan->frontends[i];

		fprintf(f, "F %s %s/%s -> %s", frontend_kind_name(fe->kind),
			inet_endpoint_format(&fe->addr, fe->port, b), inet_proto_name(fe->proto),
			fe->epset->key);
		/* Cluster IPs are "masquerade unless local" unless said otherwise. */
		if (fe->masquerade == PLAN_MASQ_ALWAYS)
			fprintf(f, " masq");
		else if (fe->masquerade == PLAN_MASQ_UNLESS_LOCAL && fe->kind != FRONTEND_CLUSTER_IP)
			fprintf(f, " masq-unless-local");
		else if (fe->masquerade == PLAN_MASQ_NEVER && fe->kind == FRONTEND_CLUSTER_IP)
			fprintf(f, " never-masq");
		if (fe->when_empty == EMPTY_DROP)
			fprintf(f, " drop");
		if (fe->short_circuit)
			fprintf(f, " sc=%s", fe->short_circuit->key);
		for (size_t j = 0; j < fe->n_source_ranges; j++)
			fprintf(f, "%s%s/%u", j ? "," : " ranges=",
				inet_addr_format(&fe->source_ranges[j].addr, b),
				fe->source_ranges[j].len);
		fprintf(f, "\n");
	}
	for (size_t i = 0; i < plan->n_epsets; i++) {
		const struct plan_epset *e = &plan->epsets[i];

		fprintf(f, "E %s =", e->key);
		for (size_t j = 0; j < e->n_endpoints; j++) {
			const struct plan_endpoint *ep = &e->endpoints[j];
			fprintf(f, " %s%s%s", inet_endpoint_format(&ep->addr, ep->port, b),
				ep->terminating ? "/term" : "", ep->local ? "/local" : "");
		}
		if (e->affinity || e->balance != BALANCE_ROUND_ROBIN || e->health.enabled) {
			fprintf(f, " |");
			if (e->affinity)
				fprintf(f, " aff=%u", e->affinity_timeout_s);
			if (e->balance != BALANCE_ROUND_ROBIN)
				fprintf(f, " %s", balance_algo_name(e->balance));
			if (e->health.enabled)
				fprintf(f, " hc");
		}
		fprintf(f, "\n");
	}
	fclose(f);
	return sb.buf;
}

/* ---- running a case ---- */

struct env {
	struct model *m;
	struct planner *p;
	struct inet_prefix prefixes[4];
};

static void env_init(struct env *env, const struct t_case *c)
{
	struct planner_config cfg = {
		.node_name = c->node_name,
		.service_proxy_name = c->proxy_name,
		.topology_hints = !c->no_topology,
		.nodeport_primary = c->np_primary,
		.nodeport_localhost = c->np_localhost,
		.nodeport_all = c->np_all,
		.masquerade_all = c->masquerade_all,
	};
	char **w;
	size_t n;
	char *copy = split(c->np_prefixes, &w, &n);

	for (size_t i = 0; i < n && i < 4; i++)
		cr_assert_eq(inet_prefix_parse(w[i], &env->prefixes[i]), 0);
	free(w);
	free(copy);
	cfg.nodeport_prefixes = env->prefixes;
	cfg.n_nodeport_prefixes = n;
	if (c->node_ip)
		cr_assert_eq(inet_addr_parse(c->node_ip, &cfg.node_ip_override), 0);
	env->m = model_new();
	env->p = planner_new(&cfg);
	cr_assert(env->m && env->p);
	if (c->node_name || c->node_zone || c->node_addrs) {
		struct kobj_node *node = kobj_node_new();
		node->name = c->node_name ? strdup(c->node_name) : NULL;
		node->zone = c->node_zone ? strdup(c->node_zone) : NULL;
		parse_addrs(c->node_addrs, &node->addrs, &node->n_addrs);
		model_set_node(env->m, node);
	}
	if (c->host_addrs || c->host_default) {
		struct host_addrs h = { 0 };
		struct inet_addr *def;
		size_t n_def;

		parse_addrs(c->host_addrs, &h.addrs, &h.n_addrs);
		parse_addrs(c->host_default, &def, &n_def);
		for (size_t i = 0; i < n_def; i++)
			h.default_src[def[i].family == AF_INET6] = def[i];
		cr_assert_eq(model_set_host_addrs(env->m, &h), 1);
		cr_assert_eq(model_set_host_addrs(env->m, &h), 0, "same addresses: no change");
		host_addrs_done(&h);
		free(def);
	}
	for (size_t i = 0; i < 4 && c->svcs[i].ns; i++)
		cr_assert_eq(model_upsert_service(env->m, mk_svc(&c->svcs[i])), 0);
	for (size_t i = 0; i < 5 && c->slices[i].ns; i++)
		cr_assert_eq(model_upsert_slice(env->m, mk_slice(&c->slices[i])), 0);
}

static void env_done(struct env *env)
{
	planner_free(env->p);
	model_free(env->m);
}

/* Shorthands for the tables. WEB(...) spells the usual service and lets a
 * case override fields after the defaults: that is what designated
 * initializers do in C, so the warning about it is off in this file. */
#pragma GCC diagnostic ignored "-Woverride-init"
#define EP(a) { .addr = a }
#define WEB_SLICE(name_, ...) \
	{ .ns = "default", .name = name_, .svc = "web", .family = 4, .ports = "http/TCP/8080", \
	  .eps = { __VA_ARGS__ } }
#define WEB(...) \
	{ .ns = "default", .name = "web", .cluster_ips = "10.0.0.10", .ports = "http/TCP/80/0/8080", \
	  __VA_ARGS__ }

static const struct t_case cases[] = {
	{
		.name = "cluster IP with two ready endpoints",
		.svcs = { WEB() },
		.slices = { WEB_SLICE("web-1", EP("10.1.0.2"), EP("10.1.0.1")) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "E default/web:http/TCP = 10.1.0.1:8080 10.1.0.2:8080\n",
	},
	{
		.name = "service without endpoints rejects",
		.svcs = { WEB() },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "E default/web:http/TCP =\n",
	},
	{
		.name = "ExternalName produces nothing",
		.svcs = { WEB(.type = SVC_TYPE_EXTERNAL_NAME) },
		.slices = { WEB_SLICE("web-1", EP("10.1.0.1")) },
		.expect = "",
	},
	{
		.name = "headless produces nothing",
		.svcs = { WEB(.headless = true, .cluster_ips = NULL) },
		.slices = { WEB_SLICE("web-1", EP("10.1.0.1")) },
		.expect = "",
	},
	{
		.name = "labelled service is skipped without --service-proxy-name",
		.svcs = { WEB(.proxy_name = "other") },
		.expect = "",
	},
	{
		.name = "--service-proxy-name takes exactly its services",
		.proxy_name = "ferry",
		.svcs = {
			{ .ns = "a", .name = "mine", .cluster_ips = "10.0.0.1", .ports = "-/TCP/80/0/80",
			  .proxy_name = "ferry" },
			{ .ns = "a", .name = "other", .cluster_ips = "10.0.0.2", .ports = "-/TCP/80/0/80",
			  .proxy_name = "kube" },
			{ .ns = "a", .name = "plain", .cluster_ips = "10.0.0.3", .ports = "-/TCP/80/0/80" },
		},
		.expect = "F cluster-ip 10.0.0.1:80/TCP -> a/mine:80/TCP\n"
			  "E a/mine:80/TCP =\n",
	},
	{
		.name = "dual-stack: one frontend per cluster IP, endpoints of its family",
		.svcs = { WEB(.cluster_ips = "fd00::10 10.0.0.10") },
		.slices = {
			WEB_SLICE("web-v4", EP("10.1.0.1")),
			{ .ns = "default", .name = "web-v6", .svc = "web", .family = 6,
			  .ports = "http/TCP/8080", .eps = { EP("fd01::1") } },
		},
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "F cluster-ip [fd00::10]:80/TCP -> default/web:http/TCP/ipv6\n"
			  "E default/web:http/TCP = 10.1.0.1:8080\n"
			  "E default/web:http/TCP/ipv6 = [fd01::1]:8080\n",
	},
	{
		.name = "external IPs masquerade; foreign-family external IP ignored",
		.svcs = { WEB(.external_ips = "192.0.2.7 2001:db8::7") },
		.slices = { WEB_SLICE("web-1", EP("10.1.0.1")) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "F external-ip 192.0.2.7:80/TCP -> default/web:http/TCP masq\n"
			  "E default/web:http/TCP = 10.1.0.1:8080\n",
	},
	{
		.name = "LoadBalancer: LB IPs with source ranges, node port wildcard",
		.svcs = { WEB(.type = SVC_TYPE_LOAD_BALANCER, .ports = "http/TCP/80/30080/8080",
			      .lb_ips = "203.0.113.5", .ranges = "198.51.100.0/24 192.0.2.0/25") },
		.slices = { WEB_SLICE("web-1", EP("10.1.0.1")) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "F node-port 0.0.0.0:30080/TCP -> default/web:http/TCP masq\n"
			  "F load-balancer 203.0.113.5:80/TCP -> default/web:http/TCP masq ranges=198.51.100.0/24,192.0.2.0/25\n"
			  "E default/web:http/TCP = 10.1.0.1:8080\n",
	},
	{
		.name = "LB IPs are ignored unless the type is LoadBalancer",
		.svcs = { WEB(.type = SVC_TYPE_NODE_PORT, .lb_ips = "203.0.113.5") },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "E default/web:http/TCP =\n",
	},
	{
		.name = "NodePort dual-stack: one wildcard per family",
		.svcs = { WEB(.type = SVC_TYPE_NODE_PORT, .cluster_ips = "10.0.0.10 fd00::10",
			      .ports = "http/TCP/80/30080/8080") },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "F cluster-ip [fd00::10]:80/TCP -> default/web:http/TCP/ipv6\n"
			  "F node-port 0.0.0.0:30080/TCP -> default/web:http/TCP masq\n"
			  "F node-port [::]:30080/TCP -> default/web:http/TCP/ipv6 masq\n"
			  "E default/web:http/TCP =\n"
			  "E default/web:http/TCP/ipv6 =\n",
	},
	{
		.name = "a ClusterIP service opens no node port",
		.svcs = { WEB(.ports = "http/TCP/80/30080/8080") },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "E default/web:http/TCP =\n",
	},
	{
		/* kube-proxy matches the CIDRs against the host's interfaces,
		 * not the Node object (which may list other addresses). */
		.name = "node port addresses restricted by prefixes, matched on the host's addresses",
		.np_prefixes = "192.168.1.0/24 fd10::/64",
		.node_name = "n1",
		.node_addrs = "192.168.1.7 fd10::7",
		.host_addrs = "192.168.1.5 10.9.9.9 192.168.1.6 fd10::5 127.0.0.1",
		.svcs = { WEB(.type = SVC_TYPE_NODE_PORT, .ports = "http/TCP/80/30080/8080") },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "F node-port 192.168.1.5:30080/TCP -> default/web:http/TCP masq\n"
			  "F node-port 192.168.1.6:30080/TCP -> default/web:http/TCP masq\n"
			  "E default/web:http/TCP =\n",
	},
	{
		.name = "node port on the primary address only",
		.np_primary = true,
		.node_name = "n1",
		.node_addrs = "192.168.1.5 10.9.9.9 fd10::5",
		.svcs = { WEB(.type = SVC_TYPE_NODE_PORT, .ports = "http/TCP/80/30080/8080") },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "F node-port 192.168.1.5:30080/TCP -> default/web:http/TCP masq\n"
			  "E default/web:http/TCP =\n",
	},
	{
		.name = "node port primary without a node object: the default route's source",
		.np_primary = true,
		.host_addrs = "10.9.9.9 192.168.1.5",
		.host_default = "192.168.1.5",
		.svcs = { WEB(.type = SVC_TYPE_NODE_PORT, .ports = "http/TCP/80/30080/8080") },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "F node-port 192.168.1.5:30080/TCP -> default/web:http/TCP masq\n"
			  "E default/web:http/TCP =\n",
	},
	{
		/* kube-proxy: a family no --nodeport-addresses entry names (no
		 * CIDR, no primary address known) is matched whole. */
		.name = "node port primary with no primary address known: every local address",
		.np_primary = true,
		.host_addrs = "10.9.9.9 192.168.1.5",
		.svcs = { WEB(.type = SVC_TYPE_NODE_PORT, .ports = "http/TCP/80/30080/8080") },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "F node-port 0.0.0.0:30080/TCP -> default/web:http/TCP masq\n"
			  "E default/web:http/TCP =\n",
	},
	{
		.name = "node port CIDRs of one family: the other family opens everywhere",
		.np_prefixes = "192.168.1.0/24",
		.host_addrs = "192.168.1.5 10.9.9.9 fd10::5",
		.svcs = { WEB(.type = SVC_TYPE_NODE_PORT, .cluster_ips = "10.0.0.10 fd00::10",
			      .ports = "http/TCP/80/30080/8080") },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "F cluster-ip [fd00::10]:80/TCP -> default/web:http/TCP/ipv6\n"
			  "F node-port 192.168.1.5:30080/TCP -> default/web:http/TCP masq\n"
			  "F node-port [::]:30080/TCP -> default/web:http/TCP/ipv6 masq\n"
			  "E default/web:http/TCP =\n"
			  "E default/web:http/TCP/ipv6 =\n",
	},
	{
		.name = "node port all: one wildcard per family, whatever else is given",
		.np_all = true,
		.np_prefixes = "192.168.1.0/24",
		.host_addrs = "192.168.1.5 10.9.9.9",
		.svcs = { WEB(.type = SVC_TYPE_NODE_PORT, .ports = "http/TCP/80/30080/8080") },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "F node-port 0.0.0.0:30080/TCP -> default/web:http/TCP masq\n"
			  "E default/web:http/TCP =\n",
	},
	{
		.name = "node port localhost: the loopback addresses the host has",
		.np_localhost = true,
		.host_addrs = "127.0.0.1 192.168.1.5 ::1 fd10::5",
		.svcs = { WEB(.type = SVC_TYPE_NODE_PORT, .cluster_ips = "10.0.0.10 fd00::10",
			      .ports = "http/TCP/80/30080/8080") },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "F cluster-ip [fd00::10]:80/TCP -> default/web:http/TCP/ipv6\n"
			  "F node-port 127.0.0.1:30080/TCP -> default/web:http/TCP masq\n"
			  "F node-port [::1]:30080/TCP -> default/web:http/TCP/ipv6 masq\n"
			  "E default/web:http/TCP =\n"
			  "E default/web:http/TCP/ipv6 =\n",
	},
	{
		.name = "named targetPort resolved per slice",
		.svcs = { WEB(.ports = "http/TCP/80/0/web-port") },
		.slices = {
			WEB_SLICE("web-a", EP("10.1.0.1")),
			{ .ns = "default", .name = "web-b", .svc = "web", .family = 4,
			  .ports = "http/TCP/9090", .eps = { EP("10.1.0.2") } },
		},
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "E default/web:http/TCP = 10.1.0.1:8080 10.1.0.2:9090\n",
	},
	{
		.name = "slice without the port name or with another protocol contributes nothing",
		.svcs = { WEB() },
		.slices = {
			{ .ns = "default", .name = "web-a", .svc = "web", .family = 4,
			  .ports = "metrics/TCP/9100", .eps = { EP("10.1.0.1") } },
			{ .ns = "default", .name = "web-b", .svc = "web", .family = 4,
			  .ports = "http/UDP/8080", .eps = { EP("10.1.0.2") } },
			WEB_SLICE("web-c", EP("10.1.0.3")),
		},
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "E default/web:http/TCP = 10.1.0.3:8080\n",
	},
	{
		.name = "slice without ports: numeric targetPort used, named one gives nothing",
		.svcs = { { .ns = "default", .name = "web", .cluster_ips = "10.0.0.10",
			    .ports = "http/TCP/80/0/8080 admin/TCP/81/0/admin-port" } },
		.slices = { { .ns = "default", .name = "web-1", .svc = "web", .family = 4,
			      .eps = { EP("10.1.0.1") } } },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "F cluster-ip 10.0.0.10:81/TCP -> default/web:admin/TCP\n"
			  "E default/web:admin/TCP =\n"
			  "E default/web:http/TCP = 10.1.0.1:8080\n",
	},
	{
		.name = "unnamed port keyed by number",
		.svcs = { { .ns = "default", .name = "dns", .cluster_ips = "10.0.0.53",
			    .ports = "-/UDP/53/0/5353" } },
		.slices = { { .ns = "default", .name = "dns-1", .svc = "dns", .family = 4,
			      .ports = "-/UDP/5353", .eps = { EP("10.1.0.1") } } },
		.expect = "F cluster-ip 10.0.0.53:53/UDP -> default/dns:53/UDP\n"
			  "E default/dns:53/UDP = 10.1.0.1:5353\n",
	},
	{
		.name = "only ready endpoints while any is ready",
		.svcs = { WEB() },
		.slices = { WEB_SLICE("web-1", EP("10.1.0.1"), { "10.1.0.2", "n", NULL, NULL },
				      { "10.1.0.3", "st", NULL, NULL }) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "E default/web:http/TCP = 10.1.0.1:8080\n",
	},
	{
		.name = "no ready endpoint: serving+terminating fallback, never not-serving",
		.svcs = { WEB() },
		.slices = { WEB_SLICE("web-1", { "10.1.0.1", "st", NULL, NULL },
				      { "10.1.0.2", "t", NULL, NULL }, { "10.1.0.3", "n", NULL, NULL }) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "E default/web:http/TCP = 10.1.0.1:8080/term\n",
	},
	{
		.name = "duplicate endpoints across slices are merged",
		.svcs = { WEB() },
		.slices = { WEB_SLICE("web-1", EP("10.1.0.1"), EP("10.1.0.2")),
			    WEB_SLICE("web-2", EP("10.1.0.1")) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "E default/web:http/TCP = 10.1.0.1:8080 10.1.0.2:8080\n",
	},
	{
		.name = "orphan slices and slices of another service are not used",
		.svcs = { WEB() },
		.slices = {
			{ .ns = "default", .name = "ghost-1", .svc = "ghost", .family = 4,
			  .ports = "http/TCP/8080", .eps = { EP("10.1.0.9") } },
			{ .ns = "other", .name = "web-1", .svc = "web", .family = 4,
			  .ports = "http/TCP/8080", .eps = { EP("10.1.0.8") } },
		},
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "E default/web:http/TCP =\n",
	},
	{
		.name = "topology: all hinted, zone served -> only the zone's endpoints",
		.node_name = "n1",
		.node_zone = "a",
		.svcs = { WEB() },
		.slices = { WEB_SLICE("web-1", { "10.1.0.1", NULL, "n2", "a" },
				      { "10.1.0.2", NULL, "n3", "b" }, { "10.1.0.3", NULL, "n4", "b a" },
				      { "10.1.0.4", "n", NULL, NULL }) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "E default/web:http/TCP = 10.1.0.1:8080 10.1.0.3:8080\n",
	},
	{
		.name = "topology: one ready endpoint without hints -> hints ignored",
		.node_name = "n1",
		.node_zone = "a",
		.svcs = { WEB() },
		.slices = { WEB_SLICE("web-1", { "10.1.0.1", NULL, NULL, "a" },
				      { "10.1.0.2", NULL, NULL, NULL }) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "E default/web:http/TCP = 10.1.0.1:8080 10.1.0.2:8080\n",
	},
	{
		.name = "topology: node zone not among the hints -> hints ignored",
		.node_name = "n1",
		.node_zone = "c",
		.svcs = { WEB() },
		.slices = { WEB_SLICE("web-1", { "10.1.0.1", NULL, NULL, "a" },
				      { "10.1.0.2", NULL, NULL, "b" }) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "E default/web:http/TCP = 10.1.0.1:8080 10.1.0.2:8080\n",
	},
	{
		.name = "topology: disabled by config",
		.node_name = "n1",
		.node_zone = "a",
		.no_topology = true,
		.svcs = { WEB() },
		.slices = { WEB_SLICE("web-1", { "10.1.0.1", NULL, NULL, "a" },
				      { "10.1.0.2", NULL, NULL, "b" }) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "E default/web:http/TCP = 10.1.0.1:8080 10.1.0.2:8080\n",
	},
	{
		.name = "topology: node without a zone -> hints ignored",
		.node_name = "n1",
		.svcs = { WEB() },
		.slices = { WEB_SLICE("web-1", { "10.1.0.1", NULL, NULL, "a" },
				      { "10.1.0.2", NULL, NULL, "b" }) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "E default/web:http/TCP = 10.1.0.1:8080 10.1.0.2:8080\n",
	},
	{
		.name = "internalTrafficPolicy Local: cluster IP uses local endpoints, drops",
		.node_name = "n1",
		.svcs = { WEB(.itp = TRAFFIC_POLICY_LOCAL) },
		.slices = { WEB_SLICE("web-1", { "10.1.0.1", NULL, "n1", NULL },
				      { "10.1.0.2", NULL, "n2", NULL }) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP/local drop\n"
			  "E default/web:http/TCP/local = 10.1.0.1:8080/local\n",
	},
	{
		.name = "internalTrafficPolicy Local without local endpoint: empty set, drop",
		.node_name = "n1",
		.svcs = { WEB(.itp = TRAFFIC_POLICY_LOCAL) },
		.slices = { WEB_SLICE("web-1", { "10.1.0.2", NULL, "n2", NULL }) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP/local drop\n"
			  "E default/web:http/TCP/local =\n",
	},
	{
		.name = "Local policy with no endpoints anywhere rejects (kube-proxy)",
		.node_name = "n1",
		.svcs = { WEB(.itp = TRAFFIC_POLICY_LOCAL) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP/local\n"
			  "E default/web:http/TCP/local =\n",
	},
	{
		.name = "externalTrafficPolicy Local: external kinds use /local, no masquerade",
		.node_name = "n1",
		.svcs = { WEB(.type = SVC_TYPE_LOAD_BALANCER, .etp = TRAFFIC_POLICY_LOCAL,
			      .ports = "http/TCP/80/30080/8080", .lb_ips = "203.0.113.5",
			      .external_ips = "192.0.2.7") },
		.slices = { WEB_SLICE("web-1", { "10.1.0.1", NULL, "n1", NULL },
				      { "10.1.0.2", NULL, "n2", NULL }) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "F node-port 0.0.0.0:30080/TCP -> default/web:http/TCP/local drop sc=default/web:http/TCP\n"
			  "F external-ip 192.0.2.7:80/TCP -> default/web:http/TCP/local drop sc=default/web:http/TCP\n"
			  "F load-balancer 203.0.113.5:80/TCP -> default/web:http/TCP/local drop sc=default/web:http/TCP\n"
			  "E default/web:http/TCP = 10.1.0.1:8080/local 10.1.0.2:8080\n"
			  "E default/web:http/TCP/local = 10.1.0.1:8080/local\n",
	},
	{
		.name = "Local set falls back to its own serving+terminating endpoints",
		.node_name = "n1",
		.svcs = { WEB(.type = SVC_TYPE_NODE_PORT, .etp = TRAFFIC_POLICY_LOCAL,
			      .ports = "http/TCP/80/30080/8080") },
		.slices = { WEB_SLICE("web-1", { "10.1.0.1", "st", "n1", NULL },
				      { "10.1.0.2", NULL, "n2", NULL }, { "10.1.0.3", "t", "n1", NULL }) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "F node-port 0.0.0.0:30080/TCP -> default/web:http/TCP/local drop sc=default/web:http/TCP\n"
			  "E default/web:http/TCP = 10.1.0.2:8080\n"
			  "E default/web:http/TCP/local = 10.1.0.1:8080/term/local\n",
	},
	{
		.name = "topology hints do not apply to Local sets",
		.node_name = "n1",
		.node_zone = "a",
		.svcs = { WEB(.type = SVC_TYPE_NODE_PORT, .etp = TRAFFIC_POLICY_LOCAL,
			      .ports = "http/TCP/80/30080/8080") },
		.slices = { WEB_SLICE("web-1", { "10.1.0.1", NULL, "n1", "b" },
				      { "10.1.0.2", NULL, "n2", "a" }) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "F node-port 0.0.0.0:30080/TCP -> default/web:http/TCP/local drop sc=default/web:http/TCP\n"
			  "E default/web:http/TCP = 10.1.0.2:8080\n"
			  "E default/web:http/TCP/local = 10.1.0.1:8080/local\n",
	},
	{
		.name = "affinity, timeout, balance and health copied into the set",
		.svcs = { WEB(.affinity = true, .affinity_timeout = 600, .balance = BALANCE_MAGLEV,
			      .health = true) },
		.slices = { WEB_SLICE("web-1", EP("10.1.0.1")) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "E default/web:http/TCP = 10.1.0.1:8080 | aff=600 maglev hc\n",
	},
	{
		/* plan-t.h: a backend never defaults the affinity timeout. */
		.name = "affinity without a timeout in the model gets Kubernetes' 10800 s",
		.svcs = { WEB(.affinity = true, .affinity_timeout_zero = true) },
		.slices = { WEB_SLICE("web-1", EP("10.1.0.1")) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "E default/web:http/TCP = 10.1.0.1:8080 | aff=10800\n",
	},
	{
		/* kube-proxy's --masquerade-all SNATs every service connection;
		 * the planner folds it in, so backends never see the flag. */
		.name = "--masquerade-all: every frontend masquerades, cluster IPs included",
		.masquerade_all = true,
		.node_name = "n1",
		.svcs = { WEB(.type = SVC_TYPE_LOAD_BALANCER, .ports = "http/TCP/80/30080/8080",
			      .lb_ips = "203.0.113.5") },
		.slices = { WEB_SLICE("web-1", { "10.1.0.1", NULL, "n1", NULL }) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP masq\n"
			  "F node-port 0.0.0.0:30080/TCP -> default/web:http/TCP masq\n"
			  "F load-balancer 203.0.113.5:80/TCP -> default/web:http/TCP masq\n"
			  "E default/web:http/TCP = 10.1.0.1:8080/local\n",
	},
	{
		/* kube-proxy's masqueradeAll reaches cluster IPs only: Local
		 * external traffic keeps the client's address. */
		.name = "--masquerade-all leaves externalTrafficPolicy Local external traffic alone",
		.masquerade_all = true,
		.node_name = "n1",
		.svcs = { WEB(.type = SVC_TYPE_LOAD_BALANCER, .etp = TRAFFIC_POLICY_LOCAL,
			      .ports = "http/TCP/80/30080/8080", .lb_ips = "203.0.113.5") },
		.slices = { WEB_SLICE("web-1", { "10.1.0.1", NULL, "n1", NULL }) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP masq\n"
			  "F node-port 0.0.0.0:30080/TCP -> default/web:http/TCP/local drop sc=default/web:http/TCP\n"
			  "F load-balancer 203.0.113.5:80/TCP -> default/web:http/TCP/local drop sc=default/web:http/TCP\n"
			  "E default/web:http/TCP = 10.1.0.1:8080/local\n"
			  "E default/web:http/TCP/local = 10.1.0.1:8080/local\n",
	},
	{
		/* kube-proxy's short-circuit: pods and the node reach an eTP
		 * Local service's external addresses through every endpoint,
		 * even when its cluster IP is internalTrafficPolicy Local. */
		.name = "both policies Local: the short-circuit still gets a cluster-wide set",
		.node_name = "n1",
		.svcs = { WEB(.type = SVC_TYPE_NODE_PORT, .etp = TRAFFIC_POLICY_LOCAL, .itp = TRAFFIC_POLICY_LOCAL,
			      .ports = "http/TCP/80/30080/8080") },
		.slices = { WEB_SLICE("web-1", { "10.1.0.1", NULL, "n2", NULL }) },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP/local drop\n"
			  "F node-port 0.0.0.0:30080/TCP -> default/web:http/TCP/local drop sc=default/web:http/TCP\n"
			  "E default/web:http/TCP = 10.1.0.1:8080\n"
			  "E default/web:http/TCP/local =\n",
	},
	{
		/* kube-proxy: a source range holding the node's own address
		 * also admits the service's load-balancer IPs as sources. */
		.name = "source ranges holding the node's address admit the load-balancer IPs",
		.node_name = "n1",
		.node_addrs = "192.168.1.5",
		.svcs = { WEB(.type = SVC_TYPE_LOAD_BALANCER, .ports = "http/TCP/80/30080/8080",
			      .lb_ips = "203.0.113.5 203.0.113.6", .ranges = "192.168.0.0/16") },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "F node-port 0.0.0.0:30080/TCP -> default/web:http/TCP masq\n"
			  "F load-balancer 203.0.113.5:80/TCP -> default/web:http/TCP masq ranges=192.168.0.0/16,203.0.113.5/32,203.0.113.6/32\n"
			  "F load-balancer 203.0.113.6:80/TCP -> default/web:http/TCP masq ranges=192.168.0.0/16,203.0.113.5/32,203.0.113.6/32\n"
			  "E default/web:http/TCP =\n",
	},
	{
		/* kube-proxy's detectNodeIPs: a specific bindAddress is the
		 * node IP of its family, before the Node object. */
		.name = "bindAddress is the node's address: primary node port and source ranges",
		.np_primary = true,
		.node_name = "n1",
		.node_addrs = "192.168.1.5",
		.node_ip = "10.9.9.9",
		.svcs = { WEB(.type = SVC_TYPE_LOAD_BALANCER, .ports = "http/TCP/80/30080/8080",
			      .lb_ips = "203.0.113.5", .ranges = "10.9.0.0/16") },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "F node-port 10.9.9.9:30080/TCP -> default/web:http/TCP masq\n"
			  "F load-balancer 203.0.113.5:80/TCP -> default/web:http/TCP masq ranges=10.9.0.0/16,203.0.113.5/32\n"
			  "E default/web:http/TCP =\n",
	},
	{
		.name = "source ranges without the node's address: load-balancer IPs not admitted",
		.host_addrs = "10.9.9.9",
		.host_default = "10.9.9.9",
		.svcs = { WEB(.type = SVC_TYPE_LOAD_BALANCER, .ports = "http/TCP/80/30080/8080",
			      .lb_ips = "203.0.113.5", .ranges = "192.168.0.0/16") },
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP\n"
			  "F node-port 0.0.0.0:30080/TCP -> default/web:http/TCP masq\n"
			  "F load-balancer 203.0.113.5:80/TCP -> default/web:http/TCP masq ranges=192.168.0.0/16\n"
			  "E default/web:http/TCP =\n",
	},
	{
		.name = "conflict on one cluster IP: first by (ns, name) wins",
		.svcs = {
			{ .ns = "b", .name = "late", .cluster_ips = "10.0.0.10", .ports = "-/TCP/80/0/80" },
			{ .ns = "a", .name = "early", .cluster_ips = "10.0.0.10", .ports = "-/TCP/80/0/80" },
		},
		.expect = "F cluster-ip 10.0.0.10:80/TCP -> a/early:80/TCP\n"
			  "E a/early:80/TCP =\n",
	},
	{
		.name = "conflicts are kind-independent",
		.svcs = {
			{ .ns = "a", .name = "ext", .cluster_ips = "10.0.0.1", .ports = "-/TCP/80/0/80",
			  .external_ips = "10.0.0.10" },
			{ .ns = "a", .name = "web", .cluster_ips = "10.0.0.10",
			  .ports = "-/TCP/80/0/80 -/UDP/80/0/80" },
		},
		.expect = "F cluster-ip 10.0.0.1:80/TCP -> a/ext:80/TCP\n"
			  "F cluster-ip 10.0.0.10:80/UDP -> a/web:80/UDP\n"
			  "F external-ip 10.0.0.10:80/TCP -> a/ext:80/TCP masq\n"
			  "E a/ext:80/TCP =\n"
			  "E a/web:80/UDP =\n",
	},
	{
		.name = "frontends sorted by kind, address, protocol, port",
		.svcs = {
			{ .ns = "a", .name = "x", .type = SVC_TYPE_NODE_PORT, .cluster_ips = "10.0.0.2",
			  .ports = "p/UDP/53/30053/53 q/TCP/53/30054/53" },
			{ .ns = "a", .name = "y", .cluster_ips = "10.0.0.1", .ports = "-/TCP/443/0/443",
			  .external_ips = "192.0.2.1" },
		},
		.expect = "F cluster-ip 10.0.0.1:443/TCP -> a/y:443/TCP\n"
			  "F cluster-ip 10.0.0.2:53/TCP -> a/x:q/TCP\n"
			  "F cluster-ip 10.0.0.2:53/UDP -> a/x:p/UDP\n"
			  "F node-port 0.0.0.0:30054/TCP -> a/x:q/TCP masq\n"
			  "F node-port 0.0.0.0:30053/UDP -> a/x:p/UDP masq\n"
			  "F external-ip 192.0.2.1:443/TCP -> a/y:443/TCP masq\n"
			  "E a/x:p/UDP =\n"
			  "E a/x:q/TCP =\n"
			  "E a/y:443/TCP =\n",
	},
	{
		.name = "standalone service without cluster IP: external IP and IPv4 node port",
		.svcs = { { .ns = "lb", .name = "edge", .type = SVC_TYPE_NODE_PORT,
			    .ports = "-/TCP/80/30080/8080", .external_ips = "192.0.2.9" } },
		.slices = { { .ns = "lb", .name = "edge", .svc = "edge", .family = 4,
			      .eps = { EP("127.0.0.1") } } },
		.expect = "F node-port 0.0.0.0:30080/TCP -> lb/edge:80/TCP masq\n"
			  "F external-ip 192.0.2.9:80/TCP -> lb/edge:80/TCP masq\n"
			  "E lb/edge:80/TCP = 127.0.0.1:8080\n",
	},
};

Test(planner, rules_table)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct t_case *c = &cases[i];
		const struct plan *plan;
		const struct plan_diff *diff;
		struct env env;
		char *got;

		memset(&env, 0, sizeof(env));
		env_init(&env, c);
		cr_assert_eq(planner_run(env.p, env.m, &plan, &diff), 0, "%s", c->name);
		got = summarize(plan);
		cr_expect_str_eq(got, c->expect, "case \"%s\":\n--- got\n%s--- want\n%s", c->name, got,
				 c->expect);
		cr_expect_eq(plan, planner_current(env.p));
		/* The first run diffs against an empty plan: everything is new. */
		cr_expect_eq(diff->n_fe_added, plan->n_frontends, "%s", c->name);
		cr_expect_eq(diff->n_eps_added, plan->n_epsets, "%s", c->name);
		cr_expect_eq(diff->n_fe_removed + diff->n_fe_changed + diff->n_eps_removed +
				     diff->n_eps_changed, 0, "%s", c->name);
		free(got);
		env_done(&env);
	}
}

Test(planner, empty_before_first_run_and_null_free)
{
	struct planner *p = planner_new(NULL);

	cr_assert(p);
	cr_expect_eq(planner_current(p)->n_frontends, 0);
	cr_expect_eq(planner_current(p)->n_epsets, 0);
	cr_expect_null(planner_free(p));
	cr_expect_null(planner_free(NULL));
}

/* ---- diffs ---- */

/* "fe+ kind addr/PROTO" etc., one per line, in diff array order. */
static char *summarize_diff(const struct plan_diff *d)
{
	struct strbuf sb = { 0 };
	FILE *f = sb_open(&sb);
	char b[INET_ENDPOINT_STRLEN];
	const struct {
		const char *tag;
		const struct plan_frontend *const *a;
		size_t n;
	} fe[] = {
		{ "fe+", d->fe_added, d->n_fe_added },
		{ "fe-", d->fe_removed, d->n_fe_removed },
		{ "fe~", d->fe_changed, d->n_fe_changed },
	};
	const struct {
		const char *tag;
		const struct plan_epset *const *a;
		size_t n;
	} es[] = {
		{ "eps+", d->eps_added, d->n_eps_added },
		{ "eps-", d->eps_removed, d->n_eps_removed },
		{ "eps~", d->eps_changed, d->n_eps_changed },
	};

	for (size_t k = 0; k < 3; k++)
		for (size_t i = 0; i < fe[k].n; i++)
			fprintf(f, "%s %s %s/%s\n", fe[k].tag, frontend_kind_name(fe[k].a[i]->kind),
				inet_endpoint_format(&fe[k].a[i]->addr, fe[k].a[i]->port, b),
				inet_proto_name(fe[k].a[i]->proto));
	for (size_t k = 0; k < 3; k++)
		for (size_t i = 0; i < es[k].n; i++)
			fprintf(f, "%s %s\n", es[k].tag, es[k].a[i]->key);
	fclose(f);
	return sb.buf;
}

static const struct t_svc diff_web = WEB(.external_ips = "192.0.2.7");
static const struct t_svc diff_web_local = WEB(.external_ips = "192.0.2.7",
					       .etp = TRAFFIC_POLICY_LOCAL);
static const struct t_svc diff_web_affinity = WEB(.external_ips = "192.0.2.7", .affinity = true);
static const struct t_svc diff_db = { .ns = "default", .name = "db", .cluster_ips = "10.0.0.20",
				      .ports = "pg/TCP/5432/0/5432" };
static const struct t_slice diff_slice_1 = WEB_SLICE("web-1", { "10.1.0.1", NULL, "n1", NULL });
static const struct t_slice diff_slice_2 = WEB_SLICE("web-1", { "10.1.0.1", NULL, "n1", NULL },
						     { "10.1.0.2", NULL, "n2", NULL });

struct diff_step {
	const char *what;
	const struct t_svc *upsert_svc;
	const struct t_slice *upsert_slice;
	const char *delete_svc;   /* name in "default" */
	const char *delete_slice; /* name in "default" */
	const char *expect;
};

static const struct diff_step diff_steps[] = {
	{
		.what = "first run: everything added",
		.upsert_svc = &diff_web,
		.expect = "fe+ cluster-ip 10.0.0.10:80/TCP\n"
			  "fe+ external-ip 192.0.2.7:80/TCP\n"
			  "eps+ default/web:http/TCP\n",
	},
	{ .what = "no-op run", .expect = "" },
	{
		.what = "endpoint appears: set changed, frontends untouched",
		.upsert_slice = &diff_slice_1,
		.expect = "eps~ default/web:http/TCP\n",
	},
	{
		.what = "second endpoint",
		.upsert_slice = &diff_slice_2,
		.expect = "eps~ default/web:http/TCP\n",
	},
	{
		.what = "same slice again: nothing",
		.upsert_slice = &diff_slice_2,
		.expect = "",
	},
	{
		.what = "another service",
		.upsert_svc = &diff_db,
		.expect = "fe+ cluster-ip 10.0.0.20:5432/TCP\n"
			  "eps+ default/db:pg/TCP\n",
	},
	{
		.what = "externalTrafficPolicy Local: external frontend changes, local set added",
		.upsert_svc = &diff_web_local,
		.expect = "fe~ external-ip 192.0.2.7:80/TCP\n"
			  "eps+ default/web:http/TCP/local\n",
	},
	{
		.what = "back to Cluster with affinity: local set removed, policy change",
		.upsert_svc = &diff_web_affinity,
		.expect = "fe~ external-ip 192.0.2.7:80/TCP\n"
			  "eps- default/web:http/TCP/local\n"
			  "eps~ default/web:http/TCP\n",
	},
	{
		.what = "slice deleted",
		.delete_slice = "web-1",
		.expect = "eps~ default/web:http/TCP\n",
	},
	{
		.what = "service deleted",
		.delete_svc = "web",
		.expect = "fe- cluster-ip 10.0.0.10:80/TCP\n"
			  "fe- external-ip 192.0.2.7:80/TCP\n"
			  "eps- default/web:http/TCP\n",
	},
	{ .what = "no-op again", .expect = "" },
};

Test(planner, diff_sequence)
{
	struct planner_config cfg = { .node_name = "n1", .topology_hints = true };
	struct model *m = model_new();
	struct planner *p = planner_new(&cfg);

	cr_assert(m && p);
	for (size_t i = 0; i < sizeof(diff_steps) / sizeof(diff_steps[0]); i++) {
		const struct diff_step *s = &diff_steps[i];
		const struct plan_diff *d;
		const struct plan *plan;
		char *got;

		if (s->upsert_svc)
			cr_assert_eq(model_upsert_service(m, mk_svc(s->upsert_svc)), 0);
		if (s->upsert_slice)
			cr_assert_eq(model_upsert_slice(m, mk_slice(s->upsert_slice)), 0);
		if (s->delete_svc)
			cr_assert_eq(model_delete_service(m, "default", s->delete_svc), 0);
		if (s->delete_slice)
			cr_assert_eq(model_delete_slice(m, "default", s->delete_slice), 0);
		cr_assert_eq(planner_run(p, m, &plan, &d), 0);
		got = summarize_diff(d);
		cr_expect_str_eq(got, s->expect, "step %zu \"%s\":\n--- got\n%s--- want\n%s", i, s->what,
				 got, s->expect);
		free(got);
	}
	planner_free(p);
	model_free(m);
}

/* ---- scale ---- */

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* 10k services x 10 endpoints. Not a timed test (benchmarks live in
 * bench/): it checks the counts and logs how long the runs took. */
Test(planner, ten_thousand_services)
{
	struct planner_config cfg = { .node_name = "n1", .topology_hints = true };
	struct model *m = model_new();
	struct planner *p = planner_new(&cfg);
	const struct plan_diff *d;
	const struct plan *plan;
	double t0, t1, t2;
	char name[32];

	cr_assert(m && p);
	for (unsigned i = 0; i < 10000; i++) {
		struct kobj_service *svc = kobj_service_new();
		struct kobj_slice *sl = kobj_slice_new();

		snprintf(name, sizeof(name), "svc-%05u", i);
		svc->ns = strdup("bench");
		svc->name = strdup(name);
		svc->cluster_ips = calloc(1, sizeof(*svc->cluster_ips));
		svc->cluster_ips[0] = inet_addr_any(AF_INET);
		svc->cluster_ips[0].u.v4.s_addr = htonl(0x0a600000u + i);
		svc->n_cluster_ips = 1;
		svc->ip_families[0] = AF_INET;
		svc->n_ip_families = 1;
		svc->ports = calloc(1, sizeof(*svc->ports));
		kobj_port_name("http", &svc->ports[0].name);
		svc->ports[0].port = 80;
		svc->ports[0].target_port = 8080;
		svc->n_ports = 1;
		cr_assert_eq(model_upsert_service(m, svc), 0);

		sl->ns = strdup("bench");
		snprintf(name, sizeof(name), "svc-%05u-abc", i);
		sl->name = strdup(name);
		sl->service_name = strdup(svc->name);
		sl->family = AF_INET;
		sl->ports = calloc(1, sizeof(*sl->ports));
		kobj_port_name("http", &sl->ports[0].name);
		sl->ports[0].port = 8080;
		sl->n_ports = 1;
		sl->endpoints = calloc(10, sizeof(*sl->endpoints));
		for (unsigned j = 0; j < 10; j++) {
			struct kobj_endpoint *ep = &sl->endpoints[j];
			ep->addr = inet_addr_any(AF_INET);
			ep->addr.u.v4.s_addr = htonl(0x0b000000u + i * 16 + j);
			ep->ready = ep->serving = true;
		}
		sl->n_endpoints = 10;
		cr_assert_eq(model_upsert_slice(m, sl), 0);
	}
	t0 = now_ms();
	cr_assert_eq(planner_run(p, m, &plan, &d), 0);
	t1 = now_ms();
	cr_expect_eq(plan->n_frontends, 10000);
	cr_expect_eq(plan->n_epsets, 10000);
	cr_expect_eq(plan->epsets[0].n_endpoints, 10);
	cr_expect_eq(d->n_fe_added, 10000);
	cr_assert_eq(planner_run(p, m, &plan, &d), 0);
	t2 = now_ms();
	cr_expect_eq(d->n_fe_added + d->n_fe_removed + d->n_fe_changed + d->n_eps_added +
			     d->n_eps_removed + d->n_eps_changed, 0);
	cr_log_info("10k services x 10 endpoints: first run %.1f ms, no-op run %.1f ms", t1 - t0,
		    t2 - t1);
	planner_free(p);
	model_free(m);
}

/* ---- plan_print ---- */

static char *print_case(const struct t_case *c, enum plan_format fmt)
{
	struct strbuf sb = { 0 };
	const struct plan *plan;
	struct env env;
	FILE *f;

	memset(&env, 0, sizeof(env));
	env_init(&env, c);
	cr_assert_eq(planner_run(env.p, env.m, &plan, NULL), 0);
	f = sb_open(&sb);
	plan_print(plan, fmt, f);
	fclose(f);
	env_done(&env);
	return sb.buf;
}

static const struct t_case print_fixture = {
	.name = "print",
	.node_name = "n1",
	.svcs = { WEB(.type = SVC_TYPE_LOAD_BALANCER, .ports = "http/TCP/80/0/8080",
		      .lb_ips = "203.0.113.5", .ranges = "1.2.3.0/24", .etp = TRAFFIC_POLICY_LOCAL,
		      .affinity = true, .health = true) },
	.slices = { WEB_SLICE("web-1", { "10.1.0.1", NULL, "n1", NULL },
			      { "10.1.0.2", NULL, "n2", NULL }) },
};

Test(plan_print, text)
{
	char *got = print_case(&print_fixture, PLAN_FORMAT_TEXT);
	const char *want =
		"cluster-ip 10.0.0.10:80/TCP -> default/web:http/TCP [masquerade unless local]\n"
		"load-balancer 203.0.113.5:80/TCP -> default/web:http/TCP/local [drop-when-empty] [ranges 1.2.3.0/24]\n"
		"\n"
		"endpoint-set default/web:http/TCP\n"
		"  balance round-robin, affinity client-ip 10800s, health tcp every 2000ms timeout 1000ms rise 2 fall 3\n"
		"  10.1.0.1:8080 [local]\n"
		"  10.1.0.2:8080\n"
		"\n"
		"endpoint-set default/web:http/TCP/local\n"
		"  balance round-robin, affinity client-ip 10800s, health tcp every 2000ms timeout 1000ms rise 2 fall 3\n"
		"  10.1.0.1:8080 [local]\n";

	cr_expect_str_eq(got, want, "--- got\n%s", got);
	free(got);
}

Test(plan_print, json_shape_and_determinism)
{
	char *a = print_case(&print_fixture, PLAN_FORMAT_JSON);
	char *b = print_case(&print_fixture, PLAN_FORMAT_JSON);
	json_error_t err;
	json_t *root, *fe, *es;

	cr_expect_str_eq(a, b);
	cr_expect_eq(a[strlen(a) - 1], '\n');
	/* Insertion order: "frontends" comes first. */
	cr_expect(strstr(a, "\"frontends\"") < strstr(a, "\"endpointSets\""));
	root = json_loads(a, 0, &err);
	cr_assert(root, "invalid JSON: %s", err.text);
	fe = json_array_get(json_object_get(root, "frontends"), 1);
	cr_expect_str_eq(json_string_value(json_object_get(fe, "kind")), "load-balancer");
	cr_expect_str_eq(json_string_value(json_object_get(fe, "address")), "203.0.113.5");
	cr_expect_str_eq(json_string_value(json_object_get(fe, "protocol")), "TCP");
	cr_expect_eq(json_integer_value(json_object_get(fe, "port")), 80);
	cr_expect_str_eq(json_string_value(json_object_get(fe, "endpointSet")),
			 "default/web:http/TCP/local");
	cr_expect(json_is_false(json_object_get(fe, "masquerade")));
	cr_expect_str_eq(json_string_value(json_object_get(fe, "whenEmpty")), "drop");
	cr_expect_str_eq(json_string_value(json_array_get(json_object_get(fe, "sourceRanges"), 0)),
			 "1.2.3.0/24");
	es = json_array_get(json_object_get(root, "endpointSets"), 1);
	cr_expect_str_eq(json_string_value(json_object_get(es, "key")), "default/web:http/TCP/local");
	cr_expect_str_eq(json_string_value(json_object_get(es, "namespace")), "default");
	cr_expect_str_eq(json_string_value(json_object_get(es, "service")), "web");
	cr_expect_str_eq(json_string_value(json_object_get(es, "portName")), "http");
	cr_expect_str_eq(json_string_value(json_object_get(es, "balance")), "round-robin");
	cr_expect(json_is_true(json_object_get(json_object_get(es, "sessionAffinity"), "clientIP")));
	cr_expect_eq(json_integer_value(
			     json_object_get(json_object_get(es, "sessionAffinity"), "timeoutSeconds")),
		     10800);
	cr_expect(json_is_true(json_object_get(json_object_get(es, "healthCheck"), "enabled")));
	cr_expect_eq(json_array_size(json_object_get(es, "endpoints")), 1);
	cr_expect(json_is_true(json_object_get(
		json_array_get(json_object_get(es, "endpoints"), 0), "local")));
	json_decref(root);
	free(a);
	free(b);
}

Test(plan_print, empty_plan_and_names)
{
	struct strbuf sb = { 0 };
	FILE *f = sb_open(&sb);

	plan_print(NULL, PLAN_FORMAT_JSON, f);
	fclose(f);
	cr_expect_str_eq(sb.buf, "{\n  \"frontends\": [],\n  \"endpointSets\": [],\n"
				 "  \"healthCheckNodePorts\": []\n}\n");
	free(sb.buf);
	cr_expect_str_eq(frontend_kind_name(FRONTEND_NODE_PORT), "node-port");
	cr_expect_str_eq(balance_algo_name(BALANCE_LEAST_CONN), "least-conn");
}

/* Health check node ports: only Local external policy services of type
 * NodePort/LoadBalancer get one; the count is of distinct local endpoint
 * addresses over all ports; a port claimed twice goes to the first service. */
Test(planner, health_check_node_ports)
{
	static const struct t_case c = {
		.name = "health checks",
		.node_name = "n1",
		.svcs = {
			{ .ns = "default", .name = "a", .type = SVC_TYPE_LOAD_BALANCER,
			  .cluster_ips = "10.0.0.1", .ports = "http/TCP/80/30080/8080 https/TCP/443/30443/8443",
			  .lb_ips = "192.0.2.1", .etp = TRAFFIC_POLICY_LOCAL, .hc_port = 30999 },
			{ .ns = "default", .name = "b", .type = SVC_TYPE_LOAD_BALANCER,
			  .cluster_ips = "10.0.0.2", .ports = "http/TCP/80/30081/8080",
			  .etp = TRAFFIC_POLICY_LOCAL, .hc_port = 30999 },
			{ .ns = "default", .name = "c", .type = SVC_TYPE_LOAD_BALANCER,
			  .cluster_ips = "10.0.0.3", .ports = "http/TCP/80/30082/8080",
			  .etp = TRAFFIC_POLICY_CLUSTER, .hc_port = 30998 },
			{ .ns = "other", .name = "d", .type = SVC_TYPE_NODE_PORT,
			  .cluster_ips = "10.0.0.4", .ports = "http/TCP/80/30083/8080",
			  .etp = TRAFFIC_POLICY_LOCAL, .hc_port = 30997 },
		},
		.slices = {
			{ .ns = "default", .name = "a-1", .svc = "a", .family = 4,
			  .ports = "http/TCP/8080 https/TCP/8443",
			  .eps = { { "10.1.0.1", NULL, "n1", NULL }, { "10.1.0.2", NULL, "n2", NULL },
				   { "10.1.0.3", "n", "n1", NULL } } },
			{ .ns = "other", .name = "d-1", .svc = "d", .family = 4, .ports = "http/TCP/8080",
			  .eps = { { "10.1.0.9", NULL, "n2", NULL } } },
		},
	};
	const struct plan *plan;
	const struct plan_diff *diff;
	struct env env;

	memset(&env, 0, sizeof(env));
	env_init(&env, &c);
	cr_assert_eq(planner_run(env.p, env.m, &plan, &diff), 0);
	cr_assert_eq(plan->n_health_checks, 2, "want a (30999, b dropped) and d (30997), got %zu",
		     plan->n_health_checks);
	cr_expect_eq(plan->health_checks[0].port, 30997);
	cr_expect_str_eq(plan->health_checks[0].ns, "other");
	cr_expect_str_eq(plan->health_checks[0].svc_name, "d");
	cr_expect_eq(plan->health_checks[0].local_endpoints, 0, "d has no endpoint on n1");
	cr_expect_eq(plan->health_checks[1].port, 30999);
	cr_expect_str_eq(plan->health_checks[1].svc_name, "a");
	cr_expect_eq(plan->health_checks[1].local_endpoints, 1,
		     "a: 10.1.0.1 is local and ready (counted once over two ports), 10.1.0.3 not ready");
	env_done(&env);
}

/* kube-proxy counts only ready local endpoints for the health check node
 * port: a node whose local pods are all terminating answers 503 (0) so
 * the load balancer drains it, although its Local set still forwards to
 * them (the serving+terminating fallback). */
Test(planner, health_check_counts_ready_endpoints_only)
{
	static const struct t_case c = {
		.name = "health check, terminating",
		.node_name = "n1",
		.svcs = {
			{ .ns = "default", .name = "a", .type = SVC_TYPE_LOAD_BALANCER,
			  .cluster_ips = "10.0.0.1", .ports = "http/TCP/80/30080/8080",
			  .etp = TRAFFIC_POLICY_LOCAL, .hc_port = 30999 },
		},
		.slices = {
			{ .ns = "default", .name = "a-1", .svc = "a", .family = 4, .ports = "http/TCP/8080",
			  .eps = { { "10.1.0.1", "st", "n1", NULL }, { "10.1.0.2", "st", "n1", NULL },
				   { "10.1.0.3", NULL, "n2", NULL } } },
		},
	};
	const struct plan *plan;
	struct env env;

	memset(&env, 0, sizeof(env));
	env_init(&env, &c);
	cr_assert_eq(planner_run(env.p, env.m, &plan, NULL), 0);
	cr_assert_eq(plan->n_health_checks, 1);
	cr_expect_eq(plan->health_checks[0].local_endpoints, 0,
		     "both local endpoints are terminating: none counts");
	for (size_t i = 0; i < plan->n_epsets; i++)
		if (strstr(plan->epsets[i].key, "/local"))
			cr_expect_eq(plan->epsets[i].n_endpoints, 2, "the Local set still forwards to them");
	env_done(&env);
}

/* plan.cluster_ips and plan.service_cidrs: what backends reject and drop
 * in the service range (kube-proxy's cluster-ips-check). */
Test(planner, service_range_guards)
{
	static const struct t_case c = {
		.name = "guards",
		.svcs = {
			{ .ns = "a", .name = "x", .cluster_ips = "10.96.0.20 fd00::20",
			  .ports = "p/TCP/80/0/80 q/UDP/53/0/53" },
			{ .ns = "a", .name = "y", .cluster_ips = "10.96.0.10", .ports = "p/TCP/80/0/80" },
			{ .ns = "a", .name = "noports", .cluster_ips = "10.96.0.30" },
			{ .ns = "a", .name = "headless", .cluster_ips = "10.96.0.40", .ports = "p/TCP/80/0/80",
			  .headless = true },
		},
	};
	struct planner_config cfg = { 0 };
	struct inet_prefix flag[2], api[2];
	const struct plan *plan;
	const struct plan_diff *diff;
	char buf[INET_ADDR_STRLEN];
	struct env env;

	memset(&env, 0, sizeof(env));
	env_init(&env, &c);
	cr_assert_eq(inet_prefix_parse("10.96.0.0/16", &flag[0]), 0);
	cr_assert_eq(inet_prefix_parse("fd00::/112", &flag[1]), 0);
	cr_assert_eq(inet_prefix_parse("10.97.0.0/16", &api[0]), 0);
	cr_assert_eq(inet_prefix_parse("10.96.0.0/16", &api[1]), 0);
	cfg.service_cidrs = flag;
	cfg.n_service_cidrs = 2;
	planner_free(env.p);
	env.p = planner_new(&cfg);
	cr_assert_eq(planner_run(env.p, env.m, &plan, &diff), 0);
	cr_assert_eq(plan->n_cluster_ips, 3, "x (two families) and y; not the portless or headless ones");
	cr_expect_str_eq(inet_addr_format(&plan->cluster_ips[0], buf), "10.96.0.10");
	cr_expect_str_eq(inet_addr_format(&plan->cluster_ips[1], buf), "10.96.0.20");
	cr_expect_str_eq(inet_addr_format(&plan->cluster_ips[2], buf), "fd00::20");
	cr_assert_eq(plan->n_service_cidrs, 2);
	cr_expect(diff->guards_changed);

	/* The API's ServiceCIDRs join the flag's, sorted and distinct. */
	cr_assert_eq(model_set_service_cidrs(env.m, api, 2), 1);
	cr_assert_eq(planner_run(env.p, env.m, &plan, &diff), 0);
	cr_assert_eq(plan->n_service_cidrs, 3);
	cr_expect_str_eq(inet_addr_format(&plan->service_cidrs[0].addr, buf), "10.96.0.0");
	cr_expect_str_eq(inet_addr_format(&plan->service_cidrs[1].addr, buf), "10.97.0.0");
	cr_expect_str_eq(inet_addr_format(&plan->service_cidrs[2].addr, buf), "fd00::");
	cr_expect(diff->guards_changed);
	cr_assert_eq(planner_run(env.p, env.m, &plan, &diff), 0);
	cr_expect_not(diff->guards_changed, "nothing changed");
	env_done(&env);
}

/* node_unknown marks endpoints that may be on this node although local is
 * false: no nodeName on the endpoint, or no name for this node. Backends
 * rely on local || node_unknown for hairpin. */
Test(planner, node_unknown_flag)
{
	static const struct t_case with_node = {
		.name = "node known",
		.node_name = "n1",
		.svcs = { WEB() },
		.slices = { WEB_SLICE("web-1", { .addr = "10.1.0.1", .node = "n1" },
				      { .addr = "10.1.0.2", .node = "n2" }, EP("10.1.0.3")) },
	};
	static const struct t_case without_node = {
		.name = "node unknown",
		.svcs = { WEB() },
		.slices = { WEB_SLICE("web-1", { .addr = "10.1.0.1", .node = "n1" }) },
	};
	const struct plan *plan;
	const struct plan_diff *diff;
	const struct plan_epset *e;
	struct env env;

	memset(&env, 0, sizeof(env));
	env_init(&env, &with_node);
	cr_assert_eq(planner_run(env.p, env.m, &plan, &diff), 0);
	cr_assert_eq(plan->n_epsets, 1);
	e = &plan->epsets[0];
	cr_assert_eq(e->n_endpoints, 3);
	cr_expect(e->endpoints[0].local && !e->endpoints[0].node_unknown, "same node");
	cr_expect(!e->endpoints[1].local && !e->endpoints[1].node_unknown, "other node");
	cr_expect(!e->endpoints[2].local && e->endpoints[2].node_unknown, "no nodeName");
	env_done(&env);

	memset(&env, 0, sizeof(env));
	env_init(&env, &without_node);
	cr_assert_eq(planner_run(env.p, env.m, &plan, &diff), 0);
	cr_assert_eq(plan->n_epsets, 1);
	e = &plan->epsets[0];
	cr_assert_eq(e->n_endpoints, 1);
	cr_expect(!e->endpoints[0].local && e->endpoints[0].node_unknown, "this node has no name");
	env_done(&env);
}
