/* The Kubernetes API source against the test API server (tests/kapi/):
 * initial sync, updates and deletes, relist after 410 (as HTTP status and as
 * an ERROR event), reconnect after a dropped watch, token rotation, malformed
 * events, TLS verification, client certificates, backoff on 503 and the
 * Endpoints fallback. The server runs as a child process on 127.0.0.1. */
#include "kapi_harness.h"

TestSuite(kube_source, .init = setup, .fini = teardown, .timeout = 60);

static bool web_has_two_endpoints(void)
{
	const struct kobj_slice *s = model_find_slice(model, "default", "web-1");
	return s && s->n_endpoints == 2;
}

static bool db_gone(void)
{
	return !model_find_service(model, "default", "db") && !model_find_slice(model, "default", "db-1");
}

/* --- tests ------------------------------------------------------------------- */

Test(kube_source, initial_sync_with_selectors_pagination_and_node)
{
	start_server("--token t0k3n");
	base_objects();
	open_source(kubeconfig("", "    token: t0k3n\n"), "node-a");
	cr_assert(run_until(is_synced, 10000), "not synced");
	cr_assert_eq(synced_calls, 1);
	cr_assert_eq(model_n_services(model), 3); /* headless and foreign left out */
	cr_assert_not_null(model_find_service(model, "default", "web"));
	cr_assert_null(model_find_service(model, "default", "hl"));
	cr_assert_null(model_find_service(model, "default", "other"));
	cr_assert_eq(model_n_slices(model), 2);
	cr_assert_not_null(model_node(model));
	cr_assert_str_eq(model_node(model)->name, "node-a");
	cr_assert_str_eq(model_node(model)->zone, "zone-1");
	cr_assert_eq(model_node(model)->n_addrs, 1);
	cr_assert_eq(server_stat("unauthorized"), 0);
}

Test(kube_source, updates_and_deletes_propagate)
{
	start_server("");
	base_objects();
	open_source(kubeconfig("", "    token: x\n"), "node-a");
	cr_assert(run_until(is_synced, 10000));
	run_until(NULL, 300); /* let the watches start */
	apply_slice("web", "web-1", "\"10.1.0.1\",\"10.1.0.5\"");
	cr_assert(run_until(web_has_two_endpoints, 5000), "update not seen");
	control("delete", "{\"kind\":\"Service\",\"name\":\"db\"}");
	control("delete", "{\"kind\":\"EndpointSlice\",\"name\":\"db-1\"}");
	cr_assert(run_until(db_gone, 5000), "delete not seen");
	cr_assert_gt(changed_calls, 0);
	/* A service that gains the headless label leaves the selector: gone. */
	control("apply", "{\"objects\":[{\"kind\":\"Service\",\"metadata\":{\"name\":\"cache\","
			 "\"labels\":{\"service.kubernetes.io/headless\":\"\"}},\"spec\":{\"clusterIP\":\"10.96.0.12\"}}]}");
	run_until(NULL, 1000);
	cr_assert_null(model_find_service(model, "default", "cache"));
}

static bool relist_done(void)
{
	struct kube_informer_stats s;

	kube_source_stats(src, &s);
	return s.relists >= 1 && db_gone() && model_find_service(model, "default", "newsvc");
}

static void relist_case(const char *mode)
{
	struct kube_informer_stats before, after;
	char cfg[64];

	start_server("");
	snprintf(cfg, sizeof(cfg), "{\"gone_mode\":\"%s\"}", mode);
	control("config", cfg);
	base_objects();
	open_source(kubeconfig("", "    token: x\n"), "node-a");
	cr_assert(run_until(is_synced, 10000));
	run_until(NULL, 300);
	kube_source_stats(src, &before);
	/* A gap: history is compacted, then changes happen while the watches are
	 * cut. The informers come back with an old resourceVersion: 410. */
	control("compact", "{}");
	control("drop", "{}");
	control("delete", "{\"kind\":\"Service\",\"name\":\"db\"}");
	control("delete", "{\"kind\":\"EndpointSlice\",\"name\":\"db-1\"}");
	apply_svc("newsvc", "10.96.0.20");
	control("compact", "{}");
	cr_assert(run_until(relist_done, 15000), "relist did not converge");
	run_until(NULL, 300);
	kube_source_stats(src, &after);
	/* Only the difference: one new service, two objects removed; the
	 * unchanged ones (web, cache, web-1, the node) not delivered again. */
	cr_assert_eq(after.upserts - before.upserts, 1, "upserts %llu",
		     (unsigned long long)(after.upserts - before.upserts));
	cr_assert_eq(after.removes - before.removes, 2);
	cr_assert_eq(model_n_services(model), 3);
	cr_assert_gt(server_stat("gone"), 0);
}

Test(kube_source, relist_after_410_status_converges)
{
	relist_case("status");
}

