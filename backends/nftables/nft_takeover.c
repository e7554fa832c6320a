/* Policy: what a restarted ferry finds in the kernel (see nft_takeover.h).
 * Reading goes through nft_read.c; this file decides what to read and
 * what to trust.
 */
#include "nft_takeover.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "nft_read.h"
#include "nft_rules.h"
#include "nft_state.h"

/* Dumps per set before giving up on a consistent read. */
#define READ_TRIES 5

/* Monotonic milliseconds, for the timings in the logs. */
static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int elem_cmp_qsort(const void *a, const void *b)
{
	return nft_elem_cmp(a, b, NULL);
}

static int elem_ptr_cmp(const void *a, const void *b)
{
	return nft_elem_cmp(*(const struct nft_elem *const *)a, *(const struct nft_elem *const *)b, NULL);
}

/* Order of element pointers by key only (the same kernel element). */
static int elem_key_cmp(const void *a, const void *b)
{
	bool same;
	int c = nft_elem_cmp(*(const struct nft_elem *const *)a, *(const struct nft_elem *const *)b, &same);

	return same ? 0 : c;
}

bool nft_takeover_rules_match(struct mnl_socket *nl, const char *tag)
{
	for (int fam = 0; fam < 2; fam++) {
		const char *ip = fam ? "ip6" : "ip";
		char have[NFT_RULESET_TAG_LEN + 1] = "";
		int r = nft_read_tag(nl, fam ? AF_INET6 : AF_INET, have, sizeof(have) - 1);

		if (r == -ENOENT) {
			log_info("nftables: no ruleset of an earlier ferry in table %s %s: programming it", ip,
				 NFT_TABLE_NAME);
			return false;
		}
		if (r < 0) {
			log_warn("nftables: cannot read table %s %s (%s): replacing it", ip, NFT_TABLE_NAME,
				 strerror(-r));
			return false;
		}
		if (strcmp(have, tag) != 0) {
			log_info("nftables: table %s %s holds other rules (\"%s\", this configuration is \"%s\"): "
				 "replacing them",
				 ip, NFT_TABLE_NAME, have, tag);
			return false;
		}
	}
	return true;
}

int nft_takeover_digest_matches(struct mnl_socket *nl, enum nft_table_digest kind, uint64_t digest)
{
	struct nft_elem_vec found = { 0 };
	struct nft_elem key;
	int r;

	nft_elem_init_table_digest(&key, kind, digest);
	r = nft_read_keys(nl, &key, 1, &found);
	if (r == 0)
		r = found.n == 1 && nft_elem_cmp(&found.v[0], &key, NULL) == 0;
	nft_elem_vec_done(&found);
	return r;
}

/* Does the kernel (kernel[0..n_kernel), sorted) hold verdict element v and
 * the digest element the plan (plan[0..n_plan), sorted) has for v's
 * frontend? */
static bool kernel_digest_matches(const struct nft_elem *const *plan, size_t n_plan, const struct nft_elem *kernel,
				  size_t n_kernel, const struct nft_elem *v)
{
	struct nft_elem probe;
	const struct nft_elem *p = &probe;
	size_t lo = 0, hi = n_plan, prefix = nft_set_key_len((enum nft_set_id)v->set, v->family);

	if (!bsearch(&v, plan, n_plan, sizeof(*plan), elem_ptr_cmp))
		return false;
	/* The plan's digest element for v: the first one at or after
	 * "v's key . 0 . 0" in the digest set. */
	nft_elem_init_digest(&probe, v, 0);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (nft_elem_cmp(plan[mid], p, NULL) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == n_plan || plan[lo]->set != probe.set || plan[lo]->family != probe.family ||
	    memcmp(plan[lo]->key, probe.key, prefix) != 0)
		return false;
	return bsearch(plan[lo], kernel, n_kernel, sizeof(*kernel), elem_cmp_qsort) != NULL;
}

/* Progress of the take-over's dumps: elements read, said once a second. */
struct read_progress {
	struct log_progress log;
	const struct nft_elem_vec *have;
	const char *set;
};

static void read_progress_fn(void *ctx)
{
	struct read_progress *p = ctx;
	char unit[96];

	snprintf(unit, sizeof(unit), "elements read (now set %s)", p->set);
	log_progress(&p->log, p->have->n, 0, unit);
}

/* Append family's set to have, read so that it can be trusted: a dump
 * that walks a hash table while the kernel resizes it (it does so in the
 * background after big inserts) can return an element twice and miss
 * another. Such a read is thrown away and done again, a few times, then
 * -EAGAIN (the caller replaces the tables instead). */
static int read_set_consistent(struct mnl_socket *nl, int family, enum nft_set_id set, struct nft_elem_vec *have,
			       struct read_progress *progress)
{
	struct nft_read_progress rp = { .fn = read_progress_fn, .ctx = progress };
	size_t start = have->n;

	progress->set = nft_set_name(set);
	for (int tries = 0; tries < READ_TRIES; tries++) {
		bool dup = false;
		int r = nft_read_set(nl, family, set, have, &rp);

		if (r < 0)
			return r;
		if (have->n - start > 1)
			qsort(have->v + start, have->n - start, sizeof(*have->v), elem_cmp_qsort);
		for (size_t i = start + 1; i < have->n && !dup; i++) {
			bool same_key;

			nft_elem_cmp(&have->v[i - 1], &have->v[i], &same_key);
			dup = same_key;
		}
		if (!dup)
			return 0;
		log_debug("nftables: set %s read with a duplicate (resized during the dump): reading it again",
			  nft_set_name(set));
		have->n = start;
		usleep(20000);
	}
	return -EAGAIN;
}

