/* Shared copies of strings that repeat across model objects.
 *
 * At 100k services a million endpoints carry one of a few hundred node
 * names, and every object its namespace and source: one reference-counted
 * copy each instead of a million small allocations. Thread-safe (objects
 * may be freed off the control thread). The strings must not be changed.
 */
#ifndef FERRY_INTERN_H
#define FERRY_INTERN_H

/* The shared copy of s (a new reference), or NULL on ENOMEM. */
const char *intern(const char *s);
/* Drop a reference intern() gave; the last one frees the copy. Accepts NULL. */
void intern_release(const char *s);
/* How many distinct strings are held (tests). */
unsigned long intern_count(void);

#endif
