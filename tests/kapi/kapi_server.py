#!/usr/bin/env python3
"""A small Kubernetes API server for ferry's tests.

It speaks the parts of the real wire protocol that an informer uses:
  GET /api/v1/services, /api/v1/endpoints, /api/v1/nodes,
      /apis/discovery.k8s.io/v1/endpointslices,
      /apis/networking.k8s.io/v1/servicecidrs
    list:  limit / continue (snapshots kept per continue token),
           labelSelector, fieldSelector (metadata.name, metadata.namespace),
           metadata.resourceVersion of the list
    watch: watch=1&resourceVersion=RV[&allowWatchBookmarks=true]
           [&timeoutSeconds=N]: newline-delimited JSON events (ADDED,
           MODIFIED, DELETED, BOOKMARK, ERROR) in a chunked HTTP/1.1
           response; an object leaving a selector is sent as DELETED.
  410 Gone for a watch from a resourceVersion older than the last
  compaction, either as the HTTP status or as an ERROR event (gone_mode);
  bearer-token checks (401), optional TLS (--cert/--key), slow responses,
  forced failures (status + Retry-After), mid-stream disconnects.

Test control (no token needed; the server listens on 127.0.0.1 only):
  POST /_control/apply   {"objects": [obj, ...]}   create or replace
  POST /_control/delete  {"kind", "namespace", "name"}
  POST /_control/compact {}   forget history: older watches get 410
  POST /_control/drop    {}   cut every watch stream mid-response
  POST /_control/config  {"token", "slow_ms", "gone_mode": "status"|"event",
                          "bookmark_ms", "fail": {"status", "count",
                          "retry_after", "path"}, "disable": [kind...]}
  POST /_control/raw     {"kind", "line"}   send a raw line to watches
  POST /_control/config  {"hostile": {...}}  a broken or hostile server (the
                          whole set replaced; {} turns it off):
      "watch": "bookmark_close"   every watch sends one BOOKMARK and ends
               "added_then_gone"  every watch sends one ADDED (an existing
                                  object, if any) then an ERROR 410
      "list":  "continue_repeat"  every page carries the same continue token
                                  and the same items
               "continue_fresh"   every page carries a new token and the same
                                  first items
               "continue_empty"   every page carries a new token; pages after
                                  the first have no items
               "no_rv"            lists carry no metadata.resourceVersion
      "gzip_bomb": N, "bomb_count": K   the next K lists (default: all) are a
                                  gzip body (Content-Encoding: gzip) that
                                  inflates to about N bytes of one Service
      "strip_namespace": [kind...]  objects of these kinds are served (list
                                  and watch) without metadata.namespace
  GET  /_control/stats   request counters ("api": every API request)
  GET  /_control/healthz
Run: kapi_server.py --port-file F [--cert C --key K] [--token T]
                   [--state FILE [--no-gc]]
KAPI_TRACE=FILE in the environment: a line per step of a change (see trace).
"""
import argparse
import base64
import gc
import json
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = {
    "/api/v1/services": "Service",
    "/api/v1/endpoints": "Endpoints",
    "/api/v1/nodes": "Node",
    "/apis/discovery.k8s.io/v1/endpointslices": "EndpointSlice",
    "/apis/networking.k8s.io/v1/servicecidrs": "ServiceCIDR",
}
API_VERSION = {"Service": "v1", "Endpoints": "v1", "Node": "v1",
               "EndpointSlice": "discovery.k8s.io/v1", "ServiceCIDR": "networking.k8s.io/v1"}


# KAPI_TRACE=FILE (benchmarks): one line per step of a request, wall-clock
# time first (CLOCK_REALTIME, as ferry's log): "accepted" and "conn" for a
# new connection (main thread, then its own), "request" when a request line
# has been read, "post PATH" when a control request starts, "applied RV" when
# it is in the state, "replied RV" when its answer is written, "sent KIND RV
# TYPE" when a watch event is written to a socket, "gc GEN MS cpu MS" for
# every collection of Python's cyclic garbage collector (wall and CPU time).
TRACE = None
TRACE_LOCK = threading.Lock()


def trace(*words):
    if TRACE is not None:
        line = "%.6f %s\n" % (time.time(), " ".join(str(w) for w in words))
        with TRACE_LOCK:
            TRACE.write(line)


