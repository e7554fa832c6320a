/* kdecode: every field of Service, EndpointSlice and Endpoints decoded, and
 * hostile objects rejected with the right field named. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kdecode.h"
#include "kobj.h"
#include "yaml_json.h"

static const struct kdecode_opts opts = { .allow_loopback = false, .source = "test.yaml" };
static const struct kdecode_opts opts_lo = { .allow_loopback = true, .source = NULL };
static struct kdecode_error err;

/* One YAML document as a json_t (new reference). */
static json_t *y(const char *text)
{
	struct yaml_json_doc *docs;
	struct yaml_json_error perr;
	size_t n;
	json_t *v;

	cr_assert_eq(yaml_json_parse(text, strlen(text), NULL, &docs, &n, &perr), 0,
		     "fixture: line %u: %s", perr.line, perr.message);
	cr_assert_eq(n, 1);
	v = json_incref(docs[0].root);
	yaml_json_docs_free(docs, n);
	return v;
}

static int svc_decode(const char *text, struct kobj_service **ret)
{
	json_t *v = y(text);
	int r = kdecode_service(v, &opts, ret, &err);

	json_decref(v);
	return r;
}

static int slice_decode(const char *text, struct kobj_slice **ret)
{
	json_t *v = y(text);
	int r = kdecode_slice(v, &opts, ret, &err);

	json_decref(v);
	return r;
}

static const char *fmt(const struct inet_addr *a)
{
	static char buf[4][INET_ADDR_STRLEN];
	static int i;

	return inet_addr_format(a, buf[i++ % 4]);
}

#define SVC_HEAD "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"

/* Expect a Service to be rejected with exactly this field, the message
 * containing msg. */
static void svc_bad(const char *text, const char *field, const char *msg)
{
	struct kobj_service *svc = NULL;
	int r = svc_decode(text, &svc);

	cr_assert_eq(r, -EINVAL, "accepted: %s", text);
	cr_assert_null(svc);
	cr_assert_str_eq(err.field, field, "field \"%s\", message \"%s\"", err.field, err.message);
	cr_assert(strstr(err.message, msg), "message \"%s\" lacks \"%s\"", err.message, msg);
}

Test(kdecode, service_every_field)
{
	struct kobj_service *svc;
	int r = svc_decode(
		"apiVersion: v1\n"
		"kind: Service\n"
		"metadata:\n"
		"  name: web\n"
		"  namespace: shop\n"
		"  labels:\n"
		"    service.kubernetes.io/service-proxy-name: ferry\n"
		"  annotations:\n"
		"    ferry.io/balance: maglev\n"
		"    ferry.io/health-check: tcp\n"
		"    ferry.io/health-check-interval: \"500\"\n"
		"    ferry.io/health-check-timeout: \"200\"\n"
		"    ferry.io/health-check-rise: \"4\"\n"
		"    ferry.io/health-check-fall: \"5\"\n"
		"spec:\n"
		"  type: LoadBalancer\n"
		"  clusterIP: 10.96.0.10\n"
		"  clusterIPs: [10.96.0.10, \"fd00::10\"]\n"
		"  ipFamilies: [IPv4, IPv6]\n"
		"  ports:\n"
		"  - {name: http, port: 80, targetPort: 8080, nodePort: 30080}\n"
		"  - {name: dns, protocol: UDP, port: 53, targetPort: dns-port}\n"
		"  - {name: sig, protocol: SCTP, port: 9000}\n"
		"  - {name: str, port: 81, targetPort: \"8081\"}\n"
		"  externalIPs: [192.0.2.7]\n"
		"  loadBalancerSourceRanges: [\" 10.0.0.0/8 \", \"2001:db8::/32\"]\n"
		"  sessionAffinity: ClientIP\n"
		"  sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}\n"
		"  externalTrafficPolicy: Local\n"
		"  internalTrafficPolicy: Local\n"
		"  healthCheckNodePort: 32000\n"
		"status:\n"
		"  loadBalancer:\n"
		"    ingress: [{ip: 203.0.113.5}, {hostname: lb.example.com}, {ip: \"2001:db8::5\"}]\n",
		&svc);

	cr_assert_eq(r, 0, "%s: %s: %s", err.object, err.field, err.message);
	cr_assert_str_eq(svc->ns, "shop");
	cr_assert_str_eq(svc->name, "web");
	cr_assert_str_eq(svc->source, "test.yaml");
	cr_assert_eq(svc->type, SVC_TYPE_LOAD_BALANCER);
	cr_assert_not(svc->headless);
	cr_assert_str_eq(svc->proxy_name, "ferry");
	cr_assert_eq(svc->n_cluster_ips, 2);
	cr_assert_str_eq(fmt(&svc->cluster_ips[0]), "10.96.0.10");
	cr_assert_str_eq(fmt(&svc->cluster_ips[1]), "fd00::10");
	cr_assert_eq(svc->n_ip_families, 2);
	cr_assert_eq(svc->ip_families[0], AF_INET);
	cr_assert_eq(svc->ip_families[1], AF_INET6);

	cr_assert_eq(svc->n_ports, 4);
	cr_assert_str_eq(svc->ports[0].name, "http");
	cr_assert_eq(svc->ports[0].proto, INET_PROTO_TCP);
	cr_assert_eq(svc->ports[0].port, 80);
	cr_assert_eq(svc->ports[0].target_port, 8080);
	cr_assert_eq(svc->ports[0].node_port, 30080);
	cr_assert_eq(svc->ports[1].proto, INET_PROTO_UDP);
	cr_assert_eq(svc->ports[1].target_port, 0);
	cr_assert_str_eq(svc->ports[1].target_port_name, "dns-port");
	cr_assert_eq(svc->ports[2].proto, INET_PROTO_SCTP);
	cr_assert_eq(svc->ports[2].target_port, 9000, "absent targetPort = port");
	cr_assert_eq(svc->ports[3].target_port, 8081);

	cr_assert_eq(svc->n_external_ips, 1);
	cr_assert_str_eq(fmt(&svc->external_ips[0]), "192.0.2.7");
	cr_assert_eq(svc->n_lb_ips, 2, "hostname-only ingress ignored");
	cr_assert_str_eq(fmt(&svc->lb_ips[0]), "203.0.113.5");
	cr_assert_str_eq(fmt(&svc->lb_ips[1]), "2001:db8::5");
	cr_assert_eq(svc->n_source_ranges, 2);
	cr_assert_str_eq(fmt(&svc->source_ranges[0].addr), "10.0.0.0");
	cr_assert_eq(svc->source_ranges[0].len, 8);
	cr_assert_eq(svc->source_ranges[1].len, 32);

	cr_assert(svc->affinity_client_ip);
	cr_assert_eq(svc->affinity_timeout_s, 600);
	cr_assert_eq(svc->external_policy, TRAFFIC_POLICY_LOCAL);
	cr_assert_eq(svc->internal_policy, TRAFFIC_POLICY_LOCAL);
	cr_assert_eq(svc->health_check_node_port, 32000);

	cr_assert_eq(svc->balance, BALANCE_MAGLEV);
	cr_assert(svc->health.enabled);
	cr_assert_eq(svc->health.interval_ms, 500);
	cr_assert_eq(svc->health.timeout_ms, 200);
	cr_assert_eq(svc->health.rise, 4);
	cr_assert_eq(svc->health.fall, 5);
	kobj_service_free(svc);
}

