/* State: what the nftables backend has committed to the kernel, and the
 * change it is about to send. No netlink here: the unit is plain data and
 * is tested without root (tests/unit/test_nft_state.c).
 *
 * Committed state: per frontend (sorted by struct nft_state_key), the
 * elements it put in the kernel, sorted by nft_elem_cmp, kept packed
 * (nft_pack.h: about 7 bytes per IPv4 slot element instead of 72, the
 * full elements rebuilt when a change needs them); a reference count per
 * shared element (a hairpin pair: two frontends with the same endpoint
 * share it; a cluster IP: every port of the address), in tables keyed by
 * the address alone where the element is ferry's usual shape; the
 * slot-table element count per family and the size ferry declared for the
 * slot table.
 *
 * A change is staged, sent, then committed or discarded:
 *
 *   nft_state_stage (per recomputed frontend), nft_state_stage_removal,
 *   nft_state_stage_unstaged_removals (a sync: frontends the plan no longer has)
 *       -> change.dels / change.adds: the element deletes and adds the
 *          kernel must see (shared elements only on their first and last
 *          reference), nft_state_udp_gone: the UDP endpoints it removes
 *   the caller builds and commits the messages, then
 *   nft_state_commit: the state becomes the staged one, or
 *   nft_state_discard: the state is as it was before the first stage.
 *
 * One change at a time. Staging costs O(elements of the staged frontends
 * + log frontends) each (a committed frontend is unpacked to be diffed);
 * committing costs that plus one pass over the frontend array when
 * frontends come or go, never a scan of all elements. The full elements a
 * change refers to (change.dels, change.adds) live in storage of the
 * change, given back when it ends.
 */
#ifndef FERRY_NFT_STATE_H
#define FERRY_NFT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conntrack.h"
#include "nft_elems.h"
#include "nft_sets.h"
#include "plan-t.h"

/* A frontend's identity (its kind, address, protocol and port), compared
 * bytewise. */
struct nft_state_key {
	uint8_t kind;
	uint8_t family;
	uint8_t proto;
	uint8_t pad;
	uint16_t port;
	uint8_t addr[16];
};

/* One committed frontend. */
struct nft_state_fe {
	struct nft_state_key key;
	uint8_t *packed;          /* its elements, sorted by nft_elem_cmp, packed (nft_pack.h) */
	uint32_t n;               /* elements */
	uint32_t len : 31;        /* bytes at packed */
	uint32_t pooled : 1;      /* packed lives in the state's pool, not malloc'd */
	uint64_t staged;          /* the change number that staged it last */
};

/* Private to nft_state.c: a block of storage (packed elements, or the
 * change's full elements). */
struct nft_state_chunk;

/* Private to nft_state.c: committed reference counts of shared elements,
 * an open-addressing table of fixed-size entries (the key, then a 32-bit
 * word: in use, kind, count). */
struct nft_state_refs {
	uint8_t *v;
	size_t cap, n, n_used;    /* entries; live; live and tombstones */
};

/* The tables of struct nft_state_refs: IPv4 and IPv6 hairpin pairs and
 * cluster IPs keyed by their address, and any other shared element by
 * its whole key. */
#define NFT_STATE_REFS 3

/* Private to nft_state.c: a staged frontend whose elements change, a
 * hairpin element's committed reference count, the change's net
 * references on one hairpin element, and a slot of the hash index over
 * those. */
struct nft_state_pending;
struct nft_state_hairpin;
struct nft_state_hp_delta;
struct nft_state_hp_slot;

/* The staged change. dels and adds may be read and reordered by the
 * caller (to group its messages; clear adds_sorted when reordering adds);
 * everything else is private. */
struct nft_state_change {
	/* The kernel elements to delete and to add, as pointers into the
	 * committed elements (dels) and the staged ones (adds): valid until
	 * nft_state_commit or nft_state_discard. */
	const struct nft_elem **dels, **adds;
	size_t n_dels, n_adds;

	bool adds_sorted;         /* adds sorted by nft_elem_cmp (nft_state_sort_adds) */
	bool deferred;            /* adds lacks what nft_state_complete_adds queues */

	size_t cap_dels, cap_adds;
	struct nft_state_pending *pend; /* frontends whose element list changes */
	size_t n_pend, cap_pend, n_inserts;
	struct nft_state_hp_delta *hpd; /* hairpins the change references */
	size_t n_hpd, cap_hpd, n_hpd_new[NFT_STATE_REFS];
	struct nft_state_hp_slot *hpd_index; /* hash index over hpd */
	size_t cap_hpd_index;
	struct conntrack_target *ct;    /* removed UDP slot endpoints */
	uint8_t *ct_used;
	size_t n_ct, cap_ct;
	bool ct_done;             /* ct sorted, de-duplicated and filtered */
	size_t slot_adds[2], slot_dels[2]; /* NFT_SET_SLOTS elements, [0] ip [1] ip6 */
	struct nft_state_chunk *arena;  /* the full elements dels and adds point at */
};

/* The committed state plus the staged change. Embed it and use the
 * functions below; read the fields marked public only. */
