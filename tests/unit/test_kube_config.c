/* Kubeconfig variants, in-cluster configuration, the token file cache, and
 * input that must fail at once (a FIFO token file, a malformed server URL). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kube_config.h"

static char dir[] = "/tmp/ferry-kcfg.XXXXXX";

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

static const char *write_file(const char *name, const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

#define KCFG(user) \
	"apiVersion: v1\nkind: Config\ncurrent-context: c1\n" \
	"contexts:\n- name: c1\n  context: {cluster: k1, user: u1}\n" \
	"- name: c2\n  context: {cluster: k2, user: u2}\n" \
	"clusters:\n- name: k1\n  cluster:\n    server: https://127.0.0.1:6443/\n" \
	"    certificate-authority: ca.crt\n" \
	"- name: k2\n  cluster:\n    server: https://10.0.0.1\n    insecure-skip-tls-verify: true\n" \
	"    certificate-authority-data: aGVsbG8=\n" \
	"users:\n- name: u1\n  user:\n" user \
	"- name: u2\n  user: {token: tok2}\n"

TestSuite(kube_config, .init = setup, .fini = teardown);

Test(kube_config, static_token_and_relative_ca)
{
	char err[256] = "", *tok = NULL, want[300];
	struct kube_config *c = NULL;
	const char *p = write_file("kc", KCFG("    token: abc123\n"));

	cr_assert_eq(kube_config_load(p, NULL, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c->server, "https://127.0.0.1:6443");
	snprintf(want, sizeof(want), "%s/ca.crt", dir);
	cr_assert_str_eq(c->ca_file, want);
	cr_assert_not(c->insecure);
	cr_assert_eq(kube_config_token(c, &tok), 0);
	cr_assert_str_eq(tok, "abc123");
	free(tok);
	kube_config_free(c);
}

Test(kube_config, named_context_insecure_and_ca_data)
{
	char err[256] = "", *tok = NULL;
	struct kube_config *c = NULL;
	const char *p = write_file("kc", KCFG("    token: abc123\n"));

	cr_assert_eq(kube_config_load(p, "c2", &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c->server, "https://10.0.0.1");
	cr_assert(c->insecure);
	cr_assert_eq(c->ca_pem_len, 5);
	cr_assert_str_eq(c->ca_pem, "hello");
	cr_assert_eq(kube_config_token(c, &tok), 0);
	cr_assert_str_eq(tok, "tok2");
	free(tok);
	kube_config_free(c);
}

Test(kube_config, token_file_is_reread_when_it_changes)
{
	char err[256] = "", *tok = NULL;
	struct kube_config *c = NULL;
	const char *p;

	write_file("token", "first\n");
	p = write_file("kc", KCFG("    tokenFile: token\n"));
	cr_assert_eq(kube_config_load(p, NULL, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(kube_config_token(c, &tok), 0);
	cr_assert_str_eq(tok, "first");
	free(tok);
	/* A rotation: a new file renamed over the old one (as kubelet does). */
	write_file("token.new", "second-token\n");
	{
		char a[256], b[256];
		snprintf(a, sizeof(a), "%s/token.new", dir);
		snprintf(b, sizeof(b), "%s/token", dir);
		cr_assert_eq(rename(a, b), 0);
	}
	cr_assert_eq(kube_config_token(c, &tok), 0);
	cr_assert_str_eq(tok, "second-token");
	free(tok);
	/* The file vanishes: the last good token is kept, the error reported. */
	{
		char b[256];
		snprintf(b, sizeof(b), "%s/token", dir);
		unlink(b);
	}
	cr_assert_eq(kube_config_token(c, &tok), -ENOENT);
	cr_assert_str_eq(tok, "second-token");
	free(tok);
	kube_config_free(c);
}

