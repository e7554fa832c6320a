/* Policy: the nftables backend's ops table. Turns plans and diffs into
 * element changes of the constant ruleset (nft_rules.h, nft_sets.h) and
 * logs what the kernel refused. Every update is the same pipeline:
 *
 *   plan or diff  -> the elements of each frontend that may have changed
 *                    (nft_elems.h)
 *   -> a staged state change: diffed against what was committed, hairpins
 *                    reference counted (nft_state.h)
 *   -> messages:     deletes first, then adds, in one batch (nft_change.h)
 *   -> kernel commit, chunked when huge
 *   -> state commit, or discard and a full replace next time.
 *
 * The first sync (and the one after any failure) is a full replace: the
 * constant ruleset re-declared, every chain emptied and refilled, every set
 * emptied and refilled, all in one kernel transaction. Packets see the old
 * rules or the new ones, never an empty table, so restarting ferry neither
 * flushes first nor disturbs established or new connections. The first
 * sync of a process first tries to take the tables of an earlier ferry
 * over instead (nft_takeover.h): only the difference is sent.
 *
 * The service CIDRs of the range guard are rules, not elements
 * (nft_service_cidrs_msgs): they are rewritten, in the transaction of the
 * change, whenever the plan's list differs from the committed one, and on
 * every full replace and take-over (so a list changed while ferry was down
 * is applied too).
 */
#include "nftables.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>

#include "log.h"
#include "nft_batch.h"
#include "conntrack.h"
#include "nft_change.h"
#include "nft_elems.h"
#include "nft_intercept.h"
#include "nft_read.h"
#include "nft_rules.h"
#include "nft_sets.h"
#include "nft_state.h"
#include "nft_takeover.h"

/* Messages per transaction for incremental changes. */
#define NFT_CHUNK_MSGS 4096

/* A table digest (nft_sets.h) of the committed elements, whether the
 * kernel holds its element (valid only when need_full is false), and the
 * one the change being committed writes (staged). */
struct table_digest {
	uint64_t cur, next;
	bool in_kernel, staged;
};

struct nftables {
	struct mnl_socket *nl;
	struct nft_batch *batch;
	struct nft_ruleset_cfg rcfg;
	struct inet_prefix *cidrs;
	struct nft_elems_cfg ecfg;
	bool need_full;           /* next sync replaces everything */
	bool adopt_tried;         /* the first sync tried to take the kernel's tables over */
	char tag[NFT_RULESET_TAG_LEN]; /* this configuration's ruleset tag */
	struct nft_state state;   /* committed elements and the staged change */
	struct nft_aff_chains aff_chains; /* affinity chains created */
	/* The service CIDRs service_cidrs_check drops: committed (in the
	 * kernel; valid only when need_full is false) and staged (sent with
	 * the change being committed; staged_cidrs false: unchanged). */
	struct inet_prefix *cidrs_done, *cidrs_new;
	size_t n_cidrs_done, n_cidrs_new;
	bool staged_cidrs;
	/* The table digests (nft_sets.h: content, hairpin pairs) of the
	 * committed elements. */
	struct table_digest digests[NFT_DIGEST_KINDS];
	struct nft_elem_vec scratch; /* one frontend's elements, while staging */
	/* Deferred staging (a take-over): the elements staged but not in
	 * change.adds (nft_state_stage_deferred), their count and hash sum. */
	bool deferring;
	size_t deferred_n;
	uint64_t deferred_sum;
};

/* Monotonic milliseconds, for the timings in the logs. */
static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Log a refused commit with what was sent. */
static int log_commit_error(struct nftables *n, int r, const struct nft_batch_error *be, const char *what)
{
	log_error("nftables: %s refused by the kernel: %s; refused message: %s (%zu messages were sent)",
		  what, strerror(-r), be->desc, nft_batch_count(n->batch));
	if (log_get_level() >= LOG_LEVEL_DEBUG)
		for (size_t i = 0; i < nft_batch_count(n->batch) && i < 200; i++)
			log_debug("nftables: sent[%zu] %s", i, nft_batch_desc(n->batch, i));
	return r;
}

/* At debug level, log the first few of n queued elements. */
static void log_elems(const char *what, const struct nft_elem *const *v, size_t n)
{
	if (log_get_level() < LOG_LEVEL_DEBUG)
		return;
	for (size_t i = 0; i < n && i < 20; i++) {
		char buf[256] = "";
		FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");

		if (!f)
			return;
		nft_elem_print(f, v[i]);
		fclose(f);
		log_debug("nftables: %s %s %s: %s", what, v[i]->family == AF_INET6 ? "ip6" : "ip",
			  nft_set_name((enum nft_set_id)v[i]->set), buf);
	}
}

/* Append to the batch the rules of service_cidrs_check for plan's service
 * CIDRs when they differ from the committed ones, or always (all): the
 * change then carries them (cidrs_commit / cidrs_discard end it). Returns
 * 0 or -ENOMEM. */