Test(kdecode, service_defaults)
{
	struct kobj_service *svc;

	cr_assert_eq(svc_decode("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n"
				"spec: {clusterIP: 10.0.0.1, ports: [{port: 80}], "
				"externalTrafficPolicy: Global}\n",
				&svc),
		     0, "%s: %s", err.field, err.message);
	cr_assert_str_eq(svc->ns, "default");
	cr_assert_eq(svc->type, SVC_TYPE_CLUSTER_IP);
	cr_assert_eq(svc->n_cluster_ips, 1);
	cr_assert_eq(svc->ports[0].proto, INET_PROTO_TCP);
	cr_assert_eq(svc->ports[0].target_port, 80);
	cr_assert_null(svc->ports[0].name, "an unnamed port has no name");
	cr_assert_eq(svc->ports[0].node_port, 0);
	cr_assert_not(svc->affinity_client_ip);
	cr_assert_eq(svc->affinity_timeout_s, 10800);
	cr_assert_eq(svc->external_policy, TRAFFIC_POLICY_CLUSTER, "Global is Cluster");
	cr_assert_eq(svc->internal_policy, TRAFFIC_POLICY_CLUSTER);
	cr_assert_eq(svc->balance, BALANCE_ROUND_ROBIN);
	cr_assert_not(svc->health.enabled);
	cr_assert_eq(svc->health.interval_ms, 2000);
	cr_assert_null(svc->proxy_name);
	cr_assert_eq(svc->n_lb_ips, 0);
	kobj_service_free(svc);

	/* No spec at all is a valid, empty ClusterIP service. */
	cr_assert_eq(svc_decode("apiVersion: v1\nkind: Service\nmetadata: {name: b}\n", &svc), 0);
	cr_assert_eq(svc->n_ports, 0);
	kobj_service_free(svc);
}

Test(kdecode, service_headless_variants)
{
	struct kobj_service *svc;

	cr_assert_eq(svc_decode(SVC_HEAD "spec: {clusterIP: None, ports: [{port: 80}]}\n", &svc), 0);
	cr_assert(svc->headless);
	cr_assert_eq(svc->n_cluster_ips, 0);
	kobj_service_free(svc);

	cr_assert_eq(svc_decode(SVC_HEAD "spec: {clusterIPs: [None]}\n", &svc), 0);
	cr_assert(svc->headless);
	kobj_service_free(svc);

	cr_assert_eq(svc_decode("apiVersion: v1\nkind: Service\nmetadata:\n  name: h\n  labels:\n"
				"    service.kubernetes.io/headless: \"\"\n"
				"spec: {clusterIP: 10.0.0.3}\n",
				&svc),
		     0);
	cr_assert(svc->headless);
	kobj_service_free(svc);

	cr_assert_eq(svc_decode(SVC_HEAD "spec: {clusterIP: \"\"}\n", &svc), 0, "empty is ignored");
	cr_assert_not(svc->headless);
	cr_assert_eq(svc->n_cluster_ips, 0);
	kobj_service_free(svc);

	cr_assert_eq(svc_decode(SVC_HEAD "spec: {type: ExternalName, externalName: a.example.com}\n",
				&svc),
		     0);
	cr_assert_eq(svc->type, SVC_TYPE_EXTERNAL_NAME);
	kobj_service_free(svc);

	cr_assert_eq(svc_decode(SVC_HEAD "spec: {type: NodePort, ports: [{port: 80, nodePort: 0}]}\n",
				&svc),
		     0);
	cr_assert_eq(svc->type, SVC_TYPE_NODE_PORT);
	kobj_service_free(svc);
}

