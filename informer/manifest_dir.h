/* The manifest directory source: Service, EndpointSlice and Endpoints
 * objects read from *.yaml, *.yml and *.json files in one directory and kept
 * in step with it through inotify.
 *
 * Every file is a set of objects. The source remembers which model objects
 * each file provided, so when a file changes its new objects are upserted and
 * the ones it no longer has are deleted; when it goes away all of them are.
 * An object (kind, namespace, name) defined by two files belongs to the file
 * loaded first; the other definition is reported and skipped, and takes over
 * if the first one disappears.
 *
 * Bad input never takes away what works. A file that cannot be read, no
 * longer parses or exceeds its work bound keeps every object it provided
 * before (a half-saved file must not empty a service). An object whose new
 * version is invalid keeps its last valid version from the same file, with
 * an error naming the file, the object and the field; it goes away as usual
 * once the file stops defining it. A document rejected as a whole (no kind,
 * not a mapping) may hide any object, so while a file has one, it keeps all
 * the objects it had (valid new versions still apply). All of these count
 * as rejected.
 *
 * Files considered: regular files (symlinks followed) directly in the
 * directory whose names end in .yaml, .yml or .json and do not start with a
 * dot or end with '~'. Any size is read: YAML is parsed as a stream and the
 * items of a list are decoded one by one, so memory follows the objects
 * kept (a .json file is parsed whole by jansson first). A file's documents
 * may be single objects or lists (kind List, ServiceList...: anything with
 * items), so `kubectl get svc,endpointslices -A -o yaml` output works as is.
 * Other kinds are skipped with a debug line.
 *
 * The work a file may cause is bounded in proportion to its size, so a small
 * file cannot expand through YAML aliases into a large model: nodes added by
 * aliases, and model entries decoded (kdecode_cost: an endpoint's addresses
 * times its hint zones). Past either bound the file is refused whole.
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

/* Per-file work bounds: MIN + PER_BYTE * file size. */
#define MANIFEST_DIR_ALIAS_NODES_MIN (1u << 16)
#define MANIFEST_DIR_ALIAS_NODES_PER_BYTE 1u
#define MANIFEST_DIR_ENTRIES_MIN (1u << 16)
#define MANIFEST_DIR_ENTRIES_PER_BYTE 8u

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

/* Read every manifest file again, changed or not (SIGHUP), keeping the
 * bookkeeping: unlike a fresh source on a cleared model, a file that cannot
 * be read or parsed now keeps its objects. *ret_rejected and the return
 * value as for manifest_dir_load. */
int manifest_dir_reload(struct manifest_dir *d, size_t *ret_rejected);

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
