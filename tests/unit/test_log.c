/* Log lines: one line per event, with control characters from file names
 * and API strings escaped so that they cannot drive a terminal (ESC
 * sequences) or forge lines (CR, LF). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static char path[] = "/tmp/ferry-log.XXXXXX";
static int saved = -1;

static void setup(void)
{
	int fd = mkstemp(path);

	cr_assert_neq(fd, -1);
	saved = dup(STDERR_FILENO);
	cr_assert_neq(dup2(fd, STDERR_FILENO), -1);
	close(fd);
	log_set_level(LOG_LEVEL_DEBUG);
}

static void teardown(void)
{
	dup2(saved, STDERR_FILENO);
	close(saved);
	unlink(path);
}

/* What was logged so far (static buffer). */
static const char *logged(void)
{
	static char buf[65536];
	FILE *f = fopen(path, "r");
	size_t n;

	cr_assert_not_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static size_t count_char(const char *s, char ch)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == ch;
	return n;
}

TestSuite(log, .init = setup, .fini = teardown);

Test(log, control_characters_are_escaped)
{
	const char *out;

	log_warn("file %s: bad", "evil\x1b[2J\x1b]0;title\x07name");
	log_error("object %s", "a\rb\nc\td\x7f" "e");
	out = logged();
	cr_assert_null(strchr(out, '\x1b'), "a raw ESC reached the log: %s", out);
	cr_assert_null(strchr(out, '\x07'));
	cr_assert_null(strchr(out, '\r'));
	cr_assert_null(strchr(out, '\x7f'));
	cr_assert_null(strchr(out, '\t'));
	cr_assert(strstr(out, "evil\\x1b[2J\\x1b]0;title\\x07name: bad"), "%s", out);
	cr_assert(strstr(out, "a\\x0db\\x0ac\\x09d\\x7fe"), "%s", out);
	/* Two events, two lines. */
	cr_assert_eq(count_char(out, '\n'), 2, "%s", out);
}

Test(log, c1_controls_are_escaped_and_utf8_is_kept)
{
	const char *out;

	/* U+009B (CSI) in UTF-8 acts like ESC [ on some terminals. */
	log_info("name %s", "caf\xc3\xa9 \xc2\x9b" "31m");
	out = logged();
	cr_assert(strstr(out, "caf\xc3\xa9 \\xc2\\x9b31m"), "%s", out);
}

Test(log, long_lines_stay_one_line)
{
	char big[6000];
	const char *out;

	memset(big, '\x1b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_warn("%s", big);
	log_warn_errno(-ENOENT, "x%s", "\n");
	out = logged();
	cr_assert_null(strchr(out, '\x1b'));
	cr_assert_eq(count_char(out, '\n'), 2);
	/* An escape is never cut in half at the end of a long line. */
	cr_assert(strstr(out, "\\x1b\n"), "the long line does not end on a whole escape");
	cr_assert(strstr(out, "x\\x0a: No such file or directory\n"), "%s", out);
}

/* Long phases report progress at most once a second, and a phase shorter
 * than a second says nothing. */
Test(log, progress_at_most_once_a_second)
{
	struct log_progress p;

	log_progress_start(&p, "loading");
	for (size_t i = 1; i <= 1000; i++)
		log_progress(&p, i, 1000, "files");
	cr_expect_eq(count_char(logged(), '\n'), 0, "a phase under a second is quiet: %s", logged());
	usleep(1100 * 1000);
	for (size_t i = 1; i <= 1000; i++)
		log_progress(&p, i, 1000, "files");
	cr_expect_eq(count_char(logged(), '\n'), 1, "one line per second at most: %s", logged());
	cr_expect(strstr(logged(), "loading: 1 of 1000 files (1 s)") != NULL, "got: %s", logged());
	usleep(1100 * 1000);
	log_progress(&p, 7, 0, "elements");
	cr_expect(strstr(logged(), "loading: 7 elements so far (2 s)") != NULL, "got: %s", logged());
}
