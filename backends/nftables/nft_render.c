/* `ferry plan --backend nftables`: the ruleset and elements ferry would
 * program, in nft syntax that `nft -c -f` accepts. Built from the same rule
 * and element functions the backend sends to the kernel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nft_elems.h"
#include "nft_rules.h"
#include "nft_sets.h"
#include "nftables.h"

static int elem_ptr_cmp(const void *a, const void *b)
{
	return nft_elem_cmp(*(const struct nft_elem *const *)a, *(const struct nft_elem *const *)b, NULL);
}

/* Print the elements of one family, grouped by set. */
static void render_elems(FILE *out, const struct plan *plan, const struct nft_ruleset_cfg *rcfg,
			 const struct nft_elems_cfg *ecfg, int family)
{
	struct nft_elem_vec vec = { 0 };

	for (size_t i = 0; i < plan->n_frontends; i++)
		if (plan->frontends[i].addr.family == family &&
		    nft_frontend_elems(&plan->frontends[i], ecfg, &vec, NULL) < 0) {
			fprintf(out, "# out of memory rendering elements\n");
			break;
		}
	/* Affinity chains first: the verdict-map elements jump to them. */
	for (size_t i = 0; i < vec.n; i++) {
		const struct nft_elem *e = &vec.v[i];
		char chain[48], other[48];
		bool dup = false;

		if (!nft_set_is_dispatch(e->set) || !e->aff_timeout)
			continue;
		nft_verdict_chain(e, chain, sizeof(chain));
		for (size_t j = 0; j < i && !dup; j++)
			dup = nft_set_is_dispatch(vec.v[j].set) && vec.v[j].aff_timeout &&
			      strcmp(nft_verdict_chain(&vec.v[j], other, sizeof(other)), chain) == 0;
		if (!dup)
			nft_aff_chain_print(out, rcfg, e);
	}
	for (int s = 0; s < NFT_SET_COUNT; s++) {
		const struct nft_elem *prev = NULL, **order = NULL;
		size_t n = 0;
		bool open = false;

		/* In plan order, but the shared elements (hairpin pairs of
		 * frontends sharing endpoints, a cluster IP of several ports)
		 * sorted, once each. */
		if (s == NFT_SET_HAIRPIN || s == NFT_SET_CLUSTER_IPS) {
			if (vec.n && !(order = malloc(vec.n * sizeof(*order)))) {
				fprintf(out, "# out of memory rendering elements\n");
				break;
			}
			for (size_t i = 0; i < vec.n; i++)
				if (vec.v[i].set == s)
					order[n++] = &vec.v[i];
			if (n > 1)
				qsort(order, n, sizeof(*order), elem_ptr_cmp);
		}
		for (size_t i = 0; order ? i < n : i < vec.n; i++) {
			const struct nft_elem *e = order ? order[i] : &vec.v[i];
			if (e->set != s)
				continue;
			if (prev && nft_elem_cmp(prev, e, NULL) == 0)
				continue;
			fprintf(out, open ? ",\n\t" : "add element %s %s %s {\n\t", family == AF_INET6 ? "ip6" : "ip",
				NFT_TABLE_NAME, nft_set_name((enum nft_set_id)s));
			nft_elem_print(out, e);
			open = true;
			prev = e;
		}
		free(order);
		if (open)
			fprintf(out, "\n}\n");
	}
	nft_elem_vec_done(&vec);
}

static void render_text(const struct plan *plan, const struct nftables_options *opts, FILE *out)
{
	struct nft_ruleset_cfg rcfg;
	struct nft_elems_cfg ecfg;
	char tag[NFT_RULESET_TAG_LEN];

	if (nftables_config(opts, &rcfg, &ecfg) < 0) {
		fprintf(out, "# invalid nftables options (see the error above)\n");
		return;
	}
	if (nft_ruleset_tag(&rcfg, tag) == 0)
		rcfg.tag = tag;
	fprintf(out, "# ferry nftables ruleset: masquerade mark 0x%x, ", rcfg.masq_mark);
	if (rcfg.local_iifname[0])
		fprintf(out, "local traffic: in on %s \"%s%s\"", rcfg.local_iifname_prefix ? "interfaces" : "interface",
			rcfg.local_iifname, rcfg.local_iifname_prefix ? "*" : "");
	else
		fprintf(out, "local traffic: from %zu cluster CIDR%s", rcfg.n_cluster_cidrs,
			rcfg.n_cluster_cidrs == 1 ? "" : "s");
	fprintf(out, "\n");
	for (int fam = 0; fam < 2; fam++) {
		int family = fam ? AF_INET6 : AF_INET;
		nft_ruleset_print(out, family, &rcfg);
		nft_service_cidrs_print(out, family, plan->service_cidrs, plan->n_service_cidrs);
		render_elems(out, plan, &rcfg, &ecfg, family);
	}
}

void nftables_render(const struct plan *plan, const void *options, enum plan_format fmt, FILE *out)
{
	char *text = NULL;
	size_t len = 0;
	FILE *mem;

	/* Text and rules are the same: the text already is an nft program. */
	if (fmt != PLAN_FORMAT_JSON) {
		render_text(plan, options, out);
		return;
	}
	mem = open_memstream(&text, &len);
	if (!mem) {
		fprintf(out, "null");
		return;
	}
	render_text(plan, options, mem);
	fclose(mem);
	fprintf(out, "{\"backend\":\"nftables\",\"ruleset\":");
	plan_print_json_string(out, text, len);
	fprintf(out, "}");
	free(text);
}
