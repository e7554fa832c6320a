/* The single-instance lock of `ferry run` (run_lock.h). */
#include "run_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define RUN_LOCK_DIR "/run/ferry"

int run_lock_take(const char *dir, const char *backend)
{
	char path[512], pid[32] = "";
	struct stat ns;
	ssize_t n;
	int fd, r;

	if (!dir)
		dir = RUN_LOCK_DIR;
	if (stat("/proc/self/ns/net", &ns) < 0)
		return log_errno(-errno, "single-instance lock: cannot identify the network namespace");
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		r = -errno;
		log_warn("single-instance lock: cannot create %s (%s); running without it", dir, strerror(-r));
		return r;
	}
	snprintf(path, sizeof(path), "%s/netns-%llu-%s.lock", dir, (unsigned long long)ns.st_ino, backend);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		r = -errno;
		log_warn("single-instance lock: cannot open %s (%s); running without it", path, strerror(-r));
		return r;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		if (r == -EWOULDBLOCK) {
			n = pread(fd, pid, sizeof(pid) - 1, 0);
			pid[n > 0 ? n : 0] = '\0';
			pid[strcspn(pid, "\n")] = '\0';
			log_error("another ferry (pid %s) already runs the %s backend in this network namespace "
				  "(lock %s); stop it first", pid[0] ? pid : "unknown", backend, path);
			close(fd);
			return -EBUSY;
		}
		log_warn("single-instance lock: flock %s: %s; running without it", path, strerror(-r));
		close(fd);
		return r;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		log_warn("single-instance lock: cannot write the pid into %s", path);
	return fd;
}