static int cidrs_stage(struct nftables *n, const struct plan *plan, bool all)
{
	size_t k = plan->n_service_cidrs;
	int r = 0;

	n->staged_cidrs = false;
	if (!all && k == n->n_cidrs_done) {
		size_t i = 0;

		while (i < k && plan->service_cidrs[i].len == n->cidrs_done[i].len &&
		       inet_addr_cmp(&plan->service_cidrs[i].addr, &n->cidrs_done[i].addr) == 0)
			i++;
		if (i == k)
			return 0;
	}
	free(n->cidrs_new);
	n->cidrs_new = NULL;
	n->n_cidrs_new = 0;
	if (k && !(n->cidrs_new = malloc(k * sizeof(*n->cidrs_new))))
		return -ENOMEM;
	if (k)
		memcpy(n->cidrs_new, plan->service_cidrs, k * sizeof(*n->cidrs_new));
	n->n_cidrs_new = k;
	for (int fam = 0; fam < 2 && r == 0; fam++)
		r = nft_service_cidrs_msgs(n->batch, fam ? AF_INET6 : AF_INET, n->cidrs_new, k);
	n->staged_cidrs = r == 0;
	return r;
}

/* The kernel took the change: its CIDRs are the committed ones. */
static void cidrs_commit(struct nftables *n)
{
	char buf[INET_ADDR_STRLEN];

	if (!n->staged_cidrs)
		return;
	free(n->cidrs_done);
	n->cidrs_done = n->cidrs_new;
	n->n_cidrs_done = n->n_cidrs_new;
	n->cidrs_new = NULL;
	n->n_cidrs_new = 0;
	n->staged_cidrs = false;
	for (size_t i = 0; i < n->n_cidrs_done; i++)
		log_debug("nftables: service CIDR %s/%u: new connections to its unallocated addresses are dropped",
			  inet_addr_format(&n->cidrs_done[i].addr, buf), n->cidrs_done[i].len);
}

static void cidrs_discard(struct nftables *n)
{
	free(n->cidrs_new);
	n->cidrs_new = NULL;
	n->n_cidrs_new = 0;
	n->staged_cidrs = false;
}

/* The table digests' sums over v[0..n) (nft_elem_hash) into ret: every
 * element for the content digest, the hairpin pairs for theirs. */
static void hash_sums(const struct nft_elem *const *v, size_t n, uint64_t ret[NFT_DIGEST_KINDS])
{
	memset(ret, 0, NFT_DIGEST_KINDS * sizeof(*ret));
	for (size_t i = 0; i < n; i++) {
		uint64_t h = nft_elem_hash(v[i]);

		ret[NFT_DIGEST_CONTENT] += h;
		if (v[i]->set == NFT_SET_HAIRPIN)
			ret[NFT_DIGEST_HAIRPIN] += h;
	}
}

/* Append one add or delete of the table digest element of kind. */
static int content_msg(struct nftables *n, enum nft_table_digest kind, bool add, uint64_t digest)
{
	struct nft_elem e;
	const struct nft_elem *p = &e;

	nft_elem_init_table_digest(&e, kind, digest);
	return nft_elems_msgs(n->batch, add, &p, 1);
}

/* Stage the table digests of the kernel once the staged change is
 * committed, next[kind]: an old element's delete goes first in the batch
 * (del_first; else the caller flushed it or placed it), the new one's
 * add last (content_add), so that a change split over several
 * transactions leaves no digest behind until its last one commits. An
 * unchanged digest, no messages. Returns 0 or -ENOMEM. */
static int content_stage(struct nftables *n, const uint64_t next[NFT_DIGEST_KINDS], bool del_first)
{
	int r = 0;

	for (int k = 0; k < NFT_DIGEST_KINDS && r == 0; k++) {
		struct table_digest *d = &n->digests[k];

		d->staged = false;
		if (d->in_kernel && next[k] == d->cur)
			continue;
		d->next = next[k];
		d->staged = true;
		if (del_first && d->in_kernel)
			r = content_msg(n, (enum nft_table_digest)k, false, d->cur);
	}
	return r;
}

static int content_add(struct nftables *n)
{
	int r = 0;

	for (int k = 0; k < NFT_DIGEST_KINDS && r == 0; k++)
		if (n->digests[k].staged)
			r = content_msg(n, (enum nft_table_digest)k, true, n->digests[k].next);
	return r;
}

/* The kernel took the change: its digest elements are the staged ones. */
static void content_commit(struct nftables *n)
{
	for (int k = 0; k < NFT_DIGEST_KINDS; k++) {
		struct table_digest *d = &n->digests[k];

		if (!d->staged)
			continue;
		d->cur = d->next;
		d->in_kernel = true;
		d->staged = false;
	}
}

/* Nothing staged, and (kernel_gone) no digest element in the kernel. */
static void content_reset(struct nftables *n, bool kernel_gone)
{
	for (int k = 0; k < NFT_DIGEST_KINDS; k++) {
		n->digests[k].staged = false;
		if (kernel_gone)
			n->digests[k].in_kernel = false;
	}
}

