/* Benchmark of the Kubernetes API source.
 *
 *  1. decode+store: a List of S services and one of S EndpointSlices (E/S
 *     endpoints each) as the API returns them, parsed with jansson, decoded
 *     with kdecode and stored in the model: the work the informers do for
 *     an initial list, without the network (nor the informers' own
 *     namespace/name/resourceVersion store). Measured twice: each list as
 *     one document, then in pages of 500 items as the informer lists them.
 *     Wall and CPU time, heap held (mallinfo2). For instruction counts:
 *     valgrind --tool=callgrind --toggle-collect=decode_store_pages (covers
 *     both measurements).
 *  2. events/s: a watch stream of MODIFIED EndpointSlice events fed through
 *     the stream decoder, decoded and upserted.
 *  3. --live: the same objects served by the test API server
 *     (tests/kapi/kapi_server.py), an initial sync through kube_source
 *     (HTTP, pages of 500), then R changes made on the server, each timed
 *     from the control request to the model holding it and a plan computed.
 *  4. --e2e FERRY: the real `ferry run --source kube --backend B`
 *     (userspace by default, or nftables) against the test API server; R
 *     changes, each timed from the control request until ferry logs the
 *     sync that applied it (see bench_e2e), and the part of it ferry's own
 *     log line gives to planner + backend; ferry's RSS and descriptors.
 *     Run it in a private network namespace (bench/kube_informer.sh does).
 *     For userspace, --intercept MODE (default on) and --workers N
 *     (default: ferry's) are passed to ferry; --ferry-log-level (default
 *     info) to every backend; at debug, the userspace backend's own time
 *     per change (its "userspace: update:" or "userspace: sync:" line) is
 *     reported too. --e2e-only 1 skips 1-3. --trace FILE writes, per
 *     change, the wall-clock times of the POST, its answer and ferry's sync
 *     line, ferry's, the server's and the machine's CPU time during it, the
 *     time ferry's, the server's and the bench's threads waited for a CPU
 *     (runnable, not running: schedstat) and every line ferry logged; the server traces each step to FILE.kapi
 *     (KAPI_TRACE in kapi_server.py).
 *
 * The test server runs with --no-gc (see kapi_server.py), the control
 * requests share one kept-alive connection and a thread reads ferry's log:
 * the harness's own delays are not ferry's.
 *
 * Usage: kube_informer_bench SERVICES ENDPOINTS [--live KAPI_SERVER.py [--e2e FERRY_BIN]]
 *                            [--rounds R] [--backend userspace|nftables] [--workers N]
 *                            [--intercept auto|on|off] [--ferry-log-level info|debug]
 *                            [--e2e-only 1] [--trace FILE]
 */
#include <curl/curl.h>
#include <dirent.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
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

/* The informer's default list page size (limit=500). */
#define KUBE_PAGE 500

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Wall-clock time (CLOCK_REALTIME): the clock of ferry's log lines and of
 * the test API server's trace. */
static double wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU time of this process: less disturbed than wall time by other work
 * on a shared machine. */
static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
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

/* One list page as the API server sends it. */
struct page {
	char *text;
	size_t len;
	bool slices; /* an EndpointSliceList page, else a ServiceList page */
};

/* The measured part of decode+store, alone in a function so that
 * `valgrind --tool=callgrind --toggle-collect=decode_store_pages` counts
 * exactly this: parse each page as the informer does (json_loadb of the
 * page), decode every item and upsert it into the model. */
