/* Decoding of Kubernetes objects (as jansson values) into model structs.
 *
 * The same functions serve the manifest directory and, later, objects read
 * from the Kubernetes API: each one is a pure function of (json value,
 * options) to a freshly allocated struct or an error. Nothing here logs; a
 * failed decode fills a struct kdecode_error that names the object, the field
 * and what is wrong, and the caller decides how loudly to report it.
 *
 * The rule for bad input is simple: any invalid field we read (wrong JSON
 * type, out of range, unknown enum value, bad address...) rejects the whole
 * object. Fields ferry does not use are not looked at. JSON null is taken as
 * "absent" everywhere, as the Kubernetes API does.
 */
#ifndef FERRY_KDECODE_H
#define FERRY_KDECODE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "model-t.h"

/* Returned (positive) by kdecode_slice for objects that are valid but that
 * ferry does not use (addressType FQDN). *ret is then NULL. */
#define KDECODE_IGNORED 1

/* The namespace of an object whose metadata.namespace is absent, null or
 * "" (what the API server assigns on create). It is the object's key
 * everywhere: in the decoded structs, and in the Kubernetes informers'
 * stores (kube_informer_config.default_namespace), so that a delete or a
 * relist finds what an add stored. */
#define KDECODE_DEFAULT_NAMESPACE "default"

/* Bounds on hostile input; beyond them an object is rejected. */
#define KDECODE_MAX_STRING 253   /* names, nodeName, zone, addresses... */
#define KDECODE_MAX_ITEMS 10000  /* entries of any one list */
#define KDECODE_MAX_ADDRESSES 100 /* addresses of one EndpointSlice endpoint */

struct kdecode_opts {
	/* Standalone mode: accept 127.0.0.0/8 and ::1 as cluster, external and
	 * load balancer IPs and as endpoint addresses. Otherwise they are
	 * rejected (a cluster object pointing at loopback is a mistake or an
	 * attack). */
	bool allow_loopback;
	/* Copied into ->source of every decoded object (file path or "kube");
	 * NULL leaves ->source NULL. */
	const char *source;
};

/* What went wrong, ready to be printed as "OBJECT: FIELD: MESSAGE". */
struct kdecode_error {
	char object[320];  /* "Service default/web"; kind alone if the name is unknown */
	char field[160];   /* "spec.ports[1].port"; "" for the object as a whole */
	char message[192]; /* "70000 is out of range 1-65535" */
	/* The object's namespace and name once its metadata was found valid
	 * (namespace defaulted), so a caller can tell which object it was;
	 * both "" when the metadata itself is what is wrong. */
	char ns[64];
	char name[KDECODE_MAX_STRING + 1];
};

enum kdecode_kind {
	KDECODE_KIND_INVALID = 0, /* not a mapping, or no kind: reject */
	KDECODE_KIND_OTHER,       /* some kind ferry ignores */
	KDECODE_KIND_SERVICE,     /* v1 Service */
	KDECODE_KIND_SLICE,       /* discovery.k8s.io/v1 EndpointSlice */
	KDECODE_KIND_ENDPOINTS,   /* v1 Endpoints */
	KDECODE_KIND_LIST,        /* List, ServiceList, ...: anything *List with items */
};

/* Say what obj is from its apiVersion and kind. list, when obj is an item of
 * a list, is that list: items without their own kind (as in a ServiceList
 * from the API) take the list's kind minus "List" and its apiVersion.
 * Never fails; see enum kdecode_kind. */
enum kdecode_kind kdecode_classify(const json_t *obj, const json_t *list);

/* Decode a v1 Service. On success returns 0 and sets *ret (owned by the
 * caller; free with kobj_service_free). Returns -EINVAL with *err filled for
 * an invalid object, or -ENOMEM. apiVersion and kind are not checked (use
 * kdecode_classify). err must not be NULL. */
int kdecode_service(const json_t *obj, const struct kdecode_opts *opts,
		    struct kobj_service **ret, struct kdecode_error *err);

/* Decode a discovery.k8s.io/v1 EndpointSlice. Returns 0 and sets *ret,
 * KDECODE_IGNORED (and *ret = NULL) for an FQDN slice, -EINVAL with *err
 * filled, or -ENOMEM. Endpoints with several addresses become several
 * kobj_endpoint entries; ports without a port number ("all ports") are
 * skipped. */
int kdecode_slice(const json_t *obj, const struct kdecode_opts *opts,
		  struct kobj_slice **ret, struct kdecode_error *err);

/* Decode a v1 Endpoints object into slices: one per (subset, address
 * family) that has addresses, named "NAME:SUBSET:ipv4" / "NAME:SUBSET:ipv6"
 * (a colon cannot occur in a real object name, so these never collide with
 * real EndpointSlices), with service_name = NAME. addresses are ready and
 * serving, notReadyAddresses neither. On success returns 0 and sets
 * *ret_slices to an array of *ret_n slices (possibly 0, array NULL), which
 * the caller frees with kdecode_slices_free. Otherwise -EINVAL with *err
 * filled, or -ENOMEM, and nothing is returned. */
int kdecode_endpoints(const json_t *obj, const struct kdecode_opts *opts,
		      struct kobj_slice ***ret_slices, size_t *ret_n,
		      struct kdecode_error *err);

/* Decode a v1 Node: its name, the zone label (topology.kubernetes.io/zone,
 * else the deprecated failure-domain.beta.kubernetes.io/zone) and its
 * InternalIP and ExternalIP addresses in status order (other address types
 * are skipped). Returns 0 and sets *ret (free with kobj_node_free), -EINVAL
 * with *err filled, or -ENOMEM. */
int kdecode_node(const json_t *obj, const struct kdecode_opts *opts, struct kobj_node **ret,
		 struct kdecode_error *err);

/* An upper bound on the model entries (objects, ports, endpoints and their
 * copies of hint zones) that decoding obj as kind would allocate, counted
 * from the shape of obj without validating it. An EndpointSlice endpoint
 * with A addresses and Z hint zones becomes A entries holding Z zones each,
 * so a value repeated by YAML aliases can cost far more than its nodes:
 * callers bound the sum of this over a file before decoding. Cheap (no
 * allocation, one look at each list's length); 0 for kinds not decoded. */
size_t kdecode_cost(const json_t *obj, enum kdecode_kind kind);

/* Free an array of n slices and the array. Accepts NULL. */
void kdecode_slices_free(struct kobj_slice **slices, size_t n);

#endif
