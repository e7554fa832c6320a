/* An MHD daemon on the event loop: the loop watches MHD's epoll fd and a
 * timer covers MHD's timeouts. Control thread only. */
#include "http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

struct http_server {
	struct loop *loop;
	struct MHD_Daemon *daemon;
	int epfd;
	struct loop_timer timer;
	http_handler_fn fn;
	void *userdata;
};

int http_bind_disabled(const char *text)
{
	/* kube-proxy: an empty address is no server; "0" and port 0 are
	 * refused by the option parsers before they get here. */
	return text && !*text;
}

int http_bind_parse(const char *text, struct sockaddr_storage *ret, unsigned *ret_len)
{
	char host[64];
	const char *colon = strrchr(text, ':');
	char *end;
	unsigned long port;
	size_t hl;

	if (!colon)
		return -EINVAL;
	port = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end || port > 65535)
		return -EINVAL;
	hl = (size_t)(colon - text);
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, text, hl);
	host[hl] = '\0';
	memset(ret, 0, sizeof(*ret));
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ret;

		host[hl - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
			return -EINVAL;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*ret_len = sizeof(*s6);
		return 0;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ret;

	if (hl == 0)
		s4->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
		return -EINVAL;
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	*ret_len = sizeof(*s4);
	return 0;
}

int http_appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = *cap - *len;

		va_start(ap, fmt);
		n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -EINVAL;
		if (*buf && (size_t)n < room) {
			*len += (size_t)n;
			return 0;
		}
		size_t want = *cap ? *cap * 2 : 4096;

		while (want < *len + (size_t)n + 1)
			want *= 2;
		char *grown = realloc(*buf, want);

		if (!grown)
			return -ENOMEM;
		*buf = grown;
		*cap = want;
	}
}

static enum MHD_Result http_answer(void *cls, struct MHD_Connection *conn, const char *url,
				   const char *method, const char *version, const char *upload_data,
				   size_t *upload_data_size, void **con_cls)
{
	struct http_server *s = cls;
	struct http_reply reply = { .status = 200, .content_type = "text/plain" };
	struct MHD_Response *resp;
	enum MHD_Result ret;

	(void)version;
	(void)upload_data;
	(void)con_cls;
	if (*upload_data_size) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		reply.status = MHD_HTTP_METHOD_NOT_ALLOWED;
	} else if (s->fn(s->userdata, url, &reply) < 0) {
		free(reply.body);
		return MHD_NO;
	}
	resp = MHD_create_response_from_buffer(reply.len, reply.body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(reply.body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", reply.content_type);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	ret = MHD_queue_response(conn, reply.status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void http_run(struct http_server *s)
{
	MHD_UNSIGNED_LONG_LONG ms;

	MHD_run(s->daemon);
	if (MHD_get_timeout(s->daemon, &ms) == MHD_YES)
		loop_timer_start(s->loop, &s->timer, ms);
	else
		loop_timer_stop(s->loop, &s->timer);
}

static void http_on_fd(struct loop *loop, int fd, uint32_t events, void *userdata)
{
	(void)loop;
	(void)fd;
	(void)events;
	http_run(userdata);
}

static void http_on_timer(struct loop *loop, void *userdata)
{
	(void)loop;
	http_run(userdata);
}

int http_server_new(struct loop *loop, const char *bind, http_handler_fn fn, void *userdata,
		    struct http_server **ret)
{
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *info;
	struct http_server *s;
	unsigned len, flags = MHD_USE_EPOLL;
	int r;

	*ret = NULL;
	if (http_bind_disabled(bind))
		return 0;
	r = http_bind_parse(bind, &ss, &len);
	if (r < 0)
		return r;
	/* "[::]:PORT" listens on both families, as Go's listeners (kube-proxy's)
	 * do; any other IPv6 address on its own family. */
	if (ss.ss_family == AF_INET6)
		flags |= IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr) ? MHD_USE_DUAL_STACK
											   : MHD_USE_IPv6;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = loop;
	s->fn = fn;
	s->userdata = userdata;
	loop_timer_init(&s->timer, http_on_timer, s);
	s->daemon = MHD_start_daemon(flags, ntohs(((struct sockaddr_in *)&ss)->sin_port), NULL, NULL,
				     http_answer, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)5,
				     MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
	if (!s->daemon) {
		free(s);
		return -EADDRINUSE; /* MHD does not say why; a taken port is the usual cause */
	}
	info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	r = info ? loop_watch_fd(loop, info->epoll_fd, EPOLLIN, http_on_fd, s) : -EOPNOTSUPP;
	if (r < 0) {
		MHD_stop_daemon(s->daemon);
		free(s);
		return r;
	}
	s->epfd = info->epoll_fd;
	*ret = s;
	return 0;
}

struct http_server *http_server_free(struct http_server *s)
{
	if (!s)
		return NULL;
	loop_timer_stop(s->loop, &s->timer);
	loop_unwatch_fd(s->loop, s->epfd);
	MHD_stop_daemon(s->daemon);
	free(s);
	return NULL;
}
