/* Mechanism: nf_tables rules, built as libnftnl expressions and as the
 * equivalent nft text side by side, so that what a backend prints (`ferry
 * plan`, error logs) is what it programs.
 *
 * A rule is built into a struct nft_rule_builder, by calling the nft_expr_*
 * functions in the order the kernel evaluates the expressions, then sent
 * with nft_rule_builder_msg. A builder made with nft_rule_builder_init_text
 * has no libnftnl rule and collects the text alone (printing a ruleset
 * needs no memory but the builder).
 *
 * Registers: fields are loaded into the 32-bit registers, one after the
 * other, as nft does for a concatenation ("ip daddr . meta l4proto . th
 * dport" takes words 0, 1, 2 for IPv4 and 0..3, 4, 5 for IPv6), so that a
 * set lookup compares them with a key laid out the same way (nft_set.h).
 * Registers are named by word: word 0 is NFT_REG32_00. A load returns the
 * word after the one(s) it filled.
 *
 * Text: nft's syntax does not follow the order of the expressions (a
 * lookup is written after its key, "meta mark set" before the value it
 * stores), so only the functions whose syntax stands alone write text:
 * the loads of packet fields and numgen, verdicts, masquerade and reject.
 * The others (cmp, bitwise, lookup, meta and ct loads and stores, nat,
 * redirect, dynset) write none: the caller adds it with nft_expr_text.
 *
 * Errors: the first allocation failure is kept in rb->err and every later
 * expression call does nothing to the rule (the text is still written);
 * nft_rule_builder_msg returns it. So a rule function can be a plain
 * sequence of calls, checked once at the end.
 */
#ifndef FERRY_NFT_EXPR_H
#define FERRY_NFT_EXPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nft_batch;
struct nftnl_expr;
struct nftnl_rule;

/* Room for a rule's text (nft's own lines are short; a longer text is cut). */
#define NFT_RULE_TEXT_MAX 512

/* A rule being built. Fields are read-only for callers. */
struct nft_rule_builder {
	int family;                 /* AF_INET or AF_INET6: address sizes, "ip"/"ip6" */
	struct nftnl_rule *rule;    /* expressions go here; NULL: text only */
	char text[NFT_RULE_TEXT_MAX];
	size_t text_len;
	int err;                    /* first failure (negative errno), 0: none */
};

/* Start a rule for chain of table in family, with a libnftnl rule for the
 * expressions. 0, or -ENOMEM, which rb->err then keeps (the text still
 * builds, nft_rule_builder_msg returns the error, nft_rule_builder_done is
 * still due). */
int nft_rule_builder_init(struct nft_rule_builder *rb, int family, const char *table, const char *chain);

/* Start a rule that collects only its text (for printing). Cannot fail. */
void nft_rule_builder_init_text(struct nft_rule_builder *rb, int family);

/* Release the rule's memory (the text stays readable). Idempotent. */
void nft_rule_builder_done(struct nft_rule_builder *rb);

/* Attach comment to the rule as nft does (user data, comment TLV) and
 * write ` comment "..."` to the text. 0, -ENOMEM, or -EINVAL when the
 * comment exceeds nft's limit (also kept in rb->err). */
int nft_rule_builder_comment(struct nft_rule_builder *rb, const char *comment);

/* Append the rule to b as a NEWRULE message (created, appended at the end
 * of its chain), described by its text. The builder keeps its rule: call
 * nft_rule_builder_done afterwards. Returns rb->err if an expression
 * failed, -EINVAL for a text-only builder, -ENOMEM, or 0. */
int nft_rule_builder_msg(struct nft_rule_builder *rb, struct nft_batch *b);

