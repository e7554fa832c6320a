/* --config: kube-proxy's KubeProxyConfiguration into cli_options. A
 * kubeadm-style file (every field written, most empty), YAML and JSON, the
 * errors that name the field (unknown, wrong type, out of range, iptables
 * mode), the warnings for known fields ferry does not implement, Go
 * durations, and flags overriding the file. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_options.h"
#include "kube_proxy_config.h"

/* What `kubeadm config print init-defaults --component-configs
 * KubeProxyConfiguration` writes, with a few values set. */
static const char kubeadm_yaml[] =
	"apiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
	"kind: KubeProxyConfiguration\n"
	"bindAddress: 0.0.0.0\n"
	"bindAddressHardFail: false\n"
	"clientConnection:\n"
	"  acceptContentTypes: \"\"\n"
	"  burst: 0\n"
	"  contentType: \"\"\n"
	"  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\n"
	"  qps: 0\n"
	"clusterCIDR: 10.244.0.0/16,fd00:244::/56\n"
	"configSyncPeriod: 0s\n"
	"conntrack:\n"
	"  maxPerCore: 32768\n"
	"  min: 131072\n"
	"  tcpBeLiberal: true\n"
	"  tcpCloseWaitTimeout: 1h0m0s\n"
	"  tcpEstablishedTimeout: 24h0m0s\n"
	"  udpStreamTimeout: 0s\n"
	"  udpTimeout: 0s\n"
	"detectLocal:\n"
	"  bridgeInterface: \"\"\n"
	"  interfaceNamePrefix: \"\"\n"
	"detectLocalMode: \"\"\n"
	"enableProfiling: false\n"
	"healthzBindAddress: 0.0.0.0:10256\n"
	"hostnameOverride: node-1\n"
	"iptables:\n"
	"  localhostNodePorts: null\n"
	"  masqueradeAll: false\n"
	"  masqueradeBit: null\n"
	"  minSyncPeriod: 0s\n"
	"  syncPeriod: 0s\n"
	"ipvs:\n"
	"  excludeCIDRs: null\n"
	"  minSyncPeriod: 0s\n"
	"  scheduler: \"\"\n"
	"  strictARP: false\n"
	"  syncPeriod: 0s\n"
	"  tcpFinTimeout: 0s\n"
	"  tcpTimeout: 0s\n"
	"  udpTimeout: 0s\n"
	"logging:\n"
	"  flushFrequency: 0\n"
	"  options:\n"
	"    json:\n"
	"      infoBufferSize: \"0\"\n"
	"  verbosity: 4\n"
	"metricsBindAddress: 127.0.0.1:10249\n"
	"mode: nftables\n"
	"nftables:\n"
	"  masqueradeAll: true\n"
	"  masqueradeBit: 15\n"
	"  minSyncPeriod: 1.5s\n"
	"  syncPeriod: 1m0s\n"
	"nodePortAddresses: [primary, 192.168.0.0/16]\n"
	"oomScoreAdj: -999\n"
	"portRange: \"\"\n"
	"showHiddenMetricsForVersion: \"\"\n"
	"winkernel:\n"
	"  enableDSR: false\n"
	"  forwardHealthCheckVip: false\n"
	"  networkName: \"\"\n"
	"  rootHnsEndpointName: \"\"\n"
	"  sourceVip: \"\"\n";

static struct kube_proxy_config cfg;
static struct cli_options o;

static int parse(const char *text)
{
	memset(&cfg, 0, sizeof(cfg));
	cli_options_defaults(&o);
	return kube_proxy_config_parse(&cfg, text, strlen(text), &o);
}

/* A minimal file: the two type fields and then body. */
static int parse_body(const char *body)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf), "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n%s",
		 body);
	return parse(buf);
}

