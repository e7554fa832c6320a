/* `ferry run`: load a source, program a backend, follow changes until a
 * signal. The control thread runs one event loop: the source's fd, the
 * signalfd and the sync runner's timers. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "annotations.h"
#include "cli.h"
#include "cli_options.h"
#include "host_addrs.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "nft_intercept.h"
#include "privileges.h"
#include "proxy_health.h"
#include "run_lock.h"
#include "svc_health.h"
#include "sync_runner.h"
#include "version.h"

struct run_state {
	struct loop *loop;
	struct model *model;
	struct cli_source *source;
	struct sync_runner *runner;
	struct svc_health *health;   /* health check node ports */
	struct proxy_health *proxy_health; /* /healthz, /livez */
	struct metrics *metrics;     /* /metrics, /configz */
	struct host_addrs_watch *host; /* this host's addresses (node ports) */
	struct annotation_warner *warner; /* annotations the backend cannot honour */
	bool synced;  /* the source's first load is complete: syncs may run */
	int exit_code;
};

static void run_usage(FILE *out)
{
	fprintf(out,
		"Usage: ferry run --source dir:PATH|kube [--backend NAME] [OPTIONS]\n"
		"\n"
		"Program the dataplane from the source and keep it in sync until SIGTERM or\n"
		"SIGINT (listeners are closed, exit 0). SIGHUP re-reads the whole source.\n"
		"\n"
		"Options:\n"
		"  --source dir:PATH        manifest directory (Service, EndpointSlice, Endpoints, List;\n"
		"                           *.yaml, *.yml, *.json); changes apply within a second\n"
		"  --source kube            the Kubernetes API (default when KUBERNETES_SERVICE_HOST is\n"
		"                           set or --kubeconfig/--master is given); nothing is programmed\n"
		"                           before the first lists of services, slices and node are in\n"
		"  --kubeconfig FILE        kubeconfig (current context, or --context NAME)\n"
		"  --master URL             API server URL (overrides the kubeconfig's server)\n"
		"  --context NAME           kubeconfig context to use\n"
		"  --service-proxy-name NAME  serve only services labelled\n"
		"                           service.kubernetes.io/service-proxy-name=NAME\n"
		"  --backend NAME           auto (default: first usable of the registry) or one of:");
	for (size_t i = 0; i < backend_registry_len; i++)
		fprintf(out, " %s", backend_registry[i]->name);
	fprintf(out,
		"\n"
		"  --workers N              relay worker threads (userspace; default 2)\n"
		"  --intercept auto|on|off  userspace: redirect traffic to cluster and external IPs that\n"
		"                           are not local (from pods, other hosts routed through this\n"
		"                           node, and this node) to the relay with nftables tables\n"
		"                           ferry_intercept, removed on exit; auto (default) is on with\n"
		"                           --source kube, off with dir: (a standalone balancer binds\n"
		"                           its VIPs itself and installs no kernel rules)\n"
		"  --udp-timeout DURATION   idle timeout of a UDP flow (default 30s)\n"
		"  --min-sync-period DUR    least time between two syncs (default 50ms)\n"
		"  --sync-period DUR        periodic sync interval, as kube-proxy's syncPeriod: applies\n"
		"                           what changed (default 30s)\n"
		"  --full-sync-period DUR   whole plan and full backend sync interval, as kube-proxy's\n"
		"                           hourly full sync (default 1h)\n"
		"  --hostname-override NAME this node's name (Node object, Local traffic policies)\n"
		"  --nodeport-addresses LIST  this host's addresses node ports open on: CIDRs (matched\n"
		"                           against the interfaces, followed as they change) and the\n"
		"                           keywords primary (the Node object's first address per family,\n"
		"                           standalone: the default route's source), localhost, all;\n"
		"                           default primary (nftables), all (ipvs, userspace)\n"
		"  --service-cluster-ip-range CIDR[,CIDR]  service CIDRs: traffic to an unallocated address\n"
		"                           in them is dropped (with the API's ServiceCIDR objects)\n"
		"  --cluster-cidr CIDR[,CIDR]  pod CIDRs: cluster-IP traffic from elsewhere is masqueraded\n"
		"  --detect-local-mode MODE what traffic is local (keeps its source on cluster IPs; the\n"
		"                           rest is masqueraded; nftables, ipvs): ClusterCIDR (default: from\n"
		"                           --cluster-cidr; none given: nothing is masqueraded by source),\n"
		"                           InterfaceNamePrefix or BridgeInterface (NodeCIDR: not supported)\n"
		"  --pod-interface-name-prefix PREFIX  InterfaceNamePrefix: traffic arriving on an\n"
		"                           interface whose name starts with PREFIX (e.g. veth) is local\n"
		"  --pod-bridge-interface NAME  BridgeInterface: traffic arriving on interface NAME\n"
		"                           (e.g. cbr0) is local\n"
		"  --masquerade-all         masquerade every cluster IP connection\n"
		"  --masquerade-bit N       mark bit meaning \"masquerade\" (nftables, ipvs; default 14)\n"
		"  --ipvs-scheduler NAME    ipvs: scheduler for services whose ferry.io/balance does not\n"
		"                           name one (rr default; wrr, lc, wlc, sh, mh, sed, nq, ...)\n"
		"  --ipvs-strict-arp        ipvs: arp_ignore=1, arp_announce=2 (no ARP answers for VIPs)\n"
		"  --log-level LEVEL        error, warn, info (default) or debug\n"
		"  --config FILE            kube-proxy's KubeProxyConfiguration (YAML or JSON); flags\n"
		"                           override it (see README, kube-proxy configuration)\n"
		"  kube-proxy's flag names work too: --proxy-mode, --iptables-sync-period,\n"
		"  --iptables-min-sync-period, --ipvs-sync-period, --ipvs-min-sync-period,\n"
		"  --healthz-bind-address, --metrics-bind-address, --bind-address, --cleanup,\n"
		"  -v/--v N (0-3 info, 4+ debug), --oom-score-adj, --conntrack-max-per-core,\n"
		"  --conntrack-min, --conntrack-tcp-timeout-established,\n"
		"  --conntrack-tcp-timeout-close-wait, --conntrack-udp-timeout,\n"
		"  --conntrack-udp-timeout-stream, --conntrack-tcp-be-liberal, --ipvs-exclude-cidrs,\n"
		"  --ipvs-tcp-timeout, --ipvs-tcpfin-timeout, --ipvs-udp-timeout\n"
		"  --help                   this help\n");
}