struct nft_state {
	struct nft_state_fe *fes; /* sorted by key */
	size_t n_fes, cap_fes;
	struct nft_state_refs refs[NFT_STATE_REFS]; /* shared elements' counts */
	uint64_t gen;             /* number of the current change */
	/* public: NFT_SET_SLOTS elements committed per family ([0] ip, [1]
	 * ip6), and the size declared for that set in this process (0: none
	 * yet). */
	size_t slots_count[2];
	uint32_t slots_size[2];
	/* Packed elements of frontends staged against an empty state (a full
	 * sync, a take-over): big blocks, freed together at nft_state_clear,
	 * instead of 100k mallocs. */
	struct nft_state_chunk *chunks;
	uint8_t *pack;            /* scratch: one frontend's elements being packed */
	size_t cap_pack;
	struct nft_elem_vec view; /* nft_state_elems' answer */
	/* public: the staged change (see struct nft_state_change). */
	struct nft_state_change change;
};

/* Smallest slot-table size declared (see nft_state_slots_size). */
#define NFT_STATE_SLOTS_SIZE_MIN 65536u

/* Sets whose elements' data is an endpoint: the slot tables. */
bool nft_state_is_slot_set(uint8_t set);
/* Sets whose elements several frontends may hold, reference counted (the
 * "hairpin" functions and fields below count them all): NFT_SET_HAIRPIN
 * and NFT_SET_CLUSTER_IPS. */
bool nft_state_is_shared_set(uint8_t set);

/* Initialise an embedded state: empty, nothing staged, no size declared. */
void nft_state_init(struct nft_state *s);

/* Free everything s holds (committed and staged) and leave it as
 * nft_state_init does. Accepts a state that was only zeroed. */
void nft_state_done(struct nft_state *s);

/* Forget every committed frontend and hairpin and any staged change, as
 * before a full replace: the next change is staged against nothing. The
 * declared slot-table sizes stay (the kernel keeps the set). */
void nft_state_clear(struct nft_state *s);

/* The identity of plan frontend fe, into *ret. */
void nft_state_key_of(const struct plan_frontend *fe, struct nft_state_key *ret);

/* Frontends committed. */
size_t nft_state_frontends(const struct nft_state *s);

/* The committed elements of frontend key (sorted; *ret_n their count), or
 * NULL with *ret_n 0 when it has none (or, unpacked into storage of the
 * state, when out of memory). Valid until the next call, commit, discard
 * or clear. For tests and logs: a change unpacks what it needs itself. */
const struct nft_elem *nft_state_elems(struct nft_state *s, const struct nft_state_key *key, size_t *ret_n);

/* References that the state, staged change included, holds on shared
 * element e (nft_state_is_shared_set; 0: not in the kernel once the change
 * is committed). */
uint32_t nft_state_hairpin_refs(const struct nft_state *s, const struct nft_elem *e);

/* Stage frontend key with the elements elems (sorted by nft_elem_cmp, no
 * two equal; those nft_frontend_elems computes). The change takes elems'
 * array over whatever the result and resets *elems. Queues in
 * change.dels the committed elements that elems lacks and in change.adds
 * the ones it brings; a shared element (a hairpin, a cluster IP) is added
 * on its first reference only and deleted with its last; a deleted UDP
 * slot element records its endpoint for nft_state_udp_gone. A key may be
 * staged once per change (a plan's frontends are unique): a committed key
 * staged again gets -EALREADY; a new key staged twice is not detected (its
 * last elements win, its shared elements keep both references). Returns
 * 0, -EALREADY or -ENOMEM; after an error the change is to be discarded. */
int nft_state_stage(struct nft_state *s, const struct nft_state_key *key, struct nft_elem_vec *elems);

/* The same, with elems[0..n) copied (the caller keeps its array, e.g. a
 * scratch one reused for every frontend) into the change's storage. The
 * packed form committed goes, against an empty committed state, to the
 * state's pool (see struct nft_state), else to a malloc'd array of its
 * own. Returns as nft_state_stage. */
int nft_state_stage_copy(struct nft_state *s, const struct nft_state_key *key, const struct nft_elem *elems,
			 size_t n);

/* The same against an empty committed state (a full sync, a take-over),
 * without copying what is not needed yet: change.adds gets the shared
 * elements' first references only; the others are packed and counted
 * (the commit installs them, nft_state_slots_need counts them) and queued
 * in change.adds by nft_state_complete_adds, when the change is to be
 * sent or rebased. A take-over that finds its plan in the kernel never
 * needs them: nft_state_rebase_all_present, then the commit. Returns as
 * nft_state_stage, or -EINVAL when the state holds frontends. */
int nft_state_stage_deferred(struct nft_state *s, const struct nft_state_key *key, const struct nft_elem *elems,
			     size_t n);

/* Queue in change.adds the elements deferred staging left out (unpacked
 * into the change's storage; change.adds then unsorted), so that it holds
 * what nft_state_stage_copy would have queued. No-op when none were
 * deferred. Returns 0 or -ENOMEM (the change is then to be discarded). */