Test(kube_proxy_config, kubeadm_style_file)
{
	cr_assert_eq(parse(kubeadm_yaml), 0, "%s", cfg.error);
	cr_assert_str_eq(o.backend, "nftables");
	cr_assert_str_eq(cfg.section, "nftables");
	cr_assert_str_eq(o.hostname, "node-1");
	cr_assert_str_eq(o.kubeconfig, "/var/lib/kube-proxy/kubeconfig.conf");
	cr_assert_eq(o.n_cluster_cidrs, 2);
	cr_assert_eq(o.cluster_cidrs[0].len, 16);
	cr_assert_eq(o.cluster_cidrs[1].len, 56);
	cr_assert(o.masquerade_all);
	cr_assert_eq(o.masquerade_mark, 1u << 15);
	cr_assert_eq(o.sync_period_ms, 60000);
	cr_assert_eq(o.min_sync_period_ms, 1500);
	cr_assert(o.nodeport_set && o.nodeport_primary && !o.nodeport_all);
	cr_assert_eq(o.n_nodeport_prefixes, 1);
	cr_assert_str_eq(o.healthz_bind, "0.0.0.0:10256");
	cr_assert_str_eq(o.metrics_bind, "127.0.0.1:10249");
	cr_assert_eq(o.detect_local_mode, LOCAL_DETECT_CLUSTER_CIDR);
	cr_assert_null(o.pod_interface_name_prefix);
	cr_assert_eq(o.conntrack.max_per_core, 32768);
	cr_assert_eq(o.conntrack.min, 131072);
	cr_assert_eq(o.conntrack.tcp_established_ms, 86400000u);
	cr_assert_eq(o.conntrack.tcp_close_wait_ms, 3600000u);
	cr_assert_eq(o.conntrack.udp_ms, 0);
	cr_assert(o.conntrack.tcp_be_liberal);
	cr_assert(o.oom_score_adj_set);
	cr_assert_eq(o.oom_score_adj, -999);
	cr_assert_eq(cfg.verbosity, 4);
	cr_assert_eq(o.config, &cfg);
	/* Every unimplemented field there is empty: no warning. */
	cr_assert_eq(cfg.n_warnings, 0, "%s", cfg.warnings);
}

Test(kube_proxy_config, json_file)
{
	const char *json =
		"{\"apiVersion\": \"kubeproxy.config.k8s.io/v1alpha1\", \"kind\": \"KubeProxyConfiguration\",\n"
		" \"mode\": \"ipvs\", \"ipvs\": {\"scheduler\": \"wlc\", \"strictARP\": true, \"syncPeriod\": \"45s\"},\n"
		" \"iptables\": {\"masqueradeBit\": 13, \"masqueradeAll\": true},\n"
		" \"nodePortAddresses\": [\"10.0.0.0/8\", \"localhost\"]}";

	cr_assert_eq(parse(json), 0, "%s", cfg.error);
	cr_assert_str_eq(o.backend, "ipvs");
	cr_assert_str_eq(o.ipvs_scheduler, "wlc");
	cr_assert(o.ipvs_strict_arp);
	cr_assert_eq(o.sync_period_ms, 45000);
	/* kube-proxy's ipvs mode masquerades by the iptables section. */
	cr_assert_eq(o.masquerade_mark, 1u << 13);
	cr_assert(o.masquerade_all);
	cr_assert(o.nodeport_localhost);
	cr_assert_eq(o.n_nodeport_prefixes, 1);
}

Test(kube_proxy_config, other_modes_sections_are_checked_not_used)
{
	cr_assert_eq(parse_body("mode: nftables\niptables:\n  masqueradeBit: 3\n  syncPeriod: 5s\n"), 0, "%s",
		     cfg.error);
	cr_assert_eq(o.masquerade_mark, 0);
	cr_assert_eq(o.sync_period_ms, 30000);
	cr_assert_neq(parse_body("mode: nftables\niptables:\n  masqueradeBit: 40\n"), 0);
	cr_assert(strstr(cfg.error, "iptables.masqueradeBit"), "%s", cfg.error);
}

