/* The manifest directory source: Service, EndpointSlice and Endpoints
 * objects read from *.yaml, *.yml and *.json files in one directory and kept
 * in step with it through inotify.
 *
 * Every file is a set of objects. The source remembers which model objects
 * each file provided, so when a file changes its new objects are upserted and
 * the ones it no longer has are deleted; when it goes away all of them are.
 * An object (kind, namespace, name) defined by two files belongs to the file
 * loaded first; the other definition is reported and skipped, and takes over
 * if the first one disappears. A file that no longer parses keeps the
 * objects it provided before (a half-saved file must not empty a service).
 *
 * Files considered: regular files (symlinks followed) directly in the
 * directory whose names end in .yaml, .yml or .json and do not start with a
 * dot or end with '~'. Files over 16 MiB are refused. A file's documents may
 * be single objects or lists (kind List, ServiceList...: anything with
 * items), so `kubectl get svc,endpointslices -A -o yaml` output works as is.
 * Other kinds are skipped with a debug line.
 *
 * This is policy code: problems with files and objects are logged here, one
 * error line each, naming the file, the object and the field.
 * Single-threaded: use from the control thread only, like the model.
 */
#ifndef FERRY_MANIFEST_DIR_H
#define FERRY_MANIFEST_DIR_H

#include <stdbool.h>
#include <stddef.h>

#include "kdecode.h"
#include "model.h"

/* Largest manifest file read. */
#define MANIFEST_DIR_MAX_FILE (16u << 20)

struct manifest_dir;

/* Watch the directory path and feed the model m. opts gives the decode
 * options (its source field is ignored: each object's source is set to its
 * file's path). Nothing is read until manifest_dir_load. m is borrowed and
 * must outlive the source. Returns NULL with errno set when path is not a
 * directory that can be watched (ENOENT, ENOTDIR, EACCES, ENOMEM, EMFILE...).
 * The watch is set up here, before the first read, so no change made after
 * this call can be missed. */
struct manifest_dir *manifest_dir_new(const char *path, struct model *m,
				      const struct kdecode_opts *opts);

/* Stop watching and free the source. The objects it put into the model stay
 * there (the model owns them). Accepts NULL; returns NULL. */
struct manifest_dir *manifest_dir_free(struct manifest_dir *d);

/* Read every manifest file, in name order, and put its objects into the
 * model. *ret_rejected (may be NULL) receives the number of rejected objects
 * and unreadable or unparsable files in the directory (the CLI exits 2 when
 * it is not 0). Calling it again re-reads changed files only. Returns 0, or
 * -ENOMEM (the model then holds what was loaded so far). */
int manifest_dir_load(struct manifest_dir *d, size_t *ret_rejected);

/* The inotify descriptor to poll for readability; never blocks on read. */
int manifest_dir_fd(const struct manifest_dir *d);

/* Read all pending inotify events and apply them: changed files are re-read
 * (unchanged contents are detected and cost no model change), removed files'
 * objects are deleted, a queue overflow or a Kubernetes ConfigMap volume
 * swap ("..data") triggers a full rescan. When the directory itself is
 * removed or renamed its objects are removed, and it is picked up again if
 * it is recreated. *ret_changed (may be NULL) tells whether the model
 * changed. Cheap when there is nothing to read, so a caller that debounces
 * may call it repeatedly. Returns 0 or -ENOMEM. */
int manifest_dir_process_events(struct manifest_dir *d, bool *ret_changed);

/* Rejected objects and files in the directory's current state (as
 * *ret_rejected of manifest_dir_load). */
size_t manifest_dir_rejected(const struct manifest_dir *d);

#endif