/* After a full sync or a take-over: the batch held every element's
 * message (some 60 MB at 100k services) and the change a pointer per
 * element; updates need a fraction of that, so give it back. */
static void release_big_buffers(struct nftables *n)
{
	struct nft_state_mem mem;
	size_t len, slots = n->state.slots_count[0] + n->state.slots_count[1];

	nft_batch_data(n->batch, &len);
	if (len > (4u << 20)) {
		struct nft_batch *b = nft_batch_new();

		if (b) {
			nft_batch_free(n->batch);
			n->batch = b;
		}
	}
	nft_state_trim(&n->state);
	nft_elem_vec_done(&n->scratch);
	nft_state_mem(&n->state, &mem);
	log_info("nftables: committed state %.1f MB (%.1f B per slot element): frontends %.1f MB, packed "
		 "elements %.1f MB, shared-element counts %.1f MB",
		 (double)(mem.frontends + mem.packed + mem.refs) / 1e6,
		 slots ? (double)(mem.frontends + mem.packed + mem.refs) / (double)slots : 0.0,
		 (double)mem.frontends / 1e6, (double)mem.packed / 1e6, (double)mem.refs / 1e6);
}

/* Compute the elements of plan frontend fe and stage them. */
static int stage_frontend(struct nftables *n, const struct plan_frontend *fe)
{
	struct nft_elem_vec *vec = &n->scratch;
	struct nft_state_key key;
	bool truncated;
	char buf[INET_ENDPOINT_STRLEN];
	int r;

	/* One scratch array for every frontend; the state copies what it
	 * keeps (nft_state_stage_copy). */
	vec->n = 0;
	r = nft_frontend_elems(fe, &n->ecfg, vec, &truncated);
	if (r < 0)
		return r;
	if (truncated)
		log_warn("nftables: %s/%s has more than %u endpoints; only %u get slots",
			 inet_endpoint_format(&fe->addr, fe->port, buf), inet_proto_name(fe->proto),
			 NFT_SLOTS_MAX, NFT_SLOTS_MAX);
	nft_state_key_of(fe, &key);
	if (!n->deferring)
		return nft_state_stage_copy(&n->state, &key, vec->v, vec->n);
	/* The content digest counts what change.adds will lack. */
	for (size_t i = 0; i < vec->n; i++)
		if (!nft_state_is_shared_set(vec->v[i].set)) {
			n->deferred_sum += nft_elem_hash(&vec->v[i]);
			n->deferred_n++;
		}
	return nft_state_stage_deferred(&n->state, &key, vec->v, vec->n);
}

/* Make room for need[f] slot-table elements in family f. The slot table
 * holds one element per endpoint (1 M at 100k services x 10): declared
 * without a size, the kernel's resizable hash starts small and is rehashed
 * again and again while a big transaction fills it, about half of the
 * commit time. With a size the kernel sizes a hash for it when it creates
 * the set. But a size is also a hard cap, and a raised size counts only
 * once its transaction commits: so the raise is a transaction of its own
 * (table + set, created if absent) sent before the elements, sized by
 * nft_state_slots_size so that it is rare. Returns 0 or a negative errno
 * (logged). */
static int slots_reserve(struct nftables *n, const size_t need[2])
{
	struct nft_batch *b = NULL;
	struct nft_batch_error be = { 0 };
	uint32_t size[2];
	int r = 0;

	if (!nft_state_slots_grow(&n->state, need, size))
		return 0;
	if (!(b = nft_batch_new()))
		return -ENOMEM;
	for (int f = 0; f < 2 && r == 0; f++) {
		if (!size[f])
			continue;
		r = nft_table_msg(b, f ? AF_INET6 : AF_INET);
		if (r == 0)
			r = nft_set_declare_sized(b, f ? AF_INET6 : AF_INET, NFT_SET_SLOTS, size[f]);
	}
	if (r == 0)
		r = nft_batch_commit(n->nl, b, 0, &be);
	if (r == 0) {
		nft_state_slots_declared(&n->state, size);
		log_debug("nftables: slot table sized for %u (ip) / %u (ip6) elements", n->state.slots_size[0],
			  n->state.slots_size[1]);
	} else if (r == -ENOMEM) {
		log_errno(r, "nftables: out of memory sizing the slot table");
	} else {
		log_errno(r, "nftables: sizing the slot table failed: %s", be.desc);
	}
	nft_batch_free(b);
	return r;
}

/* Queue the removal of the chains in ferry's tables that this version
 * does not program (an older ferry's): every rule of each first, so that
 * no jump to one is left, then the chains. A table that cannot be read
 * keeps its chains (logged): they are harmless beside the new ones. */
