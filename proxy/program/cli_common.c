/* Helpers shared by the commands: the planner's and backends' options,
 * backend choice, orphan slices. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_options.h"
#include "log.h"

void cli_planner_config(const struct cli_options *o, const struct backend_ops *ops,
			struct planner_config *ret)
{
	*ret = (struct planner_config){
		.node_name = o->hostname,
		.service_proxy_name = o->service_proxy_name,
		.nodeport_prefixes = o->nodeport_prefixes,
		.n_nodeport_prefixes = o->n_nodeport_prefixes,
		.nodeport_primary = o->nodeport_primary,
		.nodeport_localhost = o->nodeport_localhost,
		.nodeport_all = o->nodeport_all,
		.service_cidrs = o->service_cidrs,
		.n_service_cidrs = o->n_service_cidrs,
		.topology_hints = true,
		.masquerade_all = o->masquerade_all,
	};
	/* kube-proxy: a specific bindAddress is this node's address of its
	 * family (0.0.0.0 and :: leave it to the Node object). */
	if (o->bind_address) {
		struct inet_addr a;
		if (inet_addr_parse(o->bind_address, &a) == 0 && !inet_addr_is_any(&a))
			ret->node_ip_override = a;
	}
	/* kube-proxy's default differs per mode: primary for nftables, every
	 * address for IPVS (and iptables). */
	if (!o->nodeport_set && ops) {
		ret->nodeport_primary = ops->nodeport_default_primary;
		ret->nodeport_all = !ops->nodeport_default_primary;
	}
	if (ret->nodeport_localhost && ops && !ops->loopback_node_ports) {
		log_warn("--nodeport-addresses localhost: the %s backend cannot serve node ports on loopback "
			 "addresses (kube-proxy's nftables mode cannot either); ignored", ops->name);
		ret->nodeport_localhost = false;
	}
}

const void *cli_backend_options(const struct backend_ops *ops, const struct cli_options *o,
				const struct intercept_ops *intercept, union cli_backend_options *storage)
{
	memset(storage, 0, sizeof(*storage));
	if (ops == &nftables_backend_ops) {
		storage->nftables = (struct nftables_options){
			.masquerade_mark = o->masquerade_mark,
			.local = { .mode = o->detect_local_mode, .cluster_cidrs = o->cluster_cidrs,
				   .n_cluster_cidrs = o->n_cluster_cidrs, .interface = cli_local_interface(o) },
		};
		return &storage->nftables;
	}
	if (ops == &ipvs_backend_ops) {
		storage->ipvs = (struct ipvs_options){
			.scheduler = o->ipvs_scheduler,
			.strict_arp = o->ipvs_strict_arp,
			.masquerade_mark = o->masquerade_mark,
			.exclude_cidrs = o->ipvs_exclude_cidrs,
			.n_exclude_cidrs = o->n_ipvs_exclude_cidrs,
			/* IPVS counts whole seconds (kube-proxy truncates too). */
			.tcp_timeout_s = o->ipvs_tcp_timeout_ms / 1000,
			.tcp_fin_timeout_s = o->ipvs_tcp_fin_timeout_ms / 1000,
			.udp_timeout_s = o->ipvs_udp_timeout_ms / 1000,
			.local = { .mode = o->detect_local_mode, .cluster_cidrs = o->cluster_cidrs,
				   .n_cluster_cidrs = o->n_cluster_cidrs, .interface = cli_local_interface(o) },
		};
		return &storage->ipvs;
	}
	if (ops == &userspace_backend_ops) {
		/* ClusterCIDR detection tells pods by source, which a relay sees;
		 * the interface modes cannot be applied to an accepted socket. */
		bool by_cidr = o->detect_local_mode == LOCAL_DETECT_CLUSTER_CIDR;

		storage->userspace = (struct userspace_options){
			.workers = o->workers,
			.udp_idle_timeout_ms = o->udp_timeout_ms,
			.intercept = intercept,
			.cluster_cidrs = by_cidr ? o->cluster_cidrs : NULL,
			.n_cluster_cidrs = by_cidr ? o->n_cluster_cidrs : 0,
			.local_by_interface = !by_cidr,
		};
		return &storage->userspace;
	}
	return NULL;
}

const struct backend_ops *cli_pick_backend(const char *name)
{
	const struct backend_ops *ops;
	char why[256] = "";

	if (strcmp(name, "auto") == 0) {
		ops = backend_auto();
		if (!ops)
			log_error("no backend is usable on this host (run with --log-level debug to see why)");
		return ops;
	}
	ops = backend_find(name);
	if (!ops) {
		fprintf(stderr, "ferry: unknown backend '%s'; known:", name);
		for (size_t i = 0; i < backend_registry_len; i++)
			fprintf(stderr, " %s", backend_registry[i]->name);
		fprintf(stderr, "\n");
		return NULL;
	}
	if (ops->probe && ops->probe(why, sizeof(why)) < 0) {
		log_error("backend %s is not usable on this host: %s", name, why);
		return NULL;
	}
	return ops;
}

static int cli_report_orphan(const struct kobj_slice *slice, void *userdata)
{
	size_t *n = userdata;

	log_error("%s: EndpointSlice %s/%s: metadata.labels[kubernetes.io/service-name]: "
		  "service %s/%s not found; slice unused",
		  slice->source ? slice->source : "?", slice->ns, slice->name, slice->ns,
		  slice->service_name);
	(*n)++;
	return 0;
}

size_t cli_report_orphan_slices(const struct model *m)
{
	size_t n = 0;

	model_foreach_orphan_slice(m, cli_report_orphan, &n);
	return n;
}
