/* HTTP GETs to the Kubernetes API on ferry's event loop (libcurl multi).
 *
 * One curl multi handle per kube_http; its sockets are watched with
 * loop_watch_fd and its timeouts are one loop_timer, so every list and
 * every long-running watch progresses on the control thread without a
 * thread of its own (CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION).
 *
 * Each request sends the current bearer token (re-read from its file when
 * it changed, see kube_config_token) and verifies TLS as the configuration
 * says. Body bytes of a 2xx response are handed over as they arrive; other
 * bodies are dropped (the status says enough). Mechanism code: logs at
 * debug level at most, and never a header (tokens live there).
 */
#ifndef FERRY_KUBE_HTTP_H
#define FERRY_KUBE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "kube_config.h"
#include "loop.h"

struct kube_http;
struct kube_http_req;

/* How a request ended. */
struct kube_http_result {
	/* 0 when a complete response arrived (whatever its status), else
	 * -ECANCELED (the body callback asked to stop), -ETIMEDOUT,
	 * -ECONNREFUSED, -ECONNRESET (connection dropped mid-response),
	 * -EPROTO (TLS failure, including a certificate that does not
	 * verify), -EINVAL (a URL curl cannot use: kube_config checks the
	 * server's, so this is a bug or a bad path), -EIO (anything else). */
	int error;
	long status;             /* HTTP status; 0 when none arrived */
	uint32_t retry_after_ms; /* Retry-After (seconds form), 0 when absent */
	const char *message;     /* transport error text for logs; never NULL */
};

/* Body bytes of a 2xx response. Return 0 to go on, or a negative value to
 * abort the transfer (the done callback then sees error -ECANCELED). Must
 * not call kube_http_cancel or kube_http_free. */
typedef int (*kube_http_body_fn)(void *userdata, const char *data, size_t len);
/* The request ended; called once, after the transfer was detached, so it
 * may start new requests. The request handle is invalid once it returns. */
typedef void (*kube_http_done_fn)(void *userdata, const struct kube_http_result *res);

/* Set up a client of the API described by cfg on loop. Both are borrowed
 * and must outlive the client. NULL on failure (ENOMEM, or a curl error). */
struct kube_http *kube_http_new(struct loop *loop, struct kube_config *cfg);
/* Abort every request (no callbacks) and free. Accepts NULL; returns NULL. */
struct kube_http *kube_http_free(struct kube_http *h);

/* Start GET server+path_query (path_query begins with '/', already
 * escaped). timeout_s bounds the whole transfer (0: none). Returns 0 and
 * *ret (may be NULL if the caller does not need it), or -ENOMEM / -EIO;
 * callbacks are only called after a successful start, from the loop. */
int kube_http_get(struct kube_http *h, const char *path_query, uint32_t timeout_s,
		  kube_http_body_fn on_body, kube_http_done_fn on_done, void *userdata,
		  struct kube_http_req **ret);

/* Abort req without calling its callbacks. Not from inside its body
 * callback. */
void kube_http_cancel(struct kube_http *h, struct kube_http_req *req);

/* Number of requests in flight (for tests). */
size_t kube_http_active(const struct kube_http *h);

#endif