static int stale_chain_msgs(struct nftables *n)
{
	int r = 0;

	for (int fam = 0; fam < 2 && r == 0; fam++) {
		int family = fam ? AF_INET6 : AF_INET;
		char(*names)[NFT_CHAIN_NAME_MAX] = NULL;
		size_t count = 0;

		if (nft_read_chains(n->nl, family, &names, &count) < 0) {
			log_warn("nftables: cannot list the chains of table %s %s: chains of an earlier version, "
				 "if any, stay", fam ? "ip6" : "ip", NFT_TABLE_NAME);
			continue;
		}
		for (int pass = 0; pass < 2 && r == 0; pass++)
			for (size_t i = 0; i < count && r == 0; i++) {
				if (nft_ruleset_has_chain(names[i]))
					continue;
				if (pass == 0)
					log_info("nftables: removing chain %s %s %s (not in this version's ruleset)",
						 fam ? "ip6" : "ip", NFT_TABLE_NAME, names[i]);
				r = pass == 0 ? nft_chain_flush_msg(n->batch, family, names[i])
					      : nft_chain_delete_msg(n->batch, family, names[i]);
			}
		free(names);
	}
	return r;
}

/* Stage every frontend of plan against an emptied state: the change then
 * adds every element the plan needs (each hairpin once); with deferred,
 * change.adds holds the shared ones only until nft_state_complete_adds
 * (n->deferred_n, n->deferred_sum count the others). */
static int stage_plan_from_scratch(struct nftables *n, const struct plan *plan, bool deferred)
{
	struct log_progress progress;
	int r = 0;

	n->deferring = deferred;
	n->deferred_n = 0;
	n->deferred_sum = 0;
	nft_state_clear(&n->state);
	nft_aff_chains_clear(&n->aff_chains);
	log_progress_start(&progress, "nftables: full sync, building");
	for (size_t i = 0; i < plan->n_frontends && r == 0; i++) {
		r = stage_frontend(n, &plan->frontends[i]);
		log_progress(&progress, i + 1, plan->n_frontends, "frontends");
	}
	n->deferring = false;
	return r;
}

/* Replace everything in one transaction: the ruleset re-declared, every
 * set flushed and refilled with the plan's elements. */
static int nftables_full(struct nftables *n, const struct plan *plan)
{
	struct nft_state_change *c = &n->state.change;
	struct nft_batch_error be = { 0 };
	size_t need[2], n_elems;
	double t0 = now_ms(), t1, t2;
	int r;

	nft_batch_clear(n->batch);
	r = stale_chain_msgs(n);
	for (int fam = 0; fam < 2 && r == 0; fam++) {
		int family = fam ? AF_INET6 : AF_INET;
		r = nft_ruleset_msgs(n->batch, family, &n->rcfg);
		for (int s = 0; s < NFT_SET_COUNT && r == 0; s++)
			r = nft_set_flush(n->batch, family, (enum nft_set_id)s);
	}
	if (r == 0)
		r = cidrs_stage(n, plan, true);
	if (r == 0)
		r = stage_plan_from_scratch(n, plan, false);
	if (r == 0)
		r = nft_change_msgs(n->batch, &n->rcfg, &n->aff_chains, c);
	/* The flush removed the old digest elements; the new ones go last. */
	content_reset(n, true);
	if (r == 0) {
		uint64_t sums[NFT_DIGEST_KINDS];

		hash_sums(c->adds, c->n_adds, sums);
		r = content_stage(n, sums, false);
	}
	if (r == 0)
		r = content_add(n);
	if (r < 0) {
		nft_state_discard(&n->state);
		cidrs_discard(n);
		n->need_full = true;
		return log_errno(r, "nftables: out of memory building the full ruleset");
	}
	t1 = now_ms();
	n_elems = c->n_adds;
	nft_state_slots_need(&n->state, need);
	r = slots_reserve(n, need);
	if (r == 0)
		r = nft_batch_commit(n->nl, n->batch, 0, &be);
	if (r < 0) {
		nft_state_discard(&n->state);
		cidrs_discard(n);
		n->need_full = true;
		if (be.err == 0)
			return r; /* slots_reserve logged it */
		return log_commit_error(n, r, &be, "full sync");
	}
	t2 = now_ms();
	nft_state_commit(&n->state);
	cidrs_commit(n);
	content_commit(n);
	log_info("nftables: full sync: %zu frontends, %zu elements in one transaction (%zu messages) "
		 "in %.1f ms (build %.1f ms, kernel %.1f ms)",
		 nft_state_frontends(&n->state), n_elems, nft_batch_count(n->batch), now_ms() - t0, t1 - t0,
		 t2 - t1);
	release_big_buffers(n);
	n->need_full = false;
	return 0;
}

/* Set the table digest elements apart from the kernel's elements have
 * (sorted; kept so): they are no plan elements. The last one found of a
 * kind is the kernel's digest (there is one at most). */
static void content_take_out(struct nftables *n, struct nft_elem_vec *have)
{
	size_t w = 0;

	for (size_t i = 0; i < have->n; i++) {
		enum nft_table_digest kind;
		uint64_t d;

		if (nft_elem_is_table_digest(&have->v[i], &kind, &d)) {
			n->digests[kind].cur = d;
			n->digests[kind].in_kernel = true;
			continue;
		}
		have->v[w++] = have->v[i];
	}
	have->n = w;
}

