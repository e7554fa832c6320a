/* /healthz and /livez, kube-proxy's proxier health server. */
#include "proxy_health.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_server.h"
#include "log.h"

#define PROXY_HEALTH_DEFAULT_BIND "0.0.0.0:10256"

struct proxy_health {
	struct loop *loop;
	const struct sync_runner *runner;
	const struct model *model;
	uint32_t timeout_ms;
	struct http_server *server;
	struct proxy_health_counts counts;
};

bool proxy_health_ok(const struct proxy_health *ph)
{
	return sync_runner_healthy(ph->runner, loop_now_ms(), ph->timeout_ms);
}

void proxy_health_counts(const struct proxy_health *ph, struct proxy_health_counts *ret)
{
	*ret = ph->counts;
}

/* ts as Go's time.Time.String() prints a UTC time (what kube-proxy's %q
 * of a time gives, without the monotonic reading):
 * "2026-12-06 08:37:01.123456789 +0000 UTC". The zero time when ts is 0. */
static void proxy_health_format_time(const struct timespec *ts, char *buf, size_t size)
{
	struct tm tm;
	char date[32];

	if (!ts->tv_sec && !ts->tv_nsec) {
		snprintf(buf, size, "0001-01-01 00:00:00 +0000 UTC");
		return;
	}
	gmtime_r(&ts->tv_sec, &tm);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(buf, size, "%s.%09ld +0000 UTC", date, ts->tv_nsec);
}

static int proxy_health_answer(void *userdata, const char *path, struct http_reply *ret)
{
	struct proxy_health *ph = userdata;
	struct sync_runner_stats st;
	struct timespec now, last = { 0, 0 };
	char now_s[64], last_s[64];
	bool livez = strcmp(path, "/livez") == 0, healthy, eligible = true;
	const struct kobj_node *node;
	size_t cap = 0;
	uint64_t mono = loop_now_ms();

	if (!livez && strcmp(path, "/healthz") != 0) {
		ret->status = 404;
		return http_appendf(&ret->body, &ret->len, &cap, "404 page not found\n");
	}
	clock_gettime(CLOCK_REALTIME, &now);
	sync_runner_stats(ph->runner, &st);
	healthy = sync_runner_healthy(ph->runner, mono, ph->timeout_ms);
	/* kube-proxy: a Node being deleted or drained by the autoscaler
	 * fails /healthz (so load balancers move away), not /livez. */
	if (!livez && ph->model && (node = model_node(ph->model)) &&
	    (node->deleting || node->to_be_deleted))
		eligible = false;
	if (healthy && eligible) {
		last = now; /* kube-proxy: "recent" while healthy */
	} else if (st.last_ok_ms) {
		uint64_t ago_ms = mono - st.last_ok_ms;
		int64_t ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec - (int64_t)ago_ms * 1000000;

		last.tv_sec = ns / 1000000000;
		last.tv_nsec = ns % 1000000000;
	}
	proxy_health_format_time(&now, now_s, sizeof(now_s));
	proxy_health_format_time(&last, last_s, sizeof(last_s));
	ret->status = healthy && eligible ? 200 : 503;
	ret->content_type = "application/json";
	if (livez) {
		if (healthy)
			ph->counts.livez_200++;
		else
			ph->counts.livez_503++;
		return http_appendf(&ret->body, &ret->len, &cap,
				    "{\"lastUpdated\": \"%s\",\"currentTime\": \"%s\"}", last_s, now_s);
	}
	if (ret->status == 200)
		ph->counts.healthz_200++;
	else
		ph->counts.healthz_503++;
	return http_appendf(&ret->body, &ret->len, &cap,
			    "{\"lastUpdated\": \"%s\",\"currentTime\": \"%s\", \"nodeEligible\": %s}",
			    last_s, now_s, eligible ? "true" : "false");
}

struct proxy_health *proxy_health_new(struct loop *loop, const char *bind,
				      const struct sync_runner *runner, const struct model *model,
				      uint32_t timeout_ms)
{
	struct proxy_health *ph = calloc(1, sizeof(*ph));
	int r;

	if (!ph)
		return NULL;
	ph->loop = loop;
	ph->runner = runner;
	ph->model = model;
	ph->timeout_ms = timeout_ms;
	if (!bind)
		bind = PROXY_HEALTH_DEFAULT_BIND;
	r = http_server_new(loop, bind, proxy_health_answer, ph, &ph->server);
	if (r < 0)
		log_errno(r, "healthz: cannot serve on %s; going on without /healthz and /livez", bind);
	else if (ph->server)
		log_info("healthz: serving /healthz and /livez on %s", bind);
	return ph;
}

struct proxy_health *proxy_health_free(struct proxy_health *ph)
{
	if (!ph)
		return NULL;
	http_server_free(ph->server);
	free(ph);
	return NULL;
}
