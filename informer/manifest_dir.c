/* Manifest directory source: files to model objects, kept current by inotify.
 *
 * Bookkeeping: every file we track has a struct mfile, kept in load order
 * (the order decides who wins a duplicate). Every model object we put in the
 * model has a struct owned entry, found by (ns, name) in one map per kind,
 * which points at the file that provided it. Re-reading a file stamps each
 * object it still defines with a new pass number; entries of that file left
 * with an old stamp are the objects it dropped, and are deleted from the
 * model. A file that lost a duplicate remembers the keys it lost; when the
 * winner releases one, the loser is re-read so its definition takes over.
 *
 * inotify events only say which names to look at again: what to do is always
 * decided from the file as it is now (present, regular, same content hash or
 * not), which makes event order and coalescing harmless.
 *
 * Bad input never takes away what works. A file is read twice, both times as
 * a stream: once to hash it (unchanged contents stop there), once to parse
 * it, the parse handing over each document and each item of a List as soon
 * as it ends, so memory follows the decoded objects, never the file size.
 * Decoded objects wait in a pending list and reach the model only once the
 * whole file parsed: a file that cannot be read or parsed, or whose work
 * bound is exceeded, changes nothing. An object that fails to decode but
 * whose previous version came from this file keeps that version (it is
 * stamped "kept" for this pass, so the release step spares it). A document
 * or item rejected without a name (no kind, not a mapping: a dump cut short
 * before its "kind: List" is one) could be hiding any object, so then the
 * release step spares every object of the file.
 */
#include "manifest_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "intern.h"
#include "kobj.h"
#include "log.h"
#include "nsname_map.h"
#include "yaml_json.h"

enum obj_kind {
	OBJ_SERVICE = 0,
	OBJ_SLICE = 1,
	OBJ_KINDS,
};

static const char *const kind_names[OBJ_KINDS] = { "Service", "EndpointSlice" };

struct mfile;

/* One model object provided by a file: one allocation each, the name
 * inside (100k services own 200k of them, 48-byte chunks for short names). */
struct owned {
	const char *ns;  /* shared copy (intern.h) */
	struct mfile *file;
	uint32_t pass;   /* last pass of its file that defined it */
	uint32_t kept_pass; /* last pass whose version of it was invalid: kept */
	uint8_t kind;    /* enum obj_kind */
	char name[];
};

/* A (kind, ns, name) a file defines but another file owns. */
struct lost_key {
	enum obj_kind kind;
	char *ns;
	char *name;
};

struct mfile {
	char *name;              /* base name */
	char *path;              /* directory path + name, for logs and ->source */
	struct owned **objs;
	size_t n_objs, cap_objs;
	struct lost_key *lost;
	size_t n_lost;
	uint64_t hash;           /* of the contents last read */
	bool hashed;
	bool parse_failed;       /* the last read failed; older objects kept */
	bool recheck;            /* re-read even if the contents did not change */
	size_t n_rejected;       /* objects rejected at the last successful read */
};

struct manifest_dir {
	char *path;
	char *base;              /* last component, to spot recreation in the parent */
	struct model *model;
	struct kdecode_opts opts;
	int ifd;
	int wd;                  /* the directory's watch; -1 while it is gone */
	int parent_wd;           /* the parent's watch; -1 when none */
	struct mfile **files;    /* load order */
	size_t n_files, cap_files;
	struct nsname_map owners[OBJ_KINDS]; /* (ns, name) -> struct owned */
	uint32_t pass;           /* never 0, the stamp of no pass (pass_next) */
};

/* A decoded object on its way into the model. */
struct pending {
	enum obj_kind kind;
	void *obj;               /* struct kobj_service or struct kobj_slice */
	unsigned line;
};

struct pending_list {
	struct pending *v;
	size_t n, cap;
};

/* Endpoints objects whose slices ("NAME:SUBSET:FAMILY") a file provided,
 * found when one of them turns out invalid. */
struct ep_prev {
	char *ns;
	char *name;
	bool keep;               /* its new version was invalid: keep the slices */
};

/* One parse of one file: what it decoded so far and the bounds it runs
 * under. Nothing here touches the model until file_apply. */
struct exam {
	struct manifest_dir *d;
	struct mfile *f;
	uint32_t pass;
	struct pending_list pl;
	size_t rejected;         /* objects rejected (kept or not) */
	size_t kept;             /* ... of which the previous version stays */
	bool hides;              /* something was rejected without a name: it may
				  * hide any object the file had */
	size_t work;             /* kdecode_cost of what was decoded */
	size_t max_work;
	/* Items taken from the current document before its kind was known:
	 * undone if it turns out not to be a list (a previous version such an
	 * item marked as kept stays kept: harmless, and the file is odd). */
	bool in_list;
	size_t list_mark_pl, list_mark_rejected, list_mark_kept;
	struct nsname_map ep_prev; /* (ns, Endpoints name) -> struct ep_prev */
	bool ep_prev_built;
};

#define DIR_WATCH_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | \
			IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