Test(kube_source, relist_after_410_error_event_converges)
{
	relist_case("event");
}

static bool has_newsvc(void)
{
	return model_find_service(model, "default", "newsvc") != NULL;
}

Test(kube_source, reconnect_after_drop)
{
	start_server("");
	base_objects();
	open_source(kubeconfig("", "    token: x\n"), NULL);
	cr_assert(run_until(is_synced, 10000));
	run_until(NULL, 300);
	control("drop", "{}");
	run_until(NULL, 100);
	apply_svc("newsvc", "10.96.0.20");
	cr_assert(run_until(has_newsvc, 8000), "change after a drop not seen");
}

Test(kube_source, token_rotation)
{
	char tf[64], cmd[600];

	start_server("--token first");
	base_objects();
	snprintf(tf, sizeof(tf), "%s/token", dir);
	snprintf(cmd, sizeof(cmd), "printf 'first\\n' >%s", tf);
	run_cmd(cmd);
	open_source(kubeconfig("", "    tokenFile: token\n"), NULL);
	cr_assert(run_until(is_synced, 10000));
	run_until(NULL, 300);
	/* Rotate: the new token file appears, the server stops accepting the old
	 * one and closes the streams. */
	snprintf(cmd, sizeof(cmd), "printf 'second' >%s.new && mv %s.new %s", tf, tf, tf);
	run_cmd(cmd);
	control("config", "{\"token\":\"second\"}");
	control("drop", "{}");
	apply_svc("newsvc", "10.96.0.20");
	cr_assert(run_until(has_newsvc, 8000), "not following after rotation");
	cr_assert_eq(server_stat("unauthorized"), 0);
}

Test(kube_source, wrong_token_is_retried_not_spun)
{
	start_server("--token right");
	base_objects();
	open_source(kubeconfig("", "    token: wrong\n"), NULL);
	kube_source_set_failure_fn(src, on_failure);
	cr_assert_not(run_until(is_synced, 3000));
	/* Reported as persistent (for `ferry plan`), and retried all the same. */
	cr_assert_geq(failure_calls, 2);
	cr_assert(strstr(failure_why, "HTTP 401"), "%s", failure_why);
	cr_assert_null(strstr(failure_why, "wrong"), "the token leaked: %s", failure_why);
	/* Two informers, backoff from 500 ms: a handful of tries each. */
	cr_assert_leq(server_stat("unauthorized"), 16);
	cr_assert_geq(server_stat("unauthorized"), 2);
}

static bool has_good(void)
{
	return model_find_service(model, "default", "good") != NULL;
}

Test(kube_source, malformed_events_are_skipped)
{
	struct kube_informer_stats s;

	start_server("");
	base_objects();
	open_source(kubeconfig("", "    token: x\n"), NULL);
	cr_assert(run_until(is_synced, 10000));
	run_until(NULL, 300);
	control("raw", "{\"kind\":\"Service\",\"line\":\"{not json at all\"}");
	control("raw", "{\"kind\":\"Service\",\"line\":\"{\\\"type\\\":\\\"ADDED\\\",\\\"object\\\":"
		       "{\\\"metadata\\\":{\\\"name\\\":\\\"bad\\\",\\\"namespace\\\":\\\"default\\\","
		       "\\\"resourceVersion\\\":\\\"5\\\"},\\\"spec\\\":{\\\"clusterIP\\\":\\\"999.1.1.1\\\"}}}\"}");
	apply_svc("good", "10.96.0.30");
	cr_assert(run_until(has_good, 5000), "the watch did not go on");
	kube_source_stats(src, &s);
	cr_assert_geq(s.skipped_events, 1);
	cr_assert_geq(kube_source_rejected(src), 1);
	cr_assert_null(model_find_service(model, "default", "bad"));
}

Test(kube_source, backoff_on_503_with_retry_after)
{
	start_server("");
	base_objects();
	control("config", "{\"fail\":{\"status\":503,\"count\":1000,\"retry_after\":1}}");
	open_source(kubeconfig("", "    token: x\n"), NULL);
	kube_source_set_failure_fn(src, on_failure);
	cr_assert_not(run_until(is_synced, 3000));
	/* A 503 may go away by itself: not a persistent failure. */
	cr_assert_eq(failure_calls, 0, "503 reported as persistent: %s", failure_why);
	/* Retry-After 1 s, two informers, 3 s: about 6 requests, never a spin. */
	cr_assert_leq(server_stat("failed"), 10);
	control("config", "{\"fail\":{\"count\":0}}");
	cr_assert(run_until(is_synced, 10000), "did not recover after the failures stopped");
}

static bool has_fallback_slice(void)
{
	return model_find_slice(model, "default", "web:0:ipv4") != NULL;
}