Test(kube_proxy_config, a_flags_mode_picks_the_section)
{
	static const char body[] = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
				   "mode: nftables\nnftables:\n  syncPeriod: 5s\nipvs:\n  syncPeriod: 7s\n";

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.mode_override, sizeof(cfg.mode_override), "ipvs");
	cli_options_defaults(&o);
	cr_assert_eq(kube_proxy_config_parse(&cfg, body, strlen(body), &o), 0, "%s", cfg.error);
	cr_assert_str_eq(cfg.section, "ipvs");
	cr_assert_eq(o.sync_period_ms, 7000);
}

Test(kube_proxy_config, unknown_field_is_an_error_naming_it)
{
	cr_assert_eq(parse_body("mode: nftables\nclusterCIDRs: 10.0.0.0/8\n"), -EINVAL);
	cr_assert(strstr(cfg.error, "clusterCIDRs: unknown field"), "%s", cfg.error);
	cr_assert_eq(parse_body("conntrack:\n  maxPerCpu: 1\n"), -EINVAL);
	cr_assert(strstr(cfg.error, "conntrack.maxPerCpu"), "%s", cfg.error);
	cr_assert_eq(parse_body("nftables:\n  scheduler: rr\n"), -EINVAL);
	cr_assert(strstr(cfg.error, "nftables.scheduler"), "%s", cfg.error);
}

Test(kube_proxy_config, wrong_type_names_the_field)
{
	cr_assert_eq(parse_body("nftables:\n  masqueradeAll: \"yes\"\n"), -EINVAL);
	cr_assert(strstr(cfg.error, "nftables.masqueradeAll: must be true or false"), "%s", cfg.error);
	cr_assert_eq(parse_body("nodePortAddresses: 10.0.0.0/8\n"), -EINVAL);
	cr_assert(strstr(cfg.error, "nodePortAddresses"), "%s", cfg.error);
	cr_assert_eq(parse_body("conntrack:\n  min: many\n"), -EINVAL);
	cr_assert(strstr(cfg.error, "conntrack.min: must be an integer"), "%s", cfg.error);
	cr_assert_eq(parse_body("ipvs:\n  syncPeriod: 30\n"), -EINVAL);
	cr_assert(strstr(cfg.error, "ipvs.syncPeriod: must be a duration"), "%s", cfg.error);
	cr_assert_eq(parse_body("kind: Pod\n"), -EINVAL); /* duplicate kind: a YAML error */
}

Test(kube_proxy_config, out_of_range)
{
	cr_assert_eq(parse_body("mode: nftables\nnftables:\n  masqueradeBit: 32\n"), -EINVAL);
	cr_assert(strstr(cfg.error, "nftables.masqueradeBit: 32 is out of range [0, 31]"), "%s", cfg.error);
	cr_assert_eq(parse_body("oomScoreAdj: 1001\n"), -EINVAL);
	cr_assert(strstr(cfg.error, "oomScoreAdj"), "%s", cfg.error);
	cr_assert_eq(parse_body("conntrack:\n  maxPerCore: -1\n"), -EINVAL);
	cr_assert(strstr(cfg.error, "conntrack.maxPerCore"), "%s", cfg.error);
	cr_assert_eq(parse_body("healthzBindAddress: 0.0.0.0:99999\n"), -EINVAL);
	cr_assert(strstr(cfg.error, "healthzBindAddress"), "%s", cfg.error);
	cr_assert_eq(parse_body("clusterCIDR: 10.0.0.0/33\n"), -EINVAL);
	cr_assert(strstr(cfg.error, "clusterCIDR"), "%s", cfg.error);
}

Test(kube_proxy_config, iptables_mode_is_refused_with_the_mode_to_use)
{
	cr_assert_eq(parse_body("mode: iptables\n"), -EINVAL);
	cr_assert(strstr(cfg.error, "mode: iptables is not supported"), "%s", cfg.error);
	cr_assert(strstr(cfg.error, "nftables"), "%s", cfg.error);
	cr_assert_eq(parse_body("mode: kernelspace\n"), -EINVAL);
	cr_assert_eq(parse_body("mode: userspace\n"), 0, "%s", cfg.error);
	cr_assert_str_eq(o.backend, "userspace");
	cr_assert_eq(parse_body("mode: \"\"\n"), 0);
	cr_assert_str_eq(o.backend, "auto");
}

