/* `ferry plan --backend ipvs`: what the IPVS backend would program, from
 * the same items it sends (ipvs_items.c) and the same rule description
 * (ipvs_rules.c), so that what is printed is what is programmed. */
#include "ipvs.h"

#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>

#include "ipvs_host.h"
#include "ipvs_items.h"
#include "ipvs_rules.h"

static const char *proto_text(uint8_t p)
{
	return p == INET_PROTO_UDP ? "UDP " : p == INET_PROTO_SCTP ? "SCTP" : "TCP ";
}

/* Is d a real server of virtual server s? */
static bool is_dest_of(const struct ipvs_item *d, const struct ipvs_item *s)
{
	return d->kind == IPVS_ITEM_DEST && d->proto == s->proto && d->port == s->port &&
	       inet_addr_cmp(&d->addr, &s->addr) == 0;
}

/* Virtual servers as `ipvsadm -Ln` lists them. */
static void print_services(FILE *out, const struct ipvs_item_vec *v)
{
	char a[INET_ENDPOINT_STRLEN];

	fprintf(out, "Prot LocalAddress:Port Scheduler Flags\n"
		     "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
	for (size_t i = 0; i < v->n; i++) {
		const struct ipvs_item *s = &v->v[i];

		if (s->kind != IPVS_ITEM_SERVICE)
			continue;
		fprintf(out, "%s %s %s", proto_text(s->proto), inet_endpoint_format(&s->addr, s->port, a), s->sched);
		if (s->persistent)
			fprintf(out, " persistent %u", s->timeout);
		fputc('\n', out);
		for (size_t j = 0; j < v->n; j++) {
			const struct ipvs_item *d = &v->v[j];

			if (!is_dest_of(d, s))
				continue;
			fprintf(out, "  -> %-28s Masq    %-6u 0          0\n", inet_endpoint_format(&d->addr2, d->port2, a),
				d->weight);
		}
	}
}

/* ipvsadm's service option: -t/-u/--sctp-service ADDR:PORT. */
static void print_vs_arg(FILE *out, const struct ipvs_item *s)
{
	char a[INET_ENDPOINT_STRLEN];

	fprintf(out, "%s %s", s->proto == INET_PROTO_UDP ? "-u" : s->proto == INET_PROTO_SCTP ? "--sctp-service" : "-t",
		inet_endpoint_format(&s->addr, s->port, a));
}

/* Virtual and real servers as ipvsadm-restore reads them (ipvsadm -Sn). */
static void print_restore(FILE *out, const struct ipvs_item_vec *v)
{
	char a[INET_ENDPOINT_STRLEN];

	for (size_t i = 0; i < v->n; i++) {
		const struct ipvs_item *s = &v->v[i];

		if (s->kind != IPVS_ITEM_SERVICE)
			continue;
		fprintf(out, "-A ");
		print_vs_arg(out, s);
		fprintf(out, " -s %s", s->sched);
		if (s->persistent)
			fprintf(out, " -p %u", s->timeout);
		fputc('\n', out);
		for (size_t j = 0; j < v->n; j++) {
			const struct ipvs_item *d = &v->v[j];

			if (!is_dest_of(d, s))
				continue;
			fprintf(out, "-a ");
			print_vs_arg(out, s);
			fprintf(out, " -r %s -m -w %u\n", inet_endpoint_format(&d->addr2, d->port2, a), d->weight);
		}
	}
}

static void print_sets(FILE *out, const struct ipvs_item_vec *v)
{
	for (int f = 0; f < 2; f++)
		for (int s = 0; s < IPVS_SET_COUNT; s++) {
			int family = f ? AF_INET6 : AF_INET;
			const char *name = ipvs_set_name((enum ipvs_set_id)s, family);

			fprintf(out, "create %s %s family %s\n", name, ipvs_set_type((enum ipvs_set_id)s),
				f ? "inet6" : "inet");
			for (size_t i = 0; i < v->n; i++) {
				const struct ipvs_item *m = &v->v[i];

				if (m->kind != IPVS_ITEM_MEMBER || m->set != s || m->addr.family != family)
					continue;
				fprintf(out, "add %s ", name);
				ipvs_member_print(out, m);
				fputc('\n', out);
			}
		}
}

/* rules_only: only the virtual servers, in ipvsadm-restore syntax. */
static void render_text(const struct plan *plan, const struct ipvs_options *o, bool rules_only, FILE *out)
{
	struct ipvs_rules_cfg rcfg = { .masq_mark = o->masquerade_mark ? o->masquerade_mark : IPVS_DEFAULT_MASQ_MARK,
				       .local = o->local };
	struct ipvs_items_cfg cfg = { .scheduler = o->scheduler ? o->scheduler : IPVS_DEFAULT_SCHEDULER };
	struct ipvs_item_vec v = { 0 };
	struct inet_addr *node = NULL;
	struct ipvs_host *h = NULL;
	size_t n_node = 0;
	bool node_known = false;
	char a[INET_ADDR_STRLEN];

	/* Node ports on every address need the node's addresses: read them
	 * (a read-only dump). */
	if (ipvs_host_open(&h) == 0) {
		/* Not the VIPs on the dummy interface, if it exists. */
		int ifindex = (int)if_nametoindex(IPVS_DUMMY_NAME);

		node_known = ipvs_host_node_addrs(h, ifindex, &node, &n_node) == 0;
		ipvs_host_close(h);
	}
	cfg.node_addrs = node;
	cfg.n_node_addrs = n_node;
	for (size_t i = 0; i < plan->n_frontends; i++)
		if (ipvs_frontend_items(&plan->frontends[i], &cfg, &v) < 0) {
			fprintf(out, "# out of memory\n");
			goto out;
		}
	if (ipvs_guard_items(plan, &v) < 0) {
		fprintf(out, "# out of memory\n");
		goto out;
	}
	ipvs_item_vec_sort(&v);
	if (rules_only) {
		print_restore(out, &v);
		goto out;
	}
	fprintf(out, "# ferry ipvs: scheduler %s, masquerade mark 0x%x%s%s\n", cfg.scheduler, rcfg.masq_mark,
		o->strict_arp ? ", strict ARP" : "",
		node_known ? "" : "; node addresses unknown: no node port on every address shown");
	if (o->tcp_timeout_s || o->tcp_fin_timeout_s || o->udp_timeout_s)
		fprintf(out, "# IPVS timeouts (ipvsadm --set; 0: unchanged): %u %u %u\n", o->tcp_timeout_s,
			o->tcp_fin_timeout_s, o->udp_timeout_s);
	if (o->n_exclude_cidrs) {
		fprintf(out, "# never deleted (ipvs.excludeCIDRs):");
		for (size_t i = 0; i < o->n_exclude_cidrs; i++)
			fprintf(out, " %s/%u", inet_addr_format(&o->exclude_cidrs[i].addr, a), o->exclude_cidrs[i].len);
		fprintf(out, "\n");
	}
	fprintf(out, "# virtual servers (as ipvsadm -Ln lists them)\n");
	print_services(out, &v);
	fprintf(out, "# addresses on %s\n", IPVS_DUMMY_NAME);
	for (size_t i = 0; i < v.n; i++)
		if (v.v[i].kind == IPVS_ITEM_ADDR)
			fprintf(out, "%s/%d\n", inet_addr_format(&v.v[i].addr, a), v.v[i].addr.family == AF_INET6 ? 128 : 32);
	fprintf(out, "# ipsets (ipset restore syntax)\n");
	print_sets(out, &v);
	fprintf(out, "# rules (nf_tables; set matches through nft_compat)\n");
	ipvs_rules_print(out, AF_INET, &rcfg);
	ipvs_rules_print(out, AF_INET6, &rcfg);
out:
	ipvs_item_vec_done(&v);
	free(node);
}

void ipvs_render(const struct plan *plan, const void *options, enum plan_format fmt, FILE *out)
{
	static const struct ipvs_options defaults = { 0 };
	const struct ipvs_options *o = options ? options : &defaults;
	char *text = NULL;
	size_t len = 0;
	FILE *mem;

	if (fmt != PLAN_FORMAT_JSON) {
		render_text(plan, o, fmt == PLAN_FORMAT_RULES, out);
		return;
	}
	mem = open_memstream(&text, &len);
	if (!mem) {
		fprintf(out, "null");
		return;
	}
	render_text(plan, o, false, mem);
	fclose(mem);
	fprintf(out, "{\"backend\":\"ipvs\",\"program\":");
	plan_print_json_string(out, text, len);
	fprintf(out, "}");
	free(text);
}
