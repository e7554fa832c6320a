/* Types of the model: the Kubernetes objects ferry uses, reduced to plain C.
 *
 * Sources (informer/) fill these structs from manifests or the API and hand
 * them to the model (proxy/model.h), which owns them from then on. Only the
 * fields ferry acts on are kept. Strings are heap-allocated and owned by the
 * struct that points at them; free a whole object with kobj_service_free /
 * kobj_slice_free / kobj_node_free (proxy/kobj.h).
 */
#ifndef FERRY_MODEL_T_H
#define FERRY_MODEL_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inet.h"

/* Port names are DNS-1123 labels: at most KOBJ_PORT_NAME_MAX - 1 bytes
 * (Kubernetes caps named target ports at 15). Objects hold them as shared
 * copies (intern.h), always: a few names repeat across 100k services. */
#define KOBJ_PORT_NAME_MAX 64

enum svc_type {
	SVC_TYPE_CLUSTER_IP = 0,
	SVC_TYPE_NODE_PORT,
	SVC_TYPE_LOAD_BALANCER,
	SVC_TYPE_EXTERNAL_NAME,
};

enum traffic_policy {
	TRAFFIC_POLICY_CLUSTER = 0,
	TRAFFIC_POLICY_LOCAL,
};

/* How the userspace relay picks an endpoint; from the annotation
 * `ferry.io/balance` (values "round-robin", "least-conn", "random-two",
 * "maglev"). Kernel backends map it to the nearest thing they have. */
enum balance_algo {
	BALANCE_ROUND_ROBIN = 0,
	BALANCE_LEAST_CONN,
	BALANCE_RANDOM_TWO,
	BALANCE_MAGLEV,
};

/* Kubernetes' ClientIP affinity timeout when the Service names none. */
#define KOBJ_AFFINITY_TIMEOUT_DEFAULT_S 10800u

/* Active health check settings of one service. From the annotations
 * `ferry.io/health-check` ("tcp" or "none"), `ferry.io/health-check-interval`
 * (ms), `ferry.io/health-check-timeout` (ms), `ferry.io/health-check-rise`,
 * `ferry.io/health-check-fall`. enabled=false when not asked for; the other
 * fields are then defaults and unused. */
struct health_check_cfg {
	bool enabled;
	uint32_t interval_ms; /* default 2000 */
	uint32_t timeout_ms;  /* default 1000 */
	uint32_t rise;        /* consecutive successes to come back; default 2 */
	uint32_t fall;        /* consecutive failures to go out; default 3 */
};

/* One entry of spec.ports. */
struct svc_port {
	const char *name;                     /* shared copy; NULL when unnamed */
	const char *target_port_name;         /* named targetPort (shared copy), else NULL */
	enum inet_proto proto;
	uint16_t port;
	uint16_t node_port;                   /* 0 when none */
	uint16_t target_port;                 /* numeric targetPort; 0 when named */
};

/* A v1 Service. The fields are ordered by size (8, 4, 2, 1 bytes) so that
 * the struct has no holes: 100k of them are held. */
struct kobj_service {
	char *ns;
	char *name;
	char *source;              /* where it came from (file path or "kube"), for logs */
	char *proxy_name;          /* label service.kubernetes.io/service-proxy-name, or NULL */

	struct inet_addr *cluster_ips;   /* clusterIPs (or clusterIP), primary first */
	size_t n_cluster_ips;
	struct inet_addr *external_ips;  /* spec.externalIPs */
	size_t n_external_ips;
	struct inet_addr *lb_ips;        /* status.loadBalancer.ingress[].ip */
	size_t n_lb_ips;
	struct inet_prefix *source_ranges; /* spec.loadBalancerSourceRanges */
	size_t n_source_ranges;

	struct svc_port *ports;
	size_t n_ports;

