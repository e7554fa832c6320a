/* `ferry plan`: load the source once, print the plan and what a backend
 * would program. Needs no privilege and changes nothing. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_options.h"
#include "annotations.h"
#include "host_addrs.h"
#include "log.h"
#include "loop.h"

/* How long `ferry plan --source kube` waits for the first lists. */
#define PLAN_KUBE_SYNC_TIMEOUT_MS 30000u

static void plan_on_synced(void *userdata)
{
	loop_stop(userdata);
}

static void plan_on_timeout(struct loop *loop, void *userdata)
{
	bool *timed_out = userdata;

	*timed_out = true;
	loop_stop(loop);
}

/* Set by plan_on_failure: what made the wait for the first lists pointless. */
static char plan_failure[400];

/* The API source failed in a way no retry within plan's wait can fix (a CA
 * that does not verify the server, a rejected token, a refused
 * connection): give up now rather than after PLAN_KUBE_SYNC_TIMEOUT_MS. */
static void plan_on_failure(void *userdata, const char *why)
{
	if (!plan_failure[0])
		snprintf(plan_failure, sizeof(plan_failure), "%s", why);
	loop_stop(userdata);
}

static void plan_usage(FILE *out)
{
	fprintf(out,
		"Usage: ferry plan --source dir:PATH|kube [--backend NAME] [--format text|json|rules]\n"
		"\n"
		"Load the source once and print the forwarding plan (frontends, their endpoint\n"
		"sets and policies) and what the backend would program. Changes nothing.\n"
		"Exit 0 when every object was valid, 2 when some were rejected (they are named\n"
		"on stderr; the plan of the valid ones is still printed).\n"
		"\n"
		"Options:\n"
		"  --source dir:PATH      manifest directory\n"
		"  --source kube          the Kubernetes API: list once (waits up to 30 s; fails at once\n"
		"                         on a TLS failure, HTTP 401/403 or a refused connection),\n"
		"                         print, exit; the default when KUBERNETES_SERVICE_HOST is set or\n"
		"                         --kubeconfig/--master is given\n"
		"  --kubeconfig FILE      kubeconfig (current context, or --context NAME)\n"
		"  --master URL           API server URL\n"
		"  --context NAME         kubeconfig context\n"
		"  --service-proxy-name NAME  plan only services with that service-proxy-name label\n"
		"  --backend NAME         auto (default) or one of:");
	for (size_t i = 0; i < backend_registry_len; i++)
		fprintf(out, " %s", backend_registry[i]->name);
	fprintf(out,
		"\n"
		"  --format text|json|rules  output format (default text); rules: only what the\n"
		"                         backend would program, in its tool's syntax (nftables:\n"
		"                         nft -f; ipvs: ipvsadm-restore), e.g. | nft -c -f -\n"
		"  --hostname-override NAME  this node's name (Local traffic policies)\n"
		"  --nodeport-addresses CIDR,...|primary|localhost|all  addresses node ports open on\n"
		"  --service-cluster-ip-range CIDR[,CIDR]  service CIDRs (unallocated addresses dropped)\n"
		"  --masquerade-bit N, --masquerade-all, --cluster-cidr CIDR[,CIDR],\n"
		"  --detect-local-mode MODE, --pod-interface-name-prefix P, --pod-bridge-interface B,\n"
		"  --ipvs-scheduler NAME, --ipvs-strict-arp,\n"
		"  --workers N            as for ferry run: the backend's program is rendered with them\n"
		"  --log-level LEVEL      error, warn, info (default) or debug\n"
		"  --config FILE          kube-proxy's KubeProxyConfiguration: checked (exit 2 when\n"
		"                         invalid) and the effective settings printed before the plan\n"
		"  --help                 this help\n");
}

/* Like --backend auto, but never fails: plan must print even where no kernel
 * backend would start, so fall back to the last (userspace) entry. */
static const struct backend_ops *plan_pick_backend(const char *name)
{
	if (strcmp(name, "auto") == 0) {
		const struct backend_ops *ops = backend_auto();
		return ops ? ops : backend_registry[backend_registry_len - 1];
	}
	/* A named backend is rendered even when its probe fails here: rendering
	 * touches nothing. */
	return backend_find(name);
}

