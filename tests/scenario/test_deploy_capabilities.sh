#!/bin/bash
# deploy/daemonset.yaml runs ferry unprivileged, with only the capabilities
# its container adds (NET_ADMIN, NET_RAW, NET_BIND_SERVICE). Those must be
# enough: ferry run under exactly that capability set (root, bounding set
# restricted, no_new_privs, as a container runtime starts it) programs the
# nftables backend and a client reaches a cluster IP through it; the
# userspace backend binds a service port below 1024. Without NET_ADMIN the
# nftables backend fails to start, so the restriction is real.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nft_topo.sh"
lib_init deploy_capabilities
command -v nft >/dev/null || skip "the nft command is not installed"
command -v setpriv >/dev/null || skip "setpriv (util-linux) is not installed"
DEPLOY=$FERRY_TESTS_DIR/../deploy
[ -f "$DEPLOY/daemonset.yaml" ] || fail "no deploy/daemonset.yaml"

# The capabilities the DaemonSet adds, read from the manifest itself.
PY=
for p in python3 /usr/bin/python3; do
	if command -v "$p" >/dev/null && "$p" -c 'import yaml' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || fail "python3 with the yaml module is needed (scripts/install-deps.sh installs python3-yaml)"
caps=$("$PY" -c '
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d.get("kind") == "DaemonSet":
        for c in d["spec"]["template"]["spec"]["containers"]:
            if c["name"] == "ferry":
                print(",".join("+" + x.lower() for x in c["securityContext"]["capabilities"]["add"]))
' "$DEPLOY/daemonset.yaml") || fail "cannot read the DaemonSet's capabilities"
[ -n "$caps" ] || fail "the DaemonSet adds no capabilities"
say "the DaemonSet's capabilities: $caps"

# FERRY_BIN under exactly those capabilities.
wrap() { # wrap FILE CAPS
	printf '#!/bin/sh\nexec setpriv --no-new-privs --bounding-set=-all%s --inh-caps=-all -- %q "$@"\n' \
		"${2:+,$2}" "$REAL_FERRY" >"$1"
	chmod +x "$1"
}
REAL_FERRY=$FERRY_BIN
wrap "$T/ferry-caps" "$caps"
wrap "$T/ferry-nonetadmin" "$(tr ',' '\n' <<<"$caps" | grep -vx '+net_admin' | paste -sd,)"

nft_topo
echo_start "$B" b1 10.0.2.2:9000
svc_yaml "$T/manifests/svc.yaml" web ip=10.96.0.10 ports=http/TCP/80/9000
eps_yaml "$T/manifests/eps.yaml" web-1 web http/TCP/9000 -- 10.0.2.2

say "nftables without NET_ADMIN: refused"
ip netns exec "$N" "$T/ferry-nonetadmin" run --source "dir:$T/manifests" --backend nftables \
	>"$T/nonetadmin.log" 2>&1 &
pid=$!
LIB_PIDS+=("$pid")
for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "ferry ran the nftables backend without NET_ADMIN: $(tail -5 "$T/nonetadmin.log")"
wait "$pid"
rc=$?
[ "$rc" != 0 ] || fail "ferry without NET_ADMIN exited 0"
ip netns exec "$N" nft list table ip ferry >/dev/null 2>&1 && fail "ip ferry exists after a run without NET_ADMIN"
say "  exit $rc: $(grep -m1 -iE 'error|denied|permitted' "$T/nonetadmin.log")"

say "nftables with the DaemonSet's capabilities"
FERRY_BIN=$T/ferry-caps nft_ferry_start
eff=$(awk '/^CapEff/{print $2}' "/proc/$FERRY_PID/status")
bnd=$(awk '/^CapBnd/{print $2}' "/proc/$FERRY_PID/status")
want=$(printf '%016x' $(( (1 << 10) | (1 << 12) | (1 << 13) )))  # NET_BIND_SERVICE, NET_ADMIN, NET_RAW
# Without CAP_SETPCAP the bounding set stays the container's; once started,
# the nftables backend keeps NET_ADMIN and NET_RAW (privileges.h).
[ "$bnd" = "$want" ] || fail "ferry's bounding set is $bnd, not $want"
want=$(printf '%016x' $(( (1 << 12) | (1 << 13) )))
[ "$eff" = "$want" ] || fail "ferry's effective capabilities are $eff, not $want"
got=$(answer_of "$C" tcp 10.96.0.10:80)
[ "${got%% *}" = b1 ] || fail "10.96.0.10:80 answered '$got', not b1"
say "  CapEff $eff; 10.96.0.10:80 -> $got"
kill -TERM "$FERRY_PID"
wait "$FERRY_PID" 2>/dev/null
rc=$?
[ "$rc" = 0 ] || fail "ferry exited $rc on SIGTERM"
ip netns exec "$N" "$T/ferry-caps" cleanup --backend nftables >"$T/cleanup.log" 2>&1 ||
	fail "ferry cleanup failed with the DaemonSet's capabilities: $(cat "$T/cleanup.log")"
ip netns exec "$N" nft list table ip ferry >/dev/null 2>&1 && fail "ip ferry survived ferry cleanup"

say "userspace binds a port below 1024 with the DaemonSet's capabilities"
ip -n "$N" addr add 10.0.9.1/32 dev lo || fail "cannot add 10.0.9.1 on N"
svc_yaml "$T/manifests/svc.yaml" web ip=10.0.9.1 ports=http/TCP/80/9000
FERRY_LOG=$T/ferry-userspace.log
bg_start "$N" "$FERRY_LOG" "$T/ferry-caps" run --source "dir:$T/manifests" --backend userspace
FERRY_PID=$BG_PID
ok=
for i in $(seq 1 50); do
	if probe "$C" tcp 10.0.9.1:80 --timeout-ms 300 >"$T/us.out" 2>&1; then ok=1; break; fi
	kill -0 "$FERRY_PID" 2>/dev/null || fail "ferry (userspace) died"
	sleep 0.1
done
[ -n "$ok" ] || fail "10.0.9.1:80 (userspace) did not answer: $(cat "$T/us.out")"
say "  10.0.9.1:80 -> $(cat "$T/us.out")"
pass
