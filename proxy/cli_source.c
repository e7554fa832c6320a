/* Opening the source named by --source. Only `dir:PATH` exists today; the
 * Kubernetes API source will join it here. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "manifest_dir.h"

struct cli_source {
	char *path;
	struct model *model;
	struct manifest_dir *dir;
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

int cli_source_open(const char *spec, struct model *m, struct cli_source **ret,
		    size_t *ret_rejected)
{
	struct cli_source *src;
	int r;

	*ret = NULL;
	if (strncmp(spec, "dir:", 4) != 0 || !spec[4]) {
		log_error("--source %s: unknown source; use dir:PATH", spec);
		return -EINVAL;
	}
	src = calloc(1, sizeof(*src));
	if (!src || !(src->path = strdup(spec + 4))) {
		free(src);
		return log_errno(-ENOMEM, "source %s", spec);
	}
	src->model = m;
	r = cli_source_open_dir(src, ret_rejected);
	if (r < 0) {
		cli_source_free(src);
		return r;
	}
	*ret = src;
	return 0;
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
	/* Start over: a fresh watch and a full read. The model is rebuilt before
	 * the next sync runs, so the dataplane only sees the net difference. */
	src->dir = manifest_dir_free(src->dir);
	model_clear(src->model);
	return cli_source_open_dir(src, ret_rejected);
}

struct cli_source *cli_source_free(struct cli_source *src)
{
	if (!src)
		return NULL;
	manifest_dir_free(src->dir);
	free(src->path);
	free(src);
	return NULL;
}