def trace_gc(phase, info):
    if phase == "start":
        trace_gc.t0 = (time.perf_counter(), time.thread_time())
    else:
        trace("gc", info["generation"], "%.3f" % ((time.perf_counter() - trace_gc.t0[0]) * 1000),
              "cpu", "%.3f" % ((time.thread_time() - trace_gc.t0[1]) * 1000))


class State:
    def __init__(self, token):
        self.lock = threading.Condition()
        # Per kind, on the same lock: a change wakes only the watches of
        # its kind (a control that concerns all of them: notify()).
        self.changed = {k: threading.Condition(self.lock) for k in KINDS.values()}
        self.rv = 100
        self.objects = {k: {} for k in KINDS.values()}   # kind -> key -> obj
        self.events = []      # (rv, kind, old, new)
        self.compacted = 0    # watches from an rv below this get 410
        self.token = token
        self.slow_ms = 0
        self.gone_mode = "status"
        self.bookmark_ms = 1000
        self.fail = None
        self.disabled = set()
        self.drop_gen = 0
        self.snapshots = {}
        self.stats = {"api": 0, "list": 0, "watch": 0, "unauthorized": 0, "failed": 0,
                      "gone": 0, "bombs": 0}
        self.raw = []         # (rv-ish seq, kind, line)
        self.hostile = {}
        self.bombs = {}       # inflated size -> gzip bytes

    def bomb(self, size):
        """A gzip body inflating to a ServiceList of about size bytes."""
        if size not in self.bombs:
            head = (b'{"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"1"},'
                    b'"items":[{"metadata":{"name":"bomb","namespace":"default",'
                    b'"annotations":{"x":"')
            c = zlib.compressobj(6, zlib.DEFLATED, 31)
            out = [c.compress(head)]
            block = b"A" * (1 << 20)
            for _ in range(max(size // len(block), 1)):
                out.append(c.compress(block))
            out.append(c.compress(b'"}},"spec":{"clusterIP":"10.96.9.9"}}]}\n'))
            out.append(c.flush())
            self.bombs[size] = b"".join(out)
        return self.bombs[size]

    def notify(self, kinds=None):
        """Wake the watches of kinds (default: all); the lock is held."""
        for k in (kinds if kinds is not None else self.changed):
            self.changed[k].notify_all()
        self.lock.notify_all()

    def key(self, obj):
        md = obj.get("metadata", {})
        return (md.get("namespace", "") or "") + "/" + md.get("name", "")


def strip_ns(obj):
    """A copy of obj without metadata.namespace."""
    obj = json.loads(json.dumps(obj))
    (obj.get("metadata") or {}).pop("namespace", None)
    return obj


def parse_label_selector(sel):
    terms = []
    for t in [x.strip() for x in sel.split(",") if x.strip()]:
        if t.startswith("!"):
            terms.append(("absent", t[1:], None))
        elif "!=" in t:
            k, v = t.split("!=", 1)
            terms.append(("ne", k, v))
        elif "==" in t:
            k, v = t.split("==", 1)
            terms.append(("eq", k, v))
        elif "=" in t:
            k, v = t.split("=", 1)
            terms.append(("eq", k, v))
        else:
            terms.append(("exists", t, None))
    return terms


def label_match(terms, obj):
    labels = (obj.get("metadata", {}) or {}).get("labels") or {}
    for op, k, v in terms:
        if op == "absent" and k in labels:
            return False
        if op == "exists" and k not in labels:
            return False
        if op == "eq" and labels.get(k) != v:
            return False
        if op == "ne" and labels.get(k) == v:
            return False
    return True


def field_match(sel, obj):
    md = obj.get("metadata", {}) or {}
    for t in [x.strip() for x in sel.split(",") if x.strip()]:
        k, v = t.split("=", 1)
        k = k.rstrip("=")
        if k == "metadata.name" and md.get("name") != v:
            return False
        if k == "metadata.namespace" and (md.get("namespace") or "") != v:
            return False
    return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kapi-test"
    # As Go's net/http (the real API server): no Nagle delay, so a small
    # write (a watch event after a bookmark, an answer's body after its
    # headers) never waits for the peer's delayed ACK.
    disable_nagle_algorithm = True

    def setup(self):
        trace("conn")
        super().setup()

    def parse_request(self):
        trace("request")
        return super().parse_request()

    def log_message(self, fmt, *args):
        if os.environ.get("KAPI_VERBOSE"):
            sys.stderr.write("kapi: " + (fmt % args) + "\n")

    # --- helpers -------------------------------------------------------------
    def send_json(self, code, obj, headers=None):
        body = (json.dumps(obj) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def status(self, code, reason, message, headers=None):
        self.send_json(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                              "message": message, "reason": reason, "code": code}, headers)

    def body_json(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    # --- control -------------------------------------------------------------
    def do_POST(self):
        st = self.server.state
        path = urllib.parse.urlparse(self.path).path
        trace("post", path)
        req = self.body_json()
        kinds = None   # the kinds whose watches are woken; None: all
        with st.lock:
            if path == "/_control/apply":
                kinds = set()
                for obj in req.get("objects", []):
                    kind = obj["kind"]
                    obj.setdefault("apiVersion", API_VERSION[kind])
                    md = obj.setdefault("metadata", {})
                    if kind != "Node":
                        md.setdefault("namespace", "default")
                    st.rv += 1
                    md["resourceVersion"] = str(st.rv)
                    k = st.key(obj)
                    old = st.objects[kind].get(k)
                    md.setdefault("uid", (old or {}).get("metadata", {}).get("uid") or
                                  "uid-%d" % st.rv)
                    st.objects[kind][k] = obj
                    st.events.append((st.rv, kind, old, obj))
                    kinds.add(kind)
            elif path == "/_control/delete":
                kind = req["kind"]
                k = (req.get("namespace", "default") if kind != "Node" else "") + "/" + req["name"]
                old = st.objects[kind].pop(k, None)
                kinds = {kind}
                if old is not None:
                    st.rv += 1
                    gone = json.loads(json.dumps(old))
                    gone["metadata"]["resourceVersion"] = str(st.rv)
                    st.events.append((st.rv, kind, gone, None))
            elif path == "/_control/compact":
                st.compacted = st.rv + 1
                st.events = []
            elif path == "/_control/drop":
                st.drop_gen += 1
            elif path == "/_control/config":
                if "token" in req:
                    st.token = req["token"]
                if "slow_ms" in req:
                    st.slow_ms = int(req["slow_ms"])
                if "gone_mode" in req:
                    st.gone_mode = req["gone_mode"]
                if "bookmark_ms" in req:
                    st.bookmark_ms = int(req["bookmark_ms"])
                if "fail" in req:
                    st.fail = req["fail"]
                if "disable" in req:
                    st.disabled = set(req["disable"])
                if "hostile" in req:
                    st.hostile = dict(req["hostile"])
                    if st.hostile.get("gzip_bomb"):
                        st.bomb(int(st.hostile["gzip_bomb"]))
            elif path == "/_control/raw":
                st.raw.append((len(st.raw) + 1, req["kind"], req["line"]))
                kinds = {req["kind"]} if req["kind"] in st.changed else None
            else:
                st.notify()
                self.status(404, "NotFound", "no such control")
                return
            st.notify(kinds)
            rv = st.rv
        trace("applied", rv)
        self.send_json(200, {"ok": True, "resourceVersion": str(rv)})
        trace("replied", rv)

    # --- API -----------------------------------------------------------------
    def do_GET(self):
        st = self.server.state
        url = urllib.parse.urlparse(self.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        if url.path == "/_control/stats":
            with st.lock:
                self.send_json(200, dict(st.stats, resourceVersion=st.rv))
            return
        if url.path == "/_control/healthz":
            self.send_json(200, {"ok": True})
            return
        kind = KINDS.get(url.path)
        with st.lock:
            st.stats["api"] += 1
            token = st.token
            slow = st.slow_ms
            fail = st.fail
            disabled = kind in st.disabled
        if token:
            if self.headers.get("Authorization") != "Bearer " + token:
                with st.lock:
                    st.stats["unauthorized"] += 1
                self.status(401, "Unauthorized", "Unauthorized")
                return
        if kind is None or disabled:
            self.status(404, "NotFound", "the server could not find the requested resource")
            return
        if fail and fail.get("count", 0) > 0 and (not fail.get("path") or fail["path"] == url.path):
            with st.lock:
                fail["count"] -= 1
                st.stats["failed"] += 1
            hdr = {"Retry-After": str(fail["retry_after"])} if fail.get("retry_after") else None
            self.status(int(fail.get("status", 503)), "ServiceUnavailable", "forced failure", hdr)
            return
        if slow:
            time.sleep(slow / 1000.0)
        if q.get("watch") in ("1", "true"):
            self.watch(kind, q)
        else:
            self.list(kind, q)

    def list(self, kind, q):
        st = self.server.state
        terms = parse_label_selector(q.get("labelSelector", ""))
        fsel = q.get("fieldSelector", "")
        limit = int(q.get("limit") or 0)
        with st.lock:
            st.stats["list"] += 1
            hostile = st.hostile
            mode = hostile.get("list")
            bomb = None
            if hostile.get("gzip_bomb") and hostile.get("bomb_count", 1) != 0:
                if "bomb_count" in hostile:
                    hostile["bomb_count"] -= 1
                st.stats["bombs"] += 1
                bomb = st.bomb(int(hostile["gzip_bomb"]))
            cont = q.get("continue")
            if cont and mode not in ("continue_repeat", "continue_fresh", "continue_empty"):
                snap = st.snapshots.get(cont)
                if snap is None:
                    self.status(410, "Expired", "continue token expired")
                    return
                rv, items = snap
            else:
                rv = st.rv
                items = [json.loads(json.dumps(st.objects[kind][k]))
                         for k in sorted(st.objects[kind])]
                items = [o for o in items if label_match(terms, o) and field_match(fsel, o)]
            nxt = ""
            if mode == "continue_repeat":
                page, nxt = items[:limit or len(items)], "same-token"
            elif mode == "continue_fresh":
                page, nxt = items[:limit or len(items)], base64.urlsafe_b64encode(os.urandom(9)).decode()
            elif mode == "continue_empty":
                page = [] if cont else items[:limit or len(items)]
                nxt = base64.urlsafe_b64encode(os.urandom(9)).decode()
            elif limit and len(items) > limit:
                page, rest = items[:limit], items[limit:]
                nxt = base64.urlsafe_b64encode(os.urandom(9)).decode()
                st.snapshots[nxt] = (rv, rest)
                if len(st.snapshots) > 64:
                    st.snapshots.pop(next(iter(st.snapshots)))
            else:
                page = items
            strip = kind in (hostile.get("strip_namespace") or [])
        if bomb is not None:
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(bomb)))
                self.end_headers()
                self.wfile.write(bomb)
            except (BrokenPipeError, ConnectionResetError, OSError):
                self.close_connection = True
            return
        if strip:
            page = [strip_ns(o) for o in page]
        for o in page:   # items in a list carry no kind, as in the real API
            o.pop("kind", None)
            o.pop("apiVersion", None)
        md = {"resourceVersion": str(rv)}
        if mode == "no_rv":
            del md["resourceVersion"]
        if nxt:
            md["continue"] = nxt
        self.send_json(200, {"kind": kind + "List", "apiVersion": API_VERSION[kind],
                             "metadata": md, "items": page})

    def watch(self, kind, q):
        st = self.server.state
        terms = parse_label_selector(q.get("labelSelector", ""))
        fsel = q.get("fieldSelector", "")
        try:
            since = int(q.get("resourceVersion") or 0)
        except ValueError:
            since = 0
        timeout = float(q.get("timeoutSeconds") or 1800)
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        with st.lock:
            st.stats["watch"] += 1
            gone = since < st.compacted
            mode = st.gone_mode
            drop_gen = st.drop_gen
            raw_seen = len(st.raw)
            if gone:
                st.stats["gone"] += 1
            hostile_watch = st.hostile.get("watch")
            strip = kind in (st.hostile.get("strip_namespace") or [])
            first = None
            if st.objects[kind]:
                first = json.loads(json.dumps(st.objects[kind][sorted(st.objects[kind])[0]]))
            now_rv = st.rv
        if gone and mode == "status":
            self.status(410, "Expired", "too old resource version: %d" % since)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if hostile_watch == "bookmark_close":
            ev = {"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": API_VERSION[kind],
                                                 "metadata": {"resourceVersion": str(now_rv)}}}
            self.chunk((json.dumps(ev) + "\n").encode())
            self.chunk(b"")
            return
        if hostile_watch == "added_then_gone":
            if first is not None:
                self.chunk((json.dumps({"type": "ADDED", "object": first}) + "\n").encode())
            gone = True
        if gone:
            ev = {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
                                              "status": "Failure", "reason": "Expired",
                                              "message": "too old resource version", "code": 410}}
            self.chunk((json.dumps(ev) + "\n").encode())
            self.chunk(b"")
            return
        deadline = time.monotonic() + timeout
        last_bm = time.monotonic()
        pos = since
        while True:
            out = []
            with st.lock:
                if st.drop_gen != drop_gen:
                    break_abruptly = True
                else:
                    break_abruptly = False
                    for rv, k, old, new in st.events:
                        if rv <= pos or k != kind:
                            continue
                        was = old is not None and new is not None and \
                            label_match(terms, old) and field_match(fsel, old)
                        cur = new if new is not None else old
                        now = new is not None and label_match(terms, new) and field_match(fsel, new)
                        if new is None:
                            if label_match(terms, old) and field_match(fsel, old):
                                out.append({"type": "DELETED", "object": old})
                        elif now and was:
                            out.append({"type": "MODIFIED", "object": new})
                        elif now:
                            out.append({"type": "ADDED", "object": new})
                        elif was:
                            out.append({"type": "DELETED", "object": cur})
                        pos = rv
                    for seq, k, line in st.raw[raw_seen:]:
                        if k == kind:
                            out.append(line)
                    raw_seen = len(st.raw)
                    if not out:
                        if pos < st.rv:
                            pos = st.rv
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break_done = True
                        else:
                            break_done = False
                            st.changed[kind].wait(min(left, st.bookmark_ms / 1000.0, 0.5))
                    bm_due = bookmarks and (time.monotonic() - last_bm) * 1000 >= st.bookmark_ms
                    cur_rv = pos
            if break_abruptly:
                # Cut the TCP connection without the final chunk.
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self.close_connection = True
                return
            try:
                for e in out:
                    if strip and not isinstance(e, str):
                        e = dict(e, object=strip_ns(e["object"]))
                    line = e if isinstance(e, str) else json.dumps(e)
                    self.chunk((line + "\n").encode())
                    if TRACE is not None and not isinstance(e, str):
                        trace("sent", kind, e["object"]["metadata"].get("resourceVersion"), e["type"])
                if bm_due:
                    last_bm = time.monotonic()
                    ev = {"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": API_VERSION[kind],
                                                         "metadata": {"resourceVersion": str(cur_rv)}}}
                    self.chunk((json.dumps(ev) + "\n").encode())
                    trace("sent", kind, cur_rv, "BOOKMARK")
                if not out and time.monotonic() >= deadline:
                    self.chunk(b"")
                    return
            except (BrokenPipeError, ConnectionResetError, OSError):
                self.close_connection = True
                return


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def process_request(self, request, client_address):
        trace("accepted")
        super().process_request(request, client_address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--client-ca", help="require client certificates signed by this CA")
    ap.add_argument("--token", default="")
    ap.add_argument("--state", help="JSON file of objects to start with")
    ap.add_argument("--no-gc", action="store_true",
                    help="benchmarks, with --state: no cyclic garbage collection. The "
                    "state and the list snapshots are acyclic JSON, freed by reference "
                    "counting; at 100k services the snapshots of the initial list stay in "
                    "the young generation (listing frees as much as it allocates) until "
                    "some 80 changes later a collection walks their million references: "
                    "30-60 ms while a request waits")
    a = ap.parse_args()
    global TRACE
    if os.environ.get("KAPI_TRACE"):
        TRACE = open(os.environ["KAPI_TRACE"], "a", buffering=1)
        gc.callbacks.append(trace_gc)
    if a.no_gc and a.state:
        gc.disable()
    srv = Server(("127.0.0.1", a.port), Handler)
    srv.state = State(a.token)
    if a.state:
        with open(a.state) as f:
            objs = json.load(f)
        for obj in objs:
            kind = obj["kind"]
            md = obj.setdefault("metadata", {})
            if kind != "Node":
                md.setdefault("namespace", "default")
            srv.state.rv += 1
            md["resourceVersion"] = str(srv.state.rv)
            srv.state.objects[kind][srv.state.key(obj)] = obj
    if a.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        if a.client_ca:
            ctx.load_verify_locations(a.client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, a.port_file)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