static __attribute__((noinline)) void decode_store_pages(struct model *m, const struct page *pages,
							 size_t n_pages)
{
	for (size_t p = 0; p < n_pages; p++) {
		json_t *root = json_loadb(pages[p].text, pages[p].len, 0, NULL);
		const json_t *items = json_object_get(root, "items"), *it;
		size_t i;
		struct kdecode_error err;

		json_array_foreach(items, i, it) {
			if (!pages[p].slices) {
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
}

/* Serialize items[from, to) as one List page. */
static struct page make_page(json_t *items, size_t from, size_t to, bool slices, bool last)
{
	json_t *arr = json_array();
	struct page pg = { .slices = slices };

	for (size_t i = from; i < to; i++)
		json_array_append(arr, json_array_get(items, i));
	json_t *l = json_pack("{s:s,s:s,s:{s:s,s:s},s:o}", "kind",
			      slices ? "EndpointSliceList" : "ServiceList", "apiVersion",
			      slices ? "discovery.k8s.io/v1" : "v1", "metadata", "resourceVersion", "5",
			      "continue", last ? "" : "opaque-continue-token", "items", arr);
	pg.text = json_dumps(l, JSON_COMPACT);
	pg.len = strlen(pg.text);
	json_decref(l);
	return pg;
}

/* Time and heap of decode_store_pages over the given pages, into a new model
 * returned in *ret_m. */
static void run_decode_store(const struct page *pages, size_t n_pages, struct model **ret_m,
			     double *ret_wall, double *ret_cpu, size_t *ret_held)
{
	size_t heap0 = heap_used();
	struct model *m = model_new();
	double t0 = now_s(), c0 = cpu_s();

	decode_store_pages(m, pages, n_pages);
	*ret_cpu = cpu_s() - c0;
	*ret_wall = now_s() - t0;
	*ret_held = heap_used() - heap0;
	*ret_m = m;
}

static void bench_decode_store(int n_svc, int n_eps_total)
{
	int per = n_eps_total / n_svc;
	json_t *svcs = json_array(), *slices = json_array();
	struct model *m;
	size_t held, bytes;
	double t0, t1, wall, cpu;

	for (int i = 0; i < n_svc; i++) {
		json_array_append_new(svcs, make_service(i));
		json_array_append_new(slices, make_slice(i, per, 0));
	}
	/* Pages of KUBE_PAGE items, the informer's default list limit. */
	size_t n_pages = 2 * ((n_svc + KUBE_PAGE - 1) / KUBE_PAGE), np = 0;
	struct page *pages = calloc(n_pages, sizeof(*pages)), whole[2];

	for (int k = 0; k < 2; k++)
		for (int i = 0; i < n_svc; i += KUBE_PAGE) {
			int to = i + KUBE_PAGE < n_svc ? i + KUBE_PAGE : n_svc;
			pages[np++] = make_page(k ? slices : svcs, i, to, k, to == n_svc);
		}
	whole[0] = make_page(svcs, 0, n_svc, false, true);
	whole[1] = make_page(slices, 0, n_svc, true, true);
	json_decref(svcs);
	json_decref(slices);
	bytes = whole[0].len + whole[1].len;

	/* The list as one document first (the figure of earlier runs), then
	 * in pages, as the informer receives it. */
	run_decode_store(whole, 2, &m, &wall, &cpu, &held);
	printf("decode+store  %6d services %7d endpoints, one document:  %7.3f s wall %7.3f s CPU"
	       "  (%.1f MB JSON)\n", n_svc, n_svc * per, wall, cpu, bytes / 1e6);
	model_free(m);
	run_decode_store(pages, np, &m, &wall, &cpu, &held);
	printf("decode+store  %6d services %7d endpoints, pages of %d: %7.3f s wall %7.3f s CPU"
	       "  heap held %.1f MiB = %.0f B/service+slice, %.0f B/endpoint (all-in)\n",
	       n_svc, n_svc * per, KUBE_PAGE, wall, cpu, held / 1048576.0, (double)held / n_svc,
	       (double)held / (n_svc * per));
	for (size_t i = 0; i < np; i++)
		free(pages[i].text);
	free(pages);
	free(whole[0].text);
	free(whole[1].text);

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

static size_t discard(char *d, size_t s, size_t n, void *u)
{
	(void)d;
	(void)u;
	return s * n;
}

/* POST to the test server's control path. One connection, kept alive
 * between calls (the server is HTTP/1.1), so a round's time has no TCP
 * connect nor a new server thread in it: clients of a real API server keep
 * theirs open too. */
static void post(int port, const char *path, const char *body)
{
	static CURL *e;
	char url[128];

	if (!e)
		e = curl_easy_init();
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_control/%s", port, path);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_perform(e);
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
		snprintf(cmd, sizeof(cmd), "exec python3 %s --port-file %s/port --state %s --no-gc", kapi, dir, path);
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

/* --- end to end: ferry run ---------------------------------------------------- */

/* Lines of a child's stderr, each stamped with the time it arrived. A
 * thread of its own reads the pipe, so a line's time is when ferry wrote
 * it, not when the main thread got back from a POST (whose answer the test
 * server may be slow to write) to look. */
struct stamped_line {
	char *text;
	double t;      /* now_s() when it arrived */
	double wall;   /* wall_s() then */
};

struct line_reader {
	int fd;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;     /* a line or EOF came (CLOCK_MONOTONIC) */
	struct stamped_line *q; /* FIFO ring: qcap slots from qhead, qn used */
	size_t qhead, qn, qcap;
	bool eof;
	char buf[65536];       /* the reading thread's partial line */
	size_t len;
};

static void *line_reader_run(void *u)
{
	struct line_reader *lr = u;

	for (;;) {
		ssize_t n = read(lr->fd, lr->buf + lr->len, sizeof(lr->buf) - lr->len);
		double t = now_s(), wall = wall_s();
		char *p, *nl;

		if (n <= 0)
			break;
		lr->len += (size_t)n;
		p = lr->buf;
		pthread_mutex_lock(&lr->mu);
		while ((nl = memchr(p, '\n', lr->len - (size_t)(p - lr->buf)))) {
			if (lr->qn == lr->qcap) {
				size_t cap = lr->qcap ? lr->qcap * 2 : 256;
				struct stamped_line *q = calloc(cap, sizeof(*q));

				for (size_t i = 0; i < lr->qn; i++)
					q[i] = lr->q[(lr->qhead + i) % lr->qcap];
				free(lr->q);
				lr->q = q;
				lr->qcap = cap;
				lr->qhead = 0;
			}
			lr->q[(lr->qhead + lr->qn++) % lr->qcap] =
				(struct stamped_line){ strndup(p, (size_t)(nl - p)), t, wall };
			p = nl + 1;
		}
		pthread_cond_broadcast(&lr->cv);
		pthread_mutex_unlock(&lr->mu);
		lr->len -= (size_t)(p - lr->buf);
		memmove(lr->buf, p, lr->len);
		if (lr->len == sizeof(lr->buf))
			lr->len = 0; /* a line this long is not ours: drop it */
	}
	pthread_mutex_lock(&lr->mu);
	lr->eof = true;
	pthread_cond_broadcast(&lr->cv);
	pthread_mutex_unlock(&lr->mu);
	return NULL;
}

static int line_reader_start(struct line_reader *lr, int fd)
{
	pthread_condattr_t ca;

	lr->fd = fd;
	pthread_mutex_init(&lr->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&lr->cv, &ca);
	pthread_condattr_destroy(&ca);
	return -pthread_create(&lr->thread, NULL, line_reader_run, lr);
}

/* After the writer is gone: the thread ends at EOF (or is cancelled in
 * read if something else still holds the pipe). */
static void line_reader_stop(struct line_reader *lr)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += 2;
	pthread_mutex_lock(&lr->mu);
	while (!lr->eof && pthread_cond_timedwait(&lr->cv, &lr->mu, &ts) == 0)
		;
	bool eof = lr->eof;
	pthread_mutex_unlock(&lr->mu);
	if (!eof)
		pthread_cancel(lr->thread);
	pthread_join(lr->thread, NULL);
	for (size_t i = 0; i < lr->qn; i++)
		free(lr->q[(lr->qhead + i) % lr->qcap].text);
	free(lr->q);
}

/* The next line into out (NUL-terminated, cut to size) and the times it
 * arrived into *ret_t (now_s() clock) and *ret_wall (may be NULL), waiting
 * until deadline (now_s() clock). 1: a line; 0: deadline passed; -1: EOF. */
static int read_line(struct line_reader *lr, char *out, size_t size, double deadline, double *ret_t,
		     double *ret_wall)
{
	struct timespec ts = { .tv_sec = (time_t)deadline,
			       .tv_nsec = (long)((deadline - (time_t)deadline) * 1e9) };
	int r = 1;

	pthread_mutex_lock(&lr->mu);
	while (!lr->qn && !lr->eof && now_s() < deadline)
		pthread_cond_timedwait(&lr->cv, &lr->mu, &ts);
	if (lr->qn) {
		struct stamped_line *l = &lr->q[lr->qhead];

		snprintf(out, size, "%s", l->text);
		free(l->text);
		if (ret_t)
			*ret_t = l->t;
		if (ret_wall)
			*ret_wall = l->wall;
		lr->qhead = (lr->qhead + 1) % lr->qcap;
		lr->qn--;
	} else {
		r = lr->eof ? -1 : 0;
	}
	pthread_mutex_unlock(&lr->mu);
	return r;
}

/* Start the test API server with the given objects; returns its pid and port. */
static pid_t start_kapi(const char *kapi, const char *dir, int n_svc, int per, int *ret_port)
{
	char path[256], cmd[700];
	json_t *all = json_array();
	pid_t pid;

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
		snprintf(cmd, sizeof(cmd), "exec python3 %s --port-file %s/port --state %s --no-gc", kapi, dir, path);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	*ret_port = 0;
	snprintf(path, sizeof(path), "%s/port", dir);
	/* The server loads the whole state first: a minute or more at 100k
	 * services on a loaded machine. */
	for (int i = 0; i < 6000 && !*ret_port; i++) {
		FILE *f = fopen(path, "r");
		if (f) {
			if (fscanf(f, "%d", ret_port) != 1)
				*ret_port = 0;
			fclose(f);
		}
		if (!*ret_port)
			usleep(50000);
	}
	return pid;
}

/* The real `ferry run --source kube --backend B` against the test
 * API server (plain HTTP on 127.0.0.1). Each round changes svc-0's slice
 * on the server and times from just before the POST to the moment ferry
 * logs the "sync:" line of the sync that carried it (one endpoint set
 * changed): the backend's sync has returned, so new connections already
 * use the new endpoint (the userspace backend swaps the service snapshot
 * inside sync). The line's time is when it came out of ferry's stderr (the
 * log reader's thread stamps it), even when the POST's answer comes later.
 * The first round takes svc-0 from 10 endpoints to 1, the others replace
 * its one endpoint. Every round counts; with 100 rounds the p99 printed is
 * the slowest. Rounds are spaced by 100 ms, more than the default
 * --min-sync-period (50 ms), so a change is never held back by the previous
 * round's sync. */

/* How bench_e2e runs ferry. */
struct e2e_opts {
	const char *kapi;      /* the test API server script */
	const char *ferry;     /* the binary */
	const char *backend;   /* --backend (userspace) */
	const char *workers;   /* --workers for userspace; NULL: ferry's default */
	const char *intercept; /* --intercept (userspace only) */
	const char *log_level; /* --log-level */
	const char *trace;     /* --trace FILE: per round, wall-clock times of
				* the POST, its answer and the sync line read,
				* and that line; the server traces to FILE.kapi */
};

/* VmRSS of pid in MB, or -1. */
static double rss_mb(pid_t pid)
{
	char path[64], line[256];
	double kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %lf kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb / 1024.0;
}

/* CPU time (user + system) pid has used, in ms, or -1. */
static double cpu_ms(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	ssize_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = (ssize_t)fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n > 0 ? n : 0] = '\0';
	p = strrchr(buf, ')'); /* after the command name */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (ut + st) * 1000.0 / sysconf(_SC_CLK_TCK);
}

/* The time pid's threads have spent waiting on a run queue (runnable, not
 * running), in ms, from /proc/PID/task/TID/schedstat; -1 if unknown. */
static double runq_wait_ms(pid_t pid)
{
	char path[300];
	struct dirent *d;
	double sum = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((d = readdir(dir))) {
		unsigned long long run, wait;
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)pid, d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fscanf(f, "%llu %llu", &run, &wait) == 2)
			sum += wait / 1e6;
		fclose(f);
	}
	closedir(dir);
	return sum;
}

/* The machine's busy and idle time (all CPUs) in ms, from /proc/stat. */
static void machine_ms(double *busy, double *idle)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");

	*busy = *idle = -1;
	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
		   &v[5], &v[6], &v[7]) == 8) {
		double tick = 1000.0 / sysconf(_SC_CLK_TCK);

		*busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * tick;
		*idle = (v[3] + v[4]) * tick;
	}
	fclose(f);
}

