/* The test API server (tests/kapi/kapi_server.py) as a child process on
 * 127.0.0.1, its control requests, and a kube source on a loop of our own:
 * shared by the tests of the Kubernetes API source. Static definitions,
 * included by one test file each (test_kube_source.c, test_kube_hostile.c).
 * Each file declares its suite with .init = setup, .fini = teardown.
 */
#ifndef FERRY_TEST_KAPI_HARNESS_H
#define FERRY_TEST_KAPI_HARNESS_H

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kube_source.h"
#include "log.h"
#include "loop.h"
#include "model.h"

/* Not every test file uses every helper. */
#define HARNESS_UNUSED __attribute__((unused))

#define KAPI FERRY_TEST_DATA "/../kapi/kapi_server.py"
#define CERTS FERRY_TEST_DATA "/../kapi/gen_certs.sh"

static HARNESS_UNUSED char dir[] = "/tmp/ferry-kapi.XXXXXX";
static HARNESS_UNUSED pid_t server_pid;
static HARNESS_UNUSED int port;
static HARNESS_UNUSED struct loop *loop;
static HARNESS_UNUSED struct model *model;
static HARNESS_UNUSED struct kube_source *src;
static HARNESS_UNUSED int synced_calls, changed_calls;
/* Persistent failures reported through kube_source_set_failure_fn. */
static HARNESS_UNUSED int failure_calls;
static HARNESS_UNUSED char failure_why[400];
/* stderr (the log) while captured by stderr_capture, else -1. */
static HARNESS_UNUSED int saved_stderr = -1;

static HARNESS_UNUSED void run_cmd(const char *cmd)
{
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static HARNESS_UNUSED void start_server(const char *extra)
{
	char cmd[1024], pf[256];

	snprintf(pf, sizeof(pf), "%s/port", dir);
	unlink(pf);
	server_pid = fork();
	cr_assert_neq(server_pid, -1);
	if (server_pid == 0) {
		snprintf(cmd, sizeof(cmd), "exec python3 %s --port-file %s %s", KAPI, pf, extra);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		FILE *f = fopen(pf, "r");
		if (f) {
			int ok = fscanf(f, "%d", &port) == 1;
			fclose(f);
			if (ok)
				return;
		}
		usleep(50000);
	}
	cr_assert_fail("test API server did not start");
}

static HARNESS_UNUSED void setup(void)
{
	log_set_level(getenv("KAPI_VERBOSE") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	cr_assert_not_null(mkdtemp(dir));
	loop = loop_new();
	model = model_new();
	cr_assert(loop && model);
	synced_calls = changed_calls = 0;
	failure_calls = 0;
	failure_why[0] = '\0';
}

static HARNESS_UNUSED void teardown(void)
{
	char cmd[128];

	if (saved_stderr != -1) {
		dup2(saved_stderr, STDERR_FILENO);
		close(saved_stderr);
		saved_stderr = -1;
	}
	src = kube_source_free(src);
	model = model_free(model);
	loop = loop_free(loop);
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
		server_pid = 0;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", dir);
}

/* Send stderr, where log lines go, to a file of the test directory until
 * stderr_release. */
static HARNESS_UNUSED void stderr_capture(void)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/stderr.log", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_neq(fd, -1);
	saved_stderr = dup(STDERR_FILENO);
	cr_assert_neq(saved_stderr, -1);
	cr_assert_neq(dup2(fd, STDERR_FILENO), -1);
	close(fd);
}

/* Give stderr back and return what was logged meanwhile (static buffer, at
 * most 64 KiB; a copy also goes to the real stderr for the test report). */
static HARNESS_UNUSED const char *stderr_release(void)
{
	static char text[65536];
	char path[256];
	FILE *f;
	size_t n;

	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	saved_stderr = -1;
	snprintf(path, sizeof(path), "%s/stderr.log", dir);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	fputs(text, stderr);
	return text;
}

/* --- control of the server (blocking, from the test thread) ----------------- */

static HARNESS_UNUSED size_t sink(char *d, size_t s, size_t n, void *u)
{
	struct { char buf[4096]; size_t len; } *b = u;
	size_t len = s * n, room = sizeof(b->buf) - 1 - b->len;

	memcpy(b->buf + b->len, d, len < room ? len : room);
	b->len += len < room ? len : room;
	b->buf[b->len] = '\0';
	return len;
}

static HARNESS_UNUSED void control(const char *what, const char *json)
{
	struct { char buf[4096]; size_t len; } b = { .len = 0 };
	char url[256];
	long code = 0;
	CURL *e = curl_easy_init();

	snprintf(url, sizeof(url), "%s://127.0.0.1:%d/_control/%s",
		 strstr(what, "|tls") ? "https" : "http", port, what);
	if (strstr(url, "|tls")) {
		*strstr(url, "|tls") = '\0';
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	if (json)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 10L);
	cr_assert_eq(curl_easy_perform(e), CURLE_OK, "control %s", what);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
	cr_assert_eq(code, 200, "control %s: %s", what, b.buf);
	curl_easy_cleanup(e);
}

static HARNESS_UNUSED long server_stat(const char *name)
{
	struct { char buf[4096]; size_t len; } b = { .len = 0 };
	char url[128], key[64], *p;
	CURL *e = curl_easy_init();

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_control/stats", port);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	cr_assert_eq(curl_easy_perform(e), CURLE_OK);
	curl_easy_cleanup(e);
	snprintf(key, sizeof(key), "\"%s\": ", name);
	p = strstr(b.buf, key);
	cr_assert_not_null(p, "%s", b.buf);
	return strtol(p + strlen(key), NULL, 10);
}

/* --- running the loop until something holds ---------------------------------- */

typedef bool (*pred_fn)(void);
static HARNESS_UNUSED pred_fn cur_pred;
static HARNESS_UNUSED struct loop_timer tick;

static HARNESS_UNUSED void on_tick(struct loop *l, void *u)
{
	(void)u;
	if (cur_pred && cur_pred())
		loop_stop(l);
	else
		loop_timer_start(l, &tick, 10);
}

static HARNESS_UNUSED void on_deadline(struct loop *l, void *u)
{
	*(bool *)u = true;
	loop_stop(l);
}

/* Run the loop until pred holds (true) or ms pass (false). pred NULL: run ms. */
static HARNESS_UNUSED bool run_until(pred_fn pred, unsigned ms)
{
	struct loop_timer deadline;
	bool expired = false;

	cur_pred = pred;
	loop_timer_init(&tick, on_tick, NULL);
	loop_timer_init(&deadline, on_deadline, &expired);
	loop_timer_start(loop, &tick, 0);
	loop_timer_start(loop, &deadline, ms);
	loop_run(loop);
	loop_timer_stop(loop, &tick);
	loop_timer_stop(loop, &deadline);
	return pred ? pred() : true;
}

static HARNESS_UNUSED void on_synced(void *u)
{
	(void)u;
	synced_calls++;
}

static HARNESS_UNUSED void on_changed(void *u)
{
	(void)u;
	changed_calls++;
}

static HARNESS_UNUSED bool is_synced(void)
{
	return src && kube_source_synced(src);
}

static HARNESS_UNUSED void on_failure(void *u, const char *why)
{
	(void)u;
	if (!failure_calls++)
		snprintf(failure_why, sizeof(failure_why), "%s", why);
}

static HARNESS_UNUSED bool failure_seen(void)
{
	return failure_calls > 0;
}

/* --- fixtures ---------------------------------------------------------------- */

static HARNESS_UNUSED const char *kubeconfig(const char *cluster_extra, const char *user)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/kubeconfig", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f,
		"apiVersion: v1\nkind: Config\ncurrent-context: test\n"
		"contexts:\n- name: test\n  context: {cluster: c, user: u}\n"
		"clusters:\n- name: c\n  cluster:\n    server: %s://127.0.0.1:%d\n%s"
		"users:\n- name: u\n  user:\n%s",
		strstr(cluster_extra, "certificate-authority") || strstr(cluster_extra, "insecure") ?
			"https" : "http",
		port, cluster_extra, user);
	fclose(f);
	return path;
}

