/* manifest_dir: loading fixture directories, then following edits, renames,
 * deletions and duplicates in a scratch directory through inotify. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "manifest_dir.h"
#include "model.h"

#define DATA FERRY_TEST_DATA "/manifests"

static const struct kdecode_opts opts = { .allow_loopback = false };
static struct model *m;
static struct manifest_dir *d;
static char tmp[] = "/tmp/ferry-manifest-XXXXXX";
static bool have_tmp;

static void setup(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	m = model_new();
	cr_assert_not_null(m);
}

static void rm_rf(const char *dir)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

static void teardown(void)
{
	d = manifest_dir_free(d);
	m = model_free(m);
	if (have_tmp)
		rm_rf(tmp);
	have_tmp = false;
}

TestSuite(manifest_dir, .init = setup, .fini = teardown);

static const struct kobj_service *svc(const char *ns, const char *name)
{
	return model_find_service(m, ns, name);
}

static const struct kobj_slice *slice(const char *ns, const char *name)
{
	return model_find_slice(m, ns, name);
}

static const char *ip0(const struct kobj_service *s)
{
	static char buf[INET_ADDR_STRLEN];

	cr_assert_not_null(s);
	cr_assert_geq(s->n_cluster_ips, 1);
	return inet_addr_format(&s->cluster_ips[0], buf);
}

Test(manifest_dir, load_good_fixtures)
{
	size_t rejected = 99;

	d = manifest_dir_new(DATA "/good", m, &opts);
	cr_assert_not_null(d, "%s", strerror(errno));
	cr_assert_eq(manifest_dir_load(d, &rejected), 0);
	cr_assert_eq(rejected, 0);
	cr_assert_eq(model_n_services(m), 5);
	cr_assert_eq(model_n_slices(m), 5);

	/* From the kubectl List. */
	cr_assert_str_eq(ip0(svc("default", "kubernetes")), "10.96.0.1");
	cr_assert_eq(svc("kube-system", "kube-dns")->n_ports, 3);
	const struct kobj_service *fe = svc("shop", "shop-frontend");
	cr_assert_eq(fe->type, SVC_TYPE_LOAD_BALANCER);
	cr_assert_eq(fe->n_lb_ips, 1);
	cr_assert_eq(fe->external_policy, TRAFFIC_POLICY_LOCAL);
	cr_assert_eq(fe->health_check_node_port, 31544);
	cr_assert_str_eq(fe->ports[0].target_port_name, "http");
	cr_assert_str_eq(fe->source, DATA "/good/cluster-dump.yaml");
	const struct kobj_slice *fs = slice("shop", "shop-frontend-8h2kd");
	cr_assert_not_null(fs);
	cr_assert_eq(fs->n_endpoints, 2);
	cr_assert(fs->endpoints[1].terminating);
	cr_assert_eq(slice("kube-system", "kube-dns-vx9tq")->n_ports, 3);

	/* From the multi-document file. */
	cr_assert_eq(svc("default", "echo")->balance, BALANCE_LEAST_CONN);
	cr_assert(svc("default", "echo")->health.enabled);
	cr_assert_eq(slice("default", "echo-1")->n_endpoints, 2);
	cr_assert_str_eq(slice("default", "legacy:0:ipv4")->service_name, "legacy");

	/* From the JSON ServiceList (items without kind). */
	cr_assert_str_eq(ip0(svc("default", "web")), "10.96.3.3");
	cr_assert_str_eq(svc("default", "web")->source, DATA "/good/web.json");
}

Test(manifest_dir, load_mixed_good_and_bad)
{
	size_t rejected = 0;

	d = manifest_dir_new(DATA "/mixed", m, &opts);
	cr_assert_not_null(d);
	cr_assert_eq(manifest_dir_load(d, &rejected), 0);
	/* broken file (1) + ICMP service + slice without service-name label +
	 * a document that is a string + duplicate of default/web. */
	cr_assert_eq(rejected, 5);
	cr_assert_eq(manifest_dir_rejected(d), 5);
	cr_assert_str_eq(ip0(svc("default", "web")), "10.96.3.3", "first loaded wins");
	cr_assert_not_null(svc("default", "fine"));
	cr_assert_null(svc("default", "icmp"));
	cr_assert_null(svc("default", "broken"));
	cr_assert_not_null(slice("default", "fine-1"));
	cr_assert_eq(model_n_services(m), 2);
	cr_assert_eq(model_n_slices(m), 1);
}