Test(kdecode, service_loopback_only_standalone)
{
	struct kobj_service *svc;
	json_t *v = y(SVC_HEAD "spec: {clusterIP: 127.0.0.10, externalIPs: [\"::1\"]}\n");

	cr_assert_eq(kdecode_service(v, &opts, &svc, &err), -EINVAL);
	cr_assert_str_eq(err.field, "spec.clusterIP");
	cr_assert(strstr(err.message, "loopback"));
	cr_assert_eq(kdecode_service(v, &opts_lo, &svc, &err), 0);
	cr_assert_str_eq(fmt(&svc->cluster_ips[0]), "127.0.0.10");
	cr_assert_null(svc->source);
	kobj_service_free(svc);
	json_decref(v);
}

Test(kdecode, service_hostile)
{
	svc_bad(SVC_HEAD "spec: {ports: [{port: 80, protocol: ICMP}]}\n", "spec.ports[0].protocol",
		"unknown protocol \"ICMP\"");
	svc_bad(SVC_HEAD "spec: {ports: [{port: 80}, {port: 0}]}\n", "spec.ports[1].port",
		"0 is out of range 1-65535");
	svc_bad(SVC_HEAD "spec: {ports: [{port: 80}, {port: 70000}]}\n", "spec.ports[1].port",
		"70000 is out of range 1-65535");
	svc_bad(SVC_HEAD "spec: {ports: [{name: a}]}\n", "spec.ports[0].port", "is required");
	svc_bad(SVC_HEAD "spec: {ports: [{port: \"80\"}]}\n", "spec.ports[0].port",
		"expected an integer, got a string");
	svc_bad(SVC_HEAD "spec: {ports: [{port: 80.5}]}\n", "spec.ports[0].port",
		"expected an integer");
	svc_bad(SVC_HEAD "spec: {ports: [{port: 80, nodePort: 65536}]}\n", "spec.ports[0].nodePort",
		"out of range 0-65535");
	svc_bad(SVC_HEAD "spec: {ports: [{port: 80, nodePort: -1}]}\n", "spec.ports[0].nodePort",
		"out of range");
	svc_bad(SVC_HEAD "spec: {ports: [{port: 80, targetPort: true}]}\n",
		"spec.ports[0].targetPort", "expected an integer or a port name, got a boolean");
	svc_bad(SVC_HEAD "spec: {ports: [{port: 80, targetPort: 0}]}\n",
		"spec.ports[0].targetPort", "out of range 1-65535");
	svc_bad(SVC_HEAD "spec: {ports: [{port: 80, targetPort: \"99999\"}]}\n",
		"spec.ports[0].targetPort", "out of range");
	svc_bad(SVC_HEAD "spec: {ports: [{port: 80, targetPort: \"Bad_Name\"}]}\n",
		"spec.ports[0].targetPort", "invalid port name");
	svc_bad(SVC_HEAD "spec: {ports: [{port: 80, name: a}, {port: 80, name: b}]}\n",
		"spec.ports[1].port", "duplicate port 80/TCP");
	svc_bad(SVC_HEAD "spec: {ports: [{port: 80, name: a}, {port: 81, name: a}]}\n",
		"spec.ports[1].name", "duplicate port name");
	svc_bad(SVC_HEAD "spec: {ports: {port: 80}}\n", "spec.ports", "expected a list, got a mapping");
	svc_bad(SVC_HEAD "spec: {ports: [80]}\n", "spec.ports[0]", "expected a mapping");
	svc_bad(SVC_HEAD "spec: {clusterIP: 10.0.0.300}\n", "spec.clusterIP",
		"invalid IP address \"10.0.0.300\"");
	svc_bad(SVC_HEAD "spec: {clusterIP: 0.0.0.0}\n", "spec.clusterIP", "unspecified");
	svc_bad(SVC_HEAD "spec: {clusterIP: 42}\n", "spec.clusterIP", "expected a string");
	svc_bad(SVC_HEAD "spec: {clusterIPs: [10.0.0.1, 10.0.0.2]}\n", "spec.clusterIPs",
		"same family");
	svc_bad(SVC_HEAD "spec: {clusterIPs: [10.0.0.1, \"fd00::1\", 10.0.0.3]}\n", "spec.clusterIPs",
		"more than 2");
	svc_bad(SVC_HEAD "spec: {clusterIP: 10.0.0.9, clusterIPs: [10.0.0.1]}\n", "spec.clusterIP",
		"does not match");
	svc_bad(SVC_HEAD "spec: {externalIPs: [192.0.2.1, nope]}\n", "spec.externalIPs[1]",
		"invalid IP address \"nope\"");
	svc_bad(SVC_HEAD "spec: {externalIPs: [127.0.0.1]}\n", "spec.externalIPs[0]", "loopback");
	svc_bad(SVC_HEAD "spec: {loadBalancerSourceRanges: [10.0.0.0/33]}\n",
		"spec.loadBalancerSourceRanges[0]", "invalid CIDR");
	svc_bad(SVC_HEAD "status: {loadBalancer: {ingress: [{ip: 1.2.3}]}}\n",
		"status.loadBalancer.ingress[0].ip", "invalid IP");
	svc_bad(SVC_HEAD "spec: {type: Magic}\n", "spec.type", "unknown service type \"Magic\"");
	svc_bad(SVC_HEAD "spec: {sessionAffinity: Cookie}\n", "spec.sessionAffinity", "unknown");
	svc_bad(SVC_HEAD "spec: {sessionAffinityConfig: {clientIP: {timeoutSeconds: 86401}}}\n",
		"spec.sessionAffinityConfig.clientIP.timeoutSeconds", "out of range 1-86400");
	svc_bad(SVC_HEAD "spec: {sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}}\n",
		"spec.sessionAffinityConfig.clientIP.timeoutSeconds", "out of range");
	svc_bad(SVC_HEAD "spec: {externalTrafficPolicy: Nearest}\n", "spec.externalTrafficPolicy",
		"unknown traffic policy");
	svc_bad(SVC_HEAD "spec: {internalTrafficPolicy: 1}\n", "spec.internalTrafficPolicy",
		"expected a string");
	svc_bad(SVC_HEAD "spec: {healthCheckNodePort: 70000}\n", "spec.healthCheckNodePort",
		"out of range");
	svc_bad(SVC_HEAD "spec: {ipFamilies: [IPv5]}\n", "spec.ipFamilies[0]", "unknown IP family");
	svc_bad(SVC_HEAD "spec: {ipFamilies: [IPv4, IPv4]}\n", "spec.ipFamilies[1]", "duplicate");
	svc_bad(SVC_HEAD "spec: []\n", "spec", "expected a mapping, got a list");
}

