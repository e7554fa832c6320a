/* manifest_dir: loading fixture directories, then following edits, renames,
 * deletions and duplicates in a scratch directory through inotify. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

Test(manifest_dir, oversized_file_refused)
{
	char path[512];
	int fd;

	make_tmp();
	snprintf(path, sizeof(path), "%s/huge.yaml", tmp);
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, MANIFEST_DIR_MAX_FILE + 1), 0);
	close(fd);
	start();
	cr_assert_eq(manifest_dir_rejected(d), 1);
	cr_assert_eq(model_n_services(m), 0);
}
