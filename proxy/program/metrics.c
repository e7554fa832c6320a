/* /metrics and /configz: counters fed by the sync runner's hooks, rendered
 * as Prometheus text format 0.0.4 at each scrape. */
#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http_server.h"
#include "inet.h"
#include "kube_informer.h"
#include "log.h"

#define METRICS_DEFAULT_BIND "127.0.0.1:10249"
#define METRICS_SYNC_BUCKETS 15 /* kube-proxy: ExponentialBuckets(0.001, 2, 15) */
#define METRICS_NPL_BUCKETS 80  /* kube-proxy's network programming buckets */
#define METRICS_MAX_BUCKETS 80

struct metrics_histogram {
	const double *bounds;
	size_t n_bounds;
	uint64_t buckets[METRICS_MAX_BUCKETS]; /* not cumulative; +Inf is count */
	uint64_t count;
	double sum;
};

static double metrics_sync_bounds[METRICS_SYNC_BUCKETS];
static double metrics_npl_bounds[METRICS_NPL_BUCKETS];

/* kube-proxy's buckets: ExponentialBuckets(0.001, 2, 15) for syncs; for
 * network programming 0.25, 0.5, then 1..59 s by 1, 60..115 by 5,
 * 120..300 by 30. */
static void metrics_bounds_init(void)
{
	size_t n = 0;

	for (size_t i = 0; i < METRICS_SYNC_BUCKETS; i++)
		metrics_sync_bounds[i] = 0.001 * (double)(1u << i);
	metrics_npl_bounds[n++] = 0.25;
	metrics_npl_bounds[n++] = 0.5;
	for (int s = 1; s <= 59; s++)
		metrics_npl_bounds[n++] = s;
	for (int s = 60; s <= 115; s += 5)
		metrics_npl_bounds[n++] = s;
	for (int s = 120; s <= 300; s += 30)
		metrics_npl_bounds[n++] = s;
}

struct metrics {
	struct loop *loop;
	const struct backend_ops *ops;
	const struct model *model;
	const struct sync_runner *runner;
	const struct proxy_health *health;
	const struct cli_source *source; /* NULL until metrics_set_source */
	void *backend_priv;              /* NULL until metrics_set_backend */
	char **render_buf;               /* metrics_emit_count's target while rendering */
	size_t *render_len, *render_cap;
	int render_err;
	struct http_server *server;
	char *configz;                 /* JSON, rendered at start */
	size_t configz_len;

	struct metrics_histogram sync_all, sync_full, sync_partial;
	struct metrics_histogram programming; /* network programming latency */
	double start_wall_s;           /* changes triggered before this are not measured */
	double last_ok_wall_s;         /* wall time of the last good sync; 0: none */
	uint64_t svc_changes_synced;   /* model change counts at the last good sync */
	uint64_t eps_changes_synced;
	/* The plan in force on the backend (last good sync). */
	size_t frontends, epsets, endpoints, health_checks;
	size_t no_local_internal, no_local_external;
	bool plan_counts_stale; /* a sync came since metrics_plan_counts */
};

static void metrics_observe(struct metrics_histogram *h, double v)
{
	for (size_t i = 0; i < h->n_bounds; i++)
		if (v <= h->bounds[i]) {
			h->buckets[i]++;
			break;
		}
	h->count++;
	h->sum += v;
}

static double metrics_wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void metrics_on_attempt(struct metrics *mx, bool full, int result, uint64_t duration_us)
{
	double s = (double)duration_us / 1e6;

	(void)result; /* failures are counted by the runner (sync_runner_stats) */
	if (!mx)
		return;
	metrics_observe(&mx->sync_all, s);
	metrics_observe(full ? &mx->sync_full : &mx->sync_partial, s);
}

void metrics_on_programmed(struct metrics *mx, const double *trigger_times, size_t n)
{
	double now;

	if (!mx)
		return;
	now = metrics_wall_s();
	for (size_t i = 0; i < n; i++) {
		/* kube-proxy: objects changed before it started are not its work. */
		if (trigger_times[i] < mx->start_wall_s)
			continue;
		metrics_observe(&mx->programming, now > trigger_times[i] ? now - trigger_times[i] : 0);
	}
}