static void run_on_source(struct loop *loop, int fd, uint32_t events, void *userdata)
{
	struct run_state *st = userdata;
	bool changed = false;

	(void)loop;
	(void)fd;
	(void)events;
	if (cli_source_process(st->source, &changed) < 0)
		return;
	if (changed)
		sync_runner_request(st->runner);
}

/* This host's addresses changed (node ports open on them). */
static void run_on_host_addrs(struct loop *loop, int fd, uint32_t events, void *userdata)
{
	struct run_state *st = userdata;

	(void)loop;
	(void)fd;
	(void)events;
	if (host_addrs_watch_process(st->host) > 0 && st->synced)
		sync_runner_request(st->runner);
}

/* The kube source finished its first lists: the first sync may go. */
static void run_on_synced(void *userdata)
{
	struct run_state *st = userdata;
	size_t rejected = cli_source_rejected(st->source) + cli_report_orphan_slices(st->model);

	if (rejected)
		log_warn("%zu objects rejected; the others are in force", rejected);
	st->synced = true;
	sync_runner_request(st->runner);
}

static void run_on_changed(void *userdata)
{
	struct run_state *st = userdata;

	if (st->synced)
		sync_runner_request(st->runner);
}

static void run_on_plan_synced(const struct plan *plan, const struct plan_diff *diff, void *userdata)
{
	struct run_state *st = userdata;

	/* A port that failed to open is logged and tried again next sync. */
	(void)svc_health_update(st->health, plan);
	metrics_on_synced(st->metrics, plan);
	{
		double triggers[MODEL_MAX_TRIGGERS];
		size_t n = model_take_triggers(st->model, triggers, MODEL_MAX_TRIGGERS);

		metrics_on_programmed(st->metrics, triggers, n);
	}
	if (st->warner)
		annotation_warner_check(st->warner, plan, diff);
	/* A full sync follows a load or a resync, which leave freed memory
	 * behind (decoded documents, the plan before, kernel messages): give
	 * it back, so that the RSS shows what ferry holds. */
	if (!diff)
		malloc_trim(0);
}

static void run_on_attempt(bool full, int result, uint64_t duration_us, void *userdata)
{
	struct run_state *st = userdata;

	metrics_on_attempt(st->metrics, full, result, duration_us);
}