Test(kdecode, service_hostile_metadata_and_annotations)
{
	svc_bad("apiVersion: v1\nkind: Service\nspec: {}\n", "metadata", "is required");
	svc_bad("apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\n", "metadata.name",
		"is required");
	svc_bad("apiVersion: v1\nkind: Service\nmetadata: {name: Web_1}\n", "metadata.name",
		"invalid name");
	svc_bad("apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: 7}\n",
		"metadata.namespace", "expected a string, got an integer");
	svc_bad("apiVersion: v1\nkind: Service\nmetadata: {name: a, labels: [x]}\n",
		"metadata.labels", "expected a mapping");
	svc_bad("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  annotations:\n"
		"    ferry.io/balance: fastest\n",
		"metadata.annotations[\"ferry.io/balance\"]", "unknown balance algorithm \"fastest\"");
	svc_bad("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  annotations:\n"
		"    ferry.io/health-check: http\n",
		"metadata.annotations[\"ferry.io/health-check\"]", "unknown health check");
	svc_bad("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  annotations:\n"
		"    ferry.io/health-check-interval: 500\n",
		"metadata.annotations[\"ferry.io/health-check-interval\"]",
		"expected a string, got an integer");
	svc_bad("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  annotations:\n"
		"    ferry.io/health-check-timeout: \"1s\"\n",
		"metadata.annotations[\"ferry.io/health-check-timeout\"]", "not a whole number");
	svc_bad("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  annotations:\n"
		"    ferry.io/health-check-fall: \"0\"\n",
		"metadata.annotations[\"ferry.io/health-check-fall\"]", "out of range 1-1000");
	svc_bad("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  labels:\n"
		"    service.kubernetes.io/service-proxy-name: [x]\n",
		"metadata.labels[\"service.kubernetes.io/service-proxy-name\"]", "expected a string");
}

Test(kdecode, error_names_object)
{
	struct kobj_service *svc;

	cr_assert_eq(svc_decode(SVC_HEAD "spec: {ports: [{port: 1}, {port: 70000}]}\n", &svc),
		     -EINVAL);
	cr_assert_str_eq(err.object, "Service shop/web");
	cr_assert_str_eq(err.field, "spec.ports[1].port");
	cr_assert_str_eq(err.message, "70000 is out of range 1-65535");
}