/* An epset that keeps only local endpoints has a key ending "/local". */
static bool metrics_epset_local_only(const struct plan_epset *e)
{
	size_t n = strlen(e->key);

	return n >= 6 && strcmp(e->key + n - 6, "/local") == 0;
}

void metrics_on_synced(struct metrics *mx, const struct plan *plan)
{
	if (!mx)
		return;
	mx->last_ok_wall_s = metrics_wall_s();
	model_change_counts(mx->model, &mx->svc_changes_synced, &mx->eps_changes_synced);
	mx->frontends = plan->n_frontends;
	mx->epsets = plan->n_epsets;
	mx->health_checks = plan->n_health_checks;
	/* What needs a pass over the plan is counted at the next scrape,
	 * not at every sync (metrics_plan_counts). */
	mx->plan_counts_stale = true;
}

/* The endpoint total and kube-proxy's no_local_endpoints_total (services
 * with a Local policy and no local endpoint, internal = cluster IPs and
 * external) of the plan in force, in one pass over it. */
static void metrics_plan_counts(struct metrics *mx)
{
	const struct plan *plan = sync_runner_plan(mx->runner);
	unsigned char *uses; /* per set: bit 0 a cluster IP uses it, bit 1 an external kind */

	if (!mx->plan_counts_stale || !plan)
		return;
	uses = calloc(plan->n_epsets + 1, 1);
	if (!uses)
		return; /* the old counts stay */
	for (size_t j = 0; j < plan->n_frontends; j++)
		uses[plan->frontends[j].epset - plan->epsets] |=
			plan->frontends[j].kind == FRONTEND_CLUSTER_IP ? 1 : 2;
	mx->endpoints = 0;
	mx->no_local_internal = mx->no_local_external = 0;
	for (size_t i = 0; i < plan->n_epsets; i++) {
		const struct plan_epset *e = &plan->epsets[i];

		mx->endpoints += e->n_endpoints;
		if (e->n_endpoints || !metrics_epset_local_only(e))
			continue;
		mx->no_local_internal += (uses[i] & 1) != 0;
		mx->no_local_external += (uses[i] & 2) != 0;
	}
	free(uses);
	mx->plan_counts_stale = false;
}

#define APPEND(...)                                                      \
	do {                                                             \
		if (http_appendf(&buf, &len, &cap, __VA_ARGS__) < 0)      \
			goto oom;                                         \
	} while (0)

/* HELP and TYPE of one family. */
#define FAMILY(name, type, help) APPEND("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type)

static int metrics_histogram_render(char **pbuf, size_t *plen, size_t *pcap, const char *name,
				    const char *help, const struct metrics_histogram *h)
{
	char *buf = *pbuf;
	size_t len = *plen, cap = *pcap;
	uint64_t cum = 0;
	int r = 0;

	FAMILY(name, "histogram", help);
	for (size_t i = 0; i < h->n_bounds; i++) {
		cum += h->buckets[i];
		APPEND("%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i],
		       (unsigned long long)cum);
	}
	APPEND("%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name,
	       (unsigned long long)h->count, name, h->sum, name, (unsigned long long)h->count);
	goto out;
oom:
	r = -ENOMEM;
out:
	*pbuf = buf;
	*plen = len;
	*pcap = cap;
	return r;
}

/* What /proc/self/stat says: CPU seconds, start time, memory. */
struct metrics_proc {
	double cpu_s, start_s;
	uint64_t rss_bytes, vsize_bytes;
	size_t open_fds;
	uint64_t max_fds;
	bool ok;
};

