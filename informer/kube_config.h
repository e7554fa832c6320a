/* Where the Kubernetes API is and how to authenticate to it.
 *
 * Three ways to get one: in-cluster (the KUBERNETES_SERVICE_HOST/PORT
 * environment and the service account's token and CA files), a kubeconfig
 * file (current context or a named one), or a bare --master URL. The result
 * is plain data plus a token cache: a token read from a file (in-cluster, or
 * a kubeconfig `tokenFile`) is re-read whenever the file changes, because
 * bound service account tokens rotate.
 *
 * Files are opened without blocking and token files must be regular files:
 * a FIFO would otherwise stall ferry before any timeout runs. (A kubeconfig
 * may also be a pipe, as with --kubeconfig <(...).)
 *
 * Mechanism code: nothing here logs. Errors come back as -errno plus a
 * message in a caller buffer; no message ever contains a token or a key
 * (nor a server URL with credentials in it).
 */
#ifndef FERRY_KUBE_CONFIG_H
#define FERRY_KUBE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Service account files of a pod. */
#define KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
/* Largest kubeconfig, token or PEM file read. */
#define KUBE_CONFIG_MAX_FILE (1u << 20)

struct kube_config {
	char *server;          /* "https://host:port", no trailing slash */
	char *ca_file;         /* PEM file of the CAs to trust, or NULL */
	char *ca_pem;          /* certificate-authority-data, decoded, or NULL */
	size_t ca_pem_len;
	bool insecure;         /* insecure-skip-tls-verify: true */
	char *token;           /* static bearer token, or NULL */
	char *token_file;      /* bearer token file (re-read on change), or NULL */
	char *cert_file, *key_file;  /* client certificate and key files, or NULL */
	char *cert_pem, *key_pem;    /* ...-data, decoded, or NULL */
	size_t cert_pem_len, key_pem_len;

	/* Cache of token_file's contents and the identity of what was read. */
	char *file_token;
	dev_t file_dev;
	ino_t file_ino;
	off_t file_size;
	int64_t file_mtime_ns;
};

/* Build the in-cluster configuration from $KUBERNETES_SERVICE_HOST and
 * $KUBERNETES_SERVICE_PORT (default 443) and the files "token" and
 * "ca.crt" under sa_dir (normally KUBE_SA_DIR; tests pass another). The
 * token file must be readable now. Returns 0 and *ret (free with
 * kube_config_free), or -ENOENT (not in a cluster or files missing),
 * -EACCES, -ENOMEM, with err (errlen bytes) saying what. */
int kube_config_in_cluster(const char *sa_dir, struct kube_config **ret, char *err,
			   size_t errlen);

/* Load a kubeconfig file: the context named context (or current-context
 * when NULL), its cluster and user. Relative file paths in it are taken
 * from the kubeconfig's directory. An `exec` or `auth-provider` user is
 * refused with -ENOTSUP and a message saying it is not supported. Returns
 * 0 and *ret, or -ENOENT, -EINVAL (bad YAML, missing entries, a malformed
 * server URL, a tokenFile that is not a regular file), -ENOTSUP, -ENOMEM,
 * with err filled. */
int kube_config_load(const char *path, const char *context, struct kube_config **ret,
		     char *err, size_t errlen);

/* A configuration with only a server URL (--master without kubeconfig):
 * no token, system CAs. Returns 0 and *ret, -EINVAL with err saying why
 * for a URL that cannot be the API server's (see kube_config_set_server),
 * or -ENOMEM. */
int kube_config_for_master(const char *url, struct kube_config **ret, char *err,
			   size_t errlen);

/* Replace the server URL (--master given with a kubeconfig). The URL must
 * be http:// or https://, parse as libcurl parses it (a host, a port in
 * range, no spaces or control characters), and carry no credentials, query
 * or fragment: anything else is refused now, once, rather than retried
 * forever as if temporary. Every way of getting a configuration checks
 * its server so. Returns 0, -EINVAL or -ENOMEM. */
int kube_config_set_server(struct kube_config *c, const char *url);

/* The bearer token to send now: a fresh copy in *ret (NULL when the config
 * has none), which the caller frees. A token file is stat'ed on every call
 * and re-read when its inode, size or mtime changed; if it cannot be read
 * the last good token is kept and -errno returned with *ret still set to
 * that token. Surrounding whitespace is stripped. A token file that is not
 * a regular file is -EINVAL, without blocking. Returns 0 or -errno. */
int kube_config_token(struct kube_config *c, char **ret);

/* Free c and wipe the secrets it holds. Accepts NULL; returns NULL. */
struct kube_config *kube_config_free(struct kube_config *c);

/* Decode standard base64 (padding optional, whitespace ignored) into a new
 * NUL-terminated buffer. Returns 0 with *ret and *ret_len, -EINVAL or
 * -ENOMEM. Exposed for tests. */
int kube_base64_decode(const char *in, char **ret, size_t *ret_len);

#endif
