/* Warnings for annotations a backend cannot honour (annotations.h). */
#include "annotations.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kobj.h"
#include "log.h"

struct annotation_warner {
	const struct backend_ops *ops;
	char **warned;   /* "ns/name annotation", sorted: the previous call's */
	size_t n_warned;
};

struct annotation_warner *annotation_warner_new(const struct backend_ops *ops)
{
	struct annotation_warner *w = calloc(1, sizeof(*w));

	if (w)
		w->ops = ops;
	return w;
}

static void free_list(char **l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(l[i]);
	free(l);
}

struct annotation_warner *annotation_warner_free(struct annotation_warner *w)
{
	if (w) {
		free_list(w->warned, w->n_warned);
		free(w);
	}
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool was_warned(const struct annotation_warner *w, const char *key)
{
	if (!w->n_warned) /* bsearch's base must not be NULL */
		return false;
	return bsearch(&key, w->warned, w->n_warned, sizeof(*w->warned), cmp_str) != NULL;
}

/* Note key in list (grown as needed); duplicates (one service, several
 * ports) are folded after sorting. */
static int note(char ***list, size_t *n, size_t *cap, const struct plan_epset *e, const char *what)
{
	char *key;

	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		char **l = realloc(*list, c * sizeof(*l));
		if (!l)
			return -1;
		*list = l;
		*cap = c;
	}
	if (asprintf(&key, "%s/%s %s", e->ns, e->svc_name, what) < 0)
		return -1;
	(*list)[(*n)++] = key;
	return 0;
}

size_t annotation_warner_check(struct annotation_warner *w, const struct plan *plan)
{
	const struct backend_ops *ops = w->ops;
	char **now = NULL, what[96];
	size_t n = 0, cap = 0, k = 0, services = 0;

	for (size_t i = 0; i < plan->n_epsets; i++) {
		const struct plan_epset *e = &plan->epsets[i];

		if (e->balance != BALANCE_ROUND_ROBIN && !(ops->balance_algos & (1u << e->balance))) {
			snprintf(what, sizeof(what), "ferry.io/balance: %s", balance_algo_name(e->balance));
			if (note(&now, &n, &cap, e, what) < 0)
				goto out;
		}
		if (e->health.enabled && !ops->active_health_checks && note(&now, &n, &cap, e, "ferry.io/health-check: tcp") < 0)
			goto out;
	}
	if (n)
		qsort(now, n, sizeof(*now), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (k && strcmp(now[k - 1], now[i]) == 0) {
			free(now[i]);
			continue;
		}
		now[k++] = now[i];
	}
	n = k;
	for (size_t i = 0; i < n; i++) {
		char *sp = strchr(now[i], ' ');

		if (i == 0 || strncmp(now[i - 1], now[i], (size_t)(sp - now[i]) + 1) != 0)
			services++;
		if (was_warned(w, now[i]))
			continue;
		*sp = '\0';
		log_warn("service %s: %s is not honoured by the %s backend (%s)", now[i], sp + 1, ops->name,
			 strncmp(sp + 1, "ferry.io/balance", 16) == 0 ?
				 "it balances its own way: see ferry plan" :
				 "it runs no active health checks; the endpoints' readiness still applies");
		*sp = ' ';
	}
	free_list(w->warned, w->n_warned);
	w->warned = now;
	w->n_warned = n;
	return services;
out:
	free_list(now, n);
	return services;
}
