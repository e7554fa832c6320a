/* The Kubernetes API source against a broken or hostile API server: the
 * test server's "hostile" modes (tests/kapi/kapi_server.py). What is
 * pinned here:
 *  - no reconnect storm, whatever way a list or watch ends quickly (a
 *    watch that closes after one bookmark, a watch answering 410 after one
 *    ADDED, lists whose pages go on forever, a list without a
 *    resourceVersion), counted by the server's own request counters, and
 *    said at warn level, rate-limited;
 *  - a NUL in one object's string does not poison its list page or drop
 *    its watch event;
 *  - list buffers are given back after a gzip bomb, and bounded meanwhile;
 *  - an object listed and deleted without metadata.namespace is found
 *    again by its DELETED event and by a relist.
 * Backoff here starts at 500 ms and is capped at 2 s (open_source), so in
 * a 3 s window an informer starts at most about six rounds of requests
 * (250 + 500 + 1000 + 1000 ms at the least): the bounds below allow that
 * with some slack, where the code before these rules made thousands. */
#include "kapi_harness.h"

TestSuite(kube_hostile, .init = setup, .fini = teardown, .timeout = 40);

/* Without a node name the source runs three informers: services,
 * endpointslices and servicecidrs. */
#define N_INFORMERS 3
#define WINDOW_MS 3000
/* Rounds of requests one informer may start in WINDOW_MS, with slack. */
#define MAX_ROUNDS 7

/* Replace the server's hostile modes (json: an object; "{}" for none). */
static void hostile(const char *json)
{
	char j[512];

	snprintf(j, sizeof(j), "{\"hostile\":%s}", json);
	control("config", j);
}

/* Lines of text that contain both a and b. */
static int count_lines(const char *text, const char *a, const char *b)
{
	int n = 0;

	while (*text) {
		const char *eol = strchr(text, '\n');
		size_t len = eol ? (size_t)(eol - text) : strlen(text);
		char line[2048];

		snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) - 1 ? len : sizeof(line) - 1),
			 text);
		if (strstr(line, a) && strstr(line, b))
			n++;
		text += len + (eol ? 1 : 0);
	}
	return n;
}

static bool has_newsvc(void)
{
	return model_find_service(model, "default", "newsvc") != NULL;
}

static void open_plain(void)
{
	open_source(kubeconfig("", "    token: x\n"), NULL);
}

/* --- no reconnect storms ------------------------------------------------------ */

Test(kube_hostile, watch_closing_after_one_bookmark_is_backed_off)
{
	const char *log;
	long watches;
	int warns;

	start_server("");
	base_objects();
	hostile("{\"watch\":\"bookmark_close\"}");
	log_set_level(LOG_LEVEL_WARN);
	stderr_capture();
	open_plain();
	cr_assert(run_until(is_synced, 5000), "the lists work: the source must sync");
	run_until(NULL, WINDOW_MS);
	log = stderr_release();
	watches = server_stat("watch");
	cr_log_info("bookmark_close: %ld watches in %d ms", watches, WINDOW_MS);
	cr_assert_leq(watches, MAX_ROUNDS * N_INFORMERS,
		      "%ld watches in %d ms: a watch ending at once must be backed off", watches,
		      WINDOW_MS);
	cr_assert_geq(watches, 2 * N_INFORMERS, "%ld watches: not retried", watches);
	/* Said at warn level, and not once per request. */
	warns = count_lines(log, " warn ", "watch");
	cr_assert_geq(warns, 1, "the server's behaviour was not logged at warn level:\n%s", log);
	cr_assert_leq(warns, N_INFORMERS, "%d warnings: not rate-limited:\n%s", warns, log);
	/* The server turns good: changes are followed again. */
	hostile("{}");
	apply_svc("newsvc", "10.96.0.20");
	cr_assert(run_until(has_newsvc, 6000), "the source did not recover");
}