int cli_plan(int argc, char **argv)
{
	struct cli_options o;
	const struct backend_ops *ops;
	struct cli_source *src = NULL;
	struct model *m = NULL;
	struct loop *loop = NULL;
	struct planner *planner = NULL;
	const struct plan *plan;
	const struct plan_diff *diff;
	union cli_backend_options bopts_storage;
	const void *bopts;
	struct planner_config pcfg;
	struct host_addrs host;
	char hostname[256] = "";
	size_t rejected = 0;
	bool help;
	int code = CLI_EXIT_FAILURE;

	cli_options_defaults(&o);
	if (cli_options_parse(argc, argv, CLI_OPT_FORMAT, &o, &help) < 0)
		return cli_usage_hint("plan");
	if (help) {
		plan_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (!o.source) {
		fprintf(stderr, "ferry plan: --source is required (e.g. --source dir:examples/demo or --source kube)\n");
		return CLI_EXIT_REJECTED;
	}
	ops = plan_pick_backend(o.backend);
	if (!ops) {
		fprintf(stderr, "ferry plan: unknown backend '%s'\n", o.backend);
		return CLI_EXIT_REJECTED;
	}
	if (!o.hostname && gethostname(hostname, sizeof(hostname) - 1) == 0)
		o.hostname = hostname;
	/* --config: the settings in force, before the plan (stdout only for
	 * text, so json and rules stay machine-readable). */
	if (o.config)
		kube_proxy_config_print(&o, ops, o.format == PLAN_FORMAT_TEXT ? stdout : stderr);
	/* Keep stdout for the plan: only problems go to stderr. */
	if (log_get_level() == LOG_LEVEL_INFO)
		log_set_level(LOG_LEVEL_WARN);

	m = model_new();
	loop = loop_new();
	if (!m || !loop)
		goto out;
	if (cli_source_open(&o, loop, m, &src, &rejected) < 0)
		goto out;
	if (!cli_source_synced(src)) {
		/* The API source lists in the background: run the loop until every
		 * first list is in, within a bound. */
		struct loop_timer deadline;
		bool timed_out = false;

		cli_source_set_callbacks(src, plan_on_synced, NULL, loop);
		cli_source_set_failure_callback(src, plan_on_failure);
		loop_timer_init(&deadline, plan_on_timeout, &timed_out);
		loop_timer_start(loop, &deadline, PLAN_KUBE_SYNC_TIMEOUT_MS);
		if (loop_run(loop) < 0 || timed_out || !cli_source_synced(src)) {
			loop_timer_stop(loop, &deadline);
			if (plan_failure[0] && !cli_source_synced(src))
				log_error("ferry plan: cannot list from the API server: %s "
					  "(retrying cannot fix this; not waiting)", plan_failure);
			else
				log_error("ferry plan: the source did not finish its first lists within %u s",
					  PLAN_KUBE_SYNC_TIMEOUT_MS / 1000);
			goto out;
		}
		loop_timer_stop(loop, &deadline);
		rejected += cli_source_rejected(src);
	}
	rejected += cli_report_orphan_slices(m);
	/* Node ports open on this host's addresses, as ferry run would. */
	if (host_addrs_read(&host) == 0) {
		int r = model_set_host_addrs(m, &host);
		host_addrs_done(&host);
		if (r < 0)
			goto out;
	}

	cli_planner_config(&o, ops, &pcfg);
	planner = planner_new(&pcfg);
	if (!planner || planner_run(planner, m, &plan, &diff) < 0) {
		log_error("planning failed");
		goto out;
	}
	bopts = cli_backend_options(ops, &o, NULL, &bopts_storage);
	/* What the backend will not do is said, naming the service. */
	{
		struct annotation_warner *w = annotation_warner_new(ops);
		if (w)
			annotation_warner_check(w, plan, NULL);
		annotation_warner_free(w);
	}
	if (o.format == PLAN_FORMAT_RULES) {
		if (!ops->render) {
			fprintf(stderr, "ferry plan: backend %s has no rules to print\n", ops->name);
			goto out;
		}
		ops->render(plan, bopts, PLAN_FORMAT_RULES, stdout);
	} else if (o.format == PLAN_FORMAT_JSON) {
		/* One JSON document: {"plan": ..., "backend": {"name", "program"}}. */
		printf("{\"plan\":");
		plan_print(plan, PLAN_FORMAT_JSON, stdout);
		printf(",\"backend\":{\"name\":\"%s\",\"program\":", ops->name);
		if (ops->render)
			ops->render(plan, bopts, PLAN_FORMAT_JSON, stdout);
		else
			printf("null");
		printf("}}\n");
	} else {
		printf("# forwarding plan\n");
		plan_print(plan, PLAN_FORMAT_TEXT, stdout);
		printf("\n# backend %s would program\n", ops->name);
		if (ops->render)
			ops->render(plan, bopts, PLAN_FORMAT_TEXT, stdout);
	}
	fflush(stdout);
	code = rejected ? CLI_EXIT_REJECTED : CLI_EXIT_OK;
	if (rejected)
		fprintf(stderr, "ferry plan: %zu objects or files rejected (see above)\n", rejected);
out:
	planner_free(planner);
	cli_source_free(src);
	model_free(m);
	loop_free(loop);
	return code;
}
