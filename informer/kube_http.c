/* libcurl multi on the ferry loop.
 *
 * The glue is the "multi_socket" API: curl tells us which sockets to watch
 * for what (sock_cb) and when it next needs a timeout call (timer_cb); we
 * report readiness back with curl_multi_socket_action and then collect the
 * finished transfers. Callbacks into the user happen either from curl's
 * write callback (body bytes) or after a transfer was removed from the multi
 * handle (done), never while curl is in a state where removing handles is
 * forbidden.
 */
#include "kube_http.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include <curl/curl.h>

#include "log.h"

struct kube_http_req {
	struct kube_http *h;
	CURL *easy;
	struct curl_slist *headers;
	kube_http_body_fn on_body;
	kube_http_done_fn on_done;
	void *userdata;
	uint32_t retry_after_ms;
	bool aborted;
	char errbuf[CURL_ERROR_SIZE];
	struct kube_http_req *prev, *next;
};

struct kube_http {
	struct loop *loop;
	struct kube_config *cfg;
	CURLM *multi;
	struct loop_timer timer;
	struct kube_http_req *reqs;
	size_t n_reqs;
	bool in_process; /* guards against re-entering process_done */
};

static void kube_http_process(struct kube_http *h);

static void req_unlink(struct kube_http *h, struct kube_http_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		h->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
	h->n_reqs--;
}

static void req_free(struct kube_http_req *r)
{
	struct curl_slist *s;

	if (!r)
		return;
	if (r->easy)
		curl_easy_cleanup(r->easy);
	/* The Authorization header holds the token: wipe it. */
	for (s = r->headers; s; s = s->next)
		explicit_bzero(s->data, strlen(s->data));
	curl_slist_free_all(r->headers);
	free(r);
}

/* --- loop glue --------------------------------------------------------------- */

static void on_fd(struct loop *loop, int fd, uint32_t events, void *userdata)
{
	struct kube_http *h = userdata;
	int flags = 0, running = 0;

	(void)loop;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
		flags |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (events & EPOLLERR)
		flags |= CURL_CSELECT_ERR;
	curl_multi_socket_action(h->multi, fd, flags, &running);
	kube_http_process(h);
}

static void on_timer(struct loop *loop, void *userdata)
{
	struct kube_http *h = userdata;
	int running = 0;

	(void)loop;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	kube_http_process(h);
}

static int sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct kube_http *h = userp;
	uint32_t ev = 0;

	(void)easy;
	(void)socketp;
	if (what == CURL_POLL_REMOVE) {
		loop_unwatch_fd(h->loop, s);
		return 0;
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		ev |= EPOLLIN;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		ev |= EPOLLOUT;
	if (loop_watch_fd(h->loop, s, ev, on_fd, h) < 0)
		return -1; /* curl fails the transfer; it is retried like any error */
	return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct kube_http *h = userp;

	(void)multi;
	if (timeout_ms < 0)
		loop_timer_stop(h->loop, &h->timer);
	else
		loop_timer_start(h->loop, &h->timer, (uint64_t)timeout_ms);
	return 0;
}

/* --- per transfer callbacks -------------------------------------------------- */

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct kube_http_req *r = userp;
	size_t len = size * nmemb;
	long status = 0;

	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299 || !r->on_body)
		return len;
	if (r->on_body(r->userdata, data, len) < 0) {
		r->aborted = true;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	return len;
}

static size_t header_cb(char *data, size_t size, size_t nitems, void *userp)
{
	struct kube_http_req *r = userp;
	size_t len = size * nitems;
	char tmp[32];

	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		r->retry_after_ms = 0; /* a new response (after a 100 or a redirect) */
	} else if (len > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
		size_t n = len - 12 < sizeof(tmp) - 1 ? len - 12 : sizeof(tmp) - 1;
		char *end;
		unsigned long v;

		memcpy(tmp, data + 12, n);
		tmp[n] = '\0';
		v = strtoul(tmp, &end, 10);
		/* Only the delay-seconds form; an HTTP date is ignored (backoff applies). */
		if (end != tmp && v <= 86400)
			r->retry_after_ms = (uint32_t)v * 1000u;
	}
	return len;
}

static int map_curl_error(CURLcode c, bool aborted)
{
	switch (c) {
	case CURLE_OK:
		return 0;
	case CURLE_WRITE_ERROR:
		return aborted ? -ECANCELED : -EIO;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		return -ECONNREFUSED;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CIPHER:
		return -EPROTO;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EINVAL;
	default:
		return -EIO;
	}
}

static void kube_http_process(struct kube_http *h)
{
	CURLMsg *msg;
	int left;

	if (h->in_process)
		return;
	h->in_process = true;
	while ((msg = curl_multi_info_read(h->multi, &left))) {
		struct kube_http_req *r = NULL;
		struct kube_http_result res = { 0 };

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		if (!r)
			continue;
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
		res.error = map_curl_error(msg->data.result, r->aborted);
		res.retry_after_ms = r->retry_after_ms;
		res.message = r->errbuf[0] ? r->errbuf : curl_easy_strerror(msg->data.result);
		/* A response cut short still has a status: report the cut. */
		curl_multi_remove_handle(h->multi, r->easy);
		req_unlink(h, r);
		log_debug("kube http: request done: status %ld, %s", res.status,
			  res.error ? res.message : "complete");
		if (r->on_done)
			r->on_done(r->userdata, &res);
		req_free(r);
	}
	h->in_process = false;
}