static bool run_proxy_healthy(void *userdata)
{
	return proxy_health_ok(userdata);
}

static void run_on_signal(struct loop *loop, int fd, uint32_t events, void *userdata)
{
	struct run_state *st = userdata;
	struct signalfd_siginfo si;
	size_t rejected = 0;

	(void)events;
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			log_info("SIGHUP: reloading the source");
			/* The reload opens a new watch: move the loop's watch to it. */
			if (cli_source_fd(st->source) >= 0)
				loop_unwatch_fd(loop, cli_source_fd(st->source));
			if (cli_source_reload(st->source, &rejected) == 0)
				cli_report_orphan_slices(st->model);
			if (cli_source_fd(st->source) >= 0)
				loop_watch_fd(loop, cli_source_fd(st->source), EPOLLIN, run_on_source, st);
			if (st->synced)
				sync_runner_request(st->runner);
			break;
		case SIGTERM:
		case SIGINT:
			log_info("%s: shutting down", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
			loop_stop(loop);
			return;
		default:
			break;
		}
	}
}

/* --intercept auto follows the source: a node of a cluster (kube) must see
 * cluster IPs that are nowhere assigned; a standalone balancer (dir:) binds
 * the VIPs it was given and has no business adding rules to its host. */
static bool run_wants_intercept(const struct cli_options *o)
{
	if (o->intercept == CLI_INTERCEPT_AUTO)
		return o->source && strcmp(o->source, "kube") == 0;
	return o->intercept == CLI_INTERCEPT_ON;
}

/* Raise the soft descriptor limit to the hard one, as the Go runtime does
 * at start for kube-proxy: the soft limit is 1,024 on most systems, and
 * the userspace backend without interception holds a listening socket per
 * frontend and worker (thousands in a standalone balancer). Nothing in
 * ferry uses select(), which descriptors past 1,024 would break. */
static void run_raise_fd_limit(void)
{
	struct rlimit rl;
	rlim_t was;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		log_debug("descriptor limit raised from %llu to the hard limit %llu", (unsigned long long)was,
			  (unsigned long long)rl.rlim_max);
}