/* Append printf-formatted text. */
void nft_expr_text(struct nft_rule_builder *rb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append a bare expression of kind name ("payload", "meta", ...) for the
 * caller to fill with nftnl_expr_set_*; the rule owns it. NULL for a
 * text-only builder or after a failure (which is then in rb->err). For
 * expressions this file has no function for. */
struct nftnl_expr *nft_expr_add(struct nft_rule_builder *rb, const char *name);

/* The register holding word (NFT_REG32_00 + word). */
uint32_t nft_expr_reg(unsigned word);

/* Bytes of an address in rb's family (4 or 16). */
size_t nft_expr_addr_len(const struct nft_rule_builder *rb);

/* ---- loads ---------------------------------------------------------------
 * Each fills word (and the following ones as needed) and returns the next
 * free word. */

/* len bytes of the packet at offset from base (NFT_PAYLOAD_*). No text. */
unsigned nft_expr_load_payload(struct nft_rule_builder *rb, uint32_t base, uint32_t offset, uint32_t len,
			       unsigned word);
/* The destination (dst) or source address: "ip daddr", "ip6 saddr". */
unsigned nft_expr_load_addr(struct nft_rule_builder *rb, bool dst, unsigned word);
/* The transport protocol, one byte: "meta l4proto". */
unsigned nft_expr_load_l4proto(struct nft_rule_builder *rb, unsigned word);
/* The transport destination port, network order: "th dport". */
unsigned nft_expr_load_dport(struct nft_rule_builder *rb, unsigned word);
/* A random number in offset..offset+mod-1: "numgen random mod M [offset O]". */
unsigned nft_expr_load_numgen(struct nft_rule_builder *rb, unsigned mod, uint32_t offset, unsigned word);
/* Meta key (NFT_META_MARK, NFT_META_IIFNAME...). No text. */
unsigned nft_expr_load_meta(struct nft_rule_builder *rb, uint32_t key, unsigned word);
/* Conntrack key (NFT_CT_STATUS...). No text. */
unsigned nft_expr_load_ct(struct nft_rule_builder *rb, uint32_t key, unsigned word);
/* The address type of the destination (fib daddr type: RTN_LOCAL...), 4
 * bytes host order. No text. */
unsigned nft_expr_load_fib_daddr_type(struct nft_rule_builder *rb, unsigned word);

/* ---- operations (no text) ---------------------------------------------- */

/* Compare len bytes of word.. with data; the rule goes on only if op
 * (NFT_CMP_EQ, NFT_CMP_NEQ...) holds. */
void nft_expr_cmp(struct nft_rule_builder *rb, unsigned word, uint32_t op, const void *data, size_t len);
/* word.. = (word.. & mask) ^ xor over len bytes. */
void nft_expr_bitwise(struct nft_rule_builder *rb, unsigned word, const void *mask, const void *xor, size_t len);
/* Look the key in key_word.. up in set: the rule goes on only if found
 * (not found when inverted). For a map, dreg receives the value: a
 * register (nft_expr_reg) or NFT_REG_VERDICT for a verdict map, which then
 * decides; dreg < 0: no value. */
void nft_expr_lookup(struct nft_rule_builder *rb, unsigned key_word, const char *set, int dreg, bool inverted);
/* Add the key in key_word.. with the value in data_word to the dynamic
 * map set, or refresh its timeout when present (its value stays). */
void nft_expr_dynset_update(struct nft_rule_builder *rb, const char *set, unsigned key_word, unsigned data_word);
/* Set meta key (NFT_META_MARK...) from word. */
void nft_expr_store_meta(struct nft_rule_builder *rb, uint32_t key, unsigned word);

/* ---- statements -------------------------------------------------------- */

/* A verdict: NF_ACCEPT, NF_DROP, NFT_RETURN, or NFT_JUMP / NFT_GOTO to
 * chain. Text: "accept", "jump chain"... */
void nft_expr_verdict(struct nft_rule_builder *rb, int code, const char *chain);
/* Source or destination NAT (NFT_NAT_SNAT, NFT_NAT_DNAT) to the address
 * in addr_word.. and the port in proto_word (< 0: keep the port). No text. */
void nft_expr_nat(struct nft_rule_builder *rb, uint32_t type, unsigned addr_word, int proto_word);
/* Redirect to this host, port in proto_word. No text. */
void nft_expr_redirect(struct nft_rule_builder *rb, unsigned proto_word);
/* Masquerade, flags NF_NAT_RANGE_* (0: none): "masquerade [fully-random]". */
void nft_expr_masquerade(struct nft_rule_builder *rb, uint32_t flags);
/* Reject a TCP packet with a reset: "reject with tcp reset". */
void nft_expr_reject_tcp_reset(struct nft_rule_builder *rb);
/* Reject with ICMP(v6) port unreachable, nft's default: "reject". */
void nft_expr_reject_port_unreachable(struct nft_rule_builder *rb);

/* The address type of the source (fib saddr type: RTN_LOCAL for one of
 * this host's addresses...), 4 bytes host order, as
 * nft_expr_load_fib_daddr_type does for the destination. No text. */
unsigned nft_expr_load_fib_saddr_type(struct nft_rule_builder *rb, unsigned word);

/* Match "ct state new " (uses word 0): the first packet of a connection. */
void nft_expr_match_ct_new(struct nft_rule_builder *rb);

#endif
