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

/* Note what set e asks for that ops cannot honour. 0 or -1 (ENOMEM). */
static int note_epset(const struct backend_ops *ops, char ***list, size_t *n, size_t *cap,
		      const struct plan_epset *e)
{
	char what[96];

	if (e->balance != BALANCE_ROUND_ROBIN && !(ops->balance_algos & (1u << e->balance))) {
		snprintf(what, sizeof(what), "ferry.io/balance: %s", balance_algo_name(e->balance));
		if (note(list, n, cap, e, what) < 0)
			return -1;
	}
	if (e->health.enabled && !ops->active_health_checks && note(list, n, cap, e, "ferry.io/health-check: tcp") < 0)
		return -1;
	return 0;
}

/* Sort list and drop repeats; returns the new count. */
static size_t sort_unique(char **list, size_t n)
{
	size_t k = 0;

	if (n)
		qsort(list, n, sizeof(*list), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (k && strcmp(list[k - 1], list[i]) == 0) {
			free(list[i]);
			continue;
		}
		list[k++] = list[i];
	}
	return k;
}

/* Distinct services ("ns/name" before the space) of a sorted list. */
static size_t count_services(char *const *list, size_t n)
{
	size_t services = 0;

	for (size_t i = 0; i < n; i++) {
		const char *sp = strchr(list[i], ' ');
		if (i == 0 || strncmp(list[i - 1], list[i], (size_t)(sp - list[i]) + 1) != 0)
			services++;
	}
	return services;
}

size_t annotation_warner_check(struct annotation_warner *w, const struct plan *plan,
			       const struct plan_diff *diff)
{
	const struct backend_ops *ops = w->ops;
	char **now = NULL, **merged;
	size_t n = 0, cap = 0, k = 0, i, j;

	/* After an update only the added and changed sets can ask for
	 * something new; a whole pass (diff NULL) also forgets the services
	 * that stopped asking. */
	if (!diff) {
		for (i = 0; i < plan->n_epsets; i++)
			if (note_epset(ops, &now, &n, &cap, &plan->epsets[i]) < 0)
				goto out;
	} else {
		for (i = 0; i < diff->n_eps_added; i++)
			if (note_epset(ops, &now, &n, &cap, diff->eps_added[i]) < 0)
				goto out;
		for (i = 0; i < diff->n_eps_changed; i++)
			if (note_epset(ops, &now, &n, &cap, diff->eps_changed[i]) < 0)
				goto out;
	}
	n = sort_unique(now, n);
	for (i = 0; i < n; i++) {
		char *sp = strchr(now[i], ' ');

		if (was_warned(w, now[i]))
			continue;
		*sp = '\0';
		log_warn("service %s: %s is not honoured by the %s backend (%s)", now[i], sp + 1, ops->name,
			 strncmp(sp + 1, "ferry.io/balance", 16) == 0 ?
				 "it balances its own way: see ferry plan" :
				 "it runs no active health checks; the endpoints' readiness still applies");
		*sp = ' ';
	}
	if (!diff) {
		free_list(w->warned, w->n_warned);
		w->warned = now;
		w->n_warned = n;
		return count_services(w->warned, w->n_warned);
	}
	/* Keep what was warned about and add the new ones. */
	merged = malloc((w->n_warned + n + 1) * sizeof(*merged));
	if (!merged)
		goto out;
	for (i = 0, j = 0; i < w->n_warned || j < n;) {
		int c = i == w->n_warned ? 1 : j == n ? -1 : strcmp(w->warned[i], now[j]);
		if (c < 0) {
			merged[k++] = w->warned[i++];
		} else if (c > 0) {
			merged[k++] = now[j++];
		} else {
			merged[k++] = w->warned[i++];
			free(now[j++]);
		}
	}
	free(w->warned);
	free(now);
	w->warned = merged;
	w->n_warned = k;
	return count_services(w->warned, w->n_warned);
out:
	free_list(now, n);
	return count_services(w->warned, w->n_warned);
}