int cli_run(int argc, char **argv)
{
	struct run_state st = { .exit_code = CLI_EXIT_FAILURE };
	struct cli_options o;
	const struct backend_ops *ops;
	struct planner *planner = NULL;
	union cli_backend_options bopts;
	struct planner_config pcfg;
	void *priv = NULL;
	bool help, backend_up = false;
	size_t rejected = 0;
	char hostname[256] = "";
	sigset_t mask;
	int sfd = -1, lock_fd = -1, r;

	cli_options_defaults(&o);
	if (cli_options_parse(argc, argv, CLI_OPT_RUN, &o, &help) < 0)
		return cli_usage_hint("run");
	if (help) {
		run_usage(stdout);
		return CLI_EXIT_OK;
	}
	/* kube-proxy --cleanup: remove the mode's rules (every backend's for auto). */
	if (o.cleanup)
		return cli_cleanup_backends(strcmp(o.backend, "auto") == 0 ? "all" : o.backend);
	if (!o.source) {
		fprintf(stderr, "ferry run: --source is required (e.g. --source dir:examples/demo or --source kube)\n");
		return CLI_EXIT_REJECTED;
	}
	ops = cli_pick_backend(o.backend);
	if (!ops)
		return CLI_EXIT_FAILURE;
	if (!o.hostname) {
		if (gethostname(hostname, sizeof(hostname) - 1) == 0)
			o.hostname = hostname;
	}

	/* Block the signals before any thread starts, so workers inherit the mask
	 * and only the signalfd sees them. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	st.loop = loop_new();
	st.model = model_new();
	if (sfd == -1 || !st.loop || !st.model) {
		log_error("out of resources at start");
		goto out;
	}

	/* Two ferrys programming one backend in one namespace would undo each
	 * other's work: the second refuses to start. */
	lock_fd = run_lock_take(getenv("FERRY_LOCK_DIR"), ops->name);
	if (lock_fd == -EBUSY)
		goto out;
	log_info("ferry %s starting: source %s, backend %s", FERRY_VERSION, o.source, ops->name);
	run_raise_fd_limit();
	kube_proxy_host_apply(&o); /* --config's conntrack and oomScoreAdj, as kube-proxy applies them */
	r = host_addrs_watch_new(st.model, &st.host);
	if (r < 0)
		goto out;
	r = cli_source_open(&o, st.loop, st.model, &st.source, &rejected);
	if (r < 0)
		goto out;
	if (cli_source_synced(st.source)) {
		rejected += cli_report_orphan_slices(st.model);
		if (rejected)
			log_warn("%zu objects or files rejected; the others are in force", rejected);
	}

	cli_planner_config(&o, ops, &pcfg);
	planner = planner_new(&pcfg);
	priv = calloc(1, ops->priv_size ? ops->priv_size : 1);
	if (!planner || !priv) {
		log_error("out of memory at start");
		goto out;
	}
	/* Everything needing more than the backend's steady state is done:
	 * drop the rest before init starts any thread (privileges.h). */
	{
		unsigned caps[PRIVILEGES_MAX];

		(void)privileges_drop(caps, privileges_wanted(ops, &o, caps));
	}
	r = ops->init(priv, cli_backend_options(ops, &o, run_wants_intercept(&o) ? &nftables_intercept_ops : NULL,
						&bopts));
	backend_up = true;
	if (r < 0) {
		log_errno(r, "backend %s failed to start", ops->name);
		goto out;
	}
	struct sync_runner_config scfg = {
		.min_sync_period_ms = o.min_sync_period_ms,
		.sync_period_ms = o.sync_period_ms,
		.full_sync_period_ms = o.full_sync_period_ms,
		.on_synced = run_on_plan_synced,
		.on_attempt = run_on_attempt,
		.userdata = &st,
	};
	st.warner = annotation_warner_new(ops);
	st.health = svc_health_new(st.loop);
	if (!st.health)
		goto out;
	st.runner = sync_runner_new(st.loop, st.model, planner, ops, priv, &scfg);
	if (!st.runner)
		goto out;
	/* kube-proxy's healthz timeout is 2 x syncPeriod. A server that cannot
	 * bind is logged and ferry goes on without it. */
	st.proxy_health = proxy_health_new(st.loop, o.healthz_bind, st.runner, st.model,
					   2 * (o.sync_period_ms ? o.sync_period_ms : 30000));
	st.metrics = metrics_new(st.loop, o.metrics_bind, &o, ops, st.model, st.runner,
				 st.proxy_health);
	if (!st.proxy_health || !st.metrics)
		goto out;
	svc_health_set_proxy_health(st.health, run_proxy_healthy, st.proxy_health);
	metrics_set_source(st.metrics, st.source);
	metrics_set_backend(st.metrics, priv);
	if (loop_watch_fd(st.loop, sfd, EPOLLIN, run_on_signal, &st) < 0 ||
	    loop_watch_fd(st.loop, host_addrs_watch_fd(st.host), EPOLLIN, run_on_host_addrs, &st) < 0 ||
	    (cli_source_fd(st.source) >= 0 &&
	     loop_watch_fd(st.loop, cli_source_fd(st.source), EPOLLIN, run_on_source, &st) < 0)) {
		log_error("cannot watch the source or signals");
		goto out;
	}
	/* The first sync goes once the source's first load is complete: now for
	 * a directory, when every informer has listed for the API (kube-proxy
	 * waits for its caches the same way), so a restart never programs a
	 * half-empty plan. */
	cli_source_set_callbacks(st.source, run_on_synced, run_on_changed, &st);
	if (cli_source_synced(st.source)) {
		st.synced = true;
		sync_runner_request(st.runner);
	} else {
		log_info("waiting for the source's first lists before programming %s", ops->name);
	}
	r = loop_run(st.loop);
	if (r < 0) {
		log_errno(r, "event loop failed");
		goto out;
	}
	st.exit_code = CLI_EXIT_OK;
out:
	st.metrics = metrics_free(st.metrics);
	st.proxy_health = proxy_health_free(st.proxy_health);
	st.runner = sync_runner_free(st.runner);
	st.health = svc_health_free(st.health);
	st.warner = annotation_warner_free(st.warner);
	if (backend_up)
		ops->fini(priv);
	free(priv);
	planner_free(planner);
	cli_source_free(st.source);
	host_addrs_watch_free(st.host);
	model_free(st.model);
	loop_free(st.loop);
	if (sfd >= 0)
		close(sfd);
	if (lock_fd >= 0)
		close(lock_fd);
	if (st.exit_code == CLI_EXIT_OK)
		log_info("stopped");
	return st.exit_code;
}