Test(kdecode, huge_strings_rejected_and_not_echoed)
{
	size_t n = 1 << 20;
	char *big = malloc(n + 1), *text = malloc(n + 256);
	struct kobj_service *svc;

	memset(big, 'a', n);
	big[n] = '\0';
	snprintf(text, n + 256, SVC_HEAD "spec: {ports: [{port: 80, protocol: %s}]}\n", big);
	svc_bad(text, "spec.ports[0].protocol", "longer than");
	snprintf(text, n + 256, "apiVersion: v1\nkind: Service\nmetadata: {name: %s}\n", big);
	cr_assert_eq(svc_decode(text, &svc), -EINVAL);
	cr_assert_str_eq(err.field, "metadata.name");
	cr_assert_lt(strlen(err.object), 100, "object label is cut short");
	/* Control characters never reach the logs. */
	svc_bad(SVC_HEAD "spec: {type: \"a\\nb\\u001b[31m\"}\n", "spec.type", "\"a?b?[31m\"");
	free(big);
	free(text);
}

Test(kdecode, not_a_mapping)
{
	struct kobj_service *svc;
	json_t *v = json_string("x");

	cr_assert_eq(kdecode_service(v, &opts, &svc, &err), -EINVAL);
	cr_assert_str_eq(err.object, "Service");
	json_decref(v);
}

#define SLICE_HEAD                                                                           \
	"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-abc12\n" \
	"  namespace: shop\n  labels: {kubernetes.io/service-name: web}\n"

Test(kdecode, slice_every_field)
{
	struct kobj_slice *sl;
	int r = slice_decode(SLICE_HEAD
			     "addressType: IPv4\n"
			     "endpoints:\n"
			     "- addresses: [10.1.0.5, 10.1.0.6]\n"
			     "  conditions: {ready: true, serving: true, terminating: false}\n"
			     "  nodeName: node-a\n"
			     "  zone: zone-1\n"
			     "  hints: {forZones: [{name: zone-1}, {name: zone-2}]}\n"
			     "- addresses: [10.1.0.7]\n"
			     "  conditions: {ready: false, terminating: true}\n"
			     "- addresses: [10.1.0.8]\n"
			     "  conditions: {ready: false, serving: true, terminating: true}\n"
			     "- addresses: [10.1.0.9]\n"
			     "ports:\n"
			     "- {name: http, port: 8080, protocol: TCP}\n"
			     "- {name: dns, port: 53, protocol: UDP}\n"
			     "- {name: all, port: null}\n"
			     "- {name: \"\", port: 9000}\n",
			     &sl);

	cr_assert_eq(r, 0, "%s: %s", err.field, err.message);
	cr_assert_str_eq(sl->ns, "shop");
	cr_assert_str_eq(sl->name, "web-abc12");
	cr_assert_str_eq(sl->service_name, "web");
	cr_assert_str_eq(sl->source, "test.yaml");
	cr_assert_eq(sl->family, AF_INET);
	cr_assert_eq(sl->n_endpoints, 5, "two addresses make two entries");
	cr_assert_str_eq(fmt(&sl->endpoints[0].addr), "10.1.0.5");
	cr_assert_str_eq(fmt(&sl->endpoints[1].addr), "10.1.0.6");
	for (int i = 0; i < 2; i++) {
		cr_assert(sl->endpoints[i].ready);
		cr_assert(sl->endpoints[i].serving);
		cr_assert_not(sl->endpoints[i].terminating);
		cr_assert_str_eq(sl->endpoints[i].node_name, "node-a");
		cr_assert_eq(sl->endpoints[i].n_hint_zones, 2);
		cr_assert_str_eq(sl->endpoints[i].hint_zones[1], "zone-2");
	}
	cr_assert_not(sl->endpoints[2].ready);
	cr_assert_not(sl->endpoints[2].serving, "serving absent = ready");
	cr_assert(sl->endpoints[2].terminating);
	cr_assert_null(sl->endpoints[2].node_name);
	cr_assert(sl->endpoints[3].serving);
	cr_assert(sl->endpoints[4].ready, "no conditions = ready");
	cr_assert(sl->endpoints[4].serving);
	cr_assert_not(sl->endpoints[4].terminating);

	cr_assert_eq(sl->n_ports, 3, "port null (all ports) skipped");
	cr_assert_str_eq(sl->ports[0].name, "http");
	cr_assert_eq(sl->ports[0].port, 8080);
	cr_assert_eq(sl->ports[1].proto, INET_PROTO_UDP);
	cr_assert_null(sl->ports[2].name, "an unnamed port has no name");
	cr_assert_eq(sl->ports[2].port, 9000);
	kobj_slice_free(sl);
}

Test(kdecode, slice_ipv6_and_empty)
{
	struct kobj_slice *sl;

	cr_assert_eq(slice_decode(SLICE_HEAD "addressType: IPv6\nendpoints: [{addresses: [\"fd00::5\"]}]\n",
				  &sl),
		     0);
	cr_assert_eq(sl->family, AF_INET6);
	cr_assert_str_eq(fmt(&sl->endpoints[0].addr), "fd00::5");
	kobj_slice_free(sl);
	cr_assert_eq(slice_decode(SLICE_HEAD "addressType: IPv4\nendpoints: null\nports: null\n", &sl), 0);
	cr_assert_eq(sl->n_endpoints, 0);
	cr_assert_eq(sl->n_ports, 0);
	kobj_slice_free(sl);
}

Test(kdecode, slice_fqdn_ignored)
{
	struct kobj_slice *sl = (void *)1;

	cr_assert_eq(slice_decode(SLICE_HEAD "addressType: FQDN\nendpoints: [{addresses: [a.example.com]}]\n",
				  &sl),
		     KDECODE_IGNORED);
	cr_assert_null(sl);
}

