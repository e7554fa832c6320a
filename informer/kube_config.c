/* Kubeconfig, in-cluster and --master configurations, and the token cache.
 *
 * A kubeconfig is YAML; it is turned into JSON by yaml_json.c and walked
 * with jansson. Only the fields listed in kube_config.h are read. Secrets
 * (tokens, keys) are copied into heap buffers that are wiped before free.
 */
#include "kube_config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "yaml_json.h"

static int kube_config_fail(char *err, size_t errlen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int kube_config_fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

/* Free a buffer that may hold a secret. */
static void free_secret(char *s, size_t len)
{
	if (!s)
		return;
	if (!len)
		len = strlen(s);
	explicit_bzero(s, len);
	free(s);
}

struct kube_config *kube_config_free(struct kube_config *c)
{
	if (!c)
		return NULL;
	free(c->server);
	free(c->ca_file);
	free(c->ca_pem);
	free_secret(c->token, 0);
	free(c->token_file);
	free(c->cert_file);
	free(c->key_file);
	free(c->cert_pem);
	free_secret(c->key_pem, c->key_pem_len);
	free_secret(c->file_token, 0);
	free(c);
	return NULL;
}

/* Read a whole small file into a NUL-terminated buffer. The open never
 * blocks (O_NONBLOCK: a FIFO without a writer would otherwise wait forever,
 * before any request timeout runs). A regular file is required when
 * regular_only (a token file, re-read when its inode, size or mtime
 * change); otherwise a pipe is accepted as well (a kubeconfig given as
 * <(...)), read until its writer closes it. Anything else is -EINVAL. */
static int read_small_file(const char *path, bool regular_only, char **ret, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	struct stat st;
	int fd, r = 0;

	*ret = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd == -1)
		return -errno;
	if (fstat(fd, &st) == -1) {
		r = -errno;
		close(fd);
		return r;
	}
	if (!S_ISREG(st.st_mode) && (regular_only || !S_ISFIFO(st.st_mode))) {
		close(fd);
		return -EINVAL;
	}
	if (S_ISFIFO(st.st_mode) && fcntl(fd, F_SETFL, 0) == -1) {
		r = -errno;
		close(fd);
		return r;
	}
	for (;;) {
		if (cap - len < 4096) {
			char *nb;

			if (cap >= KUBE_CONFIG_MAX_FILE) {
				r = -EFBIG;
				break;
			}
			cap = cap ? cap * 2 : 8192;
			nb = malloc(cap + 1);
			if (!nb) {
				r = -ENOMEM;
				break;
			}
			if (buf)
				memcpy(nb, buf, len);
			free_secret(buf, len);
			buf = nb;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (r < 0) {
		free_secret(buf, len);
		return r;
	}
	if (!buf && !(buf = malloc(1)))
		return -ENOMEM;
	buf[len] = '\0';
	*ret = buf;
	if (ret_len)
		*ret_len = len;
	return 0;
}

/* Trim surrounding whitespace in place. */
static void trim(char *s)
{
	size_t n = strlen(s), i = 0;

	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
		i++;
	if (i)
		memmove(s, s + i, n - i + 1);
}

static int b64_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

int kube_base64_decode(const char *in, char **ret, size_t *ret_len)
{
	size_t n = strlen(in), len = 0;
	uint32_t acc = 0;
	int bits = 0;
	bool padded = false;
	char *out = malloc(n / 4 * 3 + 4);

	*ret = NULL;
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char ch = in[i];
		int v;

		if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t')
			continue;
		if (ch == '=') {
			padded = true;
			continue;
		}
		v = b64_value(ch);
		if (v < 0 || padded) {
			free(out);
			return -EINVAL;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[len++] = (char)((acc >> bits) & 0xff);
		}
	}
	if (bits >= 6) { /* a lone trailing character cannot be valid */
		free(out);
		return -EINVAL;
	}
	out[len] = '\0';
	*ret = out;
	*ret_len = len;
	return 0;
}

/* What a token or certificate file error means, for messages. */
static const char *file_error(int r)
{
	return r == -EINVAL ? "not a regular file" : strerror(-r);
}

/* Why url cannot be the API server's address (a static string or buf), or
 * NULL when it can. Parsed as curl will: a URL it would refuse is an error
 * now, not a request retried forever. */
static const char *server_url_problem(const char *url, char *buf, size_t len)
{
	CURLU *u;
	CURLUcode rc;
	char *part = NULL;
	const char *why = NULL;

	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)
		return "not an http:// or https:// URL";
	u = curl_url();
	if (!u)
		return "out of memory";
	rc = curl_url_set(u, CURLUPART_URL, url, 0);
	if (rc != CURLUE_OK) {
		snprintf(buf, len, "not a valid URL: %s", curl_url_strerror(rc));
		why = buf;
	} else if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK ||
		   curl_url_get(u, CURLUPART_PASSWORD, &part, 0) == CURLUE_OK) {
		why = "credentials in the URL are not supported (use a token or a client certificate)";
	} else if (curl_url_get(u, CURLUPART_QUERY, &part, 0) == CURLUE_OK) {
		why = "a URL with a query (?...) is not an API server address";
	} else if (curl_url_get(u, CURLUPART_FRAGMENT, &part, 0) == CURLUE_OK) {
		why = "a URL with a fragment (#...) is not an API server address";
	}
	curl_free(part);
	curl_url_cleanup(u);
	return why;
}