/* Merge have->v[0..mid) and [mid..n), both sorted, into one sorted run. */
static int merge_sorted(struct nft_elem_vec *have, size_t mid)
{
	size_t n = have->n, i = 0, j = mid, k = 0;
	struct nft_elem *tmp = malloc(n * sizeof(*tmp));

	if (!tmp)
		return -ENOMEM;
	while (i < mid || j < n)
		tmp[k++] = j == n || (i < mid && nft_elem_cmp(&have->v[i], &have->v[j], NULL) <= 0) ? have->v[i++]
												       : have->v[j++];
	memcpy(have->v, tmp, n * sizeof(*tmp));
	free(tmp);
	return 0;
}

int nft_takeover_read(struct mnl_socket *nl, uint32_t masq_mark, const struct nft_elem *const *plan, size_t n_plan,
		      bool hairpins_known, struct nft_elem_vec *have, uint8_t *present)
{
	size_t n_known = 0, hint = 0;
	struct nft_elem_vec keys = { 0 };
	double t0 = now_ms(), t1;
	struct read_progress rp = { .have = have, .set = "" };
	struct log_progress progress;
	size_t n_small;
	int r = 0;

	/* A take-over at scale reads for seconds: say how far it got, also
	 * in the middle of one big set. */
	log_progress_start(&rp.log, "nftables: taking over, reading the kernel's sets");
	for (int fam = 0; fam < 2 && r == 0; fam++)
		for (int s = 0; s < NFT_SET_COUNT && r == 0; s++) {
			if (nft_state_is_slot_set((uint8_t)s) || (s == NFT_SET_HAIRPIN && hairpins_known))
				continue;
			r = read_set_consistent(nl, fam ? AF_INET6 : AF_INET, (enum nft_set_id)s, have, &rp);
			if (r < 0)
				log_info("nftables: cannot read set %s %s %s (%s): replacing the tables",
					 fam ? "ip6" : "ip", NFT_TABLE_NAME, nft_set_name((enum nft_set_id)s),
					 r == -EPROTO ? "an element ferry does not write" : strerror(-r));
		}
	n_small = have->n;
	t1 = now_ms();
	log_progress_start(&progress, "nftables: taking over, looking slot-table keys up");
	if (n_small > 1)
		qsort(have->v, n_small, sizeof(*have->v), elem_cmp_qsort);
	for (size_t i = 0; i < n_small && r == 0; i++) {
		const struct nft_elem *v = &have->v[i];
		size_t k0 = keys.n, j;

		if (!nft_set_is_dispatch(v->set))
			continue;
		r = nft_vmap_slot_keys(v, masq_mark, &keys);
		if (r < 0 || !kernel_digest_matches(plan, n_plan, have->v, n_small, v))
			continue;
		/* Same digest: the kernel holds the plan's slots for v. They
		 * follow one another in the plan mostly: the place after the
		 * last one is tried before a search. */
		for (j = k0; j < keys.n; j++) {
			const struct nft_elem *k = &keys.v[j];
			const struct nft_elem *const *w =
				hint < n_plan && elem_key_cmp(&k, &plan[hint]) == 0
					? &plan[hint]
					: bsearch(&k, plan, n_plan, sizeof(*plan), elem_key_cmp);

			if (!w)
				break;
			hint = (size_t)(w - plan) + 1;
			n_known += !present[w - plan];
			present[w - plan] = 1;
		}
		if (j == keys.n)
			keys.n = k0;
	}
	if (r == 0)
		log_debug("nftables: read %zu elements of the sets in %.1f ms; %zu slot elements known by digest",
			  n_small, t1 - t0, n_known);
	if (keys.n > 1)
		qsort(keys.v, keys.n, sizeof(*keys.v), elem_cmp_qsort);
	for (size_t i = 0, j; i < keys.n && r == 0; i = j) {
		for (j = i + 1; j < keys.n && keys.v[j].set == keys.v[i].set && keys.v[j].family == keys.v[i].family; j++)
			;
		r = nft_read_keys(nl, &keys.v[i], j - i, have);
		log_progress(&progress, j, keys.n, "slot-table keys looked up");
		if (r < 0)
			log_info("nftables: cannot read set %s %s %s (%s): replacing the tables",
				 keys.v[i].family == AF_INET6 ? "ip6" : "ip", NFT_TABLE_NAME,
				 nft_set_name((enum nft_set_id)keys.v[i].set),
				 r == -EPROTO ? "an element ferry does not write" : strerror(-r));
	}
	if (r == 0)
		log_debug("nftables: looked up %zu slot-table keys, %zu found, in %.1f ms", keys.n,
			  have->n - n_small, now_ms() - t1);
	/* The plan's hairpin pairs, vouched for by their digest. */
	for (size_t i = 0; i < n_plan && hairpins_known; i++)
		if (plan[i]->set == NFT_SET_HAIRPIN)
			present[i] = 1;
	nft_elem_vec_done(&keys);
	/* Only what was read: the dumps (sorted) and the looked-up slots. */
	if (r == 0 && have->n > n_small) {
		qsort(have->v + n_small, have->n - n_small, sizeof(*have->v), elem_cmp_qsort);
		r = merge_sorted(have, n_small);
	}
	return r;
}
