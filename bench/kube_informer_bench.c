/* Benchmark of the Kubernetes API source.
 *
 *  1. decode+store: a List of S services and one of S EndpointSlices (E/S
 *     endpoints each) as the API returns them, parsed with jansson, decoded
 *     with kdecode and stored in the model: the work the informers do for
 *     an initial list, without the network. Time and heap held (mallinfo2).
 *  2. events/s: a watch stream of MODIFIED EndpointSlice events fed through
 *     the stream decoder, decoded and upserted.
 *  3. live: the same objects served by the test API server
 *     (tests/kapi/kapi_server.py), an initial sync through kube_source
 *     (HTTP, pages of 500), then R changes made on the server, each timed
 *     from the control request to the model holding it and a plan computed
 *     (the dataplane's input; the backend's own apply time is not included).
 *
 * Usage: kube_informer_bench SERVICES ENDPOINTS [--live KAPI_SERVER.py] [--rounds R]
 */
#include <curl/curl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kdecode.h"
#include "kube_source.h"
#include "kube_watch.h"
#include "log.h"
#include "loop.h"
#include "model.h"
#include "planner.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t heap_used(void)
{
	return mallinfo2().uordblks;
}

static json_t *make_service(int i)
{
	char name[32], ip[32];

	snprintf(name, sizeof(name), "svc-%d", i);
	snprintf(ip, sizeof(ip), "10.%d.%d.%d", 96 + i / 65536, (i / 256) % 256, i % 256);
	return json_pack("{s:{s:s,s:s,s:s},s:{s:s,s:s,s:[s],s:[{s:s,s:s,s:i,s:i}]}}", "metadata",
			 "name", name, "namespace", "default", "resourceVersion", "1", "spec", "type",
			 "ClusterIP", "clusterIP", ip, "clusterIPs", ip, "ports", "name", "http",
			 "protocol", "TCP", "port", 80, "targetPort", 8080);
}

static json_t *make_slice(int i, int n_eps, int gen)
{
	char name[32], svc[32], ip[32], rv[16];
	json_t *eps = json_array();

	snprintf(name, sizeof(name), "svc-%d-abcde", i);
	snprintf(svc, sizeof(svc), "svc-%d", i);
	snprintf(rv, sizeof(rv), "%d", gen + 1);
	for (int e = 0; e < n_eps; e++) {
		int k = i * n_eps + e + gen;
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", 128 + (k / 65536) % 64, (k / 256) % 256, k % 256);
		json_array_append_new(eps, json_pack("{s:[s],s:{s:b,s:b,s:b},s:s,s:s}", "addresses", ip,
						     "conditions", "ready", 1, "serving", 1,
						     "terminating", 0, "nodeName", "node-a", "zone",
						     "zone-1"));
	}
	return json_pack("{s:{s:s,s:s,s:s,s:{s:s}},s:s,s:o,s:[{s:s,s:s,s:i}]}", "metadata", "name",
			 name, "namespace", "default", "resourceVersion", rv, "labels",
			 "kubernetes.io/service-name", svc, "addressType", "IPv4", "endpoints", eps,
			 "ports", "name", "http", "protocol", "TCP", "port", 8080);
}

static const struct kdecode_opts opts = { .source = "kube" };