Test(kube_proxy_config, wrong_type_or_version)
{
	cr_assert_eq(parse("apiVersion: v1\nkind: KubeProxyConfiguration\n"), -EINVAL);
	cr_assert(strstr(cfg.error, "apiVersion"), "%s", cfg.error);
	cr_assert_eq(parse("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\n"), -EINVAL);
	cr_assert(strstr(cfg.error, "kind"), "%s", cfg.error);
	cr_assert_eq(parse("mode: [\n"), -EINVAL);
	cr_assert(strstr(cfg.error, "line"), "%s", cfg.error);
}

Test(kube_proxy_config, known_unimplemented_field_warns)
{
	cr_assert_eq(parse_body("featureGates:\n  Foo: true\niptables:\n  localhostNodePorts: true\n"
				"showHiddenMetricsForVersion: \"1.30\"\nportRange: 30000-32767\n"
				"ipvs:\n  tcpTimeout: 900s\n  excludeCIDRs: [10.0.0.0/8]\n"
				"winkernel:\n  networkName: foo\nclientConnection:\n  qps: 50\n"),
		     0, "%s", cfg.error);
	cr_assert(strstr(cfg.warnings, "featureGates: not implemented"), "%s", cfg.warnings);
	cr_assert(strstr(cfg.warnings, "iptables.localhostNodePorts: not implemented"), "%s", cfg.warnings);
	cr_assert(strstr(cfg.warnings, "showHiddenMetricsForVersion"), "%s", cfg.warnings);
	cr_assert(strstr(cfg.warnings, "portRange"), "%s", cfg.warnings);
	/* The IPVS timeouts and excludeCIDRs are implemented: no warning. */
	cr_assert_null(strstr(cfg.warnings, "ipvs."), "%s", cfg.warnings);
	cr_assert(strstr(cfg.warnings, "winkernel"), "%s", cfg.warnings);
	cr_assert(strstr(cfg.warnings, "clientConnection.qps"), "%s", cfg.warnings);
	cr_assert_eq(cfg.n_warnings, 6, "%s", cfg.warnings);
}

/* ipvs.excludeCIDRs and the IPVS timeouts reach the ipvs backend's
 * options (seconds); the flags of kube-proxy's name override them. */
Test(kube_proxy_config, ipvs_exclude_and_timeouts)
{
	union cli_backend_options storage;
	const struct ipvs_options *io;
	bool help;

	cr_assert_eq(parse_body("mode: ipvs\nipvs:\n  tcpTimeout: 15m0s\n  tcpFinTimeout: 2m\n  udpTimeout: 0s\n"
				"  excludeCIDRs: [10.200.0.0/16, \"fd00:200::/64\"]\n"),
		     0, "%s", cfg.error);
	cr_assert_eq(o.n_ipvs_exclude_cidrs, 2);
	io = cli_backend_options(&ipvs_backend_ops, &o, NULL, &storage);
	cr_assert_eq(io->tcp_timeout_s, 900);
	cr_assert_eq(io->tcp_fin_timeout_s, 120);
	cr_assert_eq(io->udp_timeout_s, 0);
	cr_assert_eq(io->n_exclude_cidrs, 2);
	cr_assert_eq(io->exclude_cidrs[0].len, 16);
	cr_assert_eq(io->exclude_cidrs[1].len, 64);
	cr_assert_eq(parse_body("ipvs:\n  excludeCIDRs: [10.200.0.0/33]\n"), -EINVAL);
	cr_assert(strstr(cfg.error, "ipvs.excludeCIDRs[0]"), "%s", cfg.error);

	char *argv[] = { "run", "--source", "dir:/x", "--ipvs-exclude-cidrs", "10.9.0.0/16", "--ipvs-udp-timeout",
			 "5m", NULL };
	cli_options_defaults(&o);
	cr_assert_eq(cli_options_parse(7, argv, CLI_OPT_RUN, &o, &help), 0);
	io = cli_backend_options(&ipvs_backend_ops, &o, NULL, &storage);
	cr_assert_eq(io->n_exclude_cidrs, 1);
	cr_assert_eq(io->udp_timeout_s, 300);
	cr_assert_eq(io->tcp_timeout_s, 0);
}

