/* Mechanism: nf_tables netlink transactions (libmnl).
 *
 * A batch is a growable buffer of nf_tables messages, each built in place by
 * the caller with libnftnl, plus a short description of each for error logs.
 * nft_batch_commit wraps the messages in BATCH_BEGIN/BATCH_END (one kernel
 * transaction per chunk), sends them and collects every ack and error.
 * Nothing here logs above debug or knows what the messages mean.
 */
#ifndef FERRY_NFT_BATCH_H
#define FERRY_NFT_BATCH_H

#include <stddef.h>
#include <stdint.h>

struct mnl_socket;
struct nlmsghdr;
struct nft_batch;

/* Room the caller may fill after nft_batch_msg_begin (one message). */
#define NFT_BATCH_MSG_MAX (96 * 1024)

/* Why a commit failed: the first message the kernel refused. */
struct nft_batch_error {
	int err;          /* negative errno */
	size_t index;     /* index of the refused message; SIZE_MAX: the transaction itself */
	char desc[96];    /* that message's description */
};

/* The NFPROTO_* value that messages about family's tables carry (the family
 * argument of nft_batch_msg_begin): NFPROTO_IPV6 for AF_INET6, NFPROTO_IPV4
 * for anything else. */
uint16_t nft_nfproto(int family);
/* nft's keyword for family's tables, "ip6" or "ip" (for texts and
 * descriptions). A static string. */
const char *nft_family_name(int family);

/* Open a NETLINK_NETFILTER socket sized for large transactions.
 * Returns 0 and *ret, or -errno. Close it with mnl_socket_close. */
int nft_socket_open(struct mnl_socket **ret);

/* An empty batch. NULL on allocation failure. */
struct nft_batch *nft_batch_new(void);
/* Free a batch. Accepts NULL; returns NULL. */
struct nft_batch *nft_batch_free(struct nft_batch *b);
/* Drop every message, keep the buffers for reuse. */
void nft_batch_clear(struct nft_batch *b);

/* Start a message of type (NFT_MSG_*) for family with flags (NLM_F_ACK is
 * added): returns a header with NFT_BATCH_MSG_MAX zeroed bytes of room behind
 * it for the libnftnl payload builders, or NULL on allocation failure. desc (copied,
 * truncated) names it in errors. The pointer stays valid until
 * nft_batch_msg_end, which must be called before the next begin. */
struct nlmsghdr *nft_batch_msg_begin(struct nft_batch *b, uint16_t type, uint16_t family,
				     uint16_t flags, const char *desc);
/* Replace the description of the message begun and not yet ended (for a
 * builder that knows what it holds only at its end). No-op when none is. */
void nft_batch_msg_describe(struct nft_batch *b, const char *desc);
/* Account for the message begun last (its nlmsg_len is final). */
void nft_batch_msg_end(struct nft_batch *b, struct nlmsghdr *nlh);

struct nftnl_set;
/* Append one NEWSETELEM (add) or DELSETELEM message for family (an
 * NFPROTO_* value) carrying the elements of s (its table, name and
 * elements set by the caller). 0 or -ENOMEM. */
int nft_batch_set_elems(struct nft_batch *b, struct nftnl_set *s, uint16_t family, int add, const char *desc);

/* Number of messages in the batch, and the raw bytes (messages only, no
 * BEGIN/END), for tests that parse messages back. */
size_t nft_batch_count(const struct nft_batch *b);
const void *nft_batch_data(const struct nft_batch *b, size_t *ret_len);
/* Description of message i. */
const char *nft_batch_desc(const struct nft_batch *b, size_t i);

/* Send the batch over nl as transactions of at most chunk_msgs messages
 * each (0: all in one transaction, which the kernel applies atomically).
 * Returns 0 when every message was accepted, else the first error (and
 * *ret_err, if not NULL, says which message); a refused transaction changes
 * nothing, but earlier chunks stay committed. The batch is left as it was. */
int nft_batch_commit(struct mnl_socket *nl, struct nft_batch *b, size_t chunk_msgs,
		     struct nft_batch_error *ret_err);

#endif
