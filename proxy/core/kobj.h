/* Lifetimes of the model objects declared in model-t.h. */
#ifndef FERRY_KOBJ_H
#define FERRY_KOBJ_H

#include "model-t.h"

/* Allocate a zeroed Service with Kubernetes defaults applied (type ClusterIP,
 * affinity timeout 10800 s, policies Cluster, health defaults). NULL on ENOMEM. */
struct kobj_service *kobj_service_new(void);
/* Free a Service and everything it points at. Accepts NULL; returns NULL. */
struct kobj_service *kobj_service_free(struct kobj_service *svc);

/* Allocate a zeroed EndpointSlice. NULL on ENOMEM. */
struct kobj_slice *kobj_slice_new(void);
/* Free a slice and everything it points at. Accepts NULL; returns NULL. */
struct kobj_slice *kobj_slice_free(struct kobj_slice *slice);

/* Allocate a zeroed Node. NULL on ENOMEM. */
struct kobj_node *kobj_node_new(void);

/* Replace the strings that repeat across objects by shared copies
 * (intern.h) and set ->interned: a service's namespace and source; a
 * slice's namespace, source, service name and its endpoints' node names.
 * Freeing works either way. On ENOMEM the object is left as it
 * was. 0 or -ENOMEM; an object already interned is left alone. */
int kobj_service_intern(struct kobj_service *svc);
int kobj_slice_intern(struct kobj_slice *slice);
/* Move an object's own name and arrays into one allocation, which its name
 * starts (setting ->packed): the model then holds two allocations per
 * object instead of four or five. A service's name, proxy_name, ports,
 * cluster_ips, external_ips, lb_ips and source_ranges; a slice's name,
 * endpoints and ports. The struct keeps its address; shared copies
 * (interned strings, port names) and the endpoints' hint lists stay where
 * they are. Call before the object is stored anywhere that reads its name
 * or arrays: their addresses change. 0, or -ENOMEM with the object as it
 * was (freeing works either way); a packed object, or one without a name,
 * is left alone. */
int kobj_service_pack(struct kobj_service *svc);
int kobj_slice_pack(struct kobj_slice *slice);
/* Free a node. Accepts NULL; returns NULL. */
struct kobj_node *kobj_node_free(struct kobj_node *node);

/* The ferry.io/balance annotation value of algo ("round-robin"...), so a
 * printed plan reads like the manifest; "?" when out of range. The one
 * table of names: decoding uses balance_algo_parse. */
const char *balance_algo_name(enum balance_algo algo);
/* The algorithm an annotation value names: 0 and *ret, or -EINVAL. */
int balance_algo_parse(const char *name, enum balance_algo *ret);
/* The accepted names, for error messages ("round-robin, least-conn, ..."). */
const char *balance_algo_names(void);

/* Port names as objects hold them: *ret is the shared copy of s, or NULL
 * when s is NULL or "" (unnamed). 0 or -ENOMEM. */
int kobj_port_name(const char *s, const char **ret);
/* Whether two optional strings (NULL: absent, e.g. an unnamed port) are
 * equal; shared copies of equal strings compare by pointer first. */
bool kobj_str_eq(const char *a, const char *b);

/* Health check defaults (2000 ms interval, 1000 ms timeout, rise 2, fall 3). */
void kobj_health_defaults(struct health_check_cfg *ret);

#endif