/* Descriptors pid has open, or -1. */
static int open_fds(pid_t pid)
{
	char path[64];
	struct dirent *d;
	int n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((d = readdir(dir)))
		n += d->d_name[0] != '.';
	closedir(dir);
	return n;
}

/* The number before " ms" after marker in line, or -1. */
static double ms_after(const char *line, const char *marker)
{
	const char *at = strstr(line, marker);
	double ms;

	return at && sscanf(at + strlen(marker), "%lf ms", &ms) == 1 ? ms : -1;
}

static void bench_e2e(const struct e2e_opts *o, int n_svc, int n_eps_total, int rounds)
{
	int per = n_eps_total / n_svc, port = 0, pfd[2];
	char dir[] = "/tmp/ferry-kbench.XXXXXX", master[64], line[1024], cmd[300];
	double *lat = calloc(rounds, sizeof(double)), *own = calloc(rounds, sizeof(double));
	double *backend = calloc(rounds, sizeof(double)), t0;
	struct line_reader *lr = calloc(1, sizeof(*lr));
	pid_t kpid, fpid;
	int got = 0, r = 0;

	int n_backend = 0;

	FILE *tf = NULL;

	if (!mkdtemp(dir) || !lat || !own || !backend || !lr || pipe(pfd) < 0)
		return;
	if (o->trace) {
		char kt[512];

		tf = fopen(o->trace, "w");
		snprintf(kt, sizeof(kt), "%s.kapi", o->trace);
		unlink(kt);
		setenv("KAPI_TRACE", kt, 1);
	}
	kpid = start_kapi(o->kapi, dir, n_svc, per, &port);
	if (!port) {
		fprintf(stderr, "e2e: the test API server did not start within 300 s\n");
		kill(kpid, SIGTERM);
		waitpid(kpid, NULL, 0);
		return;
	}
	snprintf(master, sizeof(master), "http://127.0.0.1:%d", port);
	fpid = fork();
	if (fpid == 0) {
		dup2(pfd[1], 2);
		close(pfd[0]);
		close(pfd[1]);
		/* Since issue 12 the userspace backend's intercepted frontends
		 * share a constant set of relay sockets, so the defaults
		 * (interception on, ferry's worker count) fit any size. */
		{
			const char *args[24];
			int a = 0;

			args[a++] = o->ferry;
			args[a++] = "run";
			args[a++] = "--source";
			args[a++] = "kube";
			args[a++] = "--master";
			args[a++] = master;
			args[a++] = "--backend";
			args[a++] = o->backend;
			args[a++] = "--hostname-override";
			args[a++] = "bench-node";
			args[a++] = "--log-level";
			args[a++] = o->log_level;
			if (strcmp(o->backend, "userspace") == 0) {
				args[a++] = "--intercept";
				args[a++] = o->intercept;
				if (o->workers) {
					args[a++] = "--workers";
					args[a++] = o->workers;
				}
			}
			args[a] = NULL;
			execv(o->ferry, (char *const *)args);
		}
		_exit(127);
	}
	close(pfd[1]);
	if (line_reader_start(lr, pfd[0]) < 0) {
		fprintf(stderr, "e2e: cannot start the log reader\n");
		kill(fpid, SIGTERM);
		waitpid(fpid, NULL, 0);
		kill(kpid, SIGTERM);
		waitpid(kpid, NULL, 0);
		return;
	}
	/* The first sync (every frontend opened) ends the start-up. */
	t0 = now_s();
	while ((r = read_line(lr, line, sizeof(line), t0 + 900, NULL, NULL)) == 1 &&
	       !strstr(line, "sync: full sync") && !strstr(line, "sync: backend"))
		;
	if (r != 1 || !strstr(line, "sync: full sync")) {
		fprintf(stderr, "e2e: ferry did not sync within 900 s (last line: %s)\n", line);
		goto out;
	}
	printf("e2e: ferry run --backend %s synced %d services / %d endpoints through the test API server in "
	       "%.2f s (server-bound: Python); RSS %.0f MB, %d descriptors\n", o->backend, n_svc, n_svc * per,
	       now_s() - t0, rss_mb(fpid), open_fds(fpid));
	for (int i = 0; i < rounds; i++) {
		char ip[32], body[1024];
		double deadline, w_post, w_replied, t_line, w_line;

		usleep(100000);
		while (read_line(lr, line, sizeof(line), now_s(), NULL, NULL) == 1)
			; /* drop whatever came in between */
		snprintf(ip, sizeof(ip), "10.250.%d.%d", i / 250, i % 250 + 1);
		snprintf(body, sizeof(body),
			 "{\"objects\":[{\"kind\":\"EndpointSlice\",\"metadata\":{\"name\":\"svc-0-abcde\","
			 "\"labels\":{\"kubernetes.io/service-name\":\"svc-0\"}},\"addressType\":\"IPv4\","
			 "\"endpoints\":[{\"addresses\":[\"%s\"]}],\"ports\":[{\"name\":\"http\",\"port\":8080}]}]}",
			 ip);
		double c_ferry = tf ? cpu_ms(fpid) : 0, c_kapi = tf ? cpu_ms(kpid) : 0, m_busy = 0, m_idle = 0;
		double q_ferry = tf ? runq_wait_ms(fpid) : 0, q_kapi = tf ? runq_wait_ms(kpid) : 0;
		double q_self = tf ? runq_wait_ms(getpid()) : 0;

		if (tf)
			machine_ms(&m_busy, &m_idle);
		w_post = wall_s();
		t0 = now_s();
		post(port, "apply", body);
		w_replied = wall_s();
		deadline = t0 + 10;
		backend[n_backend] = -1;
		while ((r = read_line(lr, line, sizeof(line), deadline, &t_line, &w_line)) == 1 &&
		       !(strstr(line, "sync: ") && strstr(line, "~1 sets"))) {
			if (tf)
				fprintf(tf, "  %.6f %s\n", w_line, line);
			/* At debug, the backend's line comes just before. */
			if (strstr(line, "userspace: update: ") || strstr(line, "userspace: sync: "))
				backend[n_backend] = ms_after(line, " in ");
		}
		if (r != 1) {
			fprintf(stderr, "e2e: round %d: no sync line within 10 s\n", i);
			break;
		}
		/* To when ferry's sync line came out, which may be before the
		 * POST's answer did. */
		lat[got] = (t_line - t0) * 1000.0;
		if (tf) {
			double b, id;

			machine_ms(&b, &id);
			fprintf(tf, "round %d post %.6f replied %.6f read %.6f lat %.3f cpu ferry %.0f kapi %.0f "
				"machine busy %.0f idle %.0f runq ferry %.1f kapi %.1f bench %.1f | %s\n", i, w_post,
				w_replied, w_line, lat[got], cpu_ms(fpid) - c_ferry, cpu_ms(kpid) - c_kapi,
				b - m_busy, id - m_idle, runq_wait_ms(fpid) - q_ferry, runq_wait_ms(kpid) - q_kapi,
				runq_wait_ms(getpid()) - q_self, line);
		}
		/* The line ends "... in N ms": ferry's own planner + backend time. */
		own[got++] = ms_after(line, ") in ");
		if (backend[n_backend] >= 0)
			n_backend++;
	}
	if (got) {
		qsort(lat, got, sizeof(double), cmp_d);
		printf("e2e: change on the API server -> ferry run (%s) synced it, %d changes at %d "
		       "services / %d endpoints: p50 %.2f ms, p99 %.2f ms, max %.2f ms; RSS %.0f MB\n",
		       o->backend, got, n_svc, n_svc * per, lat[got / 2], lat[(got * 99) / 100], lat[got - 1],
		       rss_mb(fpid));
		qsort(own, got, sizeof(double), cmp_d);
		printf("e2e: of which ferry's sync (planner + backend, as its log line says, whole ms): "
		       "p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
		       own[got / 2], own[(got * 99) / 100], own[got - 1]);
	}
	if (n_backend) {
		qsort(backend, n_backend, sizeof(double), cmp_d);
		printf("e2e: of which the userspace backend (its debug line), %d changes: p50 %.3f ms, "
		       "p99 %.3f ms, max %.3f ms\n", n_backend, backend[n_backend / 2],
		       backend[(n_backend * 99) / 100], backend[n_backend - 1]);
	}
out:
	if (tf)
		fclose(tf);
	kill(fpid, SIGTERM);
	waitpid(fpid, NULL, 0);
	line_reader_stop(lr);
	kill(kpid, SIGTERM);
	waitpid(kpid, NULL, 0);
	close(pfd[0]);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
	free(lat);
	free(own);
	free(backend);
	free(lr);
}

