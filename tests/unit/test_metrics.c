/* metrics.c: /metrics as Prometheus text, with a fake backend whose
 * service_stats slot reports two service ports and two checked endpoints,
 * and kube-proxy's sync failure counter under the name of the mode the
 * backend stands for. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "metrics.h"

static struct inet_addr fake_ep4, fake_ep6;
static uint64_t fake_conns = 7;

static int fake_init(void *priv, const void *options)
{
	(void)priv;
	(void)options;
	return 0;
}
static int fake_sync(void *priv, const struct plan *plan)
{
	(void)priv;
	(void)plan;
	return 0;
}
static void fake_fini(void *priv)
{
	(void)priv;
}

static void fake_stats(void *priv, backend_service_stats_fn emit_stats, backend_endpoint_health_fn emit_health,
		       void *userdata)
{
	struct backend_service_stats web = { .ns = "default", .name = "web", .port_name = "http",
					     .proto = INET_PROTO_TCP, .connections = fake_conns, .active = 2,
					     .bytes_in = 100, .bytes_out = 5000 };
	struct backend_service_stats dns = { .ns = "kube-system", .name = "dns", .port_name = "",
					     .proto = INET_PROTO_UDP, .connections = 3 };
	struct backend_endpoint_health up = { .ns = "default", .name = "web", .port_name = "http",
					      .proto = INET_PROTO_TCP, .addr = &fake_ep4, .port = 8080,
					      .healthy = true };
	struct backend_endpoint_health down = up;

	(void)priv;
	down.addr = &fake_ep6;
	down.healthy = false;
	emit_stats(userdata, &web);
	emit_stats(userdata, &dns);
	emit_health(userdata, &up);
	emit_health(userdata, &down);
}

static struct backend_ops fake_ops = {
	.name = "userspace", /* the relay's name: no kube-proxy failure counter */
	.priv_size = 1,
	.init = fake_init,
	.sync = fake_sync,
	.fini = fake_fini,
	.service_stats = fake_stats,
};

static struct loop *loop;
static struct model *model;
static struct planner *planner;
static struct sync_runner *runner;
static struct metrics *mx;
static char priv[1];

static char *render(const struct backend_ops *ops, bool with_backend)
{
	struct cli_options o;
	struct planner_config pcfg = { 0 };
	struct sync_runner_config scfg = { 0 };
	char *text = NULL;
	size_t len = 0;

	cli_options_defaults(&o);
	loop = loop_new();
	model = model_new();
	planner = planner_new(&pcfg);
	cr_assert(loop && model && planner);
	runner = sync_runner_new(loop, model, planner, ops, priv, &scfg);
	cr_assert_not_null(runner);
	mx = metrics_new(loop, "", &o, ops, model, runner, NULL);
	cr_assert_not_null(mx);
	if (with_backend)
		metrics_set_backend(mx, priv);
	cr_assert_eq(metrics_render(mx, &text, &len), 0);
	cr_assert_eq(strlen(text), len);
	mx = metrics_free(mx);
	runner = sync_runner_free(runner);
	planner_free(planner);
	model_free(model);
	loop_free(loop);
	return text;
}

/* Every sample line's family has HELP and TYPE before it, and each family
 * is one block (Prometheus text format). */
static void check_families(const char *text)
{
	char *copy = strdup(text), *save = NULL, seen[64][96];
	char current[96] = "";
	size_t n_seen = 0;

	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[96];

		if (strncmp(line, "# HELP ", 7) == 0) {
			sscanf(line + 7, "%95s", current);
			for (size_t i = 0; i < n_seen; i++)
				cr_assert_str_neq(seen[i], current, "family %s appears twice", current);
			cr_assert_lt(n_seen, 64);
			strcpy(seen[n_seen++], current);
			continue;
		}
		if (line[0] == '#')
			continue;
		sscanf(line, "%95[^{ ]", name);
		cr_assert(strncmp(name, current, strlen(current)) == 0, "sample %s outside its family %s", line,
			  current);
	}
	free(copy);
}

