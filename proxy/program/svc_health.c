/* Health check node ports served with libmicrohttpd on ferry's event loop.
 *
 * Each port is one MHD daemon in "external epoll" mode: MHD exposes one
 * epoll fd per daemon, the loop watches it and calls MHD_run when it is
 * readable, and a loop timer covers MHD's own timeouts. Everything runs on
 * the control thread, so the counts need no locking.
 */
#include "svc_health.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "log.h"

struct hc_server {
	struct svc_health *owner;
	uint16_t port;
	char *ns;
	char *name;
	size_t local_endpoints;
	struct MHD_Daemon *daemon;
	int epfd;                /* MHD's epoll fd, watched by the loop */
	struct loop_timer timer; /* MHD's next timeout */
	bool seen;               /* still in the plan (update bookkeeping) */
};

struct svc_health {
	struct loop *loop;
	struct hc_server **servers;
	size_t n_servers;
	bool (*proxy_healthy)(void *userdata); /* NULL: always healthy */
	void *proxy_userdata;
};

void svc_health_set_proxy_health(struct svc_health *h, bool (*fn)(void *userdata), void *userdata)
{
	h->proxy_healthy = fn;
	h->proxy_userdata = userdata;
}

struct svc_health *svc_health_new(struct loop *loop)
{
	struct svc_health *h = calloc(1, sizeof(*h));

	if (h)
		h->loop = loop;
	return h;
}

static enum MHD_Result hc_answer(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version,
				 const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct hc_server *s = cls;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char body[640];
	bool proxy_ok = !s->owner->proxy_healthy || s->owner->proxy_healthy(s->owner->proxy_userdata);
	int n;

	(void)url;
	(void)version;
	(void)upload_data;
	(void)con_cls;
	if (*upload_data_size) {
		*upload_data_size = 0; /* a body is ignored */
		return MHD_YES;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		if (!resp)
			return MHD_NO;
		ret = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	n = snprintf(body, sizeof(body),
		     "{\"service\":{\"namespace\":\"%s\",\"name\":\"%s\"},"
		     "\"localEndpoints\":%zu,\"serviceProxyHealthy\":%s}\n",
		     s->ns, s->name, s->local_endpoints, proxy_ok ? "true" : "false");
	if (n < 0 || (size_t)n >= sizeof(body))
		return MHD_NO;
	resp = MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "application/json");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	/* kube-proxy: 503 as well while the proxy itself is unhealthy. */
	ret = MHD_queue_response(conn, s->local_endpoints && proxy_ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
				 resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Let MHD work, then arm the timer for its next deadline. */
static void hc_run(struct hc_server *s)
{
	MHD_UNSIGNED_LONG_LONG ms;

	MHD_run(s->daemon);
	if (MHD_get_timeout(s->daemon, &ms) == MHD_YES)
		loop_timer_start(s->owner->loop, &s->timer, ms);
	else
		loop_timer_stop(s->owner->loop, &s->timer);
}

static void hc_on_fd(struct loop *loop, int fd, uint32_t events, void *userdata)
{
	(void)loop;
	(void)fd;
	(void)events;
	hc_run(userdata);
}

static void hc_on_timer(struct loop *loop, void *userdata)
{
	(void)loop;
	hc_run(userdata);
}

static void hc_server_free(struct svc_health *h, struct hc_server *s)
{
	if (!s)
		return;
	loop_timer_stop(h->loop, &s->timer);
	if (s->daemon) {
		loop_unwatch_fd(h->loop, s->epfd);
		MHD_stop_daemon(s->daemon);
	}
	free(s->ns);
	free(s->name);
	free(s);
}

/* Start a daemon on port: dual-stack where IPv6 exists, IPv4 otherwise. */
static int hc_server_open(struct svc_health *h, struct hc_server *s)
{
	const union MHD_DaemonInfo *info;
	unsigned base = MHD_USE_EPOLL;
	int r;

	s->daemon = MHD_start_daemon(base | MHD_USE_DUAL_STACK, s->port, NULL, NULL, hc_answer, s,
				     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)5,
				     MHD_OPTION_CONNECTION_LIMIT, (unsigned)256, MHD_OPTION_END);
	if (!s->daemon)
		s->daemon = MHD_start_daemon(base, s->port, NULL, NULL, hc_answer, s,
					     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)5,
					     MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
					     MHD_OPTION_END);
	if (!s->daemon)
		return -EADDRINUSE; /* MHD does not say why; a taken port is the usual cause */
	info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info) {
		MHD_stop_daemon(s->daemon);
		s->daemon = NULL;
		return -EOPNOTSUPP;
	}
	s->epfd = info->epoll_fd;
	loop_timer_init(&s->timer, hc_on_timer, s);
	r = loop_watch_fd(h->loop, s->epfd, EPOLLIN, hc_on_fd, s);
	if (r < 0) {
		MHD_stop_daemon(s->daemon);
		s->daemon = NULL;
		return r;
	}
	return 0;
}

