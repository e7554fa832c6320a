/* Health check node ports, one small HTTP server each (http_server.c, on
 * ferry's event loop): the answer is built from the counts the last plan
 * gave. Everything runs on the control thread, so the counts need no
 * locking.
 */
#include "svc_health.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_server.h"
#include "log.h"

struct hc_server {
	struct svc_health *owner;
	uint16_t port;
	char *ns;
	char *name;
	size_t local_endpoints;
	struct http_server *http;
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

/* Any GET: kube-proxy's body, 200 while there are ready local endpoints
 * and the proxy itself is healthy, 503 otherwise. */
static int hc_answer(void *userdata, const char *path, struct http_reply *ret)
{
	struct hc_server *s = userdata;
	bool proxy_ok = !s->owner->proxy_healthy || s->owner->proxy_healthy(s->owner->proxy_userdata);
	size_t cap = 0;

	(void)path;
	ret->content_type = "application/json";
	ret->status = s->local_endpoints && proxy_ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
	return http_appendf(&ret->body, &ret->len, &cap,
			    "{\"service\":{\"namespace\":\"%s\",\"name\":\"%s\"},"
			    "\"localEndpoints\":%zu,\"serviceProxyHealthy\":%s}\n",
			    s->ns, s->name, s->local_endpoints, proxy_ok ? "true" : "false");
}

static void hc_server_free(struct hc_server *s)
{
	if (!s)
		return;
	http_server_free(s->http);
	free(s->ns);
	free(s->name);
	free(s);
}

/* Listen on port: both families where IPv6 exists, IPv4 otherwise. */
static int hc_server_open(struct svc_health *h, struct hc_server *s)
{
	char bind[32];
	int r;

	snprintf(bind, sizeof(bind), "[::]:%u", s->port);
	r = http_server_new(h->loop, bind, hc_answer, s, &s->http);
	if (r < 0) {
		snprintf(bind, sizeof(bind), ":%u", s->port);
		r = http_server_new(h->loop, bind, hc_answer, s, &s->http);
	}
	return r;
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
				hc_server_free(s);
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
		hc_server_free(s);
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
		hc_server_free(h->servers[i]);
	free(h->servers);
	free(h);
	return NULL;
}