static void metrics_proc_read(struct metrics_proc *p)
{
	unsigned long utime, stime, vsize;
	unsigned long long starttime;
	long rss, tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	char line[1024], *rp;
	unsigned long long btime = 0;
	struct rlimit rl;
	FILE *f;
	DIR *d;

	memset(p, 0, sizeof(*p));
	f = fopen("/proc/stat", "re");
	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "btime %llu", &btime) == 1)
				break;
		fclose(f);
	}
	f = fopen("/proc/self/stat", "re");
	if (!f)
		return;
	rp = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
	fclose(f);
	/* After "pid (comm)": state is field 3; utime 14, stime 15, starttime
	 * 22, vsize 23, rss 24. */
	if (!rp || sscanf(rp + 2,
			  "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
			  "%llu %lu %ld",
			  &utime, &stime, &starttime, &vsize, &rss) != 5 ||
	    tck <= 0)
		return;
	p->cpu_s = (double)(utime + stime) / (double)tck;
	p->start_s = (double)btime + (double)starttime / (double)tck;
	p->vsize_bytes = vsize;
	p->rss_bytes = (uint64_t)rss * (uint64_t)(page > 0 ? page : 4096);
	d = opendir("/proc/self/fd");
	if (d) {
		struct dirent *de;

		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				p->open_fds++;
		closedir(d);
		if (p->open_fds)
			p->open_fds--; /* the directory's own fd */
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		p->max_fds = rl.rlim_cur;
	p->ok = true;
}

/* The per service port families, filled by ops->service_stats and
 * written one family after the other (a family's samples must follow its
 * HELP and TYPE together). */
struct metrics_stats_render {
	struct {
		char *buf;
		size_t len, cap;
	} fam[4];
	int err;
};

enum { MX_CONN, MX_ACTIVE, MX_BYTES, MX_HEALTHY };

/* Label value text with \\, \" and \n escaped (Prometheus text format). */
static int metrics_label(char **buf, size_t *len, size_t *cap, const char *name, const char *value)
{
	int r = http_appendf(buf, len, cap, "%s=\"", name);

	for (const char *p = value ? value : ""; r == 0 && *p; p++) {
		if (*p == '\\' || *p == '"')
			r = http_appendf(buf, len, cap, "\\%c", *p);
		else if (*p == '\n')
			r = http_appendf(buf, len, cap, "\\n");
		else
			r = http_appendf(buf, len, cap, "%c", *p);
	}
	return r ?: http_appendf(buf, len, cap, "\"");
}

/* name{namespace,service,port,protocol[,extra label]} */
static int metrics_service_labels(char **buf, size_t *len, size_t *cap, const char *name, const char *ns,
				  const char *svc, const char *port, enum inet_proto proto)
{
	int r = http_appendf(buf, len, cap, "%s{", name);

	r = r ?: metrics_label(buf, len, cap, "namespace", ns);
	r = r ?: http_appendf(buf, len, cap, ",");
	r = r ?: metrics_label(buf, len, cap, "service", svc);
	r = r ?: http_appendf(buf, len, cap, ",");
	r = r ?: metrics_label(buf, len, cap, "port", port);
	return r ?: http_appendf(buf, len, cap, ",protocol=\"%s\"", inet_proto_name(proto));
}

static void metrics_emit_stats(void *userdata, const struct backend_service_stats *st)
{
	struct metrics_stats_render *rs = userdata;
	static const char *const names[] = { "ferry_relay_connections_total", "ferry_relay_active_connections",
					     "ferry_relay_bytes_total" };
	const uint64_t values[] = { st->connections, st->active };

	for (int f = MX_CONN; rs->err == 0 && f <= MX_BYTES; f++) {
		char **b = &rs->fam[f].buf;
		size_t *l = &rs->fam[f].len, *c = &rs->fam[f].cap;

		if (f != MX_BYTES) {
			rs->err = metrics_service_labels(b, l, c, names[f], st->ns, st->name, st->port_name, st->proto);
			rs->err = rs->err ?: http_appendf(b, l, c, "} %llu\n", (unsigned long long)values[f]);
			continue;
		}
		for (int d = 0; rs->err == 0 && d < 2; d++) {
			rs->err = metrics_service_labels(b, l, c, names[f], st->ns, st->name, st->port_name, st->proto);
			rs->err = rs->err ?: http_appendf(b, l, c, ",direction=\"%s\"} %llu\n", d ? "out" : "in",
							  (unsigned long long)(d ? st->bytes_out : st->bytes_in));
		}
	}
}