#define PARENT_WATCH_MASK (IN_CREATE | IN_MOVED_TO | IN_ONLYDIR)

/* --- Small helpers ------------------------------------------------------------ */

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n > k && strcmp(s + n - k, suffix) == 0;
}

/* Names we read: *.yaml, *.yml, *.json, not hidden, not editor backups. */
static bool name_eligible(const char *name)
{
	if (name[0] == '.' || has_suffix(name, "~"))
		return false;
	return has_suffix(name, ".yaml") || has_suffix(name, ".yml") || has_suffix(name, ".json");
}

#define HASH_INIT 0xcbf29ce484222325ULL /* FNV-1a */

static uint64_t hash_update(uint64_t h, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static const char *obj_ns(enum obj_kind kind, const void *obj)
{
	return kind == OBJ_SERVICE ? ((const struct kobj_service *)obj)->ns
				   : ((const struct kobj_slice *)obj)->ns;
}

static const char *obj_name(enum obj_kind kind, const void *obj)
{
	return kind == OBJ_SERVICE ? ((const struct kobj_service *)obj)->name
				   : ((const struct kobj_slice *)obj)->name;
}

static void obj_free(enum obj_kind kind, void *obj)
{
	if (kind == OBJ_SERVICE)
		kobj_service_free(obj);
	else
		kobj_slice_free(obj);
}

static void pending_clear(struct pending_list *pl)
{
	for (size_t i = 0; i < pl->n; i++)
		obj_free(pl->v[i].kind, pl->v[i].obj);
	free(pl->v);
	memset(pl, 0, sizeof(*pl));
}

/* Takes obj in every case. */
static int pending_push(struct pending_list *pl, enum obj_kind kind, void *obj, unsigned line)
{
	if (pl->n == pl->cap) {
		size_t ncap = pl->cap ? pl->cap * 2 : 16;
		struct pending *v = realloc(pl->v, ncap * sizeof(*v));

		if (!v) {
			obj_free(kind, obj);
			return -ENOMEM;
		}
		pl->v = v;
		pl->cap = ncap;
	}
	pl->v[pl->n++] = (struct pending){ .kind = kind, .obj = obj, .line = line };
	return 0;
}

/* --- Files and ownership ------------------------------------------------------- */

static void lost_clear(struct mfile *f)
{
	for (size_t i = 0; i < f->n_lost; i++) {
		free(f->lost[i].ns);
		free(f->lost[i].name);
	}
	free(f->lost);
	f->lost = NULL;
	f->n_lost = 0;
}

static void lost_add(struct mfile *f, enum obj_kind kind, const char *ns, const char *name)
{
	struct lost_key *v = realloc(f->lost, (f->n_lost + 1) * sizeof(*v));
	char *n1, *n2;

	/* Best effort: without the note the loser is simply not re-read when
	 * the winner goes, which the next change to it repairs. */
	if (!v)
		return;
	f->lost = v;
	n1 = strdup(ns);
	n2 = strdup(name);
	if (!n1 || !n2) {
		free(n1);
		free(n2);
		return;
	}
	f->lost[f->n_lost++] = (struct lost_key){ .kind = kind, .ns = n1, .name = n2 };
}

static struct mfile *file_find(struct manifest_dir *d, const char *name, size_t *ret_index)
{
	for (size_t i = 0; i < d->n_files; i++) {
		if (strcmp(d->files[i]->name, name) == 0) {
			if (ret_index)
				*ret_index = i;
			return d->files[i];
		}
	}
	return NULL;
}

static struct mfile *file_add(struct manifest_dir *d, const char *name)
{
	struct mfile *f;

	if (d->n_files == d->cap_files) {
		size_t ncap = d->cap_files ? d->cap_files * 2 : 8;
		struct mfile **v = realloc(d->files, ncap * sizeof(*v));

		if (!v)
			return NULL;
		d->files = v;
		d->cap_files = ncap;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->name = strdup(name);
	if (f->name && asprintf(&f->path, "%s/%s", d->path, name) < 0)
		f->path = NULL;
	if (!f->name || !f->path) {
		free(f->name);
		free(f);
		return NULL;
	}
	d->files[d->n_files++] = f;
	return f;
}

/* Wake files that lost (kind, ns, name) to another file: it is free now. */
static void wake_losers(struct manifest_dir *d, enum obj_kind kind, const char *ns,
			const char *name)
{
	for (size_t i = 0; i < d->n_files; i++) {
		struct mfile *f = d->files[i];

		for (size_t j = 0; j < f->n_lost; j++) {
			if (f->lost[j].kind == kind && strcmp(f->lost[j].ns, ns) == 0 &&
			    strcmp(f->lost[j].name, name) == 0) {
				f->recheck = true;
				break;
			}
		}
	}
}

/* Delete an owned object from the model and forget it. */
static void owned_release(struct manifest_dir *d, struct owned *o)
{
	nsname_map_remove(&d->owners[o->kind], o->ns, o->name);
	if (o->kind == OBJ_SERVICE)
		model_delete_service(d->model, o->ns, o->name);
	else
		model_delete_slice(d->model, o->ns, o->name);
	log_debug("manifest %s: %s %s/%s removed", o->file->path, kind_names[o->kind], o->ns,
		  o->name);
	wake_losers(d, o->kind, o->ns, o->name);
	intern_release(o->ns);
	free(o);
}

/* Forget a file and delete all its objects. */
static void file_remove(struct manifest_dir *d, size_t index)
{
	struct mfile *f = d->files[index];

	if (f->n_objs > 0)
		log_info("manifest %s: file gone, removing its %zu objects", f->path, f->n_objs);
	/* Out of the list first, so wake_losers does not flag the file itself. */
	memmove(&d->files[index], &d->files[index + 1], (d->n_files - index - 1) * sizeof(*d->files));
	d->n_files--;
	for (size_t i = 0; i < f->n_objs; i++)
		owned_release(d, f->objs[i]);
	free(f->objs);
	lost_clear(f);
	free(f->name);
	free(f->path);
	free(f);
}

/* The number of a new pass. Stamps are only ever compared for equality
 * with the pass at hand, so before the 32-bit counter wraps every stamp is
 * cleared (0 is no pass's): an old stamp can never match a new pass. */
static uint32_t pass_next(struct manifest_dir *d)
{
	if (d->pass == UINT32_MAX) {
		for (size_t i = 0; i < d->n_files; i++)
			for (size_t j = 0; j < d->files[i]->n_objs; j++)
				d->files[i]->objs[j]->pass = d->files[i]->objs[j]->kept_pass = 0;
		d->pass = 0;
	}
	return ++d->pass;
}

static int file_own(struct manifest_dir *d, struct mfile *f, enum obj_kind kind, const char *ns,
		    const char *name, struct owned **ret)
{
	struct owned *o;
	int r;

	if (f->n_objs == f->cap_objs) {
		size_t ncap = f->cap_objs ? f->cap_objs * 2 : 8;
		struct owned **v = realloc(f->objs, ncap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		f->objs = v;
		f->cap_objs = ncap;
	}
	o = calloc(1, offsetof(struct owned, name) + strlen(name) + 1);
	if (!o)
		return -ENOMEM;
	o->kind = (uint8_t)kind;
	o->file = f;
	strcpy(o->name, name);
	o->ns = intern(ns);
	if (!o->ns) {
		r = -ENOMEM;
		goto fail;
	}
	r = nsname_map_put(&d->owners[kind], o, NULL);
	if (r < 0)
		goto fail;
	f->objs[f->n_objs++] = o;
	*ret = o;
	return 0;
fail:
	intern_release(o->ns);
	free(o);
	return r;
}

/* --- Decoding a file's documents --------------------------------------------------- */

static void ep_prev_free(struct exam *ex)
{
	size_t iter = 0;
	struct ep_prev *e;

	while ((e = nsname_map_next(&ex->ep_prev, &iter))) {
		free(e->ns);
		free(e->name);
		free(e);
	}
	nsname_map_done(&ex->ep_prev);
	ex->ep_prev_built = false;
}

/* The Endpoints entry that slice o came from, if ep_prev has it. */
static struct ep_prev *ep_prev_of(const struct exam *ex, const struct owned *o)
{
	char name[KDECODE_MAX_STRING + 1];
	const char *colon;

	if (o->kind != OBJ_SLICE || !(colon = strchr(o->name, ':')) ||
	    (size_t)(colon - o->name) >= sizeof(name))
		return NULL;
	memcpy(name, o->name, (size_t)(colon - o->name));
	name[colon - o->name] = '\0';
	return nsname_map_get(&ex->ep_prev, o->ns, name);
}

/* Index the Endpoints objects whose slices the file provided. Best effort:
 * without memory an invalid Endpoints simply loses its slices. */
static void ep_prev_build(struct exam *ex)
{
	struct mfile *f = ex->f;

	ex->ep_prev_built = true;
	for (size_t i = 0; i < f->n_objs; i++) {
		const struct owned *o = f->objs[i];
		const char *colon = o->kind == OBJ_SLICE ? strchr(o->name, ':') : NULL;
		struct ep_prev *e;

		if (!colon || ep_prev_of(ex, o))
			continue;
		e = calloc(1, sizeof(*e));
		if (!e)
			return;
		e->ns = strdup(o->ns);
		e->name = strndup(o->name, (size_t)(colon - o->name));
		if (!e->ns || !e->name || nsname_map_put(&ex->ep_prev, e, NULL) < 0) {
			free(e->ns);
			free(e->name);
			free(e);
			return;
		}
	}
}

/* An object of this kind, ns and name failed to decode: if this file
 * provided its previous version, keep that one. Returns whether it did. */
static bool keep_previous(struct exam *ex, enum kdecode_kind kind, const char *ns,
			  const char *name)
{
	struct owned *o = NULL;
	struct ep_prev *e;

	switch (kind) {
	case KDECODE_KIND_SERVICE:
		o = nsname_map_get(&ex->d->owners[OBJ_SERVICE], ns, name);
		break;
	case KDECODE_KIND_SLICE:
		o = nsname_map_get(&ex->d->owners[OBJ_SLICE], ns, name);
		break;
	case KDECODE_KIND_ENDPOINTS:
		if (!ex->ep_prev_built)
			ep_prev_build(ex);
		e = nsname_map_get(&ex->ep_prev, ns, name);
		if (e)
			e->keep = true;
		return e != NULL;
	default:
		return false;
	}
	if (!o || o->file != ex->f)
		return false;
	o->kept_pass = ex->pass;
	return true;
}

/* Log a rejected object, keeping its previous version when there is one. */
static void reject_object(struct exam *ex, enum kdecode_kind kind, unsigned line,
			  const struct kdecode_error *err)
{
	bool keep = err->name[0] && keep_previous(ex, kind, err->ns, err->name);

	log_error("manifest %s:%u: %s: %s%s%s; %s", ex->f->path, line, err->object, err->field,
		  err->field[0] ? ": " : "", err->message,
		  keep ? "keeping the previous version" : "object skipped");
	ex->rejected++;
	if (keep)
		ex->kept++;
}

/* Decode one document or list item into ex->pl. Returns 0, -ENOMEM, or
 * -E2BIG when the file's work bound is exceeded. */
static int decode_value(struct exam *ex, const json_t *v, const json_t *list, unsigned line)
{
	struct manifest_dir *d = ex->d;
	struct mfile *f = ex->f;
	struct kdecode_error err;
	enum kdecode_kind kind = kdecode_classify(v, list);
	size_t cost;
	int r = 0;

	switch (kind) {
	case KDECODE_KIND_INVALID:
		log_error("manifest %s:%u: %s; skipped", f->path, line,
			  json_is_object(v) ? "object has no kind" : "document is not a mapping");
		ex->rejected++;
		ex->hides = true;
		return 0;
	case KDECODE_KIND_OTHER: {
		const char *api = json_string_value(json_object_get(v, "apiVersion"));
		const char *k = json_string_value(json_object_get(v, "kind"));

		log_debug("manifest %s:%u: ignoring %s %s", f->path, line, api ? api : "?",
			  k ? k : "?");
		return 0;
	}
	case KDECODE_KIND_LIST: {
		const json_t *item;
		size_t i;

		if (list) {
			log_error("manifest %s:%u: list inside a list; skipped", f->path, line);
			ex->rejected++;
			ex->hides = true;
			return 0;
		}
		json_array_foreach(json_object_get(v, "items"), i, item) {
			r = decode_value(ex, item, v, line);
			if (r < 0)
				return r;
		}
		return 0;
	}
	default:
		break;
	}

	/* Bound the work before doing it: aliases can repeat a big value. */
	cost = kdecode_cost(v, kind);
	if (cost > ex->max_work - ex->work) {
		ex->work = ex->max_work;
		return -E2BIG;
	}
	ex->work += cost;

	switch (kind) {
	case KDECODE_KIND_SERVICE: {
		struct kobj_service *svc;

		r = kdecode_service(v, &d->opts, &svc, &err);
		if (r == 0)
			return pending_push(&ex->pl, OBJ_SERVICE, svc, line);
		break;
	}
	case KDECODE_KIND_SLICE: {
		struct kobj_slice *sl;

		r = kdecode_slice(v, &d->opts, &sl, &err);
		if (r == KDECODE_IGNORED) {
			log_debug("manifest %s:%u: %s: FQDN slices are not used; ignored", f->path,
				  line, err.object);
			return 0;
		}
		if (r == 0)
			return pending_push(&ex->pl, OBJ_SLICE, sl, line);
		break;
	}
	case KDECODE_KIND_ENDPOINTS: {
		struct kobj_slice **slices;
		size_t n;

		r = kdecode_endpoints(v, &d->opts, &slices, &n, &err);
		if (r < 0)
			break;
		for (size_t i = 0; i < n && r == 0; i++) {
			r = pending_push(&ex->pl, OBJ_SLICE, slices[i], line);
			slices[i] = NULL;
		}
		kdecode_slices_free(slices, n);
		return r;
	}
	default:
		return 0;
	}
	if (r == -EINVAL) {
		reject_object(ex, kind, line, &err);
		return 0;
	}
	return r;
}

/* A list item, handed over while its document is still being read. Take it
 * when it says what it is and the document may still be a list (kubectl
 * writes "kind: List" after the items); leave the others to the document. */
static int exam_item(void *userdata, const json_t *root, const json_t *item, unsigned line)
{
	struct exam *ex = userdata;
	const json_t *rk = json_object_get(root, "kind");
	const char *k = json_string_value(rk);
	size_t n = k ? strlen(k) : 0;
	int r;

	if (!json_is_string(json_object_get(item, "kind")))
		return 0;
	if (rk && !(n >= 4 && strcmp(k + n - 4, "List") == 0))
		return 0;
	if (!ex->in_list) {
		ex->in_list = true;
		ex->list_mark_pl = ex->pl.n;
		ex->list_mark_rejected = ex->rejected;
		ex->list_mark_kept = ex->kept;
	}
	r = decode_value(ex, item, root, line);
	return r < 0 ? r : 1;
}

static int exam_document(void *userdata, json_t *root, unsigned line)
{
	struct exam *ex = userdata;
	int r;

	if (ex->in_list && kdecode_classify(root, NULL) != KDECODE_KIND_LIST) {
		/* Not a list after all: what its items gave does not count. */
		while (ex->pl.n > ex->list_mark_pl) {
			struct pending *p = &ex->pl.v[--ex->pl.n];

			obj_free(p->kind, p->obj);
		}
		ex->rejected = ex->list_mark_rejected;
		ex->kept = ex->list_mark_kept;
	}
	ex->in_list = false;
	r = decode_value(ex, root, NULL, line);
	json_decref(root);
	return r;
}

/* Put ex's pending objects in the model as its file's, and delete the
 * objects the file had before but no longer defines (an invalid new version
 * keeps the old one). Consumes the pending list. Returns the duplicates
 * count. */
static size_t file_apply(struct exam *ex)
{
	struct manifest_dir *d = ex->d;
	struct mfile *f = ex->f;
	struct pending_list *pl = &ex->pl;
	uint32_t pass = ex->pass;
	size_t dups = 0, kept = 0, hidden = 0, n_old;

	lost_clear(f);
	for (size_t i = 0; i < pl->n; i++) {
		struct pending *p = &pl->v[i];
		const char *ns = obj_ns(p->kind, p->obj), *name = obj_name(p->kind, p->obj);
		struct owned *o = nsname_map_get(&d->owners[p->kind], ns, name);
		int r;

		if (o && (o->file != f || o->pass == pass)) {
			if (o->file != f) {
				log_error("manifest %s:%u: %s %s/%s is already defined in %s; duplicate skipped",
					  f->path, p->line, kind_names[p->kind], ns, name, o->file->path);
				lost_add(f, p->kind, ns, name);
			} else {
				log_error("manifest %s:%u: %s %s/%s is defined twice in this file; duplicate skipped",
					  f->path, p->line, kind_names[p->kind], ns, name);
			}
			dups++;
			obj_free(p->kind, p->obj);
			continue;
		}
		if (!o && file_own(d, f, p->kind, ns, name, &o) < 0) {
			log_error("manifest %s:%u: %s %s/%s: out of memory; object skipped", f->path,
				  p->line, kind_names[p->kind], ns, name);
			obj_free(p->kind, p->obj);
			dups++;
			continue;
		}
		o->pass = pass;
		/* The model takes the object in every case. */
		if (p->kind == OBJ_SERVICE)
			r = model_upsert_service(d->model, p->obj);
		else
			r = model_upsert_slice(d->model, p->obj);
		if (r < 0)
			log_error("manifest %s:%u: %s %s/%s: cannot store it: %s", f->path, p->line,
				  kind_names[p->kind], o->ns, o->name, strerror(-r));
	}
	free(pl->v);
	memset(pl, 0, sizeof(*pl));

	/* Release what this pass did not stamp; keep the order of the rest. */
	n_old = f->n_objs;
	for (size_t i = 0; i < n_old; i++) {
		struct owned *o = f->objs[i];
		const struct ep_prev *e = ex->ep_prev_built ? ep_prev_of(ex, o) : NULL;

		if (o->pass == pass || o->kept_pass == pass || (e && e->keep) || ex->hides) {
			hidden += o->pass != pass && o->kept_pass != pass && !(e && e->keep);
			o->pass = pass;
			f->objs[kept++] = o;
		} else {
			owned_release(d, o);
		}
	}
	f->n_objs = kept;
	if (hidden)
		log_error("manifest %s: %zu objects it had are in none of its valid documents; "
			  "keeping the objects it had before, which the rejected ones may hide",
			  f->path, hidden);
	return dups;
}

/* --- Reading files -------------------------------------------------------------------- */

/* Open a file to read it. Returns the descriptor, -ENOENT when it vanished,
 * -EISDIR / -EINVAL (not a regular file: not for us), or another error. */
static int file_open(const char *path)
{
	struct stat st;
	int fd, r;

	/* O_NONBLOCK: a FIFO named x.yaml must not hang us on open. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd == -1)
		return -errno;
	if (fstat(fd, &st) == -1) {
		r = -errno;
		close(fd);
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	}
	return fd;
}

/* A file read as a stream, hashed and counted on the way. */
struct file_input {
	int fd;
	uint64_t hash;
	size_t size;
};

static ssize_t file_read(void *userdata, void *buf, size_t len)
{
	struct file_input *fi = userdata;
	ssize_t k;

	do
		k = read(fi->fd, buf, len);
	while (k == -1 && errno == EINTR);
	if (k == -1)
		return -errno;
	fi->hash = hash_update(fi->hash, buf, (size_t)k);
	fi->size += (size_t)k;
	return k;
}

/* Read fd from the start to the end, for its hash and size. */
static int file_hash(int fd, uint64_t *ret_hash, size_t *ret_size)
{
	struct file_input fi = { .fd = fd, .hash = HASH_INIT };
	char buf[16384];
	ssize_t k;

	do
		k = file_read(&fi, buf, sizeof(buf));
	while (k > 0);
	if (k < 0)
		return (int)k;
	*ret_hash = fi.hash;
	*ret_size = fi.size;
	return 0;
}

/* What a whole file may cost, from its size: aliases may add nodes and
 * decoding may allocate entries in proportion to it, with a floor that no
 * hand-written file comes near. */
static size_t bound_for(size_t size, size_t per_byte, size_t min)
{
	return size > (SIZE_MAX - min) / per_byte ? SIZE_MAX : min + size * per_byte;
}

static void log_kept(const struct mfile *f, int r, const char *what, unsigned line)
{
	const char *tail = f->n_objs ? "keeping the objects it had before" : "no objects loaded from it";

	if (line)
		log_error("manifest %s:%u: %s; %s", f->path, line, what, tail);
	else
		log_error("manifest %s: %s%s%s; %s", f->path, what, r ? ": " : "",
			  r ? strerror(-r) : "", tail);
}

/* Look at one name again and bring the model in line with what the file
 * holds now. Returns 0 or -ENOMEM. */
static int file_examine(struct manifest_dir *d, const char *name)
{
	struct yaml_json_error perr;
	size_t index, size = 0;
	struct mfile *f = file_find(d, name, &index);
	struct file_input fi = { .hash = HASH_INIT };
	struct exam ex = { .d = d };
	char *path;
	uint64_t hash = 0;
	int fd, r;

	if (!name_eligible(name))
		return 0;
	if (asprintf(&path, "%s/%s", d->path, name) < 0)
		return -ENOMEM;
	fd = file_open(path);
	free(path);
	if (fd == -ENOENT || fd == -EISDIR || fd == -EINVAL || fd == -ENOTDIR || fd == -ELOOP) {
		/* Gone, or not a regular file (any more): nothing of ours. */
		if (f)
			file_remove(d, index);
		return 0;
	}
	if (!f) {
		f = file_add(d, name);
		if (!f) {
			if (fd >= 0)
				close(fd);
			return -ENOMEM;
		}
	}
	r = fd < 0 ? fd : file_hash(fd, &hash, &size);
	if (r == 0 && f->hashed && f->hash == hash && !f->recheck) {
		close(fd);
		return 0;
	}
	if (r == 0 && lseek(fd, 0, SEEK_SET) == -1)
		r = -errno;
	if (r < 0) {
		/* Unreadable: whatever it held before stays. */
		log_kept(f, r, "cannot read it", 0);
		f->parse_failed = true;
		f->hashed = false;
		if (fd >= 0)
			close(fd);
		return r == -ENOMEM ? r : 0;
	}

	ex.f = f;
	ex.pass = pass_next(d);
	ex.max_work = bound_for(size, MANIFEST_DIR_ENTRIES_PER_BYTE, MANIFEST_DIR_ENTRIES_MIN);
	nsname_map_init(&ex.ep_prev, NSNAME_MAP_KEY(struct ep_prev, ns, name));
	fi.fd = fd;
	{
		const struct yaml_json_limits lim = {
			.max_alias_nodes = bound_for(size, MANIFEST_DIR_ALIAS_NODES_PER_BYTE,
						     MANIFEST_DIR_ALIAS_NODES_MIN),
			.max_bytes = SIZE_MAX,
		};
		const struct yaml_json_input in = { .read = file_read, .userdata = &fi };
		const struct yaml_json_output out = {
			.document = exam_document,
			.item = exam_item,
			.userdata = &ex,
		};

		d->opts.source = f->path;
		if (has_suffix(name, ".json"))
			r = yaml_json_parse_json_stream(&in, &lim, &out, &perr);
		else
			r = yaml_json_parse_stream(&in, &lim, &out, &perr);
		d->opts.source = NULL;
	}
	close(fd);
	/* What was parsed, even if it failed: the same bytes fail the same way. */
	f->hash = fi.hash;
	f->hashed = true;
	f->recheck = false;

	if (r < 0) {
		char what[320];

		/* All or nothing: the model is left as it was. */
		pending_clear(&ex.pl);
		ep_prev_free(&ex);
		if (r == -E2BIG) {
			snprintf(what, sizeof(what),
				 "its objects would take more than %zu model entries (the bound for "
				 "%zu bytes; YAML aliases repeating a large value?)", ex.max_work, size);
			log_kept(f, 0, what, 0);
		} else if (r == -ENOMEM) {
			log_kept(f, r, "loading it failed", 0);
			f->hashed = false;
			return r;
		} else if (perr.line) {
			log_kept(f, 0, perr.message, perr.line);
		} else {
			log_kept(f, 0, perr.message, 0);
		}
		f->parse_failed = true;
		return 0;
	}
	f->parse_failed = false;
	ex.rejected += file_apply(&ex);
	ep_prev_free(&ex);
	f->n_rejected = ex.rejected;
	log_debug("manifest %s: %zu objects, %zu rejected (%zu of them kept at their previous version)",
		  f->path, f->n_objs, ex.rejected, ex.kept);
	return 0;
}

/* Re-read files whose duplicate became free, until none is left. Each round
 * can only hand keys over, so it ends; the cap is a guard. */
static int run_rechecks(struct manifest_dir *d)
{
	for (size_t round = 0; round <= d->n_files; round++) {
		bool any = false;

		for (size_t i = 0; i < d->n_files; i++) {
			if (d->files[i]->recheck) {
				int r = file_examine(d, d->files[i]->name);

				if (r < 0)
					return r;
				any = true;
				break; /* the list may have changed */
			}
		}
		if (!any)
			return 0;
	}
	return 0;
}

static int cmp_str_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Compare the directory with what we track: drop vanished files, read new
 * and changed ones in name order. */
static int rescan(struct manifest_dir *d)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *dir;
	int r = 0;

	dir = opendir(d->path);
	if (!dir) {
		log_warn_errno(-errno, "manifest %s: cannot list directory", d->path);
		return 0;
	}
	while ((de = readdir(dir))) {
		if (!name_eligible(de->d_name))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			char **v = realloc(names, ncap * sizeof(*v));

			if (!v) {
				r = -ENOMEM;
				break;
			}
			names = v;
			cap = ncap;
		}
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			r = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(dir);
	if (r == 0) {
		if (n > 0) /* qsort and bsearch want a real array, even when empty */
			qsort(names, n, sizeof(*names), cmp_str_ptr);
		/* Files we track that are no longer listed. */
		for (size_t i = d->n_files; i-- > 0;) {
			if (n == 0 || !bsearch(&d->files[i]->name, names, n, sizeof(*names), cmp_str_ptr))
				file_remove(d, i);
		}
		struct log_progress progress;
		char what[512];

		snprintf(what, sizeof(what), "manifest %s: loading", d->path);
		log_progress_start(&progress, what);
		for (size_t i = 0; i < n && r == 0; i++) {
			r = file_examine(d, names[i]);
			log_progress(&progress, i + 1, n, "files");
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (r == 0)
		r = run_rechecks(d);
	return r;
}

/* --- Public API ---------------------------------------------------------------------- */

static int watch_dir(struct manifest_dir *d)
{
	d->wd = inotify_add_watch(d->ifd, d->path, DIR_WATCH_MASK);
	if (d->wd == -1)
		return -errno;
	if (d->wd == d->parent_wd)
		d->parent_wd = -1; /* "/" is its own parent: one watch, the directory's */
	return 0;
}

struct manifest_dir *manifest_dir_new(const char *path, struct model *m,
				      const struct kdecode_opts *opts)
{
	struct manifest_dir *d;
	char *parent = NULL, *slash;
	size_t len;
	int r;

	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->ifd = -1;
	d->wd = -1;
	d->parent_wd = -1;
	d->model = m;
	if (opts)
		d->opts = *opts;
	d->opts.source = NULL;
	for (int k = 0; k < OBJ_KINDS; k++)
		nsname_map_init(&d->owners[k], NSNAME_MAP_KEY_INLINE_NAME(struct owned, ns, name));

	/* Drop trailing slashes so names and the parent come out right. */
	d->path = strdup(path);
	if (!d->path) {
		r = -ENOMEM;
		goto fail;
	}
	len = strlen(d->path);
	while (len > 1 && d->path[len - 1] == '/')
		d->path[--len] = '\0';
	slash = strrchr(d->path, '/');
	if (!slash)
		parent = strdup(".");
	else if (slash == d->path)
		parent = strdup("/");
	else
		parent = strndup(d->path, (size_t)(slash - d->path));
	d->base = strdup(slash ? slash + 1 : d->path);
	if (!parent || !d->base) {
		r = -ENOMEM;
		goto fail;
	}

	d->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (d->ifd == -1) {
		r = -errno;
		goto fail;
	}
	/* Parent first: if both are the same inode, the directory's mask must
	 * be the one that stays. Losing the parent watch only loses the
	 * "directory recreated" case. */
	d->parent_wd = inotify_add_watch(d->ifd, parent, PARENT_WATCH_MASK);
	if (d->parent_wd == -1)
		log_debug("manifest %s: cannot watch parent %s: %s", d->path, parent, strerror(errno));
	r = watch_dir(d);
	if (r < 0)
		goto fail;
	free(parent);
	return d;
fail:
	free(parent);
	manifest_dir_free(d);
	errno = -r;
	return NULL;
}

struct manifest_dir *manifest_dir_free(struct manifest_dir *d)
{
	if (!d)
		return NULL;
	/* Forget ownership without touching the model, which keeps the objects. */
	for (size_t i = 0; i < d->n_files; i++) {
		struct mfile *f = d->files[i];

		for (size_t j = 0; j < f->n_objs; j++) {
			intern_release(f->objs[j]->ns);
			free(f->objs[j]);
		}
		free(f->objs);
		lost_clear(f);
		free(f->name);
		free(f->path);
		free(f);
	}
	free(d->files);
	for (int k = 0; k < OBJ_KINDS; k++)
		nsname_map_done(&d->owners[k]);
	if (d->ifd >= 0)
		close(d->ifd);
	free(d->path);
	free(d->base);
	free(d);
	return NULL;
}

size_t manifest_dir_rejected(const struct manifest_dir *d)
{
	size_t n = 0;

	for (size_t i = 0; i < d->n_files; i++)
		n += d->files[i]->parse_failed ? 1 : d->files[i]->n_rejected;
	return n;
}

int manifest_dir_load(struct manifest_dir *d, size_t *ret_rejected)
{
	int r = rescan(d);

	if (ret_rejected)
		*ret_rejected = manifest_dir_rejected(d);
	if (r < 0)
		return log_errno(r, "manifest %s: loading failed", d->path);
	log_info("manifest %s: %zu files, %zu services and %zu slices in the model, %zu rejected",
		 d->path, d->n_files, model_n_services(d->model), model_n_slices(d->model),
		 manifest_dir_rejected(d));
	return 0;
}

int manifest_dir_reload(struct manifest_dir *d, size_t *ret_rejected)
{
	for (size_t i = 0; i < d->n_files; i++)
		d->files[i]->recheck = true;
	return manifest_dir_load(d, ret_rejected);
}

int manifest_dir_fd(const struct manifest_dir *d)
{
	return d->ifd;
}

/* Names collected from one batch of events, without repeats. */
struct name_set {
	char **v;
	size_t n, cap;
};

static int name_set_add(struct name_set *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i], name) == 0)
			return 0;
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 8;
		char **v = realloc(s->v, ncap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = ncap;
	}
	s->v[s->n] = strdup(name);
	if (!s->v[s->n])
		return -ENOMEM;
	s->n++;
	return 0;
}

/* IN_CREATE of a regular file is followed by IN_CLOSE_WRITE once it is
 * written, and reading it now would see it half-written. Links, though,
 * get no IN_CLOSE_WRITE: act on those at once. */
static bool create_is_complete(const struct manifest_dir *d, const char *name)
{
	struct stat st;
	char *path;
	bool done;

	if (asprintf(&path, "%s/%s", d->path, name) < 0)
		return true;
	done = lstat(path, &st) == -1 || S_ISLNK(st.st_mode) || st.st_nlink > 1;
	free(path);
	return done;
}

int manifest_dir_process_events(struct manifest_dir *d, bool *ret_changed)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct name_set names = { 0 };
	uint64_t gen = model_generation(d->model);
	bool full = false, gone = false, back = false;
	int r = 0;

	for (;;) {
		ssize_t len = read(d->ifd, buf, sizeof(buf));
		const struct inotify_event *ev;

		if (len == -1 && errno == EINTR)
			continue;
		if (len == -1) {
			if (errno != EAGAIN)
				log_warn_errno(-errno, "manifest %s: inotify read failed", d->path);
			break;
		}
		if (len == 0)
			break;
		for (char *p = buf; p < buf + len; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->mask & IN_Q_OVERFLOW) {
				full = true;
				continue;
			}
			if (ev->wd == d->wd && d->wd >= 0) {
				if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
					gone = true;
				} else if (ev->len && strncmp(ev->name, "..", 2) == 0) {
					/* ConfigMap volumes swap a "..data" symlink. */
					full = true;
				} else if (ev->len && name_eligible(ev->name)) {
					if ((ev->mask & IN_CREATE) && !(ev->mask & IN_ISDIR) &&
					    !create_is_complete(d, ev->name))
						continue;
					if (r == 0)
						r = name_set_add(&names, ev->name);
				}
			} else if (ev->wd == d->parent_wd && d->parent_wd >= 0 && ev->len &&
				   (ev->mask & IN_ISDIR) && strcmp(ev->name, d->base) == 0) {
				back = true;
			}
		}
	}

	if (gone) {
		log_warn("manifest %s: directory removed or renamed; removing its objects", d->path);
		if (d->wd >= 0)
			inotify_rm_watch(d->ifd, d->wd);
		d->wd = -1;
		while (d->n_files > 0)
			file_remove(d, d->n_files - 1);
	}
	if (d->wd < 0 && (back || full)) {
		if (watch_dir(d) == 0) {
			log_info("manifest %s: directory is back; reading it", d->path);
			full = true;
		}
	}
	if (r == 0 && d->wd >= 0) {
		if (full) {
			r = rescan(d);
		} else {
			for (size_t i = 0; i < names.n && r == 0; i++)
				r = file_examine(d, names.v[i]);
			if (r == 0)
				r = run_rechecks(d);
		}
	}
	for (size_t i = 0; i < names.n; i++)
		free(names.v[i]);
	free(names.v);
	if (ret_changed)
		*ret_changed = model_generation(d->model) != gen;
	if (r < 0)
		return log_errno(r, "manifest %s: applying changes failed", d->path);
	return 0;
}