Test(kube_source, endpoints_fallback_when_slices_are_absent)
{
	start_server("");
	control("config", "{\"disable\":[\"EndpointSlice\"]}");
	apply_svc("web", "10.96.0.10");
	control("apply", "{\"objects\":[{\"kind\":\"Endpoints\",\"metadata\":{\"name\":\"web\"},"
			 "\"subsets\":[{\"addresses\":[{\"ip\":\"10.1.0.7\"}],\"ports\":[{\"port\":8080}]}]}]}");
	open_source(kubeconfig("", "    token: x\n"), NULL);
	cr_assert(run_until(is_synced, 10000));
	cr_assert(has_fallback_slice());
	control("delete", "{\"kind\":\"Endpoints\",\"name\":\"web\"}");
	run_until(NULL, 1500);
	cr_assert_not(has_fallback_slice());
}

/* --- ServiceCIDRs ------------------------------------------------------------- */

static size_t n_service_cidrs(void)
{
	size_t n;

	model_service_cidrs(model, &n);
	return n;
}

static bool two_service_cidrs(void)
{
	return n_service_cidrs() == 2;
}

static bool no_service_cidr(void)
{
	return n_service_cidrs() == 0;
}

/* The cluster's ServiceCIDR objects (networking.k8s.io/v1) reach the
 * model: kube-proxy drops traffic to their unallocated addresses. */
Test(kube_source, service_cidrs_follow_the_api)
{
	const struct inet_prefix *p;
	char buf[INET_ADDR_STRLEN];
	size_t n;

	start_server("");
	control("apply", "{\"objects\":[{\"kind\":\"ServiceCIDR\",\"metadata\":{\"name\":\"kubernetes\"},"
			 "\"spec\":{\"cidrs\":[\"10.96.0.0/16\",\"fd00:96::/112\"]}}]}");
	open_source(kubeconfig("", "    token: x\n"), NULL);
	cr_assert(run_until(is_synced, 10000));
	cr_assert(run_until(two_service_cidrs, 3000), "want 2 ranges, have %zu", n_service_cidrs());
	p = model_service_cidrs(model, &n);
	cr_expect_str_eq(inet_addr_format(&p[0].addr, buf), "10.96.0.0");
	cr_expect_eq(p[0].len, 16);
	control("apply", "{\"objects\":[{\"kind\":\"ServiceCIDR\",\"metadata\":{\"name\":\"kubernetes\"},"
			 "\"spec\":{\"cidrs\":[\"bogus\"]}}]}");
	/* Rejected and named (the informer's rule: a rejected version
	 * takes the stored one out, so no range is left to drop with). */
	cr_assert(run_until(no_service_cidr, 3000), "an invalid ServiceCIDR must not stay in force");
	cr_expect_eq(kube_source_rejected(src), 1);
	control("apply", "{\"objects\":[{\"kind\":\"ServiceCIDR\",\"metadata\":{\"name\":\"kubernetes\"},"
			 "\"spec\":{\"cidrs\":[\"10.96.0.0/16\",\"fd00:96::/112\"]}}]}");
	cr_assert(run_until(two_service_cidrs, 3000));
	control("delete", "{\"kind\":\"ServiceCIDR\",\"name\":\"kubernetes\"}");
	cr_assert(run_until(no_service_cidr, 3000), "a deleted ServiceCIDR must leave the model");
}

/* An API server without ServiceCIDRs (before 1.33) must not hold the
 * first sync back. */
Test(kube_source, service_cidrs_absent_do_not_block_the_sync)
{
	start_server("");
	control("config", "{\"disable\":[\"ServiceCIDR\"]}");
	apply_svc("web", "10.96.0.10");
	open_source(kubeconfig("", "    token: x\n"), NULL);
	cr_assert(run_until(is_synced, 10000), "a 404 on servicecidrs must count as an empty list");
	cr_expect_eq(n_service_cidrs(), 0);
}

/* --- TLS --------------------------------------------------------------------- */

static void tls_server(const char *extra)
{
	char cmd[700], args[900];

	snprintf(cmd, sizeof(cmd), "bash %s %s/pki >/dev/null", CERTS, dir);
	run_cmd(cmd);
	snprintf(args, sizeof(args), "--cert %s/pki/server.crt --key %s/pki/server.key", dir, dir);
	if (*extra)
		snprintf(args + strlen(args), sizeof(args) - strlen(args), " --client-ca %s/pki/ca.crt",
			 dir);
	start_server(args);
}

Test(kube_source, tls_with_the_right_ca)
{
	char extra[400];

	tls_server("");
	control("apply|tls", "{\"objects\":[{\"kind\":\"Service\",\"metadata\":{\"name\":\"web\"},"
			     "\"spec\":{\"clusterIP\":\"10.96.0.10\"}}]}");
	snprintf(extra, sizeof(extra), "    certificate-authority: %s/pki/ca.crt\n", dir);
	open_source(kubeconfig(extra, "    token: x\n"), NULL);
	cr_assert(run_until(is_synced, 10000), "TLS with the right CA failed");
	cr_assert_eq(model_n_services(model), 1);
}

