#!/bin/bash
# deploy/ and the install rules (issue 11): every YAML document under deploy/
# parses and names its apiVersion, kind and metadata.name; the DaemonSet has
# kube-proxy's shape (host network, system-node-critical, every taint
# tolerated, the ConfigMap at /var/lib/kube-proxy, liveness on /livez:10256,
# capabilities instead of privileged); the ClusterRole grants what ferry
# watches; the ConfigMap's config.conf is accepted by `ferry plan --config`
# (when this ferry has --config); `cmake --install` puts bin/ferry and
# share/man/man8/ferry.8 under a prefix and the page renders; the systemd unit
# passes `systemd-analyze verify`; the Containerfile's runtime stage installs
# the packages of every library the binary links.
#
# Needs no root and no network namespace: it reads files and runs ferry plan.
NAME=deploy_manifests
say() { printf '%s: %s\n' "$NAME" "$*"; }
fail() { printf '%s: FAIL: %s\n' "$NAME" "$*"; exit 1; }

TESTS_DIR=${FERRY_TESTS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
SRC=$(cd "$TESTS_DIR/.." && pwd)
DEPLOY=$SRC/deploy
FERRY_BIN=${FERRY_BIN:-$SRC/build/ferry}
[ -x "$FERRY_BIN" ] || fail "FERRY_BIN ('$FERRY_BIN') is not an executable"
[ -d "$DEPLOY" ] || fail "no deploy/ at $DEPLOY"
T=$(mktemp -d "/tmp/ferry-$NAME.XXXXXX") || fail "mktemp"
trap 'rm -rf "$T"' EXIT

# python3 with the yaml module (python3-yaml, scripts/install-deps.sh).
PY=
for p in python3 /usr/bin/python3; do
	if command -v "$p" >/dev/null && "$p" -c 'import yaml' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || fail "python3 with the yaml module is needed (apt-get install python3-yaml; scripts/install-deps.sh does)"

say "every YAML document under deploy/ parses; the objects have kube-proxy's shape"
"$PY" - "$DEPLOY" "$T" <<'PYEOF' || fail "deploy/ manifests (see above)"
import glob, os, sys, yaml

deploy, out = sys.argv[1], sys.argv[2]
errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)

objs = {}
files = sorted(glob.glob(os.path.join(deploy, "*.yaml")) + glob.glob(os.path.join(deploy, "*.yml")))
if not files:
    print("no YAML files under deploy/"); sys.exit(1)
for f in files:
    try:
        docs = [d for d in yaml.safe_load_all(open(f)) if d is not None]
    except yaml.YAMLError as e:
        print(f"{f}: does not parse: {e}"); sys.exit(1)
    check(docs, f"{f}: no document")
    for i, d in enumerate(docs):
        where = f"{os.path.basename(f)} document {i}"
        if not isinstance(d, dict):
            errors.append(f"{where}: not a mapping"); continue
        for k in ("apiVersion", "kind"):
            check(isinstance(d.get(k), str) and d[k], f"{where}: no {k}")
        name = (d.get("metadata") or {}).get("name")
        check(isinstance(name, str) and name, f"{where}: no metadata.name")
        objs.setdefault(d.get("kind"), []).append(d)
        print(f"  {os.path.basename(f)}: {d.get('apiVersion')} {d.get('kind')} {name}")