Test(kube_config, client_certificate_data)
{
	char err[256] = "";
	struct kube_config *c = NULL;
	const char *p = write_file("kc", KCFG("    client-certificate-data: Q0VSVA==\n"
					      "    client-key-data: S0VZ\n"));

	cr_assert_eq(kube_config_load(p, NULL, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c->cert_pem, "CERT");
	cr_assert_str_eq(c->key_pem, "KEY");
	kube_config_free(c);
}

Test(kube_config, certificate_without_key_is_refused)
{
	char err[256] = "";
	struct kube_config *c = NULL;
	const char *p = write_file("kc", KCFG("    client-certificate: cert.pem\n"));

	cr_assert_eq(kube_config_load(p, NULL, &c, err, sizeof(err)), -EINVAL);
	cr_assert_null(c);
}

Test(kube_config, exec_and_auth_provider_are_not_supported)
{
	char err[256] = "";
	struct kube_config *c = NULL;
	const char *p = write_file("kc", KCFG("    exec:\n      command: aws\n"));

	cr_assert_eq(kube_config_load(p, NULL, &c, err, sizeof(err)), -ENOTSUP);
	cr_assert(strstr(err, "exec") && strstr(err, "not support"), "%s", err);
	p = write_file("kc", KCFG("    auth-provider: {name: gcp}\n"));
	cr_assert_eq(kube_config_load(p, NULL, &c, err, sizeof(err)), -ENOTSUP);
	cr_assert(strstr(err, "auth-provider"), "%s", err);
}

Test(kube_config, missing_context_and_file)
{
	char err[256] = "";
	struct kube_config *c = NULL;
	const char *p = write_file("kc", KCFG("    token: abc\n"));

	cr_assert_eq(kube_config_load(p, "nope", &c, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "nope"), "%s", err);
	cr_assert_eq(kube_config_load("/nonexistent/kc", NULL, &c, err, sizeof(err)), -ENOENT);
	/* A token never shows up in an error message. */
	p = write_file("kc", "current-context: x\ncontexts: []\nusers:\n- name: u\n  user: {token: SECRET}\n");
	cr_assert_eq(kube_config_load(p, NULL, &c, err, sizeof(err)), -EINVAL);
	cr_assert_null(strstr(err, "SECRET"));
}

Test(kube_config, in_cluster)
{
	char err[256] = "", *tok = NULL;
	struct kube_config *c = NULL;

	write_file("token", "sa-token");
	write_file("ca.crt", "PEM");
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "6443", 1);
	cr_assert_eq(kube_config_in_cluster(dir, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c->server, "https://[fd00::1]:6443");
	cr_assert_eq(kube_config_token(c, &tok), 0);
	cr_assert_str_eq(tok, "sa-token");
	free(tok);
	kube_config_free(c);
	unsetenv("KUBERNETES_SERVICE_HOST");
	cr_assert_eq(kube_config_in_cluster(dir, &c, err, sizeof(err)), -ENOENT);
}

Test(kube_config, base64)
{
	char *out;
	size_t n;

	cr_assert_eq(kube_base64_decode("aGVs\nbG8=", &out, &n), 0);
	cr_assert_eq(n, 5);
	cr_assert_str_eq(out, "hello");
	free(out);
	cr_assert_eq(kube_base64_decode("a$b", &out, &n), -EINVAL);
}

/* A tokenFile that is a FIFO: opening it would block until some writer
 * comes, before any request timeout runs. Refused at once, and said why. */
Test(kube_config, token_file_fifo_fails_at_once, .timeout = 10)
{
	char err[256] = "", fifo[256];
	struct kube_config *c = NULL;
	struct timespec t0, t1;
	const char *p;
	int r;

	snprintf(fifo, sizeof(fifo), "%s/token", dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	p = write_file("kc", KCFG("    tokenFile: token\n"));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = kube_config_load(p, NULL, &c, err, sizeof(err));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_assert_lt(r, 0);
	cr_assert_null(c);
	cr_assert(strstr(err, "tokenFile") && strstr(err, "not a regular file"), "%s", err);
	cr_assert_lt(t1.tv_sec - t0.tv_sec, 2);
	/* The same for the in-cluster token. */
	write_file("ca.crt", "PEM");
	setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
	r = kube_config_in_cluster(dir, &c, err, sizeof(err));
	unsetenv("KUBERNETES_SERVICE_HOST");
	cr_assert_lt(r, 0);
	cr_assert(strstr(err, "not a regular file"), "%s", err);
}

/* A token file swapped for a FIFO while running: the last good token is
 * kept and the error returned, without blocking. */
Test(kube_config, token_file_becoming_a_fifo_does_not_block, .timeout = 10)
{
	char err[256] = "", *tok = NULL, fifo[256];
	struct kube_config *c = NULL;
	const char *p;

	write_file("token", "first\n");
	p = write_file("kc", KCFG("    tokenFile: token\n"));
	cr_assert_eq(kube_config_load(p, NULL, &c, err, sizeof(err)), 0, "%s", err);
	snprintf(fifo, sizeof(fifo), "%s/token", dir);
	cr_assert_eq(unlink(fifo), 0);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	cr_assert_lt(kube_config_token(c, &tok), 0);
	cr_assert_str_eq(tok, "first");
	free(tok);
	kube_config_free(c);
}

/* A server URL curl cannot use is an error when the configuration is read,
 * not a request retried forever. */
Test(kube_config, malformed_server_url_is_an_error_at_once)
{
	static const char *const bad[] = {
		"https://exa mple.com:6443",   /* a space */
		"https://127.0.0.1:99999",     /* port out of range */
		"https://",                    /* no host */
		"https://[fd00::1",            /* unterminated IPv6 literal */
		"https://10.0.0.1:6443?x=1",   /* a query */
		"https://user:pw@10.0.0.1",    /* credentials */
		"https://10.0.0.1\x1b[31m",    /* a control character */
		"ftp://10.0.0.1",
	};
	char err[256], kc[1024];
	struct kube_config *c = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char yaml[128];
		const char *p;
		size_t n = 0;

		/* In YAML the ESC is written "\e" (a raw one is a YAML error). */
		for (const char *q = bad[i]; *q && n < sizeof(yaml) - 3; q++) {
			if (*q == '\x1b') {
				yaml[n++] = '\\';
				yaml[n++] = 'e';
			} else {
				yaml[n++] = *q;
			}
		}
		yaml[n] = '\0';
		snprintf(kc, sizeof(kc),
			 "current-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n"
			 "clusters:\n- name: k\n  cluster:\n    server: \"%s\"\n"
			 "users:\n- name: u\n  user: {token: t}\n", yaml);
		p = write_file("kc", kc);
		err[0] = '\0';
		cr_assert_eq(kube_config_load(p, NULL, &c, err, sizeof(err)), -EINVAL, "%s", bad[i]);
		cr_assert_null(c);
		cr_assert(strstr(err, "server"), "%s: %s", bad[i], err);
		cr_assert_null(strstr(err, "pw@"), "credentials in a message: %s", err);
		cr_assert_eq(kube_config_for_master(bad[i], &c, err, sizeof(err)), -EINVAL, "%s", bad[i]);
	}
	/* Good ones still pass, with a path prefix (an API behind a proxy). */
	cr_assert_eq(kube_config_for_master("https://[fd00::1]:6443/k8s/clusters/c-1/", &c, err,
					    sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c->server, "https://[fd00::1]:6443/k8s/clusters/c-1");
	c = kube_config_free(c);
}