int nft_state_complete_adds(struct nft_state *s);

/* Stage the removal of frontend key: every element of it is queued for
 * deletion. A key that is not committed is a no-op. Returns 0, -EALREADY
 * or -ENOMEM as nft_state_stage. */
int nft_state_stage_removal(struct nft_state *s, const struct nft_state_key *key);

/* Stage the removal of every committed frontend this change has not
 * staged: after staging all of a plan's frontends, those the plan lost.
 * One pass over the committed frontends. Returns how many, or -ENOMEM. */
int nft_state_stage_unstaged_removals(struct nft_state *s);

/* Sort change.adds by nft_elem_cmp (for lookups by the caller; a later
 * stage unsorts it). Deferred adds are not in it until completed. */
void nft_state_sort_adds(struct nft_state *s);

/* Rebase a change staged against a cleared state onto what the kernel
 * holds: kernel[0..n), sorted by nft_elem_cmp, no two equal. Afterwards
 * change.adds keeps only the elements the kernel lacks (sorted) and
 * change.dels lists the kernel's elements the change does not add
 * (pointers into kernel, which must outlive the change); deleted UDP slot
 * elements record their endpoints. Deferred adds are completed first
 * (nft_state_complete_adds). The state the commit installs is unchanged.
 * Returns 0, -EINVAL when the change deletes committed elements already
 * (the state was not cleared), or -ENOMEM. */
int nft_state_rebase(struct nft_state *s, const struct nft_elem *kernel, size_t n);

/* The same, with the adds the kernel is known to hold without reading
 * them: present[i] set for change.adds[i] (complete and sorted when
 * present was filled: else -EINVAL), e.g. slots vouched for by their
 * digest. Such an add is kept out of change.adds as one in kernel would
 * be; kernel need not hold it. */
int nft_state_rebase_present(struct nft_state *s, const struct nft_elem *kernel, size_t n, const uint8_t *present);

/* The take-over's shortcut: the kernel holds exactly the elements the
 * change, staged against a cleared state, adds (it found the content
 * digest of this plan, nft_sets.h). Afterwards change.adds and
 * change.dels are empty and the commit installs the staged state, as
 * nft_state_rebase onto those same elements would, without their copy.
 * Returns 0, or -EINVAL when the change deletes committed elements
 * already (the state was not cleared). */
int nft_state_rebase_all_present(struct nft_state *s);

/* The UDP endpoints the change removes, for conntrack cleanup: the
 * endpoint of every deleted slot element of a UDP frontend, once, unless a
 * slot element the change adds points at it again (a resized or rebuilt
 * slot table moves endpoints between slots). Call after the last stage or
 * rebase; *ret stays valid until the change ends. Returns 0 (what it
 * needs was allocated while staging). */
int nft_state_udp_gone(struct nft_state *s, const struct conntrack_target **ret, size_t *ret_n);

/* The slot-table elements per family the kernel holds at most while the
 * change commits (the committed count plus the change's slot adds), into
 * ret ([0] ip, [1] ip6). */
void nft_state_slots_need(const struct nft_state *s, size_t ret[2]);

/* The slot-table size to declare for need elements: half again as many
 * (a raise is a transaction of its own, so it should be rare), at least
 * NFT_STATE_SLOTS_SIZE_MIN, at most UINT32_MAX. Pure. */
uint32_t nft_state_slots_size(size_t need);

/* Which families need a bigger declared slot table for need[f] elements:
 * ret_size[f] is nft_state_slots_size(need[f]) when need[f] exceeds the
 * declared size, else 0. Returns whether any family does. */
bool nft_state_slots_grow(const struct nft_state *s, const size_t need[2], uint32_t ret_size[2]);

/* Record that the kernel accepted the sizes size[f] (0: unchanged). */
void nft_state_slots_declared(struct nft_state *s, const uint32_t size[2]);

/* What the committed state takes, in bytes: the frontend array, the
 * packed elements (pool blocks, or the arrays of their own), and the
 * reference-count tables. Allocator overhead aside. */
struct nft_state_mem {
	size_t frontends, packed, refs;
};
void nft_state_mem(const struct nft_state *s, struct nft_state_mem *ret);

/* Between changes: give back the change's working arrays when a big one
 * (a full sync, a take-over: a pointer per element of the plan) left
 * them large, and shrink the reference-count tables to their contents
 * (a table grown while staging is about twice as big as it needs); the
 * next small change allocates small ones. No-op while a change is
 * staged. */
void nft_state_trim(struct nft_state *s);

/* The kernel accepted the change: the staged frontends' elements become
 * the committed ones, removed frontends go, the slot counts move, and the
 * deleted elements are freed (change.dels dangles from here). Cannot
 * fail: everything it needs was reserved while staging. Ends the change. */
void nft_state_commit(struct nft_state *s);

/* The change is not sent, or the kernel refused it: drop it, with the
 * hairpin references it took or dropped and the elements it staged. The
 * committed state is as before the first stage (only tables may have
 * grown). Cannot fail. Ends the change. */
void nft_state_discard(struct nft_state *s);

#endif