	enum svc_type type;
	uint32_t affinity_timeout_s;     /* default KOBJ_AFFINITY_TIMEOUT_DEFAULT_S */
	enum traffic_policy external_policy;
	enum traffic_policy internal_policy;
	enum balance_algo balance;       /* annotation ferry.io/balance */
	struct health_check_cfg health;  /* annotations ferry.io/health-check* */
	sa_family_t ip_families[2];      /* spec.ipFamilies, AF_INET / AF_INET6 */
	uint16_t health_check_node_port; /* 0 when none */
	uint8_t n_ip_families;           /* 0..2 */
	bool headless;             /* clusterIP None, or the service.kubernetes.io/headless label */
	bool affinity_client_ip;         /* sessionAffinity: ClientIP */
	/* ns and source are shared copies (kobj_service_intern): the model
	 * does that on upsert; sources leave it false. */
	bool interned;
	/* proxy_name and the arrays live in the allocation name starts
	 * (kobj_service_pack, on upsert); sources leave it false. */
	bool packed;
};

/* One endpoint of an EndpointSlice (one address; slices with several addresses
 * per endpoint are split into several entries, all the conditions copied). */
struct kobj_endpoint {
	struct inet_addr addr;
	bool ready;        /* conditions.ready; absent means true */
	bool serving;      /* conditions.serving; absent means the value of ready */
	bool terminating;  /* conditions.terminating; absent means false */
	uint8_t n_hint_zones; /* decoders take at most 64 (Kubernetes allows 8) */
	char *node_name;   /* NULL when absent */
	char **hint_zones; /* hints.forZones[].name (the endpoint's own zone is
			    * not kept: kube-proxy routes by the hints alone) */
};

/* One entry of an EndpointSlice's ports. */
struct slice_port {
	const char *name;              /* shared copy; NULL when unnamed */
	enum inet_proto proto;
	uint16_t port;
};

/* A discovery.k8s.io/v1 EndpointSlice (v1 Endpoints are converted to one slice
 * per address family, named after the Endpoints object). Fields ordered by
 * size, counts in 32 bits (decoders bound them far lower): 72 bytes, one
 * per slice held. */
struct kobj_slice {
	char *ns;
	char *name;
	char *source;              /* file path or "kube", for logs */
	char *service_name;        /* label kubernetes.io/service-name */
	struct kobj_endpoint *endpoints;
	struct slice_port *ports;
	/* Annotation endpoints.kubernetes.io/last-change-trigger-time as Unix
	 * seconds (network programming latency); 0 when absent or malformed. */
	double trigger_time_s;
	uint32_t n_endpoints;
	uint32_t n_ports;
	sa_family_t family;        /* addressType IPv4 -> AF_INET, IPv6 -> AF_INET6 */
	/* ns, source, service_name and the endpoints' node_names are
	 * shared copies (kobj_slice_intern): the model does that on upsert;
	 * sources leave it false. */
	bool interned;
	/* The endpoint and port arrays live in the allocation name starts
	 * (kobj_slice_pack, on upsert); sources leave it false. */
	bool packed;
};

/* This node, as the proxy sees it. */
struct kobj_node {
	char *name;
	char *zone;                /* label topology.kubernetes.io/zone, or NULL */
	struct inet_addr *addrs;   /* InternalIPs first, then ExternalIPs, each in the object's order */
	size_t n_addrs;
	/* kube-proxy's node eligibility (its /healthz answers 503 when either
	 * holds): metadata.deletionTimestamp is set; spec.taints has the
	 * cluster autoscaler's ToBeDeletedByClusterAutoscaler. */
	bool deleting;
	bool to_be_deleted;
};

/* This host's addresses as its kernel has them (read over rtnetlink by the
 * program, not from the API): what node ports open on. */
struct host_addrs {
	struct inet_addr *addrs;   /* every interface address, sorted, distinct */
	size_t n_addrs;
	/* Per family (index 0 IPv4, 1 IPv6) the source address the kernel
	 * picks for the default route; family 0 when there is none. Without
	 * a Node object this is what "primary" means. */
	struct inet_addr default_src[2];
};

#endif
