/* Kubeconfig variants, in-cluster configuration and the token file cache. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