/* Take over the tables an earlier ferry left, on the first sync of this
 * process: when the kernel's rules carry this configuration's tag, stage
 * the plan and look its content digest up in the kernel. Found: the
 * kernel holds exactly the plan, nothing is read or sent but the CIDR
 * rules. Else read every set once (slot tables by their digests or keys),
 * rebase the plan's elements on it and send only the difference, in one
 * transaction, leaving the rules alone. Returns 1 when the tables cannot
 * be taken over (absent, other rules, elements ferry does not write): the
 * caller replaces them. */
static int nftables_adopt(struct nftables *n, const struct plan *plan)
{
	struct nft_state_change *c = &n->state.change;
	struct nft_elem_vec have = { 0 };
	struct nft_batch_error be = { 0 };
	const struct conntrack_target *gone = NULL;
	size_t want[2], have_slots[2] = { 0, 0 }, need[2], kept, n_gone = 0, n_del, n_add;
	double t0 = now_ms(), t_rules, t_built, t_read, t_sent;
	uint64_t plan_sums[NFT_DIGEST_KINDS], plan_digest;
	uint8_t *present = NULL;
	bool hairpins_known;
	int r;

	if (!nft_takeover_rules_match(n->nl, n->tag))
		return 1;
	t_rules = now_ms();
	nft_batch_clear(n->batch);
	/* The CIDR rules are no part of the tag: rewritten whatever the
	 * kernel holds (a few rules, in the same transaction). */
	r = cidrs_stage(n, plan, true);
	if (r == 0)
		r = stage_plan_from_scratch(n, plan, true);
	if (r < 0) {
		nft_state_discard(&n->state);
		cidrs_discard(n);
		return log_errno(r, "nftables: out of memory taking over the tables");
	}
	t_built = now_ms();
	/* change.adds holds the shared elements; the rest were counted. */
	hash_sums(c->adds, c->n_adds, plan_sums);
	plan_sums[NFT_DIGEST_CONTENT] += n->deferred_sum;
	plan_digest = plan_sums[NFT_DIGEST_CONTENT];
	nft_state_slots_need(&n->state, want);
	kept = c->n_adds + n->deferred_n;
	content_reset(n, true);
	/* The hairpin pairs' digest too: a million pairs (a standalone node
	 * at 100k services) take the kernel a minute to dump. */
	hairpins_known = nft_takeover_digest_matches(n->nl, NFT_DIGEST_HAIRPIN, plan_sums[NFT_DIGEST_HAIRPIN]) == 1;
	r = nft_takeover_digest_matches(n->nl, NFT_DIGEST_CONTENT, plan_digest);
	if (r == 1) {
		/* The kernel holds this very plan: nothing to read. Its
		 * hairpin digest is the plan's or absent (an older ferry). */
		for (int k = 0; k < NFT_DIGEST_KINDS; k++)
			n->digests[k].cur = plan_sums[k];
		n->digests[NFT_DIGEST_CONTENT].in_kernel = true;
		n->digests[NFT_DIGEST_HAIRPIN].in_kernel = hairpins_known;
		r = nft_state_rebase_all_present(&n->state);
		log_info("nftables: taking over: the kernel's sets hold this plan (content digest %016llx), "
			 "%zu elements: none read", (unsigned long long)plan_digest, kept);
	} else {
		if (r < 0)
			log_debug("nftables: looking the content digest up failed (%s): reading the sets",
				  strerror(-r));
		else
			log_info("nftables: taking over: the kernel's sets do not hold this plan as it is "
				 "(content digest %016llx not found): reading them", (unsigned long long)plan_digest);
		if (hairpins_known)
			log_info("nftables: taking over: the kernel's hairpin pairs are this plan's (hairpin digest "
				 "%016llx): not read", (unsigned long long)plan_sums[NFT_DIGEST_HAIRPIN]);
		if (nft_state_complete_adds(&n->state) < 0) {
			nft_state_discard(&n->state);
			cidrs_discard(n);
			return log_errno(-ENOMEM, "nftables: out of memory taking over the tables");
		}
		nft_state_sort_adds(&n->state);
		present = calloc(c->n_adds + 1, 1);
		if (!present || nft_takeover_read(n->nl, n->rcfg.masq_mark, c->adds, c->n_adds, hairpins_known, &have,
						  present) < 0) {
			free(present);
			nft_elem_vec_done(&have);
			nft_state_discard(&n->state);
			cidrs_discard(n);
			return 1;
		}
		content_take_out(n, &have);
		for (size_t i = 0; i < have.n; i++)
			if (have.v[i].set == NFT_SET_SLOTS)
				have_slots[have.v[i].family == AF_INET6]++;
		for (size_t i = 0; i < c->n_adds; i++)
			if (present[i] && c->adds[i]->set == NFT_SET_SLOTS)
				have_slots[c->adds[i]->family == AF_INET6]++;
		r = nft_state_rebase_present(&n->state, have.v, have.n, present);
		free(present);
		present = NULL;
	}
	t_read = now_ms() - t_built;
	if (r == 0) {
		kept -= c->n_adds;
		log_elems("take-over removes from", c->dels, c->n_dels);
		log_elems("take-over adds to", c->adds, c->n_adds);
		r = nft_state_udp_gone(&n->state, &gone, &n_gone);
	}
	/* One transaction: the digest elements' place in it does not matter. */
	if (r == 0)
		r = content_stage(n, plan_sums, true);
	if (r == 0)
		r = nft_change_msgs(n->batch, &n->rcfg, &n->aff_chains, c);
	if (r == 0)
		r = content_add(n);
	if (r < 0) {
		nft_elem_vec_done(&have);
		nft_state_discard(&n->state);
		cidrs_discard(n);
		return log_errno(r, "nftables: out of memory taking over the tables");
	}
	/* The slot table holds the kernel's elements until the commit. */
	for (int f = 0; f < 2; f++)
		need[f] = want[f] > have_slots[f] ? want[f] : have_slots[f];
	r = slots_reserve(n, need);
	if (r == 0 && nft_batch_count(n->batch))
		r = nft_batch_commit(n->nl, n->batch, 0, &be);
	if (r < 0) {
		if (be.err)
			log_commit_error(n, r, &be, "taking over the tables");
		nft_elem_vec_done(&have);
		nft_state_discard(&n->state);
		cidrs_discard(n);
		n->need_full = true;
		return r;
	}
	t_sent = now_ms();
	n_del = c->n_dels;
	n_add = c->n_adds;
	if (n_gone)
		conntrack_flush_udp(gone, n_gone);
	nft_state_commit(&n->state);
	cidrs_commit(n);
	content_commit(n);
	log_debug("nftables: take-over: rules checked in %.1f ms, plan staged in %.1f ms, messages and commit "
		  "%.1f ms, state committed in %.1f ms", t_rules - t0, t_built - t_rules, t_sent - t_built - t_read,
		  now_ms() - t_sent);
	log_info("nftables: took over the tables of an earlier ferry: %zu elements kept, %zu removed, %zu added "
		 "(%zu messages) in %.1f ms (reading %.1f ms); rules kept, %zu service CIDR rules written",
		 kept, n_del, n_add, nft_batch_count(n->batch), now_ms() - t0, t_read, n->n_cidrs_done);
	nft_elem_vec_done(&have);
	release_big_buffers(n);
	n->need_full = false;
	return 0;
}

