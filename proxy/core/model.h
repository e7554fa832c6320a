/* The model: the current Services, EndpointSlices and this node.
 *
 * Sources feed it with upserts and deletes; the planner reads it. It is used
 * from the control thread only (no locking). Every change bumps a generation
 * counter, so the sync runner knows when a new plan is due.
 */
#ifndef FERRY_MODEL_H
#define FERRY_MODEL_H

#include <stdint.h>

#include "model-t.h"

struct model;

/* Allocate an empty model. NULL on ENOMEM. */
struct model *model_new(void);
/* Free the model and every object it holds. Accepts NULL; returns NULL. */
struct model *model_free(struct model *m);

/* Insert or replace the Service (ns, name). The model takes ownership of svc
 * in every case (on error it is freed). Returns 0 or -ENOMEM. */
int model_upsert_service(struct model *m, struct kobj_service *svc);
/* Remove the Service (ns, name); removing an absent one is success (0). */
int model_delete_service(struct model *m, const char *ns, const char *name);

/* Insert or replace the EndpointSlice (ns, name); ownership as for services.
 * A slice whose service does not exist is kept (the service may come later)
 * but contributes nothing to the plan. Returns 0 or -ENOMEM. */
int model_upsert_slice(struct model *m, struct kobj_slice *slice);
/* Remove the EndpointSlice (ns, name); absent is success. */
int model_delete_slice(struct model *m, const char *ns, const char *name);

/* Replace this node's object (ownership taken; NULL clears it). */
void model_set_node(struct model *m, struct kobj_node *node);
/* This node, or NULL when unknown. */
const struct kobj_node *model_node(const struct model *m);

/* Replace this host's addresses with a copy of *h. The generation moves
 * only when they differ. Returns 1 when changed, 0 when not, -ENOMEM. */
int model_set_host_addrs(struct model *m, const struct host_addrs *h);
/* This host's addresses (empty until set). */
const struct host_addrs *model_host_addrs(const struct model *m);
/* Free what a struct host_addrs points at and zero it. */
void host_addrs_done(struct host_addrs *h);

/* Replace the service CIDRs the cluster allocates cluster IPs from (the
 * API's ServiceCIDR objects); copied; the generation moves only when they
 * differ. Returns 1 when changed, 0 when not, -ENOMEM. */
int model_set_service_cidrs(struct model *m, const struct inet_prefix *cidrs, size_t n);
/* The service CIDRs last set (n=0 until then). */
const struct inet_prefix *model_service_cidrs(const struct model *m, size_t *ret_n);

/* Remove every Service and EndpointSlice (the node is kept). */
void model_clear(struct model *m);

/* Look one Service up; NULL when absent. */
const struct kobj_service *model_find_service(const struct model *m, const char *ns,
					      const char *name);
/* Look one slice up; NULL when absent. */
const struct kobj_slice *model_find_slice(const struct model *m, const char *ns,
					  const char *name);

size_t model_n_services(const struct model *m);
size_t model_n_slices(const struct model *m);

/* Call fn for every Service, in (namespace, name) order. Stops and returns
 * fn's value when it is non-zero; otherwise returns 0. */
int model_foreach_service(const struct model *m,
			  int (*fn)(const struct kobj_service *svc, void *userdata),
			  void *userdata);

/* Call fn for every slice of the Service (ns, service_name), in slice name
 * order. Same return convention as model_foreach_service. */
int model_foreach_slice_of(const struct model *m, const char *ns, const char *service_name,
			   int (*fn)(const struct kobj_slice *slice, void *userdata),
			   void *userdata);

/* Call fn for every slice whose service is absent (for warnings). */
int model_foreach_orphan_slice(const struct model *m,
			       int (*fn)(const struct kobj_slice *slice, void *userdata),
			       void *userdata);

/* Incremented by every change; starts at 0. */
uint64_t model_generation(const struct model *m);

/* Which services a planner must look at again since generation since
 * (for incremental planning): calls fn(ns, name, userdata) for each
 * service that a change after since touched (a service upsert or delete,
 * or a slice naming it before or after its change; a name may come more
 * than once; the strings live until the next change). Returns 0, fn's
 * non-zero value, or MODEL_CHANGES_ALL when the answer is "everything":
 * a change every service may depend on (this node's name, zone or
 * addresses, the host's addresses, the service CIDRs, model_clear) came
 * after since, or the record of changes (MODEL_JOURNAL_MAX entries) no
 * longer reaches back to since. */
#define MODEL_CHANGES_ALL 1
#define MODEL_JOURNAL_MAX 16384
int model_changes_since(const struct model *m, uint64_t since,
			int (*fn)(const char *ns, const char *name, void *userdata), void *userdata);
/* How many service and EndpointSlice upserts and deletes the model has
 * seen since it was made (kube-proxy's service/endpoint changes totals;
 * model_clear does not reset them). */
void model_change_counts(const struct model *m, uint64_t *ret_services, uint64_t *ret_slices);

/* How many trigger times model_take_triggers can hold back at most. */
#define MODEL_MAX_TRIGGERS 256
/* Move the last-change-trigger-times of the slices upserted since the last
 * call (a new or changed annotation each) into ret (room for max), and
 * forget them. Returns how many. For the network programming latency:
 * call it after a good sync. */
size_t model_take_triggers(struct model *m, double *ret, size_t max);

#endif