Test(kube_hostile, watch_answering_410_after_one_added_is_backed_off)
{
	struct kube_informer_stats s;
	long lists, watches;

	start_server("");
	base_objects();
	hostile("{\"watch\":\"added_then_gone\"}");
	open_plain();
	cr_assert(run_until(is_synced, 5000));
	run_until(NULL, WINDOW_MS);
	lists = server_stat("list");
	watches = server_stat("watch");
	kube_source_stats(src, &s);
	cr_log_info("added_then_gone: %ld lists, %ld watches in %d ms", lists, watches, WINDOW_MS);
	/* Each round is a relist and a watch. */
	cr_assert_leq(lists + watches, 2 * MAX_ROUNDS * N_INFORMERS,
		      "%ld lists and %ld watches in %d ms: relists after a short watch must be backed off",
		      lists, watches, WINDOW_MS);
	cr_assert_geq(s.relists, N_INFORMERS, "%llu relists", (unsigned long long)s.relists);
	hostile("{}");
	apply_svc("newsvc", "10.96.0.20");
	cr_assert(run_until(has_newsvc, 6000), "the source did not recover");
}

/* A list mode that never lets a list finish: few requests, no sync; then
 * the server turns good and the source syncs. pages: the most pages one
 * attempt of all informers together may fetch. */
static void endless_list_case(const char *mode, long pages)
{
	char j[128];
	long lists;

	start_server("");
	base_objects();
	snprintf(j, sizeof(j), "{\"list\":\"%s\"}", mode);
	hostile(j);
	open_plain();
	cr_assert_not(run_until(is_synced, WINDOW_MS), "%s: synced on an unfinished list", mode);
	lists = server_stat("list");
	cr_log_info("%s: %ld lists in %d ms", mode, lists, WINDOW_MS);
	cr_assert_leq(lists, MAX_ROUNDS * pages,
		      "%s: %ld list requests in %d ms: a list that makes no progress must be backed off",
		      mode, lists, WINDOW_MS);
	cr_assert_geq(lists, 2 * N_INFORMERS, "%s: %ld lists: not retried", mode, lists);
	hostile("{}");
	cr_assert(run_until(is_synced, 6000), "%s: the source did not recover", mode);
	cr_assert_eq(model_n_services(model), 3);
}

/* Page 1 and then page 2 with page 1's token again. */
Test(kube_hostile, list_repeating_its_continue_token_is_backed_off)
{
	endless_list_case("continue_repeat", 2 * N_INFORMERS);
}

/* New tokens, the same objects again: services and slices stop at the
 * second page; the empty servicecidrs list after four pages without a new
 * object. */
Test(kube_hostile, list_repeating_its_objects_is_backed_off)
{
	endless_list_case("continue_fresh", 2 + 2 + 4);
}

/* New tokens, no items after the first page: four pages without a new
 * object end the attempt. */
Test(kube_hostile, list_of_endless_empty_pages_is_backed_off)
{
	endless_list_case("continue_empty", 5 + 5 + 4);
}

/* Without a resourceVersion there is nothing to watch from: an error, not
 * a list again at once. Services take two pages of two. */
Test(kube_hostile, list_without_resource_version_is_backed_off)
{
	endless_list_case("no_rv", 2 + 1 + 1);
}

/* --- one bad object does not poison a page -------------------------------------- */

static bool late_objects_seen(void)
{
	return model_find_service(model, "default", "late") &&
	       model_find_service(model, "default", "after");
}

Test(kube_hostile, nul_in_one_object_rejects_only_that_object)
{
	struct kube_informer_stats s;

	start_server("");
	apply_svc("web", "10.96.0.10");
	apply_svc("db", "10.96.0.11");
	/* A NUL in an annotation ferry does not read (the API accepts it), in
	 * a field ferry reads, and in a name. */
	control("apply", "{\"objects\":["
			 "{\"kind\":\"Service\",\"metadata\":{\"name\":\"annotated\","
			 "\"annotations\":{\"note\":\"a\\u0000b\"}},\"spec\":{\"clusterIP\":\"10.96.0.12\"}},"
			 "{\"kind\":\"Service\",\"metadata\":{\"name\":\"badip\"},"
			 "\"spec\":{\"clusterIP\":\"10.96.0.13\\u0000x\"}},"
			 "{\"kind\":\"Service\",\"metadata\":{\"name\":\"bad\\u0000name\"},"
			 "\"spec\":{\"clusterIP\":\"10.96.0.14\"}}]}");
	open_plain();
	cr_assert(run_until(is_synced, 5000), "a NUL in one object kept the whole list out");
	cr_assert_not_null(model_find_service(model, "default", "web"));
	cr_assert_not_null(model_find_service(model, "default", "db"));
	cr_assert_not_null(model_find_service(model, "default", "annotated"),
			   "a NUL in an annotation ferry does not read rejected the object");
	cr_assert_null(model_find_service(model, "default", "badip"));
	cr_assert_null(model_find_service(model, "default", "bad"));
	cr_assert_eq(model_n_services(model), 3);
	kube_source_stats(src, &s);
	cr_assert_geq(s.rejected, 2, "rejected %llu", (unsigned long long)s.rejected);
	/* The same in watch events. */
	run_until(NULL, 300);
	control("apply", "{\"objects\":["
			 "{\"kind\":\"Service\",\"metadata\":{\"name\":\"late\","
			 "\"annotations\":{\"note\":\"\\u0000\"}},\"spec\":{\"clusterIP\":\"10.96.0.15\"}},"
			 "{\"kind\":\"Service\",\"metadata\":{\"name\":\"latebad\"},"
			 "\"spec\":{\"clusterIP\":\"10.96.0.16\\u0000\"}}]}");
	apply_svc("after", "10.96.0.17");
	cr_assert(run_until(late_objects_seen, 5000), "a NUL in a watch event lost the event");
	cr_assert_null(model_find_service(model, "default", "latebad"));
}

