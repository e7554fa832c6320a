/* Fuzz target: the kubeconfig loader (informer/kube_config.c), no network.
 *
 * The input is a kubeconfig file: it is written to a private temporary
 * directory and loaded with kube_config_load (current context), as
 * `ferry run --source kube --kubeconfig FILE` does. The directory also
 * holds a token file, "token", so that a relative tokenFile can be read;
 * inputs naming any other token file (absolute paths, "..") are skipped,
 * since reading a device or a FIFO would only test the host.
 *
 * Checked: the documented result codes; on success an http(s) server URL
 * without a trailing slash, a client certificate only with its key, the
 * token file's token; error messages terminated and free of secrets: the
 * document is loaded a second time with every token and client key
 * replaced by a marker, which must then never appear in a message. The raw
 * input also goes through kube_base64_decode (decode, encode, decode
 * again: same bytes) and kube_config_for_master. Seeds: corpus/kubeconfig/,
 * dictionary kubeconfig.dict. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "fuzz_check.h"
#include "kube_config.h"
#include "yaml_json.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "FUZZ-SECRET-d1c3b2a9"
#define TOKEN "fuzz-token-5e7f"

static char dir[512];
static char config_path[600];
static char token_path[600];

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	FUZZ_CHECK(fd != -1);
	FUZZ_CHECK(len == 0 || write(fd, data, len) == (ssize_t)len);
	close(fd);
}

static void remove_dir(void)
{
	unlink(config_path);
	unlink(token_path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");

	(void)argc;
	(void)argv;
	snprintf(dir, sizeof(dir), "%.400s/ferry-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	FUZZ_CHECK(mkdtemp(dir) != NULL);
	snprintf(config_path, sizeof(config_path), "%s/kubeconfig", dir);
	snprintf(token_path, sizeof(token_path), "%s/token", dir);
	write_file(token_path, " " TOKEN "\n", strlen(TOKEN) + 2);
	atexit(remove_dir);
	return 0;
}

/* Whether text (len bytes) holds needle. A plain loop: libFuzzer watches
 * strstr and memmem and would learn the marker from them. */
static bool contains(const char *text, size_t len, const char *needle)
{
	size_t n = strlen(needle);

	for (size_t i = 0; i + n <= len; i++) {
		size_t k = 0;

		while (k < n && text[i + k] == needle[k])
			k++;
		if (k == n)
			return true;
	}
	return false;
}

/* The token file names of users[].user.tokenFile: only names of files in
 * the temporary directory other than the kubeconfig itself are let through
 * (false: skip the input). */
static bool token_files_safe(const json_t *root)
{
	const json_t *users = json_object_get(root, "users"), *u;
	size_t i;

	json_array_foreach(users, i, u) {
		const json_t *tf = json_object_get(json_object_get(u, "user"), "tokenFile");
		const char *s = json_string_value(tf);

		if (s && (strchr(s, '/') || contains(s, strlen(s), "..") ||
			  contains(s, strlen(s), "kubeconfig")))
			return false;
	}
	return true;
}

static void check_loaded(const struct kube_config *c, const char *err, size_t errlen)
{
	size_t n;

	FUZZ_CHECK(memchr(err, '\0', errlen) != NULL);
	FUZZ_CHECK(c->server);
	FUZZ_CHECK(strncmp(c->server, "http://", 7) == 0 || strncmp(c->server, "https://", 8) == 0);
	n = strlen(c->server);
	FUZZ_CHECK(n <= 8 || c->server[n - 1] != '/');
	FUZZ_CHECK((c->cert_file || c->cert_pem) == (c->key_file || c->key_pem));
	FUZZ_CHECK(!c->ca_pem || c->ca_pem[c->ca_pem_len] == '\0');
	FUZZ_CHECK(!c->token_file || c->token_file[0] == '/');
	if (c->token_file)
		FUZZ_CHECK(c->file_token && strcmp(c->file_token, TOKEN) == 0);
}

/* Load the file at config_path. secret: the input's secrets were replaced
 * by SECRET, which no message may show. */