static void slice_bad(const char *text, const char *field, const char *msg)
{
	struct kobj_slice *sl = NULL;
	int r = slice_decode(text, &sl);

	cr_assert_eq(r, -EINVAL, "accepted: %s", text);
	cr_assert_null(sl);
	cr_assert_str_eq(err.field, field, "field \"%s\", message \"%s\"", err.field, err.message);
	cr_assert(strstr(err.message, msg), "message \"%s\" lacks \"%s\"", err.message, msg);
}

Test(kdecode, slice_hostile)
{
	slice_bad("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\n"
		  "addressType: IPv4\n",
		  "metadata.labels[\"kubernetes.io/service-name\"]", "is required");
	slice_bad(SLICE_HEAD "endpoints: []\n", "addressType", "is required");
	slice_bad(SLICE_HEAD "addressType: IPX\n", "addressType", "unknown address type");
	slice_bad(SLICE_HEAD "addressType: IPv6\nendpoints: [{addresses: [10.0.0.1]}]\n",
		  "endpoints[0].addresses[0]", "does not match addressType IPv6");
	slice_bad(SLICE_HEAD "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1, \"fd00::1\"]}]\n",
		  "endpoints[0].addresses[1]", "does not match addressType IPv4");
	slice_bad(SLICE_HEAD "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1]}, {addresses: [bogus]}]\n",
		  "endpoints[1].addresses[0]", "invalid IP address");
	slice_bad(SLICE_HEAD "addressType: IPv4\nendpoints: [{addresses: [127.0.0.1]}]\n",
		  "endpoints[0].addresses[0]", "loopback");
	slice_bad(SLICE_HEAD "addressType: IPv4\nendpoints: [{addresses: []}]\n",
		  "endpoints[0].addresses", "is required");
	/* Multi-digit indexes (paths are assembled by hand, see kdecode.c). */
	slice_bad(SLICE_HEAD "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1]},"
		  " {addresses: [10.0.0.1]}, {addresses: [10.0.0.1]}, {addresses: [10.0.0.1]},"
		  " {addresses: [10.0.0.1]}, {addresses: [10.0.0.1]}, {addresses: [10.0.0.1]},"
		  " {addresses: [10.0.0.1]}, {addresses: [10.0.0.1]}, {addresses: [10.0.0.1]},"
		  " {addresses: [10.0.0.1]}, {addresses: [10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4,"
		  " 10.0.0.5, 10.0.0.6, 10.0.0.7, 10.0.0.8, 10.0.0.9, 10.0.0.10, bogus]}]\n",
		  "endpoints[11].addresses[10]", "invalid IP address");
	slice_bad(SLICE_HEAD "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1], conditions: {ready: \"yes\"}}]\n",
		  "endpoints[0].conditions.ready", "expected a boolean, got a string");
	slice_bad(SLICE_HEAD "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1], nodeName: 5}]\n",
		  "endpoints[0].nodeName", "expected a string");
	slice_bad(SLICE_HEAD "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1], hints: {forZones: [{}]}}]\n",
		  "endpoints[0].hints.forZones[0].name", "is required");
	slice_bad(SLICE_HEAD "addressType: IPv4\nports: [{port: 70000}]\n", "ports[0].port",
		  "out of range");
	slice_bad(SLICE_HEAD "addressType: IPv4\nports: [{port: 80, protocol: ICMP}]\n",
		  "ports[0].protocol", "unknown protocol");
	slice_bad(SLICE_HEAD "addressType: IPv4\nports: [{port: \"80\"}]\n", "ports[0].port",
		  "expected an integer");
	slice_bad(SLICE_HEAD "addressType: IPv4\nendpoints: {a: 1}\n", "endpoints",
		  "expected a list");
	slice_bad("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: s\n"
		  "  labels: {kubernetes.io/service-name: 12}\naddressType: IPv4\n",
		  "metadata.labels[\"kubernetes.io/service-name\"]", "expected a string");
}

Test(kdecode, slice_too_many_addresses)
{
	char *text = malloc(1 << 16);
	size_t n = (size_t)snprintf(text, 1 << 16, SLICE_HEAD "addressType: IPv4\nendpoints:\n- addresses: [");

	for (int i = 0; i <= KDECODE_MAX_ADDRESSES; i++)
		n += (size_t)snprintf(text + n, (1 << 16) - n, "%s10.0.%d.%d", i ? ", " : "", i / 250,
				      i % 250 + 1);
	snprintf(text + n, (1 << 16) - n, "]\n");
	slice_bad(text, "endpoints[0].addresses", "more than 100");
	free(text);
}