static void metrics_emit_health(void *userdata, const struct backend_endpoint_health *h)
{
	struct metrics_stats_render *rs = userdata;
	char **b = &rs->fam[MX_HEALTHY].buf;
	size_t *l = &rs->fam[MX_HEALTHY].len, *c = &rs->fam[MX_HEALTHY].cap;
	char addr[INET_ADDR_STRLEN], ep[INET_ADDR_STRLEN + 10];

	if (rs->err)
		return;
	inet_addr_format(h->addr, addr);
	snprintf(ep, sizeof(ep), h->addr->family == AF_INET6 ? "[%s]:%u" : "%s:%u", addr, h->port);
	rs->err = metrics_service_labels(b, l, c, "ferry_endpoint_healthy", h->ns, h->name, h->port_name, h->proto);
	rs->err = rs->err ?: http_appendf(b, l, c, ",");
	rs->err = rs->err ?: metrics_label(b, l, c, "endpoint", ep);
	rs->err = rs->err ?: http_appendf(b, l, c, "} %d\n", h->healthy ? 1 : 0);
}

/* ferry_relay_* and ferry_endpoint_healthy from ops->service_stats. */
static int metrics_render_service_stats(struct metrics *mx, char **pbuf, size_t *plen, size_t *pcap)
{
	static const char *const fams[][3] = {
		{ "ferry_relay_connections_total", "counter",
		  "Connections (TCP) and flows (UDP) the relay accepted, per service port" },
		{ "ferry_relay_active_connections", "gauge",
		  "Connections and flows the relay has open now, per service port" },
		{ "ferry_relay_bytes_total", "counter",
		  "Bytes the relay moved per service port: in (client to endpoint), out (endpoint to client)" },
		{ "ferry_endpoint_healthy", "gauge",
		  "1 while an actively health-checked endpoint passes its checks, 0 while it fails them" },
	};
	struct metrics_stats_render rs = { 0 };
	char *buf = *pbuf;
	size_t len = *plen, cap = *pcap;
	int r = 0;

	mx->ops->service_stats(mx->backend_priv, metrics_emit_stats, metrics_emit_health, &rs);
	if (rs.err < 0) {
		r = rs.err;
		goto out;
	}
	for (size_t f = 0; f < 4; f++) {
		FAMILY(fams[f][0], fams[f][1], fams[f][2]);
		if (rs.fam[f].len)
			APPEND("%.*s", (int)rs.fam[f].len, rs.fam[f].buf);
	}
	goto out;
oom:
	r = -ENOMEM;
out:
	for (size_t f = 0; f < 4; f++)
		free(rs.fam[f].buf);
	*pbuf = buf;
	*plen = len;
	*pcap = cap;
	return r;
}

static void metrics_emit_count(void *userdata, const char *kind, uint64_t count)
{
	struct metrics *mx = userdata;

	if (mx->render_err == 0)
		mx->render_err = http_appendf(mx->render_buf, mx->render_len, mx->render_cap,
					      "ferry_backend_objects{backend=\"%s\",kind=\"%s\"} %llu\n",
					      mx->ops->name, kind, (unsigned long long)count);
}