/* A sync that cannot diff against kept state: the first one of the
 * process takes the kernel's tables over when it can, any other (after a
 * failure) replaces everything. */
static int nftables_rebuild(struct nftables *n, const struct plan *plan)
{
	if (!n->adopt_tried) {
		int r;

		n->adopt_tried = true;
		r = nftables_adopt(n, plan);
		if (r != 1)
			return r;
	}
	return nftables_full(n, plan);
}

/* Send the staged change and commit it into the state: its messages, the
 * slot table sized for it, the kernel commit (chunked), the conntrack
 * entries of removed UDP endpoints, then nft_state_commit. r: how the
 * staging went (the change is discarded when it failed). On any failure
 * the next sync replaces everything (a chunked commit may have been
 * applied in part). n_changed, n_removed, t0: for the log. */
static int nftables_update(struct nftables *n, const struct plan *plan, int r, size_t n_changed, size_t n_removed,
			   double t0)
{
	struct nft_state_change *c = &n->state.change;
	struct nft_batch_error be = { 0 };
	const struct conntrack_target *gone = NULL;
	size_t n_gone = 0, need[2];
	bool reserve_failed = false;

	nft_batch_clear(n->batch);
	/* The old digests go first, the new ones last (content_stage). */
	content_reset(n, false);
	if (r == 0 && (c->n_dels || c->n_adds)) {
		uint64_t dels[NFT_DIGEST_KINDS], adds[NFT_DIGEST_KINDS], next[NFT_DIGEST_KINDS];

		hash_sums(c->dels, c->n_dels, dels);
		hash_sums(c->adds, c->n_adds, adds);
		for (int k = 0; k < NFT_DIGEST_KINDS; k++)
			next[k] = n->digests[k].cur - dels[k] + adds[k];
		r = content_stage(n, next, true);
	}
	/* Then the CIDR rules: their flush and rules stay in one chunk. */
	if (r == 0)
		r = cidrs_stage(n, plan, false);
	if (r == 0)
		r = nft_state_udp_gone(&n->state, &gone, &n_gone);
	if (r == 0)
		r = nft_change_msgs(n->batch, &n->rcfg, &n->aff_chains, c);
	if (r == 0)
		r = content_add(n);
	if (r == 0) {
		nft_state_slots_need(&n->state, need);
		r = slots_reserve(n, need);
		reserve_failed = r < 0;
	}
	if (r == 0)
		r = nft_batch_commit(n->nl, n->batch, NFT_CHUNK_MSGS, &be);
	if (r < 0) {
		if (be.err)
			log_commit_error(n, r, &be, "update");
		else if (r != -ENOMEM && !reserve_failed)
			log_errno(r, "nftables: update: cannot stage the change");
		nft_state_discard(&n->state);
		cidrs_discard(n);
		n->need_full = true;
		return r;
	}
	log_debug("nftables: update: %zu frontends changed, %zu removed: -%zu +%zu elements, %zu messages "
		  "in %.2f ms", n_changed, n_removed, c->n_dels, c->n_adds, nft_batch_count(n->batch),
		  now_ms() - t0);
	if (n_gone)
		conntrack_flush_udp(gone, n_gone);
	nft_state_commit(&n->state);
	cidrs_commit(n);
	content_commit(n);
	return 0;
}