static struct hc_server *hc_find(struct svc_health *h, uint16_t port)
{
	for (size_t i = 0; i < h->n_servers; i++)
		if (h->servers[i]->port == port)
			return h->servers[i];
	return NULL;
}

/* Replace a server's service name (the port moved to another service). */
static int hc_set_names(struct hc_server *s, const struct plan_health_check *hc)
{
	char *ns, *name;

	if (s->ns && strcmp(s->ns, hc->ns) == 0 && strcmp(s->name, hc->svc_name) == 0)
		return 0;
	ns = strdup(hc->ns);
	name = strdup(hc->svc_name);
	if (!ns || !name) {
		free(ns);
		free(name);
		return -ENOMEM;
	}
	free(s->ns);
	free(s->name);
	s->ns = ns;
	s->name = name;
	return 0;
}

int svc_health_update(struct svc_health *h, const struct plan *plan)
{
	int first_err = 0, r;
	size_t keep = 0;

	for (size_t i = 0; i < h->n_servers; i++)
		h->servers[i]->seen = false;
	for (size_t i = 0; i < plan->n_health_checks; i++) {
		const struct plan_health_check *hc = &plan->health_checks[i];
		struct hc_server *s = hc_find(h, hc->port);

		if (!s) {
			struct hc_server **grown;

			grown = realloc(h->servers, (h->n_servers + 1) * sizeof(*grown));
			s = calloc(1, sizeof(*s));
			if (grown)
				h->servers = grown;
			if (!grown || !s) {
				free(s);
				return log_errno(-ENOMEM, "health check node port %u", hc->port);
			}
			s->owner = h;
			s->port = hc->port;
			r = hc_set_names(s, hc);
			if (r == 0)
				r = hc_server_open(h, s);
			if (r < 0) {
				log_errno(r, "health check node port %u of service %s/%s cannot be opened",
					  hc->port, hc->ns, hc->svc_name);
				hc_server_free(h, s);
				if (!first_err)
					first_err = r;
				continue;
			}
			h->servers[h->n_servers++] = s;
			log_info("health check node port %u serving service %s/%s", hc->port, hc->ns,
				 hc->svc_name);
		} else if (hc_set_names(s, hc) < 0) {
			return log_errno(-ENOMEM, "health check node port %u", hc->port);
		}
		s->local_endpoints = hc->local_endpoints;
		s->seen = true;
	}
	for (size_t i = 0; i < h->n_servers; i++) {
		struct hc_server *s = h->servers[i];

		if (s->seen) {
			h->servers[keep++] = s;
			continue;
		}
		log_info("health check node port %u of service %s/%s closed", s->port, s->ns, s->name);
		hc_server_free(h, s);
	}
	h->n_servers = keep;
	return first_err;
}

size_t svc_health_count(const struct svc_health *h)
{
	return h->n_servers;
}

struct svc_health *svc_health_free(struct svc_health *h)
{
	if (!h)
		return NULL;
	for (size_t i = 0; i < h->n_servers; i++)
		hc_server_free(h, h->servers[i]);
	free(h->servers);
	free(h);
	return NULL;
}
