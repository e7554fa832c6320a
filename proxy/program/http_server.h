/* A small HTTP server on ferry's event loop (libmicrohttpd in external
 * epoll mode, as svc_health.c): GET and HEAD only, one handler that builds
 * the whole answer in memory. Used by the healthz and metrics servers.
 */
#ifndef FERRY_HTTP_SERVER_H
#define FERRY_HTTP_SERVER_H

#include <stddef.h>
#include <sys/socket.h>

#include "loop.h"

/* One answer. The handler fills status and content_type and puts the body
 * in a malloc'd buffer (body, len); the server frees it. */
struct http_reply {
	unsigned status;
	const char *content_type; /* static string */
	char *body;
	size_t len;
};

/* Build the answer to a GET of path (query string removed). Returns 0, or
 * -errno to drop the connection. */
typedef int (*http_handler_fn)(void *userdata, const char *path, struct http_reply *ret);

struct http_server;

/* Parse "ADDR:PORT" ("[V6]:PORT" for IPv6; an empty ADDR means every IPv4
 * address). Returns 0, or -EINVAL. */
int http_bind_parse(const char *text, struct sockaddr_storage *ret, unsigned *ret_len);

/* Whether text asks for no server: NULL is not that (the caller's default
 * applies); "" is, as in kube-proxy. */
int http_bind_disabled(const char *text);

/* Start serving on bind ("ADDR:PORT"); what names the server in logs
 * ("healthz"). loop and userdata are borrowed. *ret is NULL when bind
 * disables the server. Returns 0 or -errno (-EINVAL for a bad address,
 * -EADDRINUSE when it cannot be bound), logging nothing. */
int http_server_new(struct loop *loop, const char *bind, http_handler_fn fn, void *userdata,
		    struct http_server **ret);
/* Stop serving and free. Accepts NULL; returns NULL. */
struct http_server *http_server_free(struct http_server *s);

/* Append printf output to a growing buffer (*buf, *len, *cap): the
 * handlers' way to build a body. 0 or -ENOMEM (the buffer stays valid). */
int http_appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
