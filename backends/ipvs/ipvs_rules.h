/* Mechanism: the constant nf_tables rules of the IPVS backend, which do
 * what IPVS cannot decide itself by consulting the ipsets of ipvs_items.h:
 * source ranges, refusing or dropping connections to services without an
 * endpoint, marking connections for masquerade, the masquerade itself
 * (hairpin pairs and marked connections), and the guards of the service
 * range (an undefined port of a cluster IP refused, an unallocated address
 * of the range dropped).
 *
 * The rules are nf_tables rules (tables "ip ferry_ipvs" and "ip6
 * ferry_ipvs") whose set lookups are xtables `set` matches carried by
 * nft_compat, which is what iptables-nft sends for `-m set`: ipsets stay
 * the membership store (libipset, changed element by element), nf_tables
 * gives one atomic transaction for the rules. Their number never depends
 * on the plan. A set match names its set by the kernel's index, which
 * the caller looks up once the sets exist (ipvs_rules_set_index).
 *
 * Packet path, per family:
 *   prerouting / output (nat, priority -100, before IPVS at LOCAL_IN and
 *   LOCAL_OUT) jump to services:
 *     FIREWALL dst,dst and not SOURCES dst,dst,src        drop
 *     EMPTY-REJECT dst,dst                                reject (TCP reset, else ICMP)
 *     EMPTY-DROP dst,dst                                  drop
 *     MASQ dst,dst                                        mark for masquerade
 *     CLUSTER-IP dst,dst, not local (--detect-local-mode) mark for masquerade
 *     ct state new, CLUSTER-ADDRS dst, not SERVICES dst,dst
 *                                                         reject (TCP reset, else ICMP)
 *     ct state new, SERVICE-CIDRS dst, not CLUSTER-ADDRS dst,
 *       not SERVICES dst,dst                              drop
 *   (the last two: kube-proxy's cluster-ips-check);
 *   postrouting (nat, priority 100; IPVS connections reach it because
 *   net.ipv4.vs.conntrack is 1):
 *     LOOPBACK dst,dst,src                                masquerade
 *     unmarked                                            return
 *     clear the mark bit, masquerade fully-random
 */
#ifndef FERRY_IPVS_RULES_H
#define FERRY_IPVS_RULES_H

#include <stdint.h>
#include <stdio.h>

#include "ipvs_items.h"
#include "local_detect.h"

struct nft_batch;

#define IPVS_RULES_TABLE "ferry_ipvs"

/* What the rules depend on. */
struct ipvs_rules_cfg {
	uint32_t masq_mark;           /* the mark bit meaning "masquerade" */
	struct local_detect local;    /* who is local for cluster IPs */
	/* The kernel's index of each set of the family being built (see
	 * ipvs_rules_set_index); unused when printing. */
	uint16_t set_index[IPVS_SET_COUNT];
};

/* Whether cfg detects local traffic in family (an interface mode, or a
 * cluster CIDR of that family): only then are cluster-IP connections from
 * elsewhere masqueraded. */
bool ipvs_rules_detect_local(const struct ipvs_rules_cfg *cfg, int family);

/* Append the messages that make family's table hold exactly these rules:
 * table and chains created if absent, every chain emptied and refilled.
 * In one transaction the rules are replaced atomically. 0 or -ENOMEM. */
int ipvs_rules_msgs(struct nft_batch *b, int family, const struct ipvs_rules_cfg *cfg);

/* Append the message deleting family's table (absent: the kernel says
 * ENOENT, so send it in a transaction of its own). 0 or -ENOMEM. */
int ipvs_rules_delete_msg(struct nft_batch *b, int family);

/* The rules of family as nft-like text (set matches written
 * "xt match set NAME dst,dst"). */
void ipvs_rules_print(FILE *out, int family, const struct ipvs_rules_cfg *cfg);

/* The kernel's index of the ipset called name (getsockopt SO_IP_SET), for
 * set matches. 0 and *ret, -ENOENT when no such set, or -errno. */
int ipvs_rules_set_index(const char *name, uint16_t *ret);

#endif
