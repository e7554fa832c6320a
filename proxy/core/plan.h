/* Plans as values: freeing them, ordering and comparing their entries, and
 * the diff between two whole plans. Internal to the planner (planner.c
 * builds plans, plan_splice.c patches them); backends see plan-t.h only. */
#ifndef FERRY_PLAN_H
#define FERRY_PLAN_H

#include <stdbool.h>

#include "plan-t.h"

/* Free what one epset owns (key with ns and name, endpoints). */
void plan_epset_done(struct plan_epset *e);
/* Free a plan and everything it owns. Accepts NULL; returns NULL. */
struct plan *plan_free(struct plan *plan);
/* Free a diff's arrays and zero it. */
void plan_diff_clear(struct plan_diff *d);

/* Endpoint order: (addr, port). For qsort. */
int plan_endpoint_cmp(const void *a, const void *b);
/* Frontends by (addr, proto, port): what two services can collide on. */
int plan_frontend_addr_cmp(const struct plan_frontend *x, const struct plan_frontend *y);
/* The plan's frontend order: (kind, addr, proto, port). */
int plan_frontend_cmp(const struct plan_frontend *x, const struct plan_frontend *y);
/* Service-range guard prefixes: (addr, len). For qsort. */
int plan_prefix_cmp(const void *a, const void *b);

/* Same key assumed: do two frontends program differently (set key,
 * masquerade, empty verdict, source ranges, short-circuit set)? */
bool plan_frontend_equal(const struct plan_frontend *x, const struct plan_frontend *y);
/* Same key assumed: do two sets differ in endpoints or policy? */
bool plan_epset_equal(const struct plan_epset *x, const struct plan_epset *y);
/* Same cluster_ips and service_cidrs? */
bool plan_guards_equal(const struct plan *a, const struct plan *b);

/* The diff from old to new, two whole plans (fe_touched and
 * guards_changed included). 0 or -ENOMEM (d is then empty). */
int plan_diff_whole(const struct plan *old, const struct plan *new, struct plan_diff *d);

#endif