static void bench_decode_store(int n_svc, int n_eps_total)
{
	int per = n_eps_total / n_svc;
	json_t *svcs = json_array(), *slices = json_array();
	char *svc_text, *slice_text;
	struct model *m;
	size_t heap0, bytes;
	double t0, t1;

	for (int i = 0; i < n_svc; i++) {
		json_array_append_new(svcs, make_service(i));
		json_array_append_new(slices, make_slice(i, per, 0));
	}
	json_t *l1 = json_pack("{s:s,s:{s:s},s:o}", "kind", "ServiceList", "metadata",
			       "resourceVersion", "5", "items", svcs);
	json_t *l2 = json_pack("{s:s,s:{s:s},s:o}", "kind", "EndpointSliceList", "metadata",
			       "resourceVersion", "5", "items", slices);
	svc_text = json_dumps(l1, JSON_COMPACT);
	slice_text = json_dumps(l2, JSON_COMPACT);
	json_decref(l1);
	json_decref(l2);
	bytes = strlen(svc_text) + strlen(slice_text);

	heap0 = heap_used();
	m = model_new();
	t0 = now_s();
	for (int pass = 0; pass < 2; pass++) {
		json_t *root = json_loads(pass ? slice_text : svc_text, 0, NULL);
		const json_t *items = json_object_get(root, "items"), *it;
		size_t i;
		struct kdecode_error err;

		json_array_foreach(items, i, it) {
			if (pass == 0) {
				struct kobj_service *s;
				if (kdecode_service(it, &opts, &s, &err) == 0)
					model_upsert_service(m, s);
			} else {
				struct kobj_slice *s;
				if (kdecode_slice(it, &opts, &s, &err) == 0)
					model_upsert_slice(m, s);
			}
		}
		json_decref(root);
	}
	t1 = now_s();
	size_t held = heap_used() - heap0;
	printf("decode+store  %6d services %7d endpoints: %7.3f s  (%.1f MB JSON)  heap held %.1f MiB"
	       "  = %.0f B/service+slice, %.0f B/endpoint (all-in)\n",
	       n_svc, n_svc * per, t1 - t0, bytes / 1e6, held / 1048576.0, (double)held / n_svc,
	       (double)held / (n_svc * per));

	/* Watch events: MODIFIED slices through the stream decoder. */
	{
		int n_ev = n_svc < 20000 ? n_svc : 20000;
		size_t cap = 1 << 20, len = 0;
		char *stream = malloc(cap);
		struct kube_watch_decoder d;

		for (int i = 0; i < n_ev; i++) {
			json_t *ev = json_pack("{s:s,s:o}", "type", "MODIFIED", "object", make_slice(i, per, 1));
			char *line = json_dumps(ev, JSON_COMPACT);
			size_t n = strlen(line);

			while (len + n + 2 > cap)
				stream = realloc(stream, cap *= 2);
			memcpy(stream + len, line, n);
			len += n;
			stream[len++] = '\n';
			free(line);
			json_decref(ev);
		}
		struct ctx { struct model *m; size_t n; } c = { m, 0 };
		int fn(void *u, const struct kube_event *ev);
		kube_watch_decoder_init(&d, 0);
		t0 = now_s();
		/* 16 KiB chunks, as a socket would deliver them. */
		for (size_t off = 0; off < len; off += 16384)
			kube_watch_feed(&d, stream + off, len - off < 16384 ? len - off : 16384, fn, &c);
		t1 = now_s();
		printf("watch events  %6d MODIFIED slices (%d endpoints each): %.0f events/s decoded+stored\n",
		       (int)c.n, per, c.n / (t1 - t0));
		kube_watch_decoder_done(&d);
		free(stream);
	}
	model_free(m);
	free(svc_text);
	free(slice_text);
}

int fn(void *u, const struct kube_event *ev)
{
	struct { struct model *m; size_t n; } *c = u;
	struct kobj_slice *s;
	struct kdecode_error err;

	if (ev->object && kdecode_slice(ev->object, &opts, &s, &err) == 0) {
		model_upsert_slice(c->m, s);
		c->n++;
	}
	return 0;
}

/* --- live ------------------------------------------------------------------ */

static struct model *lm;
static struct loop *ll;
static struct kube_source *ks;
static const char *want_ip;
static struct loop_timer tick;

static void on_synced(void *u)
{
	(void)u;
	loop_stop(ll);
}

static void on_tick(struct loop *l, void *u)
{
	const struct kobj_slice *s = model_find_slice(lm, "default", "svc-0-abcde");
	char buf[64];

	(void)u;
	if (s && s->n_endpoints && strcmp(inet_addr_format(&s->endpoints[0].addr, buf), want_ip) == 0)
		loop_stop(l);
	else
		loop_timer_start(l, &tick, 0);
}