int main(int argc, char **argv)
{
	struct e2e_opts e2e = { .backend = "userspace", .intercept = "on", .log_level = "info" };
	const char *kapi = NULL, *ferry = NULL;
	int rounds = 200, e2e_only = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: %s SERVICES ENDPOINTS [--live KAPI_SERVER.py [--e2e FERRY_BIN]] [--rounds R]"
			" [--backend userspace|nftables] [--workers N] [--intercept auto|on|off]"
			" [--ferry-log-level info|debug] [--e2e-only 1] [--trace FILE]\n", argv[0]);
		return 2;
	}
	for (int i = 3; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--live") == 0)
			kapi = argv[i + 1];
		else if (strcmp(argv[i], "--e2e") == 0)
			ferry = argv[i + 1];
		else if (strcmp(argv[i], "--rounds") == 0)
			rounds = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--intercept") == 0)
			e2e.intercept = argv[i + 1];
		else if (strcmp(argv[i], "--ferry-log-level") == 0)
			e2e.log_level = argv[i + 1];
		else if (strcmp(argv[i], "--backend") == 0)
			e2e.backend = argv[i + 1];
		else if (strcmp(argv[i], "--workers") == 0)
			e2e.workers = argv[i + 1];
		else if (strcmp(argv[i], "--trace") == 0)
			e2e.trace = argv[i + 1];
		else if (strcmp(argv[i], "--e2e-only") == 0)
			e2e_only = atoi(argv[i + 1]);
	}
	log_set_level(LOG_LEVEL_ERROR);
	if (!e2e_only)
		bench_decode_store(atoi(argv[1]), atoi(argv[2]));
	if (kapi && !e2e_only)
		bench_live(kapi, atoi(argv[1]), atoi(argv[2]), rounds > 0 ? rounds : 1);
	if (kapi && ferry) {
		e2e.kapi = kapi;
		e2e.ferry = ferry;
		bench_e2e(&e2e, atoi(argv[1]), atoi(argv[2]), rounds > 0 ? rounds : 1);
	}
	return 0;
}