Test(kube_proxy_config, detect_local)
{
	cr_assert_eq(parse_body("detectLocalMode: InterfaceNamePrefix\ndetectLocal:\n  interfaceNamePrefix: veth\n"
				"  bridgeInterface: cbr0\n"), 0, "%s", cfg.error);
	cr_assert_eq(o.detect_local_mode, LOCAL_DETECT_INTERFACE_NAME_PREFIX);
	cr_assert_str_eq(o.pod_interface_name_prefix, "veth");
	cr_assert_null(o.pod_bridge_interface);
	cr_assert_eq(parse_body("detectLocalMode: NodeCIDR\n"), -EINVAL);
	cr_assert(strstr(cfg.error, "detectLocalMode"), "%s", cfg.error);
	cr_assert_eq(parse_body("detectLocal:\n  bridgeInterface: \"a b\"\n"), -EINVAL);
}

Test(kube_proxy_config, durations)
{
	uint32_t ms;

	cr_assert_eq(kube_proxy_parse_duration_ms("30s", &ms), 0);
	cr_assert_eq(ms, 30000);
	cr_assert_eq(kube_proxy_parse_duration_ms("1m0s", &ms), 0);
	cr_assert_eq(ms, 60000);
	cr_assert_eq(kube_proxy_parse_duration_ms("2h45m", &ms), 0);
	cr_assert_eq(ms, 9900000);
	cr_assert_eq(kube_proxy_parse_duration_ms("1.5s", &ms), 0);
	cr_assert_eq(ms, 1500);
	cr_assert_eq(kube_proxy_parse_duration_ms("250ms", &ms), 0);
	cr_assert_eq(ms, 250);
	cr_assert_eq(kube_proxy_parse_duration_ms("0", &ms), 0);
	cr_assert_eq(ms, 0);
	cr_assert_eq(kube_proxy_parse_duration_ms("0s", &ms), 0);
	cr_assert_eq(ms, 0);
	cr_assert_eq(kube_proxy_parse_duration_ms("1500us", &ms), 0);
	cr_assert_eq(ms, 2); /* a sub-millisecond rest rounds up */
	cr_assert_eq(kube_proxy_parse_duration_ms("30", &ms), -EINVAL);
	cr_assert_eq(kube_proxy_parse_duration_ms("-1s", &ms), -EINVAL);
	cr_assert_eq(kube_proxy_parse_duration_ms("s", &ms), -EINVAL);
	cr_assert_eq(kube_proxy_parse_duration_ms("1d", &ms), -EINVAL);
	cr_assert_eq(kube_proxy_parse_duration_ms("", &ms), -EINVAL);
	cr_assert_eq(kube_proxy_parse_duration_ms("2000h", &ms), -ERANGE);
	cr_assert_eq(parse_body("conntrack:\n  udpTimeout: 1d\n"), -EINVAL);
	cr_assert(strstr(cfg.error, "conntrack.udpTimeout"), "%s", cfg.error);
}

Test(kube_proxy_config, conntrack_max_as_kube_proxy_computes_it)
{
	struct kube_proxy_conntrack c = { .max_per_core = 32768, .min = 131072 };

	cr_assert_eq(kube_proxy_conntrack_max(&c, 2), 131072);
	cr_assert_eq(kube_proxy_conntrack_max(&c, 8), 262144);
	c.max_per_core = 0;
	cr_assert_eq(kube_proxy_conntrack_max(&c, 8), 0); /* 0: leave the limit and ignore min */
}

/* The whole path: --config loaded before the flags, flags override it,
 * kube-proxy's flag names. */
