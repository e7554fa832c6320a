/* One `ferry run` per network namespace and backend: a lock file under
 * /run/ferry, named after the namespace (its inode) and the backend, held
 * with flock for the life of the process (the kernel drops it when the
 * process dies, however it dies), holding the holder's pid. */
#ifndef FERRY_RUN_LOCK_H
#define FERRY_RUN_LOCK_H

/* Take the lock for backend in this network namespace. Returns the lock's
 * fd (keep it open), -EBUSY after logging which process holds it, or
 * another negative errno when no lock can be made (the caller goes on
 * without one: a warning is logged). dir: NULL for /run/ferry. */
int run_lock_take(const char *dir, const char *backend);

#endif