static void load(bool secret)
{
	struct kube_config *c = (void *)1;
	char err[256];
	int r;

	memset(err, 0, sizeof(err));
	r = kube_config_load(config_path, NULL, &c, err, sizeof(err));
	FUZZ_CHECK(r == 0 || r == -ENOENT || r == -EINVAL || r == -ENOTSUP || r == -ENOMEM ||
		   r == -EISDIR || r == -EACCES || r == -EFBIG);
	FUZZ_CHECK((r == 0) == (c != NULL));
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (r < 0)
		FUZZ_CHECK(err[0] != '\0');
	if (secret)
		FUZZ_CHECK(!contains(err, strlen(err), SECRET));
	if (c) {
		char *tok = NULL;

		check_loaded(c, err, sizeof(err));
		FUZZ_CHECK(kube_config_token(c, &tok) == 0);
		FUZZ_CHECK(!c->token_file || (tok && strcmp(tok, TOKEN) == 0));
		if (secret && c->token && !c->token_file)
			FUZZ_CHECK(strcmp(c->token, SECRET) == 0 && tok && strcmp(tok, SECRET) == 0);
		free(tok);
		FUZZ_CHECK(kube_config_set_server(c, "https://fuzz.example:6443///") == 0);
		FUZZ_CHECK(strcmp(c->server, "https://fuzz.example:6443") == 0);
	}
	FUZZ_CHECK(kube_config_free(c) == NULL);
}

/* Every users[].user secret replaced by SECRET (tokens as they are, client
 * keys base64-encoded). Returns the new text or NULL. */
static char *with_marked_secrets(json_t *root)
{
	const json_t *users = json_object_get(root, "users"), *u;
	bool any = false;
	size_t i;

	json_array_foreach(users, i, u) {
		json_t *user = json_object_get(u, "user");

		if (!json_is_object(user))
			continue;
		if (json_object_get(user, "token")) {
			json_object_set_new(user, "token", json_string(SECRET));
			any = true;
		}
		if (json_object_get(user, "client-key-data")) {
			/* base64 of SECRET */
			json_object_set_new(user, "client-key-data", json_string("RlVaWi1TRUNSRVQtZDFjM2IyYTk="));
			any = true;
		}
	}
	return any ? json_dumps(root, JSON_COMPACT) : NULL;
}

static void base64_roundtrip(const uint8_t *data, size_t size)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *in = strndup((const char *)data, size), *out = NULL, *again = NULL, *enc;
	size_t len = 0, len2 = 0, k = 0;

	if (!in)
		return;
	if (kube_base64_decode(in, &out, &len) == 0) {
		FUZZ_CHECK(out && out[len] == '\0');
		FUZZ_CHECK(len <= strlen(in) / 4 * 3 + 2);
		enc = malloc(len / 3 * 4 + 5);
		FUZZ_CHECK(enc);
		for (size_t i = 0; i < len; i += 3) {
			uint32_t v = (uint32_t)(uint8_t)out[i] << 16;

			if (i + 1 < len)
				v |= (uint32_t)(uint8_t)out[i + 1] << 8;
			if (i + 2 < len)
				v |= (uint8_t)out[i + 2];
			enc[k++] = abc[v >> 18 & 63];
			enc[k++] = abc[v >> 12 & 63];
			enc[k++] = i + 1 < len ? abc[v >> 6 & 63] : '=';
			enc[k++] = i + 2 < len ? abc[v & 63] : '=';
		}
		enc[k] = '\0';
		FUZZ_CHECK(kube_base64_decode(enc, &again, &len2) == 0);
		FUZZ_CHECK(len2 == len && memcmp(again, out, len) == 0);
		free(enc);
	}
	free(again);
	free(out);
	free(in);
}

static void master_url(const uint8_t *data, size_t size)
{
	char *url = strndup((const char *)data, size > 300 ? 300 : size);
	struct kube_config *c = NULL;
	char err[128];
	int r;

	if (!url)
		return;
	r = kube_config_for_master(url, &c, err, sizeof(err));
	FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
	FUZZ_CHECK((r == 0) == (c != NULL));
	if (c) {
		FUZZ_CHECK(c->server && !c->token && !c->token_file);
		FUZZ_CHECK(strlen(c->server) <= 8 || c->server[strlen(c->server) - 1] != '/');
	}
	kube_config_free(c);
	free(url);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct yaml_json_doc *docs = NULL;
	size_t n = 0;
	char *marked = NULL;

	base64_roundtrip(data, size);
	master_url(data, size);

	/* Only inputs whose token files stay in the temporary directory. */
	if (yaml_json_parse((const char *)data, size, NULL, &docs, &n, NULL) == 0 && n == 1 &&
	    !token_files_safe(docs[0].root)) {
		yaml_json_docs_free(docs, n);
		return 0;
	}
	write_file(config_path, data, size);
	load(false);
	if (n == 1 && json_is_object(docs[0].root) && !contains((const char *)data, size, "SECRET"))
		marked = with_marked_secrets(docs[0].root);
	yaml_json_docs_free(docs, n);
	if (marked) {
		write_file(config_path, marked, strlen(marked));
		load(true);
		free(marked);
	}
	return 0;
}
