/* The backend registry: every backend built, in the order --backend auto
 * tries them (nftables, ipvs, userspace), found by name. */
#include <criterion/criterion.h>
#include <string.h>

#include "ipvs.h"
#include "nftables.h"
#include "registry.h"
#include "userspace.h"

Test(registry, auto_order_and_lookup)
{
	cr_assert_eq(backend_registry_len, 3);
	cr_expect_eq(backend_registry[0], &nftables_backend_ops);
	cr_expect_eq(backend_registry[1], &ipvs_backend_ops);
	cr_expect_eq(backend_registry[2], &userspace_backend_ops);
	cr_expect_eq(backend_find("ipvs"), &ipvs_backend_ops);
	cr_expect_null(backend_find("iptables"));
	for (size_t i = 0; i < backend_registry_len; i++) {
		const struct backend_ops *ops = backend_registry[i];

		/* The slots the core calls without checking. */
		cr_expect(ops->name && ops->init && ops->sync && ops->fini, "%s", ops->name);
	}
}

/* The IPVS probe says why it cannot run here (this kernel has no IPVS),
 * so auto moves on; where it passes, it reports nothing. */
Test(registry, ipvs_probe_explains)
{
	char why[256] = "";
	int r = ipvs_backend_ops.probe(why, sizeof(why));

	if (r < 0)
		cr_expect(why[0], "a failing probe must say why");
	else
		cr_expect_eq(r, 0);
}