Test(kdecode, endpoints_conversion)
{
	struct kobj_slice **slices;
	size_t n;
	json_t *v = y("apiVersion: v1\nkind: Endpoints\nmetadata: {name: legacy, namespace: ops}\n"
		      "subsets:\n"
		      "- addresses: [{ip: 10.2.0.1, nodeName: n1}, {ip: \"fd00::1\"}]\n"
		      "  notReadyAddresses: [{ip: 10.2.0.2}]\n"
		      "  ports: [{name: http, port: 80}, {name: q, port: 5000, protocol: UDP}]\n"
		      "- addresses: [{ip: 10.3.0.1}]\n"
		      "  ports: [{port: 9090}]\n"
		      "- ports: [{port: 1}]\n");

	cr_assert_eq(kdecode_endpoints(v, &opts, &slices, &n, &err), 0, "%s: %s", err.field,
		     err.message);
	json_decref(v);
	cr_assert_eq(n, 3);

	cr_assert_str_eq(slices[0]->name, "legacy:0:ipv4");
	cr_assert_str_eq(slices[0]->ns, "ops");
	cr_assert_str_eq(slices[0]->service_name, "legacy");
	cr_assert_str_eq(slices[0]->source, "test.yaml");
	cr_assert_eq(slices[0]->family, AF_INET);
	cr_assert_eq(slices[0]->n_endpoints, 2);
	cr_assert_str_eq(fmt(&slices[0]->endpoints[0].addr), "10.2.0.1");
	cr_assert(slices[0]->endpoints[0].ready);
	cr_assert(slices[0]->endpoints[0].serving);
	cr_assert_str_eq(slices[0]->endpoints[0].node_name, "n1");
	cr_assert_str_eq(fmt(&slices[0]->endpoints[1].addr), "10.2.0.2");
	cr_assert_not(slices[0]->endpoints[1].ready);
	cr_assert_not(slices[0]->endpoints[1].serving);
	cr_assert_not(slices[0]->endpoints[1].terminating);
	cr_assert_eq(slices[0]->n_ports, 2);
	cr_assert_eq(slices[0]->ports[1].proto, INET_PROTO_UDP);

	cr_assert_str_eq(slices[1]->name, "legacy:0:ipv6");
	cr_assert_eq(slices[1]->family, AF_INET6);
	cr_assert_eq(slices[1]->n_endpoints, 1);
	cr_assert_eq(slices[1]->n_ports, 2, "each family gets the subset's ports");

	cr_assert_str_eq(slices[2]->name, "legacy:1:ipv4");
	cr_assert_eq(slices[2]->n_ports, 1);
	cr_assert_eq(slices[2]->ports[0].port, 9090);
	kdecode_slices_free(slices, n);
}

Test(kdecode, endpoints_hostile)
{
	static const struct {
		const char *yaml, *field, *msg;
	} cases[] = {
		{ "subsets: [{addresses: [{ip: 300.1.1.1}]}]", "subsets[0].addresses[0].ip", "invalid IP" },
		{ "subsets: [{addresses: [{hostname: x}]}]", "subsets[0].addresses[0].ip", "is required" },
		{ "subsets: [{notReadyAddresses: [{ip: 127.0.0.1}]}]", "subsets[0].notReadyAddresses[0].ip", "loopback" },
		{ "subsets: [{addresses: [{ip: 10.0.0.1}], ports: [{name: a}]}]", "subsets[0].ports[0].port", "is required" },
		{ "subsets: [{addresses: [{ip: 10.0.0.1}], ports: [{port: 1, protocol: tcp}]}]", "subsets[0].ports[0].protocol", "unknown protocol" },
		{ "subsets: [1]", "subsets[0]", "expected a mapping" },
		{ "subsets: {}", "subsets", "expected a list" },
	};
	char text[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kobj_slice **slices = (void *)1;
		size_t n = 7;
		json_t *v;

		snprintf(text, sizeof(text),
			 "apiVersion: v1\nkind: Endpoints\nmetadata: {name: e}\n%s\n", cases[i].yaml);
		v = y(text);
		cr_assert_eq(kdecode_endpoints(v, &opts, &slices, &n, &err), -EINVAL, "%s", text);
		json_decref(v);
		cr_assert_null(slices);
		cr_assert_eq(n, 0);
		cr_assert_str_eq(err.object, "Endpoints default/e");
		cr_assert_str_eq(err.field, cases[i].field, "%s: got %s (%s)", cases[i].yaml, err.field,
				 err.message);
		cr_assert(strstr(err.message, cases[i].msg), "%s", err.message);
	}
}

Test(kdecode, classify)
{
	json_t *list = y("apiVersion: v1\nkind: ServiceList\nitems: [{metadata: {name: a}}]\n");
	json_t *item = json_array_get(json_object_get(list, "items"), 0);
	json_t *v;

	cr_assert_eq(kdecode_classify(list, NULL), KDECODE_KIND_LIST);
	cr_assert_eq(kdecode_classify(item, list), KDECODE_KIND_SERVICE, "kind from the list");
	cr_assert_eq(kdecode_classify(item, NULL), KDECODE_KIND_INVALID);
	json_decref(list);

	v = y("{apiVersion: v1, kind: Service}");
	cr_assert_eq(kdecode_classify(v, NULL), KDECODE_KIND_SERVICE);
	json_decref(v);
	v = y("{apiVersion: discovery.k8s.io/v1, kind: EndpointSlice}");
	cr_assert_eq(kdecode_classify(v, NULL), KDECODE_KIND_SLICE);
	json_decref(v);
	v = y("{apiVersion: discovery.k8s.io/v1beta1, kind: EndpointSlice}");
	cr_assert_eq(kdecode_classify(v, NULL), KDECODE_KIND_OTHER);
	json_decref(v);
	v = y("{apiVersion: v1, kind: Endpoints}");
	cr_assert_eq(kdecode_classify(v, NULL), KDECODE_KIND_ENDPOINTS);
	json_decref(v);
	v = y("{apiVersion: apps/v1, kind: Deployment}");
	cr_assert_eq(kdecode_classify(v, NULL), KDECODE_KIND_OTHER);
	json_decref(v);
	v = y("[1, 2]");
	cr_assert_eq(kdecode_classify(v, NULL), KDECODE_KIND_INVALID);
	json_decref(v);
}