Test(manifest_dir, missing_directory)
{
	d = manifest_dir_new(DATA "/does-not-exist", m, &opts);
	cr_assert_null(d);
	cr_assert_eq(errno, ENOENT);
	d = manifest_dir_new(DATA "/good/web.json", m, &opts);
	cr_assert_null(d);
	cr_assert_eq(errno, ENOTDIR);
}

/* --- Live changes in a scratch directory ---------------------------------------- */

static void make_tmp(void)
{
	cr_assert_not_null(mkdtemp(tmp));
	have_tmp = true;
}

static void write_file(const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	f = fopen(path, "w");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

/* Editors that save through a temporary name and rename over. */
static void write_atomic(const char *name, const char *text)
{
	char from[512], to[512];

	write_file(".tmp-save", text);
	snprintf(from, sizeof(from), "%s/.tmp-save", tmp);
	snprintf(to, sizeof(to), "%s/%s", tmp, name);
	cr_assert_eq(rename(from, to), 0);
}

static void remove_file(const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	cr_assert_eq(unlink(path), 0);
}

/* Wait (bounded) for events, apply them, and keep going until quiet. */
static bool settle(void)
{
	struct pollfd pfd = { .fd = manifest_dir_fd(d), .events = POLLIN };
	bool changed = false, c;
	int timeout = 2000;

	while (poll(&pfd, 1, timeout) > 0) {
		cr_assert_eq(manifest_dir_process_events(d, &c), 0);
		changed |= c;
		timeout = 50; /* debounce as the caller would */
	}
	return changed;
}

static void start(void)
{
	size_t rejected;

	d = manifest_dir_new(tmp, m, &opts);
	cr_assert_not_null(d);
	cr_assert_eq(manifest_dir_load(d, &rejected), 0);
}

#define SVC(name, ip) \
	"apiVersion: v1\nkind: Service\nmetadata: {name: " name "}\nspec: {clusterIP: " ip "}\n"
#define SLICE(name, svc, ip)                                                                 \
	"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: " name "\n" \
	"  labels: {kubernetes.io/service-name: " svc "}\naddressType: IPv4\n"                  \
	"endpoints: [{addresses: [" ip "]}]\nports: [{port: 80}]\n"

Test(manifest_dir, edit_in_place_upserts_and_deletes)
{
	make_tmp();
	write_file("app.yaml", SVC("a", "10.0.0.1") "---\n" SVC("b", "10.0.0.2") "---\n"
			       SLICE("a-1", "a", "10.1.0.1"));
	start();
	cr_assert_eq(model_n_services(m), 2);
	cr_assert_eq(model_n_slices(m), 1);

	write_file("app.yaml", SVC("a", "10.0.0.11") "---\n" SVC("c", "10.0.0.3"));
	cr_assert(settle());
	cr_assert_str_eq(ip0(svc("default", "a")), "10.0.0.11");
	cr_assert_null(svc("default", "b"), "dropped from the file");
	cr_assert_not_null(svc("default", "c"));
	cr_assert_null(slice("default", "a-1"));
	cr_assert_eq(manifest_dir_rejected(d), 0);
}

Test(manifest_dir, unchanged_rewrite_is_no_change)
{
	uint64_t gen;

	make_tmp();
	write_file("a.yaml", SVC("a", "10.0.0.1"));
	start();
	gen = model_generation(m);
	write_file("a.yaml", SVC("a", "10.0.0.1"));
	cr_assert_not(settle());
	cr_assert_eq(model_generation(m), gen);
	/* Nothing pending: cheap and harmless. */
	bool changed = true;
	cr_assert_eq(manifest_dir_process_events(d, &changed), 0);
	cr_assert_not(changed);
}

Test(manifest_dir, new_file_rename_over_and_delete)
{
	make_tmp();
	start();
	cr_assert_eq(model_n_services(m), 0);

	write_file("new.yaml", SVC("n", "10.0.0.5"));
	cr_assert(settle());
	cr_assert_str_eq(ip0(svc("default", "n")), "10.0.0.5");

	write_atomic("new.yaml", SVC("n", "10.0.0.6"));
	cr_assert(settle());
	cr_assert_str_eq(ip0(svc("default", "n")), "10.0.0.6");

	remove_file("new.yaml");
	cr_assert(settle());
	cr_assert_null(svc("default", "n"));
	cr_assert_eq(model_n_services(m), 0);
}

Test(manifest_dir, move_out_and_back_in)
{
	char from[512], to[512];

	make_tmp();
	write_file("x.yaml", SVC("x", "10.0.0.7"));
	start();
	cr_assert_not_null(svc("default", "x"));

	snprintf(from, sizeof(from), "%s/x.yaml", tmp);
	snprintf(to, sizeof(to), "%s/x.yaml.disabled", tmp);
	cr_assert_eq(rename(from, to), 0);
	cr_assert(settle());
	cr_assert_null(svc("default", "x"));

	cr_assert_eq(rename(to, from), 0);
	cr_assert(settle());
	cr_assert_not_null(svc("default", "x"));
}

Test(manifest_dir, broken_edit_keeps_previous_objects)
{
	size_t rejected;

	make_tmp();
	write_file("a.yaml", SVC("a", "10.0.0.1"));
	start();
	write_file("a.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: a\n");
	settle();
	cr_assert_str_eq(ip0(svc("default", "a")), "10.0.0.1", "kept through the bad save");
	cr_assert_eq(manifest_dir_rejected(d), 1);

	write_file("a.yaml", SVC("a", "10.0.0.2"));
	cr_assert(settle());
	cr_assert_str_eq(ip0(svc("default", "a")), "10.0.0.2");
	cr_assert_eq(manifest_dir_rejected(d), 0);

	/* A bad object only rejects itself. */
	write_file("a.yaml", SVC("a", "10.0.0.3") "---\n" SVC("b", "10.0.0.300"));
	cr_assert(settle());
	cr_assert_str_eq(ip0(svc("default", "a")), "10.0.0.3");
	cr_assert_null(svc("default", "b"));
	cr_assert_eq(manifest_dir_load(d, &rejected), 0);
	cr_assert_eq(rejected, 1);
}

Test(manifest_dir, duplicate_takes_over_when_winner_goes)
{
	make_tmp();
	write_file("1-first.yaml", SVC("dup", "10.0.0.1"));
	write_file("2-second.yaml", SVC("dup", "10.0.0.2") "---\n" SVC("other", "10.0.0.9"));
	start();
	cr_assert_str_eq(ip0(svc("default", "dup")), "10.0.0.1");
	cr_assert_not_null(svc("default", "other"));
	cr_assert_eq(manifest_dir_rejected(d), 1);

	remove_file("1-first.yaml");
	cr_assert(settle());
	cr_assert_str_eq(ip0(svc("default", "dup")), "10.0.0.2", "the other definition takes over");
	cr_assert_eq(manifest_dir_rejected(d), 0);

	/* Same object twice in one file: the first one stays. */
	write_file("2-second.yaml", SVC("dup", "10.0.0.3") "---\n" SVC("dup", "10.0.0.4"));
	cr_assert(settle());
	cr_assert_str_eq(ip0(svc("default", "dup")), "10.0.0.3");
	cr_assert_null(svc("default", "other"));
	cr_assert_eq(manifest_dir_rejected(d), 1);
}

Test(manifest_dir, ignored_names)
{
	make_tmp();
	start();
	write_file(".hidden.yaml", SVC("h", "10.0.0.1"));
	write_file("backup.yaml~", SVC("b", "10.0.0.2"));
	write_file("notes.txt", SVC("t", "10.0.0.3"));
	write_file(".app.yaml.swp", "garbage: [");
	cr_assert(mkdir(strcat(strcpy((char[512]){ 0 }, tmp), "/sub.yaml"), 0755) == 0);
	write_file("real.yml", SVC("r", "10.0.0.4"));
	settle();
	cr_assert_eq(model_n_services(m), 1);
	cr_assert_not_null(svc("default", "r"));
	cr_assert_eq(manifest_dir_rejected(d), 0);
}

Test(manifest_dir, symlinked_file)
{
	char target[512], link[512];

	make_tmp();
	start();
	snprintf(target, sizeof(target), "%s/.data-web.json", tmp);
	snprintf(link, sizeof(link), "%s/web.json", tmp);
	write_file(".data-web.json", "{\"apiVersion\": \"v1\", \"kind\": \"Service\", "
				     "\"metadata\": {\"name\": \"s\"}, \"spec\": {\"clusterIP\": \"10.0.0.8\"}}");
	cr_assert_eq(symlink(target, link), 0);
	cr_assert(settle());
	cr_assert_str_eq(ip0(svc("default", "s")), "10.0.0.8");
}

Test(manifest_dir, directory_removed_and_recreated)
{
	make_tmp();
	write_file("a.yaml", SVC("a", "10.0.0.1"));
	start();
	cr_assert_not_null(svc("default", "a"));

	rm_rf(tmp);
	cr_assert(settle());
	cr_assert_eq(model_n_services(m), 0);

	cr_assert_eq(mkdir(tmp, 0700), 0);
	settle();
	write_file("b.yaml", SVC("b", "10.0.0.2"));
	cr_assert(settle());
	cr_assert_not_null(svc("default", "b"));
}

/* --- Bad input keeps what works ------------------------------------------------------ */

/* Log lines (written to fd 2) captured around a few calls. */
static int saved_stderr = -1;
static char cap_path[600];
static char captured[65536];

static void capture_start(void)
{
	int fd;

	snprintf(cap_path, sizeof(cap_path), "%s.log", tmp);
	fd = open(cap_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	saved_stderr = dup(STDERR_FILENO);
	cr_assert_geq(saved_stderr, 0);
	cr_assert_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
}

/* Stop capturing; the log is in captured. */
static const char *capture_end(void)
{
	ssize_t n;
	int fd;

	cr_assert_eq(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
	close(saved_stderr);
	saved_stderr = -1;
	fd = open(cap_path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	n = read(fd, captured, sizeof(captured) - 1);
	cr_assert_geq(n, 0);
	captured[n] = '\0';
	close(fd);
	unlink(cap_path);
	return captured;
}

/* One log line holding all of the given words. */
static bool logged(const char *a, const char *b, const char *c, const char *e)
{
	for (const char *line = captured; *line;) {
		const char *end = strchrnul(line, '\n');
		char buf[1024];

		snprintf(buf, sizeof(buf), "%.*s", (int)(end - line), line);
		if (strstr(buf, a) && strstr(buf, b) && strstr(buf, c) && strstr(buf, e))
			return true;
		line = *end ? end + 1 : end;
	}
	return false;
}

#define SVC_FULL(name, ip, port, balance)                                                    \
	"apiVersion: v1\nkind: Service\nmetadata:\n  name: " name "\n"                         \
	"  annotations: {ferry.io/balance: " balance "}\n"                                     \
	"spec:\n  clusterIP: " ip "\n  ports:\n  - {name: http, port: " port "}\n"

Test(manifest_dir, invalid_new_version_keeps_the_previous_one)
{
	const struct kobj_service *s;
	size_t rejected;

	make_tmp();
	write_file("web.yaml", SVC_FULL("web", "10.0.0.1", "80", "round-robin") "---\n"
			       SLICE("web-1", "web", "10.1.0.1"));
	start();
	cr_assert_eq(manifest_dir_rejected(d), 0);

	/* A port out of range: the service stays as it was. */
	log_set_level(LOG_LEVEL_INFO);
	capture_start();
	write_file("web.yaml", SVC_FULL("web", "10.0.0.2", "80800", "round-robin") "---\n"
			       SLICE("web-1", "web", "10.1.0.1"));
	settle();
	capture_end();
	s = svc("default", "web");
	cr_assert_str_eq(ip0(s), "10.0.0.1", "the previous version stays");
	cr_assert_eq(s->ports[0].port, 80);
	cr_assert_not_null(slice("default", "web-1"));
	cr_assert_eq(manifest_dir_rejected(d), 1, "still counted as rejected");
	cr_assert(logged("web.yaml", "Service default/web", "spec.ports[0].port",
			 "keeping the previous version"), "log:\n%s", captured);

	/* An unknown balance algorithm: the same. */
	capture_start();
	write_file("web.yaml", SVC_FULL("web", "10.0.0.3", "81", "fastest") "---\n"
			       SLICE("web-1", "web", "10.1.0.1"));
	settle();
	capture_end();
	cr_assert_str_eq(ip0(svc("default", "web")), "10.0.0.1");
	cr_assert(logged("web.yaml", "Service default/web", "ferry.io/balance",
			 "keeping the previous version"), "log:\n%s", captured);

	/* An invalid slice keeps its previous endpoints too. */
	capture_start();
	write_file("web.yaml", SVC_FULL("web", "10.0.0.1", "80", "round-robin") "---\n"
			       SLICE("web-1", "web", "10.1.0.300"));
	settle();
	capture_end();
	cr_assert_not_null(slice("default", "web-1"));
	cr_assert_eq(slice("default", "web-1")->n_endpoints, 1);
	cr_assert_eq(slice("default", "web-1")->endpoints[0].addr.u.v4.s_addr, htonl(0x0a010001));
	cr_assert(logged("web.yaml", "EndpointSlice default/web-1", "endpoints[0].addresses[0]",
			 "keeping the previous version"), "log:\n%s", captured);

	/* Fixed: the new version applies. */
	write_file("web.yaml", SVC_FULL("web", "10.0.0.4", "8080", "least-conn") "---\n"
			       SLICE("web-1", "web", "10.1.0.2"));
	cr_assert(settle());
	s = svc("default", "web");
	cr_assert_str_eq(ip0(s), "10.0.0.4");
	cr_assert_eq(s->ports[0].port, 8080);
	cr_assert_eq(s->balance, BALANCE_LEAST_CONN);
	cr_assert_eq(slice("default", "web-1")->endpoints[0].addr.u.v4.s_addr, htonl(0x0a010002));
	cr_assert_eq(manifest_dir_rejected(d), 0);

	/* Invalid again, then gone from the file: it goes as before. */
	write_file("web.yaml", SVC_FULL("web", "10.0.0.5", "0", "least-conn"));
	settle();
	cr_assert_str_eq(ip0(svc("default", "web")), "10.0.0.4");
	cr_assert_null(slice("default", "web-1"), "dropped from the file");
	write_file("web.yaml", SVC("other", "10.0.0.6"));
	cr_assert(settle());
	cr_assert_null(svc("default", "web"));
	cr_assert_eq(manifest_dir_load(d, &rejected), 0);
	cr_assert_eq(rejected, 0);
	log_set_level(LOG_LEVEL_ERROR);
}

Test(manifest_dir, invalid_version_keeps_only_its_own_file)
{
	make_tmp();
	/* Never valid: nothing to keep, skipped as before. */
	write_file("a.yaml", SVC_FULL("a", "10.0.0.1", "70000", "round-robin"));
	start();
	cr_assert_null(svc("default", "a"));
	cr_assert_eq(manifest_dir_rejected(d), 1);

	/* Another file's object is not this file's previous version. */
	write_file("b.yaml", SVC("b", "10.0.0.2"));
	cr_assert(settle());
	write_file("a.yaml", SVC_FULL("b", "10.0.0.3", "70000", "round-robin"));
	settle();
	cr_assert_str_eq(ip0(svc("default", "b")), "10.0.0.2");
	remove_file("b.yaml");
	cr_assert(settle());
	cr_assert_null(svc("default", "b"), "a.yaml never had a valid b to keep");
}

#define ENDPOINTS(name, ip, port)                                                            \
	"apiVersion: v1\nkind: Endpoints\nmetadata: {name: " name "}\n"                       \
	"subsets: [{addresses: [{ip: " ip "}], ports: [{port: " port "}]}]\n"

Test(manifest_dir, invalid_endpoints_keeps_its_slices)
{
	make_tmp();
	write_file("ep.yaml", ENDPOINTS("legacy", "10.2.0.1", "80") "---\n"
			      ENDPOINTS("other", "10.2.0.9", "80"));
	start();
	cr_assert_not_null(slice("default", "legacy:0:ipv4"));
	write_file("ep.yaml", ENDPOINTS("legacy", "10.2.0.1", "99999"));
	settle();
	cr_assert_not_null(slice("default", "legacy:0:ipv4"), "kept");
	cr_assert_null(slice("default", "other:0:ipv4"), "dropped from the file");
	cr_assert_eq(manifest_dir_rejected(d), 1);
	write_file("ep.yaml", ENDPOINTS("legacy", "10.2.0.2", "80"));
	cr_assert(settle());
	cr_assert_eq(slice("default", "legacy:0:ipv4")->endpoints[0].addr.u.v4.s_addr,
		     htonl(0x0a020002));
}

Test(manifest_dir, unparsable_list_keeps_every_object)
{
	make_tmp();
	write_file("dump.yaml", "apiVersion: v1\nitems:\n"
				"- {apiVersion: v1, kind: Service, metadata: {name: a}, spec: {clusterIP: 10.0.0.1}}\n"
				"- {apiVersion: v1, kind: Service, metadata: {name: b}, spec: {clusterIP: 10.0.0.2}}\n"
				"kind: List\n");
	start();
	cr_assert_eq(model_n_services(m), 2);
	/* Cut short in the middle of the second item, after the first one. */
	write_file("dump.yaml", "apiVersion: v1\nitems:\n"
				"- {apiVersion: v1, kind: Service, metadata: {name: a}, spec: {clusterIP: 10.0.0.9}}\n"
				"- {apiVersion: v1, kind: Service, metadata: {name: b}, spec: {clu\n");
	settle();
	cr_assert_eq(model_n_services(m), 2);
	cr_assert_str_eq(ip0(svc("default", "a")), "10.0.0.1", "nothing of a broken file applies");
	cr_assert_eq(manifest_dir_rejected(d), 1);

	/* A full re-read (SIGHUP) keeps them too. */
	size_t rejected;
	cr_assert_eq(manifest_dir_reload(d, &rejected), 0);
	cr_assert_eq(rejected, 1);
	cr_assert_eq(model_n_services(m), 2);
}

Test(manifest_dir, nameless_rejected_document_keeps_every_object)
{
	make_tmp();
	write_file("a.yaml", SVC("a", "10.0.0.1") "---\n" SVC("b", "10.0.0.2"));
	start();
	/* A dump cut short before "kind: List" is valid YAML without a kind. */
	write_file("a.yaml", SVC("a", "10.0.0.3") "---\napiVersion: v1\nitems:\n"
			     "- {apiVersion: v1, kind: Service, metadata: {name: c}, spec: {clusterIP: 10.0.0.4}}\n");
	settle();
	cr_assert_str_eq(ip0(svc("default", "a")), "10.0.0.3", "valid versions apply");
	cr_assert_str_eq(ip0(svc("default", "b")), "10.0.0.2", "b may be hidden: kept");
	cr_assert_null(svc("default", "c"));
	cr_assert_eq(manifest_dir_rejected(d), 1);
	write_file("a.yaml", SVC("a", "10.0.0.3"));
	cr_assert(settle());
	cr_assert_null(svc("default", "b"), "gone once nothing can hide it");
	cr_assert_eq(manifest_dir_rejected(d), 0);
}

Test(manifest_dir, list_items_streamed_only_from_lists)
{
	make_tmp();
	/* kubectl's order (kind after items), a ServiceList with items
	 * without kind, and a kind that is no list: its items are not objects. */
	write_file("l.yaml", "apiVersion: v1\nitems:\n"
			     "- {apiVersion: v1, kind: Service, metadata: {name: a}, spec: {clusterIP: 10.0.0.1}}\n"
			     "kind: List\nmetadata: {resourceVersion: \"\"}\n"
			     "---\n"
			     "apiVersion: v1\nkind: ServiceList\nitems:\n"
			     "- {metadata: {name: b}, spec: {clusterIP: 10.0.0.2}}\n"
			     "---\n"
			     "apiVersion: example.com/v1\nitems:\n"
			     "- {apiVersion: v1, kind: Service, metadata: {name: c}, spec: {clusterIP: 10.0.0.3}}\n"
			     "kind: Widget\n"
			     "---\n"
			     "apiVersion: v1\nitems:\n"
			     "- {apiVersion: v1, kind: Service, metadata: {name: d}, spec: {clusterIP: 10.0.0.4}}\n");
	start();
	cr_assert_not_null(svc("default", "a"));
	cr_assert_not_null(svc("default", "b"));
	cr_assert_null(svc("default", "c"), "items of a Widget are not loaded");
	cr_assert_null(svc("default", "d"), "a document without kind is rejected");
	cr_assert_eq(model_n_services(m), 2);
	cr_assert_eq(manifest_dir_rejected(d), 1);
}

/* Peak resident memory of this process, in bytes. */
static size_t max_rss(void)
{
	struct rusage ru;

	cr_assert_eq(getrusage(RUSAGE_SELF, &ru), 0);
	return (size_t)ru.ru_maxrss * 1024;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

/* The input of issue 14: an endpoint with 100 addresses and 64 zone hints,
 * anchored and aliased 3,000 times, about 17 KB. Each alias decodes to 6,400
 * entries; without a bound on the work this reached 800 MB. */
static void write_amplifier(const char *name, unsigned aliases)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
	      "metadata: {name: amp, labels: {kubernetes.io/service-name: amp}}\n"
	      "addressType: IPv4\nports: [{port: 80}]\nendpoints:\n- &e\n  addresses: [", f);
	for (int i = 0; i < 100; i++)
		fprintf(f, "%s10.9.0.%d", i ? "," : "", i + 1);
	fputs("]\n  hints:\n    forZones: [", f);
	for (int i = 0; i < 64; i++)
		fprintf(f, "%s{name: z%d}", i ? "," : "", i);
	fputs("]\n", f);
	for (unsigned i = 0; i < aliases; i++)
		fputs("- *e\n", f);
	cr_assert_eq(fclose(f), 0);
}

Test(manifest_dir, alias_amplification_is_bounded, .timeout = 60)
{
	size_t rss0, rejected = 0;
	struct stat st;
	char path[512];
	double t0, dt;

	make_tmp();
	write_amplifier("amp.yaml", 3000);
	snprintf(path, sizeof(path), "%s/amp.yaml", tmp);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_lt(st.st_size, 20000, "%lld bytes", (long long)st.st_size);
	write_file("ok.yaml", SVC("ok", "10.0.0.1"));

	rss0 = max_rss();
	t0 = now_s();
	capture_start();
	d = manifest_dir_new(tmp, m, &opts);
	cr_assert_not_null(d);
	cr_assert_eq(manifest_dir_load(d, &rejected), 0);
	capture_end();
	dt = now_s() - t0;
	cr_assert_eq(rejected, 1, "the file is refused");
	cr_assert_null(slice("default", "amp"));
	cr_assert_not_null(svc("default", "ok"), "other files load");
	cr_assert(logged("amp.yaml", "aliases expand to more than", "no objects loaded", ""),
		  "log:\n%s", captured);
	cr_assert_lt(dt, SANITIZED ? 5.0 : 1.0, "took %.2f s", dt);
	cr_assert_lt(max_rss() - rss0, (size_t)64 << 20, "peak RSS grew by %zu MB",
		     (max_rss() - rss0) >> 20);
}

Test(manifest_dir, decode_work_is_bounded)
{
	size_t rejected = 0;

	make_tmp();
	/* 200 aliases stay within the alias bound (about 300 nodes each) but
	 * would decode into 1.3 million entries. */
	write_amplifier("amp.yaml", 200);
	/* The same endpoint once, without aliases, is fine. */
	write_amplifier("one.yaml", 0);
	capture_start();
	d = manifest_dir_new(tmp, m, &opts);
	cr_assert_not_null(d);
	cr_assert_eq(manifest_dir_load(d, &rejected), 0);
	capture_end();
	cr_assert_eq(rejected, 1);
	cr_assert(logged("amp.yaml", "model entries", "aliases", "no objects loaded"), "log:\n%s",
		  captured);
	cr_assert_not_null(slice("default", "amp"), "from one.yaml");
	cr_assert_eq(slice("default", "amp")->n_endpoints, 100);
	cr_assert_eq(slice("default", "amp")->endpoints[99].n_hint_zones, 64);
}

/* Over 16 MiB, the way `kubectl get svc -A -o yaml` writes it. */
Test(manifest_dir, big_file_loads_whole, .timeout = 110)
{
	const unsigned n = 30000;
	size_t rss0, rejected = 99;
	char path[512];
	struct stat st;
	FILE *f;

	make_tmp();
	snprintf(path, sizeof(path), "%s/dump.yaml", tmp);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("apiVersion: v1\nitems:\n", f);
	for (unsigned i = 0; i < n; i++)
		fprintf(f,
			"- apiVersion: v1\n  kind: Service\n  metadata:\n"
			"    annotations:\n      example.com/owner: team-%05u-with-a-longer-annotation-value\n"
			"    creationTimestamp: \"2026-01-01T00:00:00Z\"\n"
			"    labels: {app: svc-%05u, tier: backend}\n"
			"    name: svc-%05u\n    namespace: ns-%02u\n"
			"    resourceVersion: \"%u\"\n    uid: 0b9d1f3e-7c2a-4e55-9f1d-%012u\n"
			"  spec:\n    clusterIP: 10.%u.%u.%u\n    clusterIPs:\n    - 10.%u.%u.%u\n"
			"    internalTrafficPolicy: Cluster\n    ipFamilies:\n    - IPv4\n"
			"    ipFamilyPolicy: SingleStack\n    ports:\n"
			"    - name: http\n      port: 80\n      protocol: TCP\n      targetPort: 8080\n"
			"    selector: {app: svc-%05u}\n    sessionAffinity: None\n    type: ClusterIP\n"
			"  status:\n    loadBalancer: {}\n",
			i, i, i, i % 40, 1000 + i, i, 96 + i / 65536, (i / 256) % 256, i % 256,
			96 + i / 65536, (i / 256) % 256, i % 256, i);
	fputs("kind: List\nmetadata:\n  resourceVersion: \"\"\n", f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_gt(st.st_size, 16 << 20, "only %lld bytes", (long long)st.st_size);

	rss0 = max_rss();
	d = manifest_dir_new(tmp, m, &opts);
	cr_assert_not_null(d);
	cr_assert_eq(manifest_dir_load(d, &rejected), 0);
	cr_assert_eq(rejected, 0);
	cr_assert_eq(model_n_services(m), n);
	cr_assert_str_eq(ip0(svc("ns-39", "svc-29999")), "10.96.117.47");
	cr_assert_eq(svc("ns-00", "svc-00000")->ports[0].target_port, 8080);
	/* Memory follows the model, not the text: the whole file as jansson
	 * values would be several times its size. */
	if (!SANITIZED)
		cr_assert_lt(max_rss() - rss0, (size_t)st.st_size * 2, "peak RSS grew by %zu MB for %lld MB",
			     (max_rss() - rss0) >> 20, (long long)st.st_size >> 20);
}