int metrics_render(struct metrics *mx, char **ret, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	struct sync_runner_stats st;
	struct proxy_health_counts hc = { 0 };
	struct metrics_proc proc;
	struct kube_informer_stats api;
	uint64_t svc_total, eps_total;
	const char *be = mx->ops->name;

	sync_runner_stats(mx->runner, &st);
	metrics_plan_counts(mx);
	if (mx->health)
		proxy_health_counts(mx->health, &hc);
	model_change_counts(mx->model, &svc_total, &eps_total);
	if (metrics_histogram_render(&buf, &len, &cap, "kubeproxy_sync_proxy_rules_duration_seconds",
				     "SyncProxyRules latency in seconds", &mx->sync_all) < 0 ||
	    metrics_histogram_render(&buf, &len, &cap, "kubeproxy_sync_full_proxy_rules_duration_seconds",
				     "SyncProxyRules latency in seconds for full resyncs",
				     &mx->sync_full) < 0 ||
	    metrics_histogram_render(&buf, &len, &cap,
				     "kubeproxy_sync_partial_proxy_rules_duration_seconds",
				     "SyncProxyRules latency in seconds for partial resyncs",
				     &mx->sync_partial) < 0 ||
	    metrics_histogram_render(&buf, &len, &cap, "kubeproxy_network_programming_duration_seconds",
				     "In Cluster Network Programming Latency in seconds",
				     &mx->programming) < 0)
		goto oom;
	FAMILY("kubeproxy_sync_proxy_rules_last_timestamp_seconds", "gauge",
	       "The last time proxy rules were successfully synced");
	APPEND("kubeproxy_sync_proxy_rules_last_timestamp_seconds %.3f\n", mx->last_ok_wall_s);
	FAMILY("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds", "gauge",
	       "The last time a sync of proxy rules was queued");
	APPEND("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds %.3f\n",
	       st.oldest_queued_ms ? metrics_wall_s() - (double)(loop_now_ms() - st.oldest_queued_ms) / 1e3
				   : mx->last_ok_wall_s);
	FAMILY("kubeproxy_sync_proxy_rules_no_local_endpoints_total", "gauge",
	       "Number of services with a Local traffic policy and no endpoints");
	APPEND("kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy=\"internal\"} %zu\n"
	       "kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy=\"external\"} %zu\n",
	       mx->no_local_internal, mx->no_local_external);
	FAMILY("kubeproxy_sync_proxy_rules_endpoint_changes_pending", "gauge",
	       "Pending proxy rules Endpoint changes");
	APPEND("kubeproxy_sync_proxy_rules_endpoint_changes_pending %llu\n",
	       (unsigned long long)(eps_total - mx->eps_changes_synced));
	FAMILY("kubeproxy_sync_proxy_rules_endpoint_changes_total", "counter",
	       "Cumulative proxy rules Endpoint changes");
	APPEND("kubeproxy_sync_proxy_rules_endpoint_changes_total %llu\n", (unsigned long long)eps_total);
	FAMILY("kubeproxy_sync_proxy_rules_service_changes_pending", "gauge",
	       "Pending proxy rules Service changes");
	APPEND("kubeproxy_sync_proxy_rules_service_changes_pending %llu\n",
	       (unsigned long long)(svc_total - mx->svc_changes_synced));
	FAMILY("kubeproxy_sync_proxy_rules_service_changes_total", "counter",
	       "Cumulative proxy rules Service changes");
	APPEND("kubeproxy_sync_proxy_rules_service_changes_total %llu\n", (unsigned long long)svc_total);
	FAMILY("kubeproxy_proxy_healthz_total", "counter", "Cumulative proxy healthz HTTP status");
	APPEND("kubeproxy_proxy_healthz_total{code=\"200\"} %llu\nkubeproxy_proxy_healthz_total{code=\"503\"} %llu\n",
	       (unsigned long long)hc.healthz_200, (unsigned long long)hc.healthz_503);
	FAMILY("kubeproxy_proxy_livez_total", "counter", "Cumulative proxy livez HTTP status");
	APPEND("kubeproxy_proxy_livez_total{code=\"200\"} %llu\nkubeproxy_proxy_livez_total{code=\"503\"} %llu\n",
	       (unsigned long long)hc.livez_200, (unsigned long long)hc.livez_503);

	FAMILY("ferry_syncs_total", "counter", "Sync attempts of the backend, by result");
	APPEND("ferry_syncs_total{backend=\"%s\",result=\"ok\"} %llu\n"
	       "ferry_syncs_total{backend=\"%s\",result=\"error\"} %llu\n",
	       be, (unsigned long long)st.syncs_ok, be, (unsigned long long)st.syncs_failed);
	FAMILY("ferry_sync_proxy_rules_failures_total", "counter",
	       "Cumulative failed syncs (the previous rules stay in force; retried as full syncs)");
	APPEND("ferry_sync_proxy_rules_failures_total{backend=\"%s\"} %llu\n", be,
	       (unsigned long long)st.syncs_failed);
	/* kube-proxy's own failure counter of the mode ferry stands in for:
	 * its nftables mode counts failed nftables transactions, its IPVS
	 * mode failed iptables-restore runs (ferry's IPVS sync, rules
	 * included, is one attempt). The userspace relay has no counterpart. */
	if (strcmp(be, "nftables") == 0) {
		FAMILY("kubeproxy_sync_proxy_rules_nftables_sync_failures_total", "counter",
		       "Cumulative proxy nftables sync failures");
		APPEND("kubeproxy_sync_proxy_rules_nftables_sync_failures_total %llu\n",
		       (unsigned long long)st.syncs_failed);
	} else if (strcmp(be, "ipvs") == 0) {
		FAMILY("kubeproxy_sync_proxy_rules_iptables_restore_failures_total", "counter",
		       "Cumulative proxy iptables restore failures");
		APPEND("kubeproxy_sync_proxy_rules_iptables_restore_failures_total %llu\n",
		       (unsigned long long)st.syncs_failed);
	}
	FAMILY("ferry_programmed_frontends", "gauge",
	       "Frontends (address, port, protocol) in force on the backend");
	APPEND("ferry_programmed_frontends{backend=\"%s\"} %zu\n", be, mx->frontends);
	FAMILY("ferry_programmed_endpoint_sets", "gauge", "Endpoint sets in force on the backend");
	APPEND("ferry_programmed_endpoint_sets{backend=\"%s\"} %zu\n", be, mx->epsets);
	FAMILY("ferry_programmed_endpoints", "gauge",
	       "Endpoints in force on the backend, summed over the endpoint sets");
	APPEND("ferry_programmed_endpoints{backend=\"%s\"} %zu\n", be, mx->endpoints);
	FAMILY("ferry_health_check_node_ports", "gauge", "Health check node ports in the plan");
	APPEND("ferry_health_check_node_ports %zu\n", mx->health_checks);

	if (mx->backend_priv && mx->ops->counts) {
		FAMILY("ferry_backend_objects", "gauge",
		       "What the backend has programmed, by kind (frontends, set elements, virtual servers, listener sets...)");
		mx->render_buf = &buf;
		mx->render_len = &len;
		mx->render_cap = &cap;
		mx->render_err = 0;
		mx->ops->counts(mx->backend_priv, metrics_emit_count, mx);
		if (mx->render_err < 0)
			goto oom;
	}
	if (mx->backend_priv && mx->ops->service_stats && metrics_render_service_stats(mx, &buf, &len, &cap) < 0)
		goto oom;
	if (mx->source && cli_source_api_stats(mx->source, &api)) {
		FAMILY("ferry_api_lists_total", "counter", "API list requests (pages) that succeeded");
		APPEND("ferry_api_lists_total %llu\n", (unsigned long long)api.lists);
		FAMILY("ferry_api_relists_total", "counter", "API lists started again after a 410 Gone");
		APPEND("ferry_api_relists_total %llu\n", (unsigned long long)api.relists);
		FAMILY("ferry_api_watches_total", "counter",
		       "API watch requests started (the first ones and every restart)");
		APPEND("ferry_api_watches_total %llu\n", (unsigned long long)api.watches);
		FAMILY("ferry_api_watch_events_total", "counter", "API watch events decoded");
		APPEND("ferry_api_watch_events_total %llu\n", (unsigned long long)api.events);
		FAMILY("ferry_api_request_failures_total", "counter",
		       "API requests that failed (retried after a backoff)");
		APPEND("ferry_api_request_failures_total %llu\n", (unsigned long long)api.failures);
		FAMILY("ferry_api_rejected_objects_total", "counter", "API objects rejected by the decoder");
		APPEND("ferry_api_rejected_objects_total %llu\n", (unsigned long long)api.rejected);
	}

	metrics_proc_read(&proc);
	if (proc.ok) {
		FAMILY("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
		APPEND("process_cpu_seconds_total %.2f\n", proc.cpu_s);
		FAMILY("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
		APPEND("process_resident_memory_bytes %llu\n", (unsigned long long)proc.rss_bytes);
		FAMILY("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
		APPEND("process_virtual_memory_bytes %llu\n", (unsigned long long)proc.vsize_bytes);
		FAMILY("process_open_fds", "gauge", "Number of open file descriptors.");
		APPEND("process_open_fds %zu\n", proc.open_fds);
		FAMILY("process_max_fds", "gauge", "Maximum number of open file descriptors.");
		APPEND("process_max_fds %llu\n", (unsigned long long)proc.max_fds);
		FAMILY("process_start_time_seconds", "gauge",
		       "Start time of the process since unix epoch in seconds.");
		APPEND("process_start_time_seconds %.2f\n", proc.start_s);
	}
	*ret = buf;
	*ret_len = len;
	return 0;
oom:
	free(buf);
	return -ENOMEM;
}

static int metrics_answer(void *userdata, const char *path, struct http_reply *ret)
{
	struct metrics *mx = userdata;
	size_t cap = 0;

	if (strcmp(path, "/metrics") == 0) {
		ret->content_type = "text/plain; version=0.0.4; charset=utf-8";
		return metrics_render(mx, &ret->body, &ret->len);
	}
	if (strcmp(path, "/configz") == 0) {
		ret->content_type = "application/json";
		return http_appendf(&ret->body, &ret->len, &cap, "%s", mx->configz);
	}
	ret->status = 404;
	return http_appendf(&ret->body, &ret->len, &cap, "404 page not found\n");
}

/* s as a JSON string (quotes included); NULL as null. */
static int metrics_json_str(char **buf, size_t *len, size_t *cap, const char *s)
{
	int r = 0;

	if (!s)
		return http_appendf(buf, len, cap, "null");
	r = http_appendf(buf, len, cap, "\"");
	for (; r == 0 && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			r = http_appendf(buf, len, cap, "\\%c", c);
		else if (c < 0x20)
			r = http_appendf(buf, len, cap, "\\u%04x", c);
		else
			r = http_appendf(buf, len, cap, "%c", c);
	}
	return r < 0 ? r : http_appendf(buf, len, cap, "\"");
}

static int metrics_json_prefixes(char **buf, size_t *len, size_t *cap,
				 const struct inet_prefix *p, size_t n)
{
	char a[INET_ADDR_STRLEN];
	int r = http_appendf(buf, len, cap, "[");

	for (size_t i = 0; r == 0 && i < n; i++)
		r = http_appendf(buf, len, cap, "%s\"%s/%u\"", i ? "," : "",
				 inet_addr_format(&p[i].addr, a), p[i].len);
	return r < 0 ? r : http_appendf(buf, len, cap, "]");
}

/* /configz: kube-proxy's shape ({"kubeproxy.config.k8s.io": {...}}) with
 * the fields ferry has, plus ferry's own. */
static int metrics_configz(struct metrics *mx, const struct cli_options *o)
{
	static const char *const detect[] = { "ClusterCIDR", "InterfaceNamePrefix", "BridgeInterface" };
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int r;

	r = http_appendf(&buf, &len, &cap, "{\"kubeproxy.config.k8s.io\":{\"mode\":");
	r = r ?: metrics_json_str(&buf, &len, &cap, mx->ops->name);
	r = r ?: http_appendf(&buf, &len, &cap, ",\"hostnameOverride\":");
	r = r ?: metrics_json_str(&buf, &len, &cap, o->hostname);
	r = r ?: http_appendf(&buf, &len, &cap, ",\"healthzBindAddress\":");
	r = r ?: metrics_json_str(&buf, &len, &cap, o->healthz_bind ? o->healthz_bind : "0.0.0.0:10256");
	r = r ?: http_appendf(&buf, &len, &cap, ",\"metricsBindAddress\":");
	r = r ?: metrics_json_str(&buf, &len, &cap, o->metrics_bind ? o->metrics_bind : METRICS_DEFAULT_BIND);
	r = r ?: http_appendf(&buf, &len, &cap, ",\"syncPeriod\":\"%ums\",\"minSyncPeriod\":\"%ums\"",
			      o->sync_period_ms, o->min_sync_period_ms);
	r = r ?: http_appendf(&buf, &len, &cap, ",\"clusterCIDR\":");
	r = r ?: metrics_json_prefixes(&buf, &len, &cap, o->cluster_cidrs, o->n_cluster_cidrs);
	r = r ?: http_appendf(&buf, &len, &cap, ",\"nodePortAddresses\":");
	r = r ?: metrics_json_prefixes(&buf, &len, &cap, o->nodeport_prefixes, o->n_nodeport_prefixes);
	r = r ?: http_appendf(&buf, &len, &cap, ",\"detectLocalMode\":\"%s\",\"masqueradeAll\":%s",
			      (unsigned)o->detect_local_mode < 3 ? detect[o->detect_local_mode] : "?",
			      o->masquerade_all ? "true" : "false");
	r = r ?: http_appendf(&buf, &len, &cap, ",\"ipvs\":{\"scheduler\":");
	r = r ?: metrics_json_str(&buf, &len, &cap, o->ipvs_scheduler ? o->ipvs_scheduler : "rr");
	r = r ?: http_appendf(&buf, &len, &cap, ",\"strictARP\":%s}},\"ferry\":{\"source\":",
			      o->ipvs_strict_arp ? "true" : "false");
	r = r ?: metrics_json_str(&buf, &len, &cap, o->source);
	r = r ?: http_appendf(&buf, &len, &cap, ",\"backend\":");
	r = r ?: metrics_json_str(&buf, &len, &cap, mx->ops->name);
	r = r ?: http_appendf(&buf, &len, &cap, ",\"serviceClusterIPRange\":");
	r = r ?: metrics_json_prefixes(&buf, &len, &cap, o->service_cidrs, o->n_service_cidrs);
	r = r ?: http_appendf(&buf, &len, &cap, "}}\n");
	if (r < 0) {
		free(buf);
		return r;
	}
	mx->configz = buf;
	mx->configz_len = len;
	return 0;
}

struct metrics *metrics_new(struct loop *loop, const char *bind, const struct cli_options *o,
			    const struct backend_ops *ops, const struct model *model,
			    const struct sync_runner *runner, const struct proxy_health *health)
{
	struct metrics *mx = calloc(1, sizeof(*mx));
	int r;

	if (!mx)
		return NULL;
	mx->loop = loop;
	mx->ops = ops;
	mx->model = model;
	mx->runner = runner;
	mx->health = health;
	metrics_bounds_init();
	mx->start_wall_s = metrics_wall_s();
	mx->sync_all = (struct metrics_histogram){ .bounds = metrics_sync_bounds,
						   .n_bounds = METRICS_SYNC_BUCKETS };
	mx->sync_full = mx->sync_all;
	mx->sync_partial = mx->sync_all;
	mx->programming = (struct metrics_histogram){ .bounds = metrics_npl_bounds,
						      .n_bounds = METRICS_NPL_BUCKETS };
	if (metrics_configz(mx, o) < 0) {
		free(mx);
		return NULL;
	}
	if (!bind)
		bind = METRICS_DEFAULT_BIND;
	r = http_server_new(loop, bind, metrics_answer, mx, &mx->server);
	if (r < 0)
		log_errno(r, "metrics: cannot serve on %s; going on without /metrics", bind);
	else if (mx->server)
		log_info("metrics: serving /metrics and /configz on %s", bind);
	return mx;
}

void metrics_set_backend(struct metrics *mx, void *backend_priv)
{
	if (mx)
		mx->backend_priv = backend_priv;
}

void metrics_set_source(struct metrics *mx, const struct cli_source *src)
{
	if (mx)
		mx->source = src;
}

struct metrics *metrics_free(struct metrics *mx)
{
	if (!mx)
		return NULL;
	http_server_free(mx->server);
	free(mx->configz);
	free(mx);
	return NULL;
}
