/* The netlink exchange of the IPVS backend (backends/ipvs/ipvs_nl.c), over
 * rtnetlink, which every kernel has and which answers a GET without
 * privilege:
 *   - a dump calls back once per message and ends;
 *   - a refusal comes back as the kernel's errno exactly (-ENODEV for an
 *     unknown link, which libnl would fold into NLE_OBJ_NOTFOUND);
 *   - a callback that stops early: its error is returned and the rest of
 *     the dump is drained, so the next request reads its own answer;
 *   - a request from inside a callback is -EBUSY;
 *   - the libnl error translation.
 * The generic netlink side runs in tests/unit/test_ipvs_genl.c. */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include <linux/rtnetlink.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#include "ipvs_nl.h"

/* RTM_GETLINK: a dump of every link (name NULL) or a GET of one. */
static struct nl_msg *getlink(const char *name)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct nl_msg *msg = nlmsg_alloc_simple(RTM_GETLINK, name ? 0 : NLM_F_DUMP);

	cr_assert_not_null(msg);
	cr_assert_eq(nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO), 0);
	if (name)
		cr_assert_eq(nla_put_string(msg, IFLA_IFNAME, name), 0);
	return msg;
}

/* Send a fresh getlink(name) on nl and free it: the request's result. */
static int request_getlink(struct ipvs_nl *nl, const char *name, ipvs_nl_reply_cb cb, void *ctx)
{
	struct nl_msg *msg = getlink(name);
	int r = ipvs_nl_request(nl, msg, cb, ctx);

	nlmsg_free(msg);
	return r;
}

struct counter {
	int msgs;
	int stop_at;     /* return -ECANCELED at this message (1-based), 0: never */
};

static int count_links(struct nlmsghdr *nlh, void *ctx)
{
	struct counter *c = ctx;

	cr_assert_eq(nlh->nlmsg_type, RTM_NEWLINK);
	c->msgs++;
	return c->stop_at && c->msgs == c->stop_at ? -ECANCELED : 0;
}

Test(ipvs_nl, dump_get_error_and_early_stop)
{
	struct ipvs_nl nl;
	struct counter all = { 0 }, one = { 0 }, stop = { .stop_at = 1 }, after = { 0 };

	cr_assert_eq(ipvs_nl_init(&nl, NETLINK_ROUTE), 0);

	/* A dump: every link (lo at least), one message each. */
	cr_assert_eq(request_getlink(&nl, NULL, count_links, &all), 0);
	cr_assert_geq(all.msgs, 1);

	/* A GET with one reply. */
	cr_assert_eq(request_getlink(&nl, "lo", count_links, &one), 0);
	cr_assert_eq(one.msgs, 1);

	/* The kernel's errno comes back as it is. */
	cr_assert_eq(request_getlink(&nl, "nosuchlink0", NULL, NULL), -ENODEV);

	/* A callback that stops at once: its error is returned, the rest of
	 * the dump is drained, and the socket is in step for the next one. */
	cr_assert_eq(request_getlink(&nl, NULL, count_links, &stop), -ECANCELED);
	cr_assert_eq(stop.msgs, 1);
	cr_assert_eq(request_getlink(&nl, NULL, count_links, &after), 0);
	cr_assert_eq(after.msgs, all.msgs);

	cr_assert_eq(ipvs_nl_request(&nl, NULL, NULL, NULL), -EINVAL);
	ipvs_nl_done(&nl);
	cr_assert_null(nl.sk);
	ipvs_nl_done(&nl);   /* harmless twice */
}

struct nested {
	struct ipvs_nl *nl;
	int inner;   /* what a request from inside the callback returned */
};

static int request_from_callback(struct nlmsghdr *nlh, void *ctx)
{
	struct nested *n = ctx;

	(void)nlh;
	n->inner = request_getlink(n->nl, "lo", NULL, NULL);
	return 0;
}

Test(ipvs_nl, a_request_inside_a_callback_is_ebusy)
{
	struct ipvs_nl nl;
	struct nested n = { .nl = &nl, .inner = 1 };

	cr_assert_eq(ipvs_nl_init(&nl, NETLINK_ROUTE), 0);
	cr_assert_eq(request_getlink(&nl, "lo", request_from_callback, &n), 0);
	cr_assert_eq(n.inner, -EBUSY);
	/* The outer exchange ended cleanly: the socket works on. */
	cr_assert_eq(request_getlink(&nl, "lo", NULL, NULL), 0);
	ipvs_nl_done(&nl);
}

Test(ipvs_nl, libnl_errors_become_errno)
{
	cr_assert_eq(ipvs_nl_errno(0), 0);
	cr_assert_eq(ipvs_nl_errno(-NLE_NOMEM), -ENOMEM);
	cr_assert_eq(ipvs_nl_errno(NLE_NOMEM), -ENOMEM, "either sign");
	cr_assert_eq(ipvs_nl_errno(-NLE_OBJ_NOTFOUND), -ENOENT);
	cr_assert_eq(ipvs_nl_errno(-NLE_EXIST), -EEXIST);
	cr_assert_eq(ipvs_nl_errno(-NLE_PERM), -EPERM);
	cr_assert_eq(ipvs_nl_errno(-NLE_DUMP_INTR), -EAGAIN);
	cr_assert_eq(ipvs_nl_errno(-NLE_FAILURE), -EIO);
	cr_assert_eq(ipvs_nl_errno(-9999), -EIO);
}