static int nftables_sync(void *priv, const struct plan *plan)
{
	struct nftables *n = priv;
	double t0 = now_ms();
	int r = 0;

	if (!n->nl)
		return -ENOTCONN;
	if (n->need_full)
		return nftables_rebuild(n, plan);
	/* Every frontend of the plan is recomputed; the diff against the
	 * committed elements decides what the kernel sees. Frontends the plan
	 * lacks go. */
	for (size_t i = 0; i < plan->n_frontends && r == 0; i++)
		r = stage_frontend(n, &plan->frontends[i]);
	if (r == 0)
		r = nft_state_stage_unstaged_removals(&n->state);
	return nftables_update(n, plan, r < 0 ? r : 0, plan->n_frontends, r > 0 ? (size_t)r : 0, t0);
}

static int nftables_apply(void *priv, const struct plan *plan, const struct plan_diff *diff)
{
	struct nftables *n = priv;
	/* The planner lists what to reprogram: added, changed, and the
	 * frontends whose set changed (touched), three disjoint lists
	 * (plan-t.h); no pass over the plan. */
	const struct plan_frontend *const *lists[] = { diff->fe_added, diff->fe_changed, diff->fe_touched };
	size_t counts[] = { diff->n_fe_added, diff->n_fe_changed, diff->n_fe_touched };
	double t0;
	int r = 0;

	if (!n->nl)
		return -ENOTCONN;
	if (n->need_full)
		return nftables_rebuild(n, plan);
	t0 = now_ms();
	for (size_t l = 0; l < 3; l++)
		for (size_t i = 0; i < counts[l] && r == 0; i++)
			r = stage_frontend(n, lists[l][i]);
	for (size_t i = 0; i < diff->n_fe_removed && r == 0; i++) {
		struct nft_state_key key;

		nft_state_key_of(diff->fe_removed[i], &key);
		r = nft_state_stage_removal(&n->state, &key);
	}
	return nftables_update(n, plan, r, counts[0] + counts[1] + counts[2], diff->n_fe_removed, t0);
}

static int nftables_probe(char *why, size_t why_len)
{
	struct mnl_socket *nl = NULL;
	struct nft_batch *b = NULL;
	struct nft_batch_error be = { 0 };
	char name[64];
	int r;

	r = nft_socket_open(&nl);
	if (r < 0) {
		snprintf(why, why_len, "cannot open a NETLINK_NETFILTER socket: %s", strerror(-r));
		return r;
	}
	b = nft_batch_new();
	snprintf(name, sizeof(name), "ferry_probe_%ld", (long)getpid());
	r = b ? nft_probe_msgs(b, name) : -ENOMEM;
	if (r == 0)
		r = nft_batch_commit(nl, b, 0, &be);
	if (r < 0)
		snprintf(why, why_len, "the kernel refused an nf_tables transaction with a nat chain (%s)%s",
			 strerror(-r), r == -EPERM ? ": needs CAP_NET_ADMIN (run as root)" : "");
	nft_batch_free(b);
	mnl_socket_close(nl);
	return r;
}

int nftables_config(const struct nftables_options *opts, struct nft_ruleset_cfg *rcfg,
		    struct nft_elems_cfg *ecfg)
{
	static const struct nftables_options defaults = { 0 };
	const struct local_detect *local;

	if (!opts)
		opts = &defaults;
	local = &opts->local;
	*rcfg = (struct nft_ruleset_cfg){
		.masq_mark = opts->masquerade_mark ? opts->masquerade_mark : NFTABLES_DEFAULT_MASQ_MARK,
		.cluster_cidrs = local->cluster_cidrs,
		.n_cluster_cidrs = local->n_cluster_cidrs,
	};
	if (local->mode != LOCAL_DETECT_CLUSTER_CIDR) {
		size_t len = local->interface ? strlen(local->interface) : 0;

		if (len == 0 || len > NFT_IFNAME_MAX)
			return log_errno(-EINVAL, "nftables: local interface name '%s' must be 1-%d characters",
					 local->interface ? local->interface : "", NFT_IFNAME_MAX);
		memcpy(rcfg->local_iifname, local->interface, len);
		rcfg->local_iifname_prefix = local->mode == LOCAL_DETECT_INTERFACE_NAME_PREFIX;
	}
	*ecfg = (struct nft_elems_cfg){
		.masq_mark = rcfg->masq_mark,
		.local_v4 = nft_ruleset_detects_local(rcfg, AF_INET),
		.local_v6 = nft_ruleset_detects_local(rcfg, AF_INET6),
	};
	return 0;
}