Test(kube_source, tls_with_a_wrong_ca_fails)
{
	char extra[400];
	struct kube_informer_stats s;

	tls_server("");
	snprintf(extra, sizeof(extra), "    certificate-authority: %s/pki/other-ca.crt\n", dir);
	open_source(kubeconfig(extra, "    token: x\n"), NULL);
	kube_source_set_failure_fn(src, on_failure);
	/* The first failed attempt is reported at once, not after a backoff. */
	cr_assert(run_until(failure_seen, 2000), "a CA that does not verify was not reported");
	cr_assert_not(run_until(is_synced, 2500), "synced although the CA is wrong");
	kube_source_stats(src, &s);
	cr_assert_geq(s.failures, 2);
}

Test(kube_source, refused_connection_is_reported_and_retried)
{
	struct kube_informer_stats s;

	port = 1; /* nothing listens on 127.0.0.1:1 */
	open_source(kubeconfig("", "    token: x\n"), NULL);
	kube_source_set_failure_fn(src, on_failure);
	cr_assert(run_until(failure_seen, 2000), "a refused connection was not reported");
	cr_assert_not(run_until(is_synced, 1500));
	kube_source_stats(src, &s);
	cr_assert_geq(s.failures, 3, "not retried");
}

Test(kube_source, failure_classification)
{
	struct kube_http_result r = { .message = "" };

	cr_assert_not(kube_source_failure_persists(NULL));
	r.error = -EPROTO;
	cr_assert(kube_source_failure_persists(&r));
	r.error = -ECONNREFUSED;
	cr_assert(kube_source_failure_persists(&r));
	r.error = -ETIMEDOUT;
	cr_assert_not(kube_source_failure_persists(&r));
	r.error = -ECONNRESET;
	cr_assert_not(kube_source_failure_persists(&r));
	r.error = -EINVAL; /* a URL curl cannot use */
	cr_assert(kube_source_failure_persists(&r));
	r.error = 0;
	r.status = 401;
	cr_assert(kube_source_failure_persists(&r));
	r.status = 403;
	cr_assert(kube_source_failure_persists(&r));
	r.status = 429;
	cr_assert_not(kube_source_failure_persists(&r));
	r.status = 503;
	cr_assert_not(kube_source_failure_persists(&r));
	r.status = 500;
	cr_assert_not(kube_source_failure_persists(&r));
}

static struct kube_http_result url_res;
static bool url_done;

static void on_url_done(void *u, const struct kube_http_result *res)
{
	(void)u;
	url_res = *res;
	url_res.message = "";
	url_done = true;
}

static bool url_request_done(void)
{
	return url_done;
}

/* A server URL that got past the configuration (kube_config checks it) and
 * that curl cannot use fails as -EINVAL, which persists: retrying cannot
 * fix it. */
Test(kube_source, malformed_url_fails_as_persistent)
{
	struct kube_config *c = calloc(1, sizeof(*c));
	struct kube_http *h;

	cr_assert_not_null(c);
	c->server = strdup("http://exa mple:1");
	h = kube_http_new(loop, c);
	cr_assert_not_null(h);
	url_done = false;
	cr_assert_eq(kube_http_get(h, "/api/v1/services", 5, NULL, on_url_done, NULL, NULL), 0);
	cr_assert(run_until(url_request_done, 5000));
	cr_assert_eq(url_res.error, -EINVAL, "error %d", url_res.error);
	cr_assert(kube_source_failure_persists(&url_res));
	kube_http_free(h);
	kube_config_free(c);
}

Test(kube_source, tls_insecure_skip_verify)
{
	tls_server("");
	open_source(kubeconfig("    insecure-skip-tls-verify: true\n", "    token: x\n"), NULL);
	cr_assert(run_until(is_synced, 10000));
}

Test(kube_source, tls_client_certificate_data)
{
	char extra[400], user[16384], cmd[700];
	FILE *p;
	size_t n;

	tls_server("--client-ca-in-pki");
	snprintf(cmd, sizeof(cmd),
		 "printf '    client-certificate-data: %%s\\n    client-key-data: %%s\\n' "
		 "$(base64 -w0 %s/pki/client.crt) $(base64 -w0 %s/pki/client.key)", dir, dir);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	n = fread(user, 1, sizeof(user) - 1, p);
	user[n] = '\0';
	pclose(p);
	snprintf(extra, sizeof(extra), "    certificate-authority: %s/pki/ca.crt\n", dir);
	open_source(kubeconfig(extra, user), NULL);
	cr_assert(run_until(is_synced, 10000), "client certificate not accepted");
}