static void post(int port, const char *path, const char *body)
{
	char url[128];
	CURL *e = curl_easy_init();

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_control/%s", port, path);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, fwrite);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, fopen("/dev/null", "w"));
	curl_easy_perform(e);
	curl_easy_cleanup(e);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void bench_live(const char *kapi, int n_svc, int n_eps_total, int rounds)
{
	int per = n_eps_total / n_svc, port = 0;
	char dir[] = "/tmp/ferry-kbench.XXXXXX", path[256], cmd[700], master[64];
	json_t *all = json_array();
	pid_t pid;
	double t0, t1, *lat = calloc(rounds, sizeof(double));
	struct planner *pl;
	struct planner_config pc = { .topology_hints = true };

	if (!mkdtemp(dir))
		return;
	for (int i = 0; i < n_svc; i++) {
		json_t *s = make_service(i), *sl = make_slice(i, per, 0);
		json_object_set_new(s, "kind", json_string("Service"));
		json_object_set_new(sl, "kind", json_string("EndpointSlice"));
		json_array_append_new(all, s);
		json_array_append_new(all, sl);
	}
	snprintf(path, sizeof(path), "%s/state.json", dir);
	json_dump_file(all, path, JSON_COMPACT);
	json_decref(all);
	pid = fork();
	if (pid == 0) {
		snprintf(cmd, sizeof(cmd), "exec python3 %s --port-file %s/port --state %s", kapi, dir, path);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	snprintf(path, sizeof(path), "%s/port", dir);
	for (int i = 0; i < 600 && !port; i++) {
		FILE *f = fopen(path, "r");
		if (f) {
			if (fscanf(f, "%d", &port) != 1)
				port = 0;
			fclose(f);
		}
		if (!port)
			usleep(50000);
	}
	snprintf(master, sizeof(master), "http://127.0.0.1:%d", port);
	lm = model_new();
	ll = loop_new();
	size_t heap0 = heap_used();
	struct kube_source_config cfg = { .master = master, .watch_timeout_s = 300 };
	kube_source_new(ll, lm, &cfg, on_synced, NULL, NULL, &ks);
	t0 = now_s();
	kube_source_start(ks);
	loop_run(ll);
	t1 = now_s();
	printf("live initial sync through the test API server: %d services, %zu slices in %.3f s "
	       "(server-bound: Python), heap held %.1f MiB incl. informer stores\n",
	       (int)model_n_services(lm), model_n_slices(lm), t1 - t0,
	       (heap_used() - heap0) / 1048576.0);
	pl = planner_new(&pc);
	loop_timer_init(&tick, on_tick, NULL);
	for (int r = 0; r < rounds; r++) {
		static char ipbuf[32];
		char body[1024];

		snprintf(ipbuf, sizeof(ipbuf), "10.250.%d.%d", r / 250, r % 250 + 1);
		want_ip = ipbuf;
		snprintf(body, sizeof(body),
			 "{\"objects\":[{\"kind\":\"EndpointSlice\",\"metadata\":{\"name\":\"svc-0-abcde\","
			 "\"labels\":{\"kubernetes.io/service-name\":\"svc-0\"}},\"addressType\":\"IPv4\","
			 "\"endpoints\":[{\"addresses\":[\"%s\"]}],\"ports\":[{\"name\":\"http\",\"port\":8080}]}]}",
			 ipbuf);
		t0 = now_s();
		post(port, "apply", body);
		loop_timer_start(ll, &tick, 0);
		loop_run(ll);
		const struct plan *plan;
		const struct plan_diff *diff;
		planner_run(pl, lm, &plan, &diff);
		lat[r] = (now_s() - t0) * 1000.0;
	}
	qsort(lat, rounds, sizeof(double), cmp_d);
	printf("change on the API server -> model updated + plan computed, %d changes at %d services: "
	       "p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
	       rounds, n_svc, lat[rounds / 2], lat[(rounds * 99) / 100], lat[rounds - 1]);
	planner_free(pl);
	kube_source_free(ks);
	model_free(lm);
	loop_free(ll);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
	free(lat);
}

int main(int argc, char **argv)
{
	const char *kapi = NULL;
	int rounds = 200;

	if (argc < 3) {
		fprintf(stderr, "usage: %s SERVICES ENDPOINTS [--live KAPI_SERVER.py] [--rounds R]\n", argv[0]);
		return 2;
	}
	for (int i = 3; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--live") == 0)
			kapi = argv[i + 1];
		else if (strcmp(argv[i], "--rounds") == 0)
			rounds = atoi(argv[i + 1]);
	}
	log_set_level(LOG_LEVEL_ERROR);
	bench_decode_store(atoi(argv[1]), atoi(argv[2]));
	if (kapi)
		bench_live(kapi, atoi(argv[1]), atoi(argv[2]), rounds > 0 ? rounds : 1);
	return 0;
}