Test(kube_proxy_config, flags_override_the_file)
{
	char path[] = "/tmp/ferry-kpc.XXXXXX";
	int fd = mkstemp(path);
	bool help;

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, kubeadm_yaml, strlen(kubeadm_yaml)), (ssize_t)strlen(kubeadm_yaml));
	close(fd);
	char *argv[] = { "run", "--config", path, "--source", "dir:/nonexistent", "--proxy-mode=userspace",
			 "--hostname-override", "node-2", "--iptables-sync-period=10s",
			 "--healthz-bind-address", "127.0.0.1:20256", "--v=2", "--masquerade-bit", "3",
			 "--feature-gates=SomeGate=true", NULL };
	cli_options_defaults(&o);
	cr_assert_eq(cli_options_parse(15, argv, CLI_OPT_RUN, &o, &help), 0);
	cr_assert_str_eq(o.backend, "userspace");
	cr_assert_str_eq(o.hostname, "node-2");
	cr_assert_eq(o.sync_period_ms, 10000);
	/* --proxy-mode=userspace: the file's iptables section (empty) holds the
	 * periods, not its nftables one. */
	cr_assert_eq(o.min_sync_period_ms, 50);
	cr_assert_str_eq(o.healthz_bind, "127.0.0.1:20256");
	cr_assert_str_eq(o.source, "dir:/nonexistent");
	cr_assert_eq(o.masquerade_mark, 1u << 3);
	cr_assert_eq(o.oom_score_adj, -999);
	cr_assert_not_null(o.config);

	char *bad[] = { "run", "--source", "dir:/x", "--proxy-mode", "iptables", NULL };
	cli_options_defaults(&o);
	cr_assert_eq(cli_options_parse(5, bad, CLI_OPT_RUN, &o, &help), -1);
	/* An abbreviation getopt would take is refused, not silently unread. */
	char *abbrev[] = { "run", "--source", "dir:/x", "--conf", path, NULL };
	cli_options_defaults(&o);
	cr_assert_eq(cli_options_parse(5, abbrev, CLI_OPT_RUN, &o, &help), -1);
	unlink(path);
}

/* kube-proxy's conntrack defaults apply to what neither the file nor a
 * flag set, when ferry stands in for kube-proxy (--config, or the API);
 * a written 0 stays 0 (leave the kernel's value); a standalone balancer
 * changes nothing. */
Test(kube_proxy_config, conntrack_defaults_as_kube_proxy)
{
	cr_assert_eq(parse_body("conntrack:\n  tcpCloseWaitTimeout: 0s\n  maxPerCore: 0\n"), 0, "%s", cfg.error);
	kube_proxy_conntrack_defaults(&o);
	cr_assert(o.conntrack.defaulted);
	cr_assert_eq(o.conntrack.max_per_core, 0);
	cr_assert_eq(o.conntrack.min, 131072);
	cr_assert_eq(o.conntrack.tcp_established_ms, 24u * 3600 * 1000);
	cr_assert_eq(o.conntrack.tcp_close_wait_ms, 0);
	cr_assert_eq(o.conntrack.udp_ms, 0);

	/* No conntrack section at all. */
	cr_assert_eq(parse_body("mode: nftables\n"), 0, "%s", cfg.error);
	kube_proxy_conntrack_defaults(&o);
	cr_assert_eq(o.conntrack.max_per_core, 32768);
	cr_assert_eq(o.conntrack.min, 131072);
	cr_assert_eq(o.conntrack.tcp_established_ms, 86400000u);
	cr_assert_eq(o.conntrack.tcp_close_wait_ms, 3600000u);

	/* No file: the API source is kube-proxy's place, a directory is not. */
	bool help;
	char *kube[] = { "run", "--source", "kube", "--conntrack-tcp-timeout-established=1h", NULL };
	cli_options_defaults(&o);
	cr_assert_eq(cli_options_parse(4, kube, CLI_OPT_RUN, &o, &help), 0);
	cr_assert_eq(o.conntrack.max_per_core, 32768);
	cr_assert_eq(o.conntrack.tcp_established_ms, 3600000u);
	cr_assert_eq(o.conntrack.tcp_close_wait_ms, 3600000u);
	char *dir[] = { "run", "--source", "dir:/x", NULL };
	cli_options_defaults(&o);
	cr_assert_eq(cli_options_parse(3, dir, CLI_OPT_RUN, &o, &help), 0);
	cr_assert_not(o.conntrack.defaulted);
	cr_assert_eq(o.conntrack.max_per_core, 0);
	cr_assert_eq(o.conntrack.tcp_established_ms, 0);
}