/* Set c->server to url, trailing slashes dropped; *ret_why says what is
 * wrong on -EINVAL. */
static int set_server(struct kube_config *c, const char *url, const char **ret_why, char *buf,
		      size_t len)
{
	char *s;
	size_t n;

	*ret_why = url ? server_url_problem(url, buf, len) : "no URL";
	if (*ret_why)
		return -EINVAL;
	s = strdup(url);
	if (!s)
		return -ENOMEM;
	n = strlen(s);
	while (n > 8 && s[n - 1] == '/')
		s[--n] = '\0';
	free(c->server);
	c->server = s;
	return 0;
}

int kube_config_set_server(struct kube_config *c, const char *url)
{
	char buf[160];
	const char *why;

	return set_server(c, url, &why, buf, sizeof(buf));
}

/* The URL for a message: cut short, and left out when it holds
 * credentials (user:password@). */
static const char *url_for_message(const char *url)
{
	const char *host = strstr(url, "://"), *at, *end;

	host = host ? host + 3 : url;
	at = strchr(host, '@');
	end = strpbrk(host, "/?#");
	return at && (!end || at < end) ? "(a URL with credentials)" : url;
}

int kube_config_for_master(const char *url, struct kube_config **ret, char *err,
			   size_t errlen)
{
	struct kube_config *c = calloc(1, sizeof(*c));
	const char *why;
	char buf[160];
	int r;

	*ret = NULL;
	if (!c)
		return -ENOMEM;
	r = set_server(c, url, &why, buf, sizeof(buf));
	if (r < 0) {
		kube_config_free(c);
		if (r == -EINVAL)
			return kube_config_fail(err, errlen, r, "--master '%.200s': %s",
						url_for_message(url), why);
		return kube_config_fail(err, errlen, r, "--master: %s", strerror(-r));
	}
	*ret = c;
	return 0;
}

