/* Logging to stderr with a level and an RFC 3339 UTC timestamp; control
 * characters in messages escaped. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum log_level current_level = LOG_LEVEL_INFO;

static const char *const level_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

void log_set_level(enum log_level level)
{
	current_level = level;
}

enum log_level log_get_level(void)
{
	return current_level;
}

int log_level_parse(const char *text, enum log_level *ret)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(text, level_names[i]) == 0) {
			*ret = (enum log_level)i;
			return 0;
		}
	}
	if (strcasecmp(text, "warning") == 0) {
		*ret = LOG_LEVEL_WARN;
		return 0;
	}
	return -EINVAL;
}

/* Copy the n bytes of in to out (at most room bytes) with control
 * characters escaped as \xNN: C0 controls (TAB, CR, LF and ESC among them),
 * DEL, and the C1 controls as UTF-8 encodes them (U+0080..U+009F, which some
 * terminals obey like ESC sequences). Messages carry file names and API
 * strings: escaped, they can neither drive the reader's terminal nor forge
 * log lines. Other bytes, UTF-8 included, pass unchanged. The output is cut
 * before an escape that does not fit whole. Returns its length. */
static size_t log_escape(const char *in, size_t n, char *out, size_t room)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in[i];
		size_t esc = 0; /* bytes of in to escape from i */

		if (ch < 0x20 || ch == 0x7f)
			esc = 1;
		else if (ch == 0xc2 && i + 1 < n && (unsigned char)in[i + 1] >= 0x80 &&
			 (unsigned char)in[i + 1] <= 0x9f)
			esc = 2;
		if (!esc) {
			if (o + 1 > room)
				break;
			out[o++] = (char)ch;
			continue;
		}
		if (o + 4 * esc > room)
			break;
		for (size_t k = 0; k < esc; k++) {
			unsigned char b = (unsigned char)in[i + k];

			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[b >> 4];
			out[o++] = hex[b & 15];
		}
		i += esc - 1;
	}
	return o;
}

static void log_vwrite(enum log_level level, int err, const char *fmt, va_list ap)
{
	char line[4096], out[8192];
	struct timespec ts;
	struct tm tm;
	size_t n, head;
	int k;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	k = snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s ",
		     ts.tv_nsec / 1000000, level_names[level]);
	if (k > 0)
		n += (size_t)k;
	head = n;
	k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (k > 0)
		n = n + (size_t)k < sizeof(line) ? n + (size_t)k : sizeof(line) - 1;
	if (err && n < sizeof(line) - 1) {
		k = snprintf(line + n, sizeof(line) - n, ": %s", strerror(-err));
		if (k > 0)
			n = n + (size_t)k < sizeof(line) ? n + (size_t)k : sizeof(line) - 1;
	}
	/* One event, one line, whatever the message held. */
	memcpy(out, line, head);
	n = head + log_escape(line + head, n - head, out + head, sizeof(out) - head - 1);
	out[n++] = '\n';
	(void)!write(STDERR_FILENO, out, n);
}

void log_write(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > current_level)
		return;
	va_start(ap, fmt);
	log_vwrite(level, 0, fmt, ap);
	va_end(ap);
}

int log_write_errno(enum log_level level, int err, const char *fmt, ...)
{
	va_list ap;

	if (level > current_level)
		return err;
	va_start(ap, fmt);
	log_vwrite(level, err, fmt, ap);
	va_end(ap);
	return err;
}

static long long progress_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void log_progress_start(struct log_progress *p, const char *what)
{
	p->what = what;
	p->start_ms = p->last_ms = progress_now_ms();
}

void log_progress(struct log_progress *p, size_t done, size_t total, const char *unit)
{
	long long now = progress_now_ms();

	if (now - p->last_ms < 1000)
		return;
	p->last_ms = now;
	if (total)
		log_info("%s: %zu of %zu %s (%lld s)", p->what, done, total, unit, (now - p->start_ms) / 1000);
	else
		log_info("%s: %zu %s so far (%lld s)", p->what, done, unit, (now - p->start_ms) / 1000);
}