for kind in ("DaemonSet", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap"):
    check(len(objs.get(kind, [])) == 1, f"expected one {kind}, found {len(objs.get(kind, []))}")
if errors:
    print("\n".join(errors)); sys.exit(1)

ds, sa, cr, crb, cm = (objs[k][0] for k in ("DaemonSet", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap"))
check(ds["apiVersion"] == "apps/v1", "DaemonSet: apiVersion is not apps/v1")
pod = ds["spec"]["template"]["spec"]
check(ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items(),
      "DaemonSet: selector does not match the template's labels")
check(pod.get("hostNetwork") is True, "DaemonSet: hostNetwork is not true")
check(pod.get("priorityClassName") == "system-node-critical", "DaemonSet: priorityClassName is not system-node-critical")
check(any(t.get("operator") == "Exists" and "key" not in t and "effect" not in t for t in pod.get("tolerations", [])),
      "DaemonSet: no toleration `operator: Exists` (every taint)")
check(pod.get("dnsPolicy") != "ClusterFirstWithHostNet",
      "DaemonSet: dnsPolicy ClusterFirstWithHostNet needs the cluster DNS's service IP, which ferry itself programs")
check(pod.get("serviceAccountName") == sa["metadata"]["name"], "DaemonSet: serviceAccountName is not the ServiceAccount")
c = [c for c in pod["containers"] if c["name"] == "ferry"]
check(len(c) == 1, "DaemonSet: no container named ferry")
c = c[0]
probe = (c.get("livenessProbe") or {}).get("httpGet") or {}
check(probe.get("path") == "/livez" and probe.get("port") == 10256, "DaemonSet: liveness probe is not GET /livez on 10256")
sc = c.get("securityContext") or {}
check(not sc.get("privileged"), "DaemonSet: the container is privileged")
caps = set((sc.get("capabilities") or {}).get("add") or [])
check({"NET_ADMIN", "NET_RAW"} <= caps, f"DaemonSet: capabilities {sorted(caps)} lack NET_ADMIN/NET_RAW")
check(caps <= {"NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"}, f"DaemonSet: capabilities beyond ferry's needs: {sorted(caps)}")
vols = {v["name"]: v for v in pod.get("volumes", [])}
mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
m = mounts.get("/var/lib/kube-proxy")
check(m is not None, "DaemonSet: nothing mounted at /var/lib/kube-proxy")
if m:
    v = vols.get(m["name"]) or {}
    check((v.get("configMap") or {}).get("name") == cm["metadata"]["name"],
          "DaemonSet: /var/lib/kube-proxy is not the ConfigMap")
check("/run/ferry" in mounts, "DaemonSet: /run/ferry (the run lock) not mounted")
cmd = (c.get("command") or []) + (c.get("args") or [])
check("run" in cmd, "DaemonSet: the container does not run `ferry run`")
check("--config=/var/lib/kube-proxy/config.conf" in cmd, "DaemonSet: not started with --config=/var/lib/kube-proxy/config.conf")
check("--hostname-override=$(NODE_NAME)" in cmd, "DaemonSet: no --hostname-override=$(NODE_NAME)")
for a in cmd:
    if a.startswith("--kubeconfig="):
        check(a.startswith("--kubeconfig=/var/lib/kube-proxy/") and a.split("/")[-1] in cm["data"],
              f"DaemonSet: {a} is not a key of the ConfigMap")
env = {e["name"]: e for e in c.get("env", [])}
check(((env.get("NODE_NAME") or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName",
      "DaemonSet: NODE_NAME is not spec.nodeName")

# RBAC: list/watch on what ferry watches; create events.
def allowed(group, resource, verb):
    return any(group in r.get("apiGroups", []) and resource in r.get("resources", []) and verb in r.get("verbs", [])
               for r in cr.get("rules", []))
for group, res in (("", "services"), ("", "endpoints"), ("", "nodes"),
                   ("discovery.k8s.io", "endpointslices"), ("networking.k8s.io", "servicecidrs")):
    for verb in ("list", "watch"):
        check(allowed(group, res, verb), f"ClusterRole: no {verb} on {group or 'core'}/{res}")
check(allowed("", "events", "create") or allowed("events.k8s.io", "events", "create"), "ClusterRole: no create on events")
check(crb["roleRef"]["name"] == cr["metadata"]["name"] and crb["roleRef"]["kind"] == "ClusterRole",
      "ClusterRoleBinding: does not bind the ClusterRole")
check(any(s.get("kind") == "ServiceAccount" and s.get("name") == sa["metadata"]["name"]
          and s.get("namespace") == sa["metadata"].get("namespace") for s in crb.get("subjects", [])),
      "ClusterRoleBinding: does not name the ServiceAccount")
check(ds["metadata"].get("namespace") == sa["metadata"].get("namespace") == cm["metadata"].get("namespace"),
      "DaemonSet, ServiceAccount and ConfigMap are not in one namespace")

# The ConfigMap's configuration.
conf = (cm.get("data") or {}).get("config.conf")
check(isinstance(conf, str), "ConfigMap: no config.conf")
if isinstance(conf, str):
    kpc = yaml.safe_load(conf)
    check(kpc.get("apiVersion") == "kubeproxy.config.k8s.io/v1alpha1" and kpc.get("kind") == "KubeProxyConfiguration",
          "config.conf is not a kubeproxy.config.k8s.io/v1alpha1 KubeProxyConfiguration")
    check(kpc.get("healthzBindAddress", "").endswith(":10256"), "config.conf: healthzBindAddress is not on 10256")
    open(os.path.join(out, "config.conf"), "w").write(conf)
kc = (cm.get("data") or {}).get("kubeconfig.conf")
if kc is not None:
    check(yaml.safe_load(kc).get("kind") == "Config", "ConfigMap: kubeconfig.conf is not a kubeconfig")

if errors:
    print("\n".join(errors)); sys.exit(1)
PYEOF

say "ferry plan --config on the ConfigMap's config.conf"
if "$FERRY_BIN" plan --help 2>&1 | grep -q -- '--config'; then
	"$FERRY_BIN" plan --config "$T/config.conf" --source "dir:$SRC/examples/demo" --format text \
		>"$T/plan.out" 2>"$T/plan.err"
	rc=$?
	[ "$rc" = 0 ] || fail "ferry plan --config rejects deploy/configmap.yaml's config.conf (exit $rc): $(cat "$T/plan.err")"
	grep -q 127.0.0.10 "$T/plan.out" || fail "ferry plan --config did not plan the demo: $(head -20 "$T/plan.out")"
	# The ConfigMap keeps to fields ferry implements: no warning about any.
	! grep -qw warn "$T/plan.err" || fail "ferry plan --config warns on config.conf: $(grep -w warn "$T/plan.err")"
	say "  accepted"
else
	say "  SKIPPED: this ferry's plan has no --config yet; config.conf not checked by ferry"
fi

say "cmake --install into a temporary prefix"
BUILD=$(dirname "$FERRY_BIN")
[ -f "$BUILD/CMakeCache.txt" ] || fail "no CMake build tree at $BUILD (FERRY_BIN's directory)"
cmake --install "$BUILD" --prefix "$T/prefix" >"$T/install.log" 2>&1 || fail "cmake --install: $(cat "$T/install.log")"
[ -x "$T/prefix/bin/ferry" ] || fail "cmake --install did not install bin/ferry: $(cat "$T/install.log")"
[ -f "$T/prefix/share/man/man8/ferry.8" ] || fail "cmake --install did not install share/man/man8/ferry.8: $(cat "$T/install.log")"
"$T/prefix/bin/ferry" version >"$T/version.out" 2>&1 || fail "the installed ferry does not run: $(cat "$T/version.out")"
say "  $(head -1 "$T/version.out")"

say "the manual page ferry(8)"
for s in NAME SYNOPSIS DESCRIPTION COMMANDS OPTIONS FILES 'EXIT STATUS' 'SEE ALSO'; do
	grep -q "^\.SH \"\?$s\"\?\$" "$T/prefix/share/man/man8/ferry.8" || fail "ferry.8 has no section $s"
done
if command -v groff >/dev/null; then
	groff -man -Tutf8 -ww -z "$T/prefix/share/man/man8/ferry.8" >"$T/groff.out" 2>&1
	[ ! -s "$T/groff.out" ] || fail "groff warns on ferry.8: $(cat "$T/groff.out")"
	groff -man -Tutf8 "$T/prefix/share/man/man8/ferry.8" 2>/dev/null | grep -q "ferry - " ||
		fail "ferry.8 does not render a NAME line"
	say "  renders without warnings (groff -ww)"
else
	say "  groff not installed: rendering not checked"
fi

say "systemd unit deploy/ferry.service"
if command -v systemd-analyze >/dev/null; then
	# verify wants ExecStart's binary to exist: point it at the installed one.
	mkdir -p "$T/unit"
	sed "s|/usr/local/bin/ferry|$T/prefix/bin/ferry|g" "$DEPLOY/ferry.service" >"$T/unit/ferry.service"
	SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$T/unit/ferry.service" >"$T/verify.out" 2>&1
	rc=$?
	# Complaints about the host's own units (a container's systemd) are not ours.
	grep -i "ferry.service" "$T/verify.out" >"$T/verify.ours"
	if [ "$rc" != 0 ] || [ -s "$T/verify.ours" ]; then
		fail "systemd-analyze verify (exit $rc): $(cat "$T/verify.out")"
	fi
	say "  systemd-analyze verify passes"
else
	say "  SKIPPED: systemd-analyze not installed"
fi
grep -q '^ExecStart=/usr/local/bin/ferry run --source dir:/etc/ferry/manifests' "$DEPLOY/ferry.service" ||
	fail "ferry.service does not run ferry on /etc/ferry/manifests"
grep -q '^Restart=on-failure' "$DEPLOY/ferry.service" || fail "ferry.service lacks Restart=on-failure"

say "Containerfile: Debian 12 stages; runtime packages cover the binary's libraries"
CF=$DEPLOY/Containerfile
[ -f "$CF" ] || fail "no deploy/Containerfile"
grep -q '^FROM debian:12 AS build' "$CF" || fail "Containerfile: no debian:12 build stage"
grep -q '^FROM debian:12' <(grep '^FROM' "$CF" | tail -1) || fail "Containerfile: the runtime stage is not Debian 12"
if command -v dpkg >/dev/null && command -v ldd >/dev/null && command -v readelf >/dev/null; then
	runtime=$(awk '/^FROM/{n++} n==2' "$CF")
	# The libraries the binary names itself (DT_NEEDED); theirs come with
	# their packages' dependencies.
	for soname in $(readelf -d "$FERRY_BIN" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		lib=$(ldd "$FERRY_BIN" | awk -v n="$soname" '$1 == n {print $3}')
		[ -n "$lib" ] || fail "ldd does not resolve $soname"
		real=$(readlink -f "$lib")
		pkg=$(dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null || dpkg -S "$lib" 2>/dev/null)
		pkg=${pkg%%:*}
		[ -n "$pkg" ] || { say "  $soname: owning package unknown, not checked"; continue; }
		case $pkg in libc6|libgcc-s1|libasan*|libubsan*|liblsan*) continue ;; esac  # in every image; sanitizer builds
		grep -qw -- "$pkg" <<<"$runtime" || fail "Containerfile's runtime stage lacks $pkg (for $soname)"
		say "  $soname: $pkg"
	done
else
	say "  dpkg, ldd or readelf missing: runtime packages not checked"
fi

say "PASS"
