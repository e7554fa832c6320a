/* Opening the source named by --source: `dir:PATH` (a manifest directory)
 * or `kube` (the Kubernetes API). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kube_source.h"
#include "log.h"
#include "manifest_dir.h"

struct cli_source {
	char *path;
	struct model *model;
	struct manifest_dir *dir;
	struct kube_source *kube;
	cli_source_fn on_synced, on_changed;
	cli_source_failure_fn on_failure;
	void *userdata;
};

/* Standalone manifests may use loopback addresses, so one host can run a
 * whole example. */
static const struct kdecode_opts cli_dir_decode_opts = { .allow_loopback = true };

static int cli_source_open_dir(struct cli_source *src, size_t *ret_rejected)
{
	int r;

	src->dir = manifest_dir_new(src->path, src->model, &cli_dir_decode_opts);
	if (!src->dir)
		return log_errno(-errno, "source dir:%s cannot be watched", src->path);
	r = manifest_dir_load(src->dir, ret_rejected);
	if (r < 0)
		return log_errno(r, "source dir:%s could not be loaded", src->path);
	log_info("source dir:%s loaded: %zu services, %zu endpoint slices", src->path,
		 model_n_services(src->model), model_n_slices(src->model));
	return 0;
}

static void cli_kube_synced(void *userdata)
{
	struct cli_source *src = userdata;

	if (src->on_synced)
		src->on_synced(src->userdata);
}

static void cli_kube_changed(void *userdata)
{
	struct cli_source *src = userdata;

	if (src->on_changed)
		src->on_changed(src->userdata);
}

static void cli_kube_failed(void *userdata, const char *why)
{
	struct cli_source *src = userdata;

	if (src->on_failure)
		src->on_failure(src->userdata, why);
}

static int cli_source_open_kube(struct cli_source *src, const struct cli_options *o,
				struct loop *loop)
{
	struct kube_source_config kc = {
		.kubeconfig = o->kubeconfig,
		.master = o->master,
		.context = o->context,
		.node_name = o->hostname,
		.service_proxy_name = o->service_proxy_name,
	};
	int r;

	r = kube_source_new(loop, src->model, &kc, cli_kube_synced, cli_kube_changed, src,
			    &src->kube);
	if (r < 0)
		return r;
	kube_source_set_failure_fn(src->kube, cli_kube_failed);
	return kube_source_start(src->kube);
}

void cli_source_default(struct cli_options *o)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");

	if (!o->source && ((host && *host) || o->kubeconfig || o->master))
		o->source = "kube";
}

int cli_source_open(const struct cli_options *o, struct loop *loop, struct model *m,
		    struct cli_source **ret, size_t *ret_rejected)
{
	const char *spec = o->source;
	bool kube = spec && strcmp(spec, "kube") == 0;
	struct cli_source *src;
	int r;

	*ret = NULL;
	*ret_rejected = 0;
	if (!spec || (!kube && (strncmp(spec, "dir:", 4) != 0 || !spec[4]))) {
		log_error("--source %s: unknown source; use dir:PATH or kube", spec ? spec : "(none)");
		return -EINVAL;
	}
	src = calloc(1, sizeof(*src));
	if (!src || (!kube && !(src->path = strdup(spec + 4)))) {
		free(src);
		return log_errno(-ENOMEM, "source %s", spec);
	}
	src->model = m;
	r = kube ? cli_source_open_kube(src, o, loop) : cli_source_open_dir(src, ret_rejected);
	if (r < 0) {
		cli_source_free(src);
		return r;
	}
	*ret = src;
	return 0;
}

void cli_source_set_callbacks(struct cli_source *src, cli_source_fn on_synced,
			      cli_source_fn on_changed, void *userdata)
{
	src->on_synced = on_synced;
	src->on_changed = on_changed;
	src->userdata = userdata;
}

void cli_source_set_failure_callback(struct cli_source *src, cli_source_failure_fn fn)
{
	src->on_failure = fn;
}

bool cli_source_synced(const struct cli_source *src)
{
	return src->kube ? kube_source_synced(src->kube) : true;
}

size_t cli_source_rejected(const struct cli_source *src)
{
	return src->kube ? kube_source_rejected(src->kube) : 0;
}

int cli_source_fd(struct cli_source *src)
{
	return src->dir ? manifest_dir_fd(src->dir) : -1;
}

int cli_source_process(struct cli_source *src, bool *ret_changed)
{
	*ret_changed = false;
	if (!src->dir)
		return 0;
	return manifest_dir_process_events(src->dir, ret_changed);
}

int cli_source_reload(struct cli_source *src, size_t *ret_rejected)
{
	*ret_rejected = 0;
	if (src->kube) {
		/* A relist delivers only the difference: no need to clear. */
		kube_source_relist(src->kube);
		return 0;
	}
	/* Read every file again, keeping what the model holds: a file that
	 * cannot be read or parsed now, or an object whose new version is
	 * invalid, keeps its last valid objects (a reload never costs a working
	 * service). The dataplane only sees the net difference. */
	int r = manifest_dir_reload(src->dir, ret_rejected);

	if (r < 0)
		return log_errno(r, "source dir:%s could not be reloaded", src->path);
	log_info("source dir:%s loaded again: %zu services, %zu endpoint slices", src->path,
		 model_n_services(src->model), model_n_slices(src->model));
	return 0;
}

struct cli_source *cli_source_free(struct cli_source *src)
{
	if (!src)
		return NULL;
	manifest_dir_free(src->dir);
	kube_source_free(src->kube);
	free(src->path);
	free(src);
	return NULL;
}

bool cli_source_api_stats(const struct cli_source *src, struct kube_informer_stats *ret)
{
	if (!src->kube)
		return false;
	kube_source_stats(src->kube, ret);
	return true;
}
