/* `ferry run` gives up the capabilities it no longer needs once it has
 * started (libcap-ng).
 *
 * Everything that needs more than a backend's steady state happens before
 * the drop: conntrack sysctls and oom_score_adj (kube_proxy_host_apply),
 * the run lock under /run/ferry, the source's first load. What is kept is
 * what the running backend keeps doing:
 *  - CAP_NET_ADMIN: nf_tables transactions, IPVS and ipset commands, the
 *    dummy interface, conntrack deletions over ctnetlink, net sysctls, the
 *    userspace relay's interception tables;
 *  - CAP_NET_RAW: the raw socket the IPVS rules ask xtables revisions on;
 *  - CAP_NET_BIND_SERVICE: only for the userspace relay (its listeners open
 *    and close with the plan, on the services' own ports), or when the
 *    healthz or metrics server is bound below port 1024 (they bind right
 *    after the drop).
 * The drop happens before the backend's init, so the relay's worker and
 * health-check threads start with the reduced sets (capabilities are per
 * thread). Modules the kernel autoloads for a netlink request (IPVS
 * schedulers, ipset types, nf_tables expressions, dummy) need no
 * capability of ferry's; ferry never runs modprobe. Files read later
 * (manifests after an edit or SIGHUP, the service account token, the
 * kubeconfig) must be readable by uid 0 without CAP_DAC_OVERRIDE or
 * CAP_DAC_READ_SEARCH: owned by root, or readable by others.
 */
#ifndef FERRY_PRIVILEGES_H
#define FERRY_PRIVILEGES_H

#include <stdbool.h>
#include <stddef.h>

struct backend_ops;
struct cli_options;

#define PRIVILEGES_MAX 4

/* The capabilities (CAP_* numbers) `ferry run` keeps for backend ops with
 * options o, into ret (room for PRIVILEGES_MAX), sorted. Pure. Returns how
 * many. */
size_t privileges_wanted(const struct backend_ops *ops, const struct cli_options *o, unsigned *ret);

/* Reduce this thread's effective, permitted and inheritable sets to
 * caps[0..n) (those of them it has), and the bounding set too when it may
 * (CAP_SETPCAP in its effective set; a container usually has none, and
 * its runtime already bounded the set). Call before any thread starts:
 * threads inherit the caller's sets. Logs what it kept. Returns 0 (also
 * when the process has no capability to drop), or -errno when the kernel
 * refused the change (the sets are then unchanged). */
int privileges_drop(const unsigned *caps, size_t n);

#endif