/* --- memory is given back ----------------------------------------------------- */

/* Resident and peak resident bytes of this process. */
static long long rss_bytes(void)
{
	long long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%lld %lld", &size, &resident), 2);
	fclose(f);
	return resident * sysconf(_SC_PAGESIZE);
}

static long long peak_rss_bytes(void)
{
	char line[256];
	long long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %lld kB", &kb) == 1)
			break;
	fclose(f);
	cr_assert_geq(kb, 0);
	return kb * 1024;
}

#define MiB (1024LL * 1024)

Test(kube_hostile, gzip_bomb_memory_is_bounded_and_given_back)
{
	long long rss0, rss1, peak;

	start_server("");
	base_objects();
	/* 300 MiB of JSON in about 300 KB on the wire, on every list. */
	hostile("{\"gzip_bomb\":314572800}");
	rss0 = rss_bytes();
	open_plain();
	cr_assert_not(run_until(is_synced, 2500), "a gzip bomb was taken as a list");
	cr_assert_geq(server_stat("bombs"), N_INFORMERS);
	hostile("{}");
	cr_assert(run_until(is_synced, 8000), "the source did not recover");
	cr_assert_eq(model_n_services(model), 3);
	run_until(NULL, 200);
	rss1 = rss_bytes();
	peak = peak_rss_bytes();
	cr_log_info("gzip bomb: peak RSS +%lld MiB, after +%lld MiB", (peak - rss0) / MiB,
		    (rss1 - rss0) / MiB);
	/* Each informer refuses a page past its bound (32 MiB inflated). */
	cr_assert_lt(peak - rss0, 160 * MiB, "peak RSS grew by %lld MiB during the bombs",
		     (peak - rss0) / MiB);
	/* And gives the buffer back once the list is over. */
	cr_assert_lt(rss1 - rss0, 24 * MiB, "RSS still %lld MiB above where it started",
		     (rss1 - rss0) / MiB);
}

/* --- one key for an object without metadata.namespace ------------------------- */

static bool db_gone(void)
{
	return !model_find_service(model, "default", "db") && !model_find_slice(model, "default", "db-1");
}

static bool cache_gone(void)
{
	return !model_find_service(model, "default", "cache");
}

Test(kube_hostile, object_without_namespace_is_removed_by_delete_and_relist)
{
	start_server("");
	base_objects();
	hostile("{\"strip_namespace\":[\"Service\",\"EndpointSlice\"]}");
	open_plain();
	cr_assert(run_until(is_synced, 5000));
	/* Listed without a namespace, served as "default" like the API does. */
	cr_assert_not_null(model_find_service(model, "default", "db"));
	cr_assert_not_null(model_find_slice(model, "default", "db-1"));
	run_until(NULL, 300);
	control("delete", "{\"kind\":\"Service\",\"name\":\"db\"}");
	control("delete", "{\"kind\":\"EndpointSlice\",\"name\":\"db-1\"}");
	cr_assert(run_until(db_gone, 5000), "a DELETED event without a namespace left the object served");
	/* A deletion missed during a gap: the relist must take it out. */
	control("compact", "{}");
	control("drop", "{}");
	control("delete", "{\"kind\":\"Service\",\"name\":\"cache\"}");
	control("compact", "{}");
	cr_assert(run_until(cache_gone, 8000), "a relist without namespaces left the object served");
	cr_assert_not_null(model_find_service(model, "default", "web"));
}