int kube_config_in_cluster(const char *sa_dir, struct kube_config **ret, char *err,
			   size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	struct kube_config *c;
	char url[300], buf[160];
	const char *why;
	char *tok = NULL;
	int r;

	*ret = NULL;
	if (!host || !*host)
		return kube_config_fail(err, errlen, -ENOENT, "KUBERNETES_SERVICE_HOST is not set");
	if (!port || !*port)
		port = "443";
	if (strlen(host) > 253 || strlen(port) > 5)
		return kube_config_fail(err, errlen, -EINVAL, "KUBERNETES_SERVICE_HOST/PORT too long");
	/* An IPv6 service address needs brackets in a URL. */
	snprintf(url, sizeof(url), strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
		 port);
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	r = set_server(c, url, &why, buf, sizeof(buf));
	if (r == -EINVAL) {
		kube_config_free(c);
		return kube_config_fail(err, errlen, r,
					"in-cluster server '%.200s' (KUBERNETES_SERVICE_HOST/PORT): %s",
					url, why);
	}
	if (r == 0 && (asprintf(&c->token_file, "%s/token", sa_dir) < 0 ||
		       asprintf(&c->ca_file, "%s/ca.crt", sa_dir) < 0))
		r = -ENOMEM;
	if (r < 0) {
		kube_config_free(c);
		return kube_config_fail(err, errlen, r, "in-cluster configuration: %s", strerror(-r));
	}
	if (access(c->ca_file, R_OK) == -1) {
		r = -errno;
		kube_config_fail(err, errlen, r, "in-cluster CA %s: %s", c->ca_file, strerror(-r));
		kube_config_free(c);
		return r;
	}
	r = kube_config_token(c, &tok);
	free_secret(tok, 0);
	if (r < 0) {
		kube_config_fail(err, errlen, r, "in-cluster token %s: %s", c->token_file,
				 file_error(r));
		kube_config_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

int kube_config_token(struct kube_config *c, char **ret)
{
	struct stat st;
	int64_t mtime_ns;
	char *fresh = NULL;
	int r = 0;

	*ret = NULL;
	if (c->token_file) {
		if (stat(c->token_file, &st) == -1) {
			r = -errno;
		} else {
			mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
			if (!c->file_token || st.st_dev != c->file_dev || st.st_ino != c->file_ino ||
			    st.st_size != c->file_size || mtime_ns != c->file_mtime_ns) {
				r = S_ISREG(st.st_mode) ?
					    read_small_file(c->token_file, true, &fresh, NULL) :
					    -EINVAL;
				if (r == 0) {
					trim(fresh);
					free_secret(c->file_token, 0);
					c->file_token = fresh;
					c->file_dev = st.st_dev;
					c->file_ino = st.st_ino;
					c->file_size = st.st_size;
					c->file_mtime_ns = mtime_ns;
				}
			}
		}
		if (c->file_token && !(*ret = strdup(c->file_token)))
			return -ENOMEM;
		if (!c->file_token && r == 0)
			r = -ENOENT;
		return r;
	}
	if (c->token && !(*ret = strdup(c->token)))
		return -ENOMEM;
	return 0;
}

/* --- kubeconfig ----------------------------------------------------------------- */

/* Find the entry named name in the list key (clusters, users, contexts) and
 * return its inner object (entry[inner]). */
static const json_t *named_entry(const json_t *root, const char *key, const char *inner,
				 const char *name)
{
	const json_t *list = json_object_get(root, key), *e;
	size_t i;

	if (!json_is_array(list))
		return NULL;
	json_array_foreach(list, i, e) {
		const json_t *n = json_object_get(e, "name");

		if (json_is_string(n) && strcmp(json_string_value(n), name) == 0) {
			const json_t *v = json_object_get(e, inner);
			return json_is_object(v) ? v : NULL;
		}
	}
	return NULL;
}

/* A string field: NULL when absent; -EINVAL when present but not a string. */
static int str_field(const json_t *obj, const char *key, const char **ret)
{
	const json_t *v = json_object_get(obj, key);

	*ret = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return -EINVAL;
	*ret = json_string_value(v);
	if (!**ret)
		*ret = NULL;
	return 0;
}

/* A path from the kubeconfig, made absolute against its directory. */
static int resolve_path(const char *dir, const char *p, char **ret)
{
	*ret = NULL;
	if (!p)
		return 0;
	if (p[0] == '/' || !dir)
		*ret = strdup(p);
	else if (asprintf(ret, "%s/%s", dir, p) < 0)
		*ret = NULL;
	return *ret ? 0 : -ENOMEM;
}

static int decode_data(const char *b64, char **ret, size_t *ret_len)
{
	*ret = NULL;
	*ret_len = 0;
	if (!b64)
		return 0;
	return kube_base64_decode(b64, ret, ret_len);
}

static int load_cluster(const json_t *cl, const char *dir, struct kube_config *c, char *err,
			size_t errlen)
{
	const char *server, *ca, *ca_data, *why;
	const json_t *insecure = json_object_get(cl, "insecure-skip-tls-verify");
	char buf[160];
	int r;

	if (str_field(cl, "server", &server) < 0 || str_field(cl, "certificate-authority", &ca) < 0 ||
	    str_field(cl, "certificate-authority-data", &ca_data) < 0)
		return kube_config_fail(err, errlen, -EINVAL, "cluster: a field is not a string");
	if (!server)
		return kube_config_fail(err, errlen, -EINVAL, "cluster has no server");
	r = set_server(c, server, &why, buf, sizeof(buf));
	if (r == -EINVAL)
		return kube_config_fail(err, errlen, r, "cluster server '%.200s': %s",
					url_for_message(server), why);
	if (r < 0)
		return r;
	if (insecure && !json_is_null(insecure)) {
		if (!json_is_boolean(insecure))
			return kube_config_fail(err, errlen, -EINVAL,
						"insecure-skip-tls-verify is not a boolean");
		c->insecure = json_is_true(insecure);
	}
	r = resolve_path(dir, ca, &c->ca_file);
	if (r == 0)
		r = decode_data(ca_data, &c->ca_pem, &c->ca_pem_len);
	if (r == -EINVAL)
		return kube_config_fail(err, errlen, r, "certificate-authority-data is not base64");
	return r;
}

static int load_user(const json_t *u, const char *dir, struct kube_config *c, char *err,
		     size_t errlen)
{
	const char *token, *token_file, *cert, *key, *cert_data, *key_data;
	int r;

	if (json_object_get(u, "exec"))
		return kube_config_fail(err, errlen, -ENOTSUP,
					"user uses an exec credential plugin, which ferry does not support; "
					"use a token, tokenFile or client certificate");
	if (json_object_get(u, "auth-provider"))
		return kube_config_fail(err, errlen, -ENOTSUP,
					"user uses an auth-provider, which ferry does not support; "
					"use a token, tokenFile or client certificate");
	if (str_field(u, "token", &token) < 0 || str_field(u, "tokenFile", &token_file) < 0 ||
	    str_field(u, "client-certificate", &cert) < 0 || str_field(u, "client-key", &key) < 0 ||
	    str_field(u, "client-certificate-data", &cert_data) < 0 ||
	    str_field(u, "client-key-data", &key_data) < 0)
		return kube_config_fail(err, errlen, -EINVAL, "user: a field is not a string");
	if (token && !(c->token = strdup(token)))
		return -ENOMEM;
	r = resolve_path(dir, token_file, &c->token_file);
	if (r == 0)
		r = resolve_path(dir, cert, &c->cert_file);
	if (r == 0)
		r = resolve_path(dir, key, &c->key_file);
	if (r == 0) {
		r = decode_data(cert_data, &c->cert_pem, &c->cert_pem_len);
		if (r == -EINVAL)
			return kube_config_fail(err, errlen, r, "client-certificate-data is not base64");
	}
	if (r == 0) {
		r = decode_data(key_data, &c->key_pem, &c->key_pem_len);
		if (r == -EINVAL)
			return kube_config_fail(err, errlen, r, "client-key-data is not base64");
	}
	if (r < 0)
		return r;
	if ((c->cert_file || c->cert_pem) != (c->key_file || c->key_pem))
		return kube_config_fail(err, errlen, -EINVAL,
					"user has a client certificate without a key, or a key without a certificate");
	return 0;
}

int kube_config_load(const char *path, const char *context, struct kube_config **ret,
		     char *err, size_t errlen)
{
	struct yaml_json_doc *docs = NULL;
	struct yaml_json_error yerr = { 0 };
	struct kube_config *c = NULL;
	const json_t *root, *ctx, *cl, *u;
	const char *cur, *cluster_name, *user_name;
	char *text = NULL, *dir = NULL, *slash;
	size_t len = 0, n_docs = 0;
	int r;

	*ret = NULL;
	r = read_small_file(path, false, &text, &len);
	if (r < 0)
		return kube_config_fail(err, errlen, r, "kubeconfig %s: %s", path,
					r == -EINVAL ? "not a regular file or a pipe" : strerror(-r));
	r = yaml_json_parse(text, len, NULL, &docs, &n_docs, &yerr);
	free_secret(text, len);
	if (r < 0)
		return kube_config_fail(err, errlen, r, "kubeconfig %s: line %u: %s", path, yerr.line,
					yerr.message);
	if (n_docs != 1 || !json_is_object(docs[0].root)) {
		r = kube_config_fail(err, errlen, -EINVAL, "kubeconfig %s: not one YAML mapping", path);
		goto out;
	}
	root = docs[0].root;
	cur = context;
	if (!cur && str_field(root, "current-context", &cur) < 0)
		cur = NULL;
	if (!cur) {
		r = kube_config_fail(err, errlen, -EINVAL, "kubeconfig %s: no current-context (use --context)",
				     path);
		goto out;
	}
	ctx = named_entry(root, "contexts", "context", cur);
	if (!ctx) {
		r = kube_config_fail(err, errlen, -EINVAL, "kubeconfig %s: no context named '%.64s'", path,
				     cur);
		goto out;
	}
	if (str_field(ctx, "cluster", &cluster_name) < 0 || !cluster_name ||
	    str_field(ctx, "user", &user_name) < 0) {
		r = kube_config_fail(err, errlen, -EINVAL, "kubeconfig %s: context '%.64s' names no cluster",
				     path, cur);
		goto out;
	}
	cl = named_entry(root, "clusters", "cluster", cluster_name);
	if (!cl) {
		r = kube_config_fail(err, errlen, -EINVAL, "kubeconfig %s: no cluster named '%.64s'", path,
				     cluster_name);
		goto out;
	}
	u = user_name ? named_entry(root, "users", "user", user_name) : NULL;
	if (user_name && !u) {
		r = kube_config_fail(err, errlen, -EINVAL, "kubeconfig %s: no user named '%.64s'", path,
				     user_name);
		goto out;
	}
	c = calloc(1, sizeof(*c));
	dir = strdup(path);
	if (!c || !dir) {
		r = -ENOMEM;
		goto out;
	}
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	r = load_cluster(cl, dir, c, err, errlen);
	if (r == 0 && u)
		r = load_user(u, dir, c, err, errlen);
	if (r == 0 && c->token_file) {
		char *tok = NULL;

		r = kube_config_token(c, &tok);
		free_secret(tok, 0);
		if (r < 0)
			kube_config_fail(err, errlen, r, "kubeconfig %s: tokenFile %s: %s", path,
					 c->token_file, file_error(r));
	}
	if (r == -ENOMEM)
		kube_config_fail(err, errlen, r, "kubeconfig %s: out of memory", path);
	if (r == 0) {
		*ret = c;
		c = NULL;
	}
out:
	kube_config_free(c);
	free(dir);
	yaml_json_docs_free(docs, n_docs);
	return r;
}