/* --- public ------------------------------------------------------------------ */

struct kube_http *kube_http_new(struct loop *loop, struct kube_config *cfg)
{
	static bool global_done;
	struct kube_http *h;

	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			errno = EIO;
			return NULL;
		}
		global_done = true;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->loop = loop;
	h->cfg = cfg;
	h->multi = curl_multi_init();
	if (!h->multi) {
		free(h);
		errno = ENOMEM;
		return NULL;
	}
	loop_timer_init(&h->timer, on_timer, h);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	return h;
}

void kube_http_cancel(struct kube_http *h, struct kube_http_req *r)
{
	if (!r)
		return;
	curl_multi_remove_handle(h->multi, r->easy);
	req_unlink(h, r);
	req_free(r);
}

struct kube_http *kube_http_free(struct kube_http *h)
{
	if (!h)
		return NULL;
	while (h->reqs)
		kube_http_cancel(h, h->reqs);
	curl_multi_cleanup(h->multi);
	loop_timer_stop(h->loop, &h->timer);
	free(h);
	return NULL;
}

size_t kube_http_active(const struct kube_http *h)
{
	return h->n_reqs;
}

/* Apply the TLS part of the configuration to one transfer. */
static int setup_tls(CURL *e, const struct kube_config *c)
{
	CURLcode rc = CURLE_OK;

	if (c->insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (c->ca_pem) {
		struct curl_blob b = { .data = c->ca_pem, .len = c->ca_pem_len, .flags = CURL_BLOB_COPY };

		rc = curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b);
		curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
	} else if (c->ca_file) {
		rc = curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
		/* Trust only the cluster's CA, not the host's whole store. */
		curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
	}
	if (rc == CURLE_OK && c->cert_pem) {
		struct curl_blob b = { .data = c->cert_pem, .len = c->cert_pem_len, .flags = CURL_BLOB_COPY };

		rc = curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &b);
	} else if (rc == CURLE_OK && c->cert_file) {
		rc = curl_easy_setopt(e, CURLOPT_SSLCERT, c->cert_file);
	}
	if (rc == CURLE_OK && c->key_pem) {
		struct curl_blob b = { .data = c->key_pem, .len = c->key_pem_len, .flags = CURL_BLOB_COPY };

		rc = curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &b);
	} else if (rc == CURLE_OK && c->key_file) {
		rc = curl_easy_setopt(e, CURLOPT_SSLKEY, c->key_file);
	}
	return rc == CURLE_OK ? 0 : -EIO;
}

int kube_http_get(struct kube_http *h, const char *path_query, uint32_t timeout_s,
		  kube_http_body_fn on_body, kube_http_done_fn on_done, void *userdata,
		  struct kube_http_req **ret)
{
	struct kube_http_req *r;
	struct curl_slist *s;
	char *url = NULL, *auth = NULL, *token = NULL;
	int err = 0;

	if (ret)
		*ret = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->h = h;
	r->on_body = on_body;
	r->on_done = on_done;
	r->userdata = userdata;
	r->easy = curl_easy_init();
	if (!r->easy || asprintf(&url, "%s%s", h->cfg->server, path_query) < 0) {
		url = NULL;
		err = -ENOMEM;
		goto fail;
	}
	/* A token file that cannot be read right now still yields the last
	 * good token; with none at all the request goes without and the
	 * server's 401 is retried with backoff. */
	if (kube_config_token(h->cfg, &token) == -ENOMEM) {
		err = -ENOMEM;
		goto fail;
	}
	if (token) {
		if (asprintf(&auth, "Authorization: Bearer %s", token) < 0) {
			auth = NULL;
			err = -ENOMEM;
			goto fail;
		}
	}
	s = curl_slist_append(NULL, "Accept: application/json");
	if (s)
		r->headers = s;
	if (!s || (auth && !(s = curl_slist_append(r->headers, auth)))) {
		err = -ENOMEM;
		goto fail;
	}
	curl_easy_setopt(r->easy, CURLOPT_URL, url);
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(r->easy, CURLOPT_USERAGENT, "ferry");
	curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT, (long)timeout_s);
	curl_easy_setopt(r->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(r->easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(r->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	/* The API server is reached directly: a proxy from the environment
	 * would see the token and is not what kube-proxy setups expect. */
	curl_easy_setopt(r->easy, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	if (setup_tls(r->easy, h->cfg) < 0) {
		err = -EIO;
		goto fail;
	}
	if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
		err = -EIO;
		goto fail;
	}
	r->next = h->reqs;
	if (h->reqs)
		h->reqs->prev = r;
	h->reqs = r;
	h->n_reqs++;
	if (ret)
		*ret = r;
	err = 0;
	goto out;
fail:
	req_free(r);
out:
	free(url);
	if (auth) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	if (token) {
		explicit_bzero(token, strlen(token));
		free(token);
	}
	return err;
}