static HARNESS_UNUSED void open_source(const char *kc, const char *node)
{
	struct kube_source_config cfg = {
		.kubeconfig = kc,
		.node_name = node,
		.watch_timeout_s = 30,
		.backoff_cap_ms = 2000,
		.page_size = 2,
	};

	cr_assert_eq(kube_source_new(loop, model, &cfg, on_synced, on_changed, NULL, &src), 0);
	cr_assert_eq(kube_source_start(src), 0);
}

static HARNESS_UNUSED void apply_svc(const char *name, const char *ip)
{
	char j[1024];

	snprintf(j, sizeof(j),
		 "{\"objects\":[{\"kind\":\"Service\",\"metadata\":{\"name\":\"%s\"},"
		 "\"spec\":{\"clusterIP\":\"%s\",\"ports\":[{\"port\":80,\"targetPort\":8080}]}}]}",
		 name, ip);
	control("apply", j);
}

static HARNESS_UNUSED void apply_slice(const char *svc, const char *name, const char *addrs)
{
	char j[1024];

	snprintf(j, sizeof(j),
		 "{\"objects\":[{\"kind\":\"EndpointSlice\",\"metadata\":{\"name\":\"%s\","
		 "\"labels\":{\"kubernetes.io/service-name\":\"%s\"}},\"addressType\":\"IPv4\","
		 "\"endpoints\":[{\"addresses\":[%s]}],\"ports\":[{\"port\":8080}]}]}",
		 name, svc, addrs);
	control("apply", j);
}

static HARNESS_UNUSED void base_objects(void)
{
	apply_svc("web", "10.96.0.10");
	apply_svc("db", "10.96.0.11");
	apply_svc("cache", "10.96.0.12");
	apply_slice("web", "web-1", "\"10.1.0.1\"");
	apply_slice("db", "db-1", "\"10.1.0.2\"");
	control("apply", "{\"objects\":[{\"kind\":\"Service\",\"metadata\":{\"name\":\"hl\","
			 "\"labels\":{\"service.kubernetes.io/headless\":\"\"}},\"spec\":{\"clusterIP\":\"10.96.0.99\"}},"
			 "{\"kind\":\"Service\",\"metadata\":{\"name\":\"other\",\"labels\":"
			 "{\"service.kubernetes.io/service-proxy-name\":\"foreign\"}},\"spec\":{\"clusterIP\":\"10.96.0.98\"}},"
			 "{\"kind\":\"Node\",\"metadata\":{\"name\":\"node-a\",\"labels\":"
			 "{\"topology.kubernetes.io/zone\":\"zone-1\"}},\"status\":{\"addresses\":"
			 "[{\"type\":\"InternalIP\",\"address\":\"192.168.5.1\"},{\"type\":\"Hostname\",\"address\":\"node-a\"}]}},"
			 "{\"kind\":\"Node\",\"metadata\":{\"name\":\"node-b\"}}]}");
}

#endif
