/* The one "sorted old list vs sorted new list" walk.
 *
 * The planner diffs two plans this way, and every backend diffs what it
 * committed against what it now wants the same way (nftables elements per
 * frontend, the interception's redirects, IPVS servers). One merge, written
 * once: each caller supplies the key order and what to do with an item that
 * is only in the old list (removed), only in the new one (added), or in
 * both (kept: the caller decides whether it changed).
 *
 * Both lists must be sorted by ops->cmp with no two items of one list
 * comparing equal. The lists may hold different types (a kernel dump
 * against pointers into a plan, say): cmp gets one item of each.
 *
 * Defined inline so that a caller passing a constant ops table gets its
 * callbacks inlined: the merge runs over millions of elements at 100k
 * services.
 */
#ifndef FERRY_SORTED_DIFF_H
#define FERRY_SORTED_DIFF_H

#include <stddef.h>

struct sorted_diff_ops {
	/* Order of an old item against a new one by key: <0, 0 (the same
	 * key), >0. Required. */
	int (*cmp)(const void *old_item, const void *new_item, void *ctx);
	/* An old item whose key the new list lacks. NULL: ignored. */
	int (*removed)(const void *old_item, void *ctx);
	/* A new item whose key the old list lacks. NULL: ignored. */
	int (*added)(const void *new_item, void *ctx);
	/* Both lists have the key. NULL: ignored. */
	int (*kept)(const void *old_item, const void *new_item, void *ctx);
};

/* Walk old[0..n_old) (items of old_size bytes) against new[0..n_new)
 * (items of new_size bytes) in key order, calling ops' callbacks in that
 * order. Either list may be NULL when its count is 0. Returns 0, or the
 * first non-zero value a callback returned (the walk stops there). */
static inline int sorted_diff(const void *old, size_t n_old, size_t old_size, const void *new, size_t n_new,
			      size_t new_size, const struct sorted_diff_ops *ops, void *ctx)
{
	const char *a = old, *b = new;
	size_t i = 0, j = 0;
	int r = 0;

	while (r == 0 && (i < n_old || j < n_new)) {
		const void *x = i < n_old ? a + i * old_size : NULL;
		const void *y = j < n_new ? b + j * new_size : NULL;
		int c = !x ? 1 : !y ? -1 : ops->cmp(x, y, ctx);

		if (c < 0) {
			if (ops->removed)
				r = ops->removed(x, ctx);
			i++;
		} else if (c > 0) {
			if (ops->added)
				r = ops->added(y, ctx);
			j++;
		} else {
			if (ops->kept)
				r = ops->kept(x, y, ctx);
			i++;
			j++;
		}
	}
	return r;
}

#endif