static int nftables_init(void *priv, const void *options)
{
	struct nftables *n = priv;
	int r;

	n->need_full = true;
	nft_state_init(&n->state);
	r = nftables_config(options, &n->rcfg, &n->ecfg);
	if (r < 0)
		return r;
	if (n->rcfg.n_cluster_cidrs) {
		/* Owned copies: the options need not outlive init. */
		n->cidrs = calloc(n->rcfg.n_cluster_cidrs, sizeof(*n->cidrs));
		if (!n->cidrs)
			return -ENOMEM;
		memcpy(n->cidrs, n->rcfg.cluster_cidrs, n->rcfg.n_cluster_cidrs * sizeof(*n->cidrs));
		n->rcfg.cluster_cidrs = n->cidrs;
	}
	r = nft_ruleset_tag(&n->rcfg, n->tag);
	if (r < 0)
		return r;
	n->rcfg.tag = n->tag;
	n->batch = nft_batch_new();
	if (!n->batch)
		return -ENOMEM;
	r = nft_socket_open(&n->nl);
	if (r < 0)
		return log_errno(r, "nftables: cannot open a NETLINK_NETFILTER socket");
	if (n->rcfg.local_iifname[0])
		log_info("nftables: masquerade mark 0x%x, detect-local-mode %s: traffic in on iifname \"%s%s\" "
			 "is local", n->rcfg.masq_mark,
			 n->rcfg.local_iifname_prefix ? "InterfaceNamePrefix" : "BridgeInterface",
			 n->rcfg.local_iifname, n->rcfg.local_iifname_prefix ? "*" : "");
	else
		log_info("nftables: masquerade mark 0x%x, detect-local-mode ClusterCIDR: %zu cluster CIDRs",
			 n->rcfg.masq_mark, n->rcfg.n_cluster_cidrs);
	return 0;
}

static void nftables_fini(void *priv)
{
	struct nftables *n = priv;

	/* The rules stay in force: a restarted ferry takes them over (kube-proxy
	 * does the same); `ferry cleanup` removes them. */
	nft_state_done(&n->state);
	nft_elem_vec_done(&n->scratch);
	nft_aff_chains_done(&n->aff_chains);
	free(n->cidrs);
	free(n->cidrs_done);
	free(n->cidrs_new);
	n->batch = nft_batch_free(n->batch);
	if (n->nl)
		mnl_socket_close(n->nl);
	memset(n, 0, sizeof(*n));
}

static int nftables_cleanup(void)
{
	struct mnl_socket *nl = NULL;
	struct nft_batch *b = nft_batch_new();
	int r, ret = 0;

	if (!b)
		return -ENOMEM;
	r = nft_socket_open(&nl);
	if (r < 0) {
		nft_batch_free(b);
		return log_errno(r, "nftables: cannot open a NETLINK_NETFILTER socket");
	}
	/* One transaction per family, so an absent table does not stop the
	 * other's removal. */
	for (int fam = 0; fam < 2; fam++) {
		struct nft_batch_error be = { 0 };
		const char *name = fam ? "ip6" : "ip";

		nft_batch_clear(b);
		r = nft_table_delete_msg(b, fam ? AF_INET6 : AF_INET);
		if (r == 0)
			r = nft_batch_commit(nl, b, 0, &be);
		/* Say what was there: cleanup is run by hand, after a crash. */
		if (r == 0)
			log_info("nftables: cleanup removed table %s %s", name, NFT_TABLE_NAME);
		else if (r == -ENOENT)
			log_info("nftables: cleanup: no table %s %s", name, NFT_TABLE_NAME);
		if (r == -ENOENT)
			r = 0;
		if (r < 0)
			ret = log_errno(r, "nftables: cleanup: %s refused", be.desc);
	}
	nft_batch_free(b);
	mnl_socket_close(nl);
	/* The relay's interception tables are nftables too: remove them here. */
	r = nftables_intercept_ops.cleanup();
	if (r < 0)
		ret = log_errno(r, "nftables: cleanup of the interception tables failed");
	return ret;
}

/* Frontends with elements committed, and the endpoint slot elements per
 * family (kube-proxy's nftables sets and maps hold the rest). */
static void nftables_counts(void *priv, backend_count_fn emit, void *userdata)
{
	const struct nftables *nf = priv;

	emit(userdata, "frontends", nf->state.n_fes);
	emit(userdata, "slot_elements_ip", nf->state.slots_count[0]);
	emit(userdata, "slot_elements_ip6", nf->state.slots_count[1]);
}

const struct backend_ops nftables_backend_ops = {
	.name = "nftables",
	.nodeport_default_primary = true,
	.priv_size = sizeof(struct nftables),
	.probe = nftables_probe,
	.init = nftables_init,
	.sync = nftables_sync,
	.apply = nftables_apply,
	.render = nftables_render,
	.cleanup = nftables_cleanup,
	.fini = nftables_fini,
	.counts = nftables_counts,
};