Test(metrics, relay_families_from_service_stats)
{
	char *text;

	inet_addr_parse("10.0.0.5", &fake_ep4);
	inet_addr_parse("fd00::5", &fake_ep6);
	text = render(&fake_ops, true);
	check_families(text);
	cr_assert(strstr(text, "# TYPE ferry_relay_connections_total counter\n"), "%s", text);
	cr_assert(strstr(text, "# TYPE ferry_relay_active_connections gauge\n"));
	cr_assert(strstr(text, "# TYPE ferry_relay_bytes_total counter\n"));
	cr_assert(strstr(text, "# TYPE ferry_endpoint_healthy gauge\n"));
	cr_assert(strstr(text, "ferry_relay_connections_total{namespace=\"default\",service=\"web\",port=\"http\","
			       "protocol=\"TCP\"} 7\n"), "%s", text);
	cr_assert(strstr(text, "ferry_relay_connections_total{namespace=\"kube-system\",service=\"dns\",port=\"\","
			       "protocol=\"UDP\"} 3\n"), "%s", text);
	cr_assert(strstr(text, "ferry_relay_active_connections{namespace=\"default\",service=\"web\",port=\"http\","
			       "protocol=\"TCP\"} 2\n"));
	cr_assert(strstr(text, "ferry_relay_bytes_total{namespace=\"default\",service=\"web\",port=\"http\","
			       "protocol=\"TCP\",direction=\"in\"} 100\n"));
	cr_assert(strstr(text, "ferry_relay_bytes_total{namespace=\"default\",service=\"web\",port=\"http\","
			       "protocol=\"TCP\",direction=\"out\"} 5000\n"));
	cr_assert(strstr(text, "ferry_endpoint_healthy{namespace=\"default\",service=\"web\",port=\"http\","
			       "protocol=\"TCP\",endpoint=\"10.0.0.5:8080\"} 1\n"), "%s", text);
	cr_assert(strstr(text, "ferry_endpoint_healthy{namespace=\"default\",service=\"web\",port=\"http\","
			       "protocol=\"TCP\",endpoint=\"[fd00::5]:8080\"} 0\n"));
	/* No kube-proxy counterpart for the relay's failures. */
	cr_assert_null(strstr(text, "kubeproxy_sync_proxy_rules_nftables_sync_failures_total"));
	cr_assert_null(strstr(text, "kubeproxy_sync_proxy_rules_iptables_restore_failures_total"));
	free(text);

	/* The values are read at each scrape. */
	fake_conns = 8;
	text = render(&fake_ops, true);
	cr_assert(strstr(text, "protocol=\"TCP\"} 8\n"), "%s", text);
	free(text);
}

Test(metrics, no_slot_no_relay_families)
{
	struct backend_ops ops = fake_ops;
	char *text;

	ops.service_stats = NULL;
	text = render(&ops, true);
	cr_assert_null(strstr(text, "ferry_relay_"));
	cr_assert_null(strstr(text, "ferry_endpoint_healthy"));
	free(text);
	/* Before the backend is set (init not done): none either. */
	text = render(&fake_ops, false);
	cr_assert_null(strstr(text, "ferry_relay_"));
	free(text);
}

Test(metrics, kube_proxy_failure_counter_per_mode)
{
	struct backend_ops ops = fake_ops;
	char *text;

	ops.service_stats = NULL;
	ops.name = "nftables";
	text = render(&ops, true);
	check_families(text);
	cr_assert(strstr(text, "# TYPE kubeproxy_sync_proxy_rules_nftables_sync_failures_total counter\n"
			       "kubeproxy_sync_proxy_rules_nftables_sync_failures_total 0\n"), "%s", text);
	cr_assert_null(strstr(text, "iptables_restore_failures_total"));
	free(text);
	ops.name = "ipvs";
	text = render(&ops, true);
	cr_assert(strstr(text, "# TYPE kubeproxy_sync_proxy_rules_iptables_restore_failures_total counter\n"
			       "kubeproxy_sync_proxy_rules_iptables_restore_failures_total 0\n"), "%s", text);
	cr_assert_null(strstr(text, "nftables_sync_failures_total"));
	free(text);
}