/* A Node's usable addresses come InternalIPs first, so the first address of
 * a family is the node's primary one (--nodeport-addresses primary). */
Test(kdecode, node_addresses_internal_first)
{
	json_t *obj = y("kind: Node\n"
			"metadata:\n"
			"  name: n1\n"
			"  labels: {topology.kubernetes.io/zone: zone-a}\n"
			"status:\n"
			"  addresses:\n"
			"  - {type: ExternalIP, address: 203.0.113.5}\n"
			"  - {type: Hostname, address: n1.example}\n"
			"  - {type: InternalIP, address: 10.0.0.5}\n"
			"  - {type: ExternalIP, address: 2001:db8::5}\n"
			"  - {type: InternalIP, address: 'fd00::5'}\n");
	struct kobj_node *node = NULL;

	cr_assert_eq(kdecode_node(obj, &opts, &node, &err), 0, "%s: %s", err.field, err.message);
	cr_assert_str_eq(node->name, "n1");
	cr_assert_str_eq(node->zone, "zone-a");
	cr_assert_eq(node->n_addrs, 4);
	cr_expect_str_eq(fmt(&node->addrs[0]), "10.0.0.5");
	cr_expect_str_eq(fmt(&node->addrs[1]), "fd00::5");
	cr_expect_str_eq(fmt(&node->addrs[2]), "203.0.113.5");
	cr_expect_str_eq(fmt(&node->addrs[3]), "2001:db8::5");
	kobj_node_free(node);
	json_decref(obj);
}

/* kube-proxy's node eligibility for /healthz: a deletionTimestamp, or the
 * cluster autoscaler's ToBeDeletedByClusterAutoscaler taint; other taints
 * and a malformed one change nothing. */
Test(kdecode, node_deleting_and_to_be_deleted)
{
	const char *docs[] = {
		"kind: Node\nmetadata: {name: n1}\nspec:\n  taints:\n"
		"  - {key: node.kubernetes.io/unschedulable, effect: NoSchedule}\n  - {effect: NoSchedule}\n",
		"kind: Node\nmetadata: {name: n1, deletionTimestamp: '2026-12-06T08:00:00Z'}\n",
		"kind: Node\nmetadata: {name: n1}\nspec:\n  taints:\n"
		"  - {key: ToBeDeletedByClusterAutoscaler, value: '1733472000', effect: NoSchedule}\n",
	};

	for (size_t i = 0; i < 3; i++) {
		json_t *obj = y(docs[i]);
		struct kobj_node *node = NULL;

		cr_assert_eq(kdecode_node(obj, &opts, &node, &err), 0, "%s: %s", err.field, err.message);
		cr_expect_eq(node->deleting, i == 1, "doc %zu", i);
		cr_expect_eq(node->to_be_deleted, i == 2, "doc %zu", i);
		kobj_node_free(node);
		json_decref(obj);
	}
}

/* endpoints.kubernetes.io/last-change-trigger-time (RFC 3339, UTC or an
 * offset, optional fraction) becomes Unix seconds; a malformed one is 0
 * and does not reject the slice (it only feeds a metric). */
Test(kdecode, slice_trigger_time)
{
	static const struct {
		const char *value;
		double want;
	} cases[] = {
		{ "2026-12-06T08:00:00Z", 1796544000.0 },
		{ "2026-12-06T08:00:00.25Z", 1796544000.25 },
		{ "2026-12-06T09:30:00+01:30", 1796544000.0 },
		{ "yesterday", 0 },
		{ "2026-12-06T08:00:00", 0 },
	};
	char doc[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kobj_slice *sl = NULL;

		snprintf(doc, sizeof(doc),
			 "kind: EndpointSlice\n"
			 "metadata:\n"
			 "  name: s\n"
			 "  namespace: default\n"
			 "  labels: {kubernetes.io/service-name: a}\n"
			 "  annotations: {endpoints.kubernetes.io/last-change-trigger-time: '%s'}\n"
			 "addressType: IPv4\n"
			 "endpoints: []\n",
			 cases[i].value);
		cr_assert_eq(slice_decode(doc, &sl), 0, "%s: %s: %s", cases[i].value, err.field,
			     err.message);
		cr_expect_float_eq(sl->trigger_time_s, cases[i].want, 1e-6, "%s", cases[i].value);
		kobj_slice_free(sl);
	}
}
