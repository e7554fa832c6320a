/* The IPVS backend: the plan as IPVS virtual servers (generic netlink,
 * libnl-3), VIPs on a dummy interface (rtnetlink), ipsets (libipset) and a
 * constant set of nf_tables rules that consult them (see DESIGN.md, "IPVS
 * backend principles", and docs/architecture.md). Register
 * ipvs_backend_ops in the backend registry; the other headers of this
 * directory are its private mechanism, state and policy.
 */
#ifndef FERRY_IPVS_H
#define FERRY_IPVS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "backend.h"
#include "inet.h"
#include "local_detect.h"

extern const struct backend_ops ipvs_backend_ops;

/* The dummy interface holding the service VIPs. */
#define IPVS_DUMMY_NAME "ferry-ipvs0"
/* Default mark bit meaning "masquerade this connection" (kube-proxy's). */
#define IPVS_DEFAULT_MASQ_MARK 0x4000u
/* Default scheduler. */
#define IPVS_DEFAULT_SCHEDULER "rr"

/* What init and render take as options (NULL: all defaults). */
struct ipvs_options {
	/* --ipvs-scheduler: for services without a ferry.io/balance that
	 * maps to a scheduler; NULL: rr. */
	const char *scheduler;
	/* --ipvs-strict-arp: arp_ignore 1 and arp_announce 2, so that the
	 * node does not answer ARP for the VIPs on the dummy interface. */
	bool strict_arp;
	/* --masquerade-bit; 0: IPVS_DEFAULT_MASQ_MARK. */
	uint32_t masquerade_mark;
	/* Which cluster-IP clients are local (--detect-local-mode...). */
	struct local_detect local;
	/* kube-proxy's ipvs.excludeCIDRs (--ipvs-exclude-cidrs): a virtual
	 * server in one of them is never deleted; when its service leaves the
	 * plan, it stays in the kernel with its real servers and its address,
	 * and ferry forgets it. Copied by init. */
	const struct inet_prefix *exclude_cidrs;
	size_t n_exclude_cidrs;
	/* kube-proxy's ipvs.tcpTimeout, tcpFinTimeout, udpTimeout
	 * (--ipvs-tcp-timeout...): IPVS's own connection timeouts in seconds,
	 * set once by init (IPVS_CMD_SET_CONFIG); 0 leaves that one as it is. */
	uint32_t tcp_timeout_s;
	uint32_t tcp_fin_timeout_s;
	uint32_t udp_timeout_s;
};

/* Whether name is a scheduler IPVS has (rr, wrr, lc, wlc, lblc, lblcr,
 * dh, sh, sed, nq, mh, fo, ovf, twos), for option checking. */
bool ipvs_scheduler_known(const char *name);

/* render slot: what ferry would program, as `ipvsadm -Ln` shows virtual
 * servers, then the dummy interface's addresses, the ipsets and the rules.
 * In JSON one object {"backend":"ipvs","program":"..."} holding the same
 * text. Reads the node's addresses (for node ports on every address),
 * changes nothing. */
void ipvs_render(const struct plan *plan, const void *options, enum plan_format fmt, FILE *out);

#endif
