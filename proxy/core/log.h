/* Logging: one line per event on stderr, "TIMESTAMP LEVEL message".
 *
 * Thread-safe (each line is written with one write(2)). The level threshold
 * is process-wide and set once at start by the CLI. Control characters in
 * a message (C0 such as ESC, CR and LF, DEL, and UTF-8 encoded C1) are
 * written as \xNN: file names and API strings cannot drive a terminal or
 * split an event over two lines.
 */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include <errno.h>
#include <stdlib.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN = 1,
	LOG_LEVEL_INFO = 2,
	LOG_LEVEL_DEBUG = 3,
};

/* Set the threshold; lines above it are dropped. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Parse "error", "warn", "info", "debug". Returns 0 or -EINVAL. */
int log_level_parse(const char *text, enum log_level *ret);

/* Write one line at level. */
void log_write(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Write one line at level with ": strerror(-err)" appended, and return err
 * (a negative errno), so a caller can `return log_errno(r, "...")`. */
int log_write_errno(enum log_level level, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Progress of a long phase (loading a big directory, a full sync, reading
 * the kernel's tables back): log_progress writes "WHAT: DONE of TOTAL UNIT"
 * (or "DONE UNIT so far" when total is 0) at info level, at most once a
 * second and only once the phase has lasted a second, so short phases stay
 * quiet. */
struct log_progress {
	const char *what;
	long long start_ms, last_ms;
};
void log_progress_start(struct log_progress *p, const char *what);
void log_progress(struct log_progress *p, size_t done, size_t total, const char *unit);

#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_errno(err, ...) log_write_errno(LOG_LEVEL_ERROR, (err), __VA_ARGS__)
#define log_warn_errno(err, ...) log_write_errno(LOG_LEVEL_WARN, (err), __VA_ARGS__)

#endif
