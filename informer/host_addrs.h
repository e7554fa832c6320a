/* This host's own addresses, read from the kernel over rtnetlink: every
 * address of every interface, and per family the source address of the
 * default route. The planner opens node ports on them (kube-proxy's
 * --nodeport-addresses matches CIDRs against the local interfaces, not
 * against the Node object), and the watch follows them as addresses come
 * and go.
 */
#ifndef FERRY_HOST_ADDRS_H
#define FERRY_HOST_ADDRS_H

#include "model.h"

/* One read of the current network namespace's addresses into *ret (free
 * with host_addrs_done). Returns 0 or a negative errno. */
int host_addrs_read(struct host_addrs *ret);

struct host_addrs_watch;

/* Read the addresses into the model and subscribe to their changes.
 * Returns 0 and *ret, or a negative errno (logged). */
int host_addrs_watch_new(struct model *m, struct host_addrs_watch **ret);
/* The rtnetlink socket to poll for EPOLLIN. */
int host_addrs_watch_fd(const struct host_addrs_watch *w);
/* The socket is readable: drain the notifications, read the addresses
 * again and hand them to the model. Returns 1 when they changed, 0 when
 * not, or a negative errno. */
int host_addrs_watch_process(struct host_addrs_watch *w);
/* Close the watch. Accepts NULL; returns NULL. */
struct host_addrs_watch *host_addrs_watch_free(struct host_addrs_watch *w);

#endif