/* healthz/metrics addresses: an IP alone gets kube-proxy's port, port 0
 * and "0" are refused as kube-proxy's validation refuses them, and the
 * defaults follow bindAddress's family. */
Test(kube_proxy_config, bind_addresses_as_kube_proxy)
{
	char buf[80];
	bool help;

	cr_assert_eq(kube_proxy_bind_normalize("0.0.0.0", 10256, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "0.0.0.0:10256");
	cr_assert_eq(kube_proxy_bind_normalize("::", 10249, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "[::]:10249");
	cr_assert_eq(kube_proxy_bind_normalize("[::1]:9000", 10249, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "[::1]:9000");
	cr_assert_eq(kube_proxy_bind_normalize("127.0.0.1:0", 10249, buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(kube_proxy_bind_normalize("0", 10249, buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(kube_proxy_bind_normalize("localhost:10249", 10249, buf, sizeof(buf)), -EINVAL);

	cr_assert_eq(parse_body("healthzBindAddress: 0.0.0.0:0\n"), -EINVAL);
	cr_assert(strstr(cfg.error, "healthzBindAddress"), "%s", cfg.error);
	cr_assert_eq(parse_body("metricsBindAddress: 0.0.0.0\n"), 0, "%s", cfg.error);
	cr_assert_str_eq(o.metrics_bind, "0.0.0.0:10249");

	/* bindAddress :: (IPv6, even unspecified): IPv6 defaults. */
	cr_assert_eq(parse_body("bindAddress: \"::\"\n"), 0, "%s", cfg.error);
	kube_proxy_bind_defaults(&o);
	cr_assert_str_eq(o.healthz_bind, "[::]:10256");
	cr_assert_str_eq(o.metrics_bind, "[::1]:10249");
	char *v4[] = { "run", "--source", "dir:/x", "--bind-address", "0.0.0.0", NULL };
	cli_options_defaults(&o);
	cr_assert_eq(cli_options_parse(5, v4, CLI_OPT_RUN, &o, &help), 0);
	cr_assert_str_eq(o.healthz_bind, "0.0.0.0:10256");
	cr_assert_str_eq(o.metrics_bind, "127.0.0.1:10249");
	char *v6[] = { "run", "--source", "dir:/x", "--bind-address", "::", "--metrics-bind-address", "::1", NULL };
	cli_options_defaults(&o);
	cr_assert_eq(cli_options_parse(7, v6, CLI_OPT_RUN, &o, &help), 0);
	cr_assert_str_eq(o.healthz_bind, "[::]:10256");
	cr_assert_str_eq(o.metrics_bind, "[::1]:10249");
	char *off[] = { "run", "--source", "dir:/x", "--metrics-bind-address", "", NULL };
	cli_options_defaults(&o);
	cr_assert_eq(cli_options_parse(5, off, CLI_OPT_RUN, &o, &help), 0);
	cr_assert_str_eq(o.metrics_bind, "");
	char *zero[] = { "run", "--source", "dir:/x", "--metrics-bind-address", "0", NULL };
	cli_options_defaults(&o);
	cr_assert_eq(cli_options_parse(5, zero, CLI_OPT_RUN, &o, &help), -1);
	char *port0[] = { "run", "--source", "dir:/x", "--healthz-bind-address", "0.0.0.0:0", NULL };
	cli_options_defaults(&o);
	cr_assert_eq(cli_options_parse(5, port0, CLI_OPT_RUN, &o, &help), -1);
}
