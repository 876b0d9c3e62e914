"""A Consul agent double for the discovery tests (docs/discovery.md), faithful to the parts of the
agent's HTTP API the apps use. No Consul can be installed on these machines; a test runs against
a real agent too when CONSUL_HTTP_ADDR is set.

    python agent_double.py [--token T] [--ca CA --cert CERT --key KEY]

Prints `listening PORT` once it serves on 127.0.0.1 (a free port). What it does as the agent does:

- `PUT /v1/agent/service/register`: the body decoded strictly (unknown fields, wrong types, bad
  durations and out-of-range ports are 400 `Request decode failed: ...`); `ID` defaults to `Name`;
  a new check starts `critical`, as Consul's do, until its first probe.
- `PUT /v1/agent/service/deregister/:id`: 404 `Unknown service ID` when absent.
- `GET /v1/agent/services`, `GET /v1/agent/service/:id` (404 when unknown), `GET
  /v1/agent/checks`: the registrations and check states.
- `GET /v1/health/service/:name[?passing][&index=N&wait=D]`: `X-Consul-Index` on every answer;
  with an index at or past the current one, the answer waits for a change (or `wait`, at most
  10 min) - a blocking query.
- Checks are really run, every `Interval`, each within its `Timeout`: `HTTP` (2xx passing, 429
  warning, anything else critical) and `GRPC` (grpc.health.v1.Health/Check with grpcio; TLS with
  `GRPCUseTLS`, trusting --ca and presenting --cert/--key; SERVING is passing) and `TCP` (a
  connect). An `Interval` below 1 s runs every 1 s: the agent raises it to its minimum
  (`checks.MinInterval`, logging "check has interval below minimum"), so a test cannot count on
  probes a real agent never makes. A service critical for longer than its
  `DeregisterCriticalServiceAfter` (and at least --reap-floor, 60 s as in Consul) is
  deregistered by a reaper running every --reap-every (30 s as in Consul).
- With --token, writes must carry it in `X-Consul-Token` (else 403 `Permission denied`); reads
  without it are answered as Consul answers the anonymous token under a deny policy: 200 with
  what it may see (nothing) and `X-Consul-Results-Filtered-By-ACLs: true`.

Every change of the registrations or of a check's status advances the index.
"""

import argparse
import json
import re
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
# The agent's shortest check interval: shorter ones are raised to it.
MIN_INTERVAL = 1.0
UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
SERVICE_FIELDS = {"ID": str, "Name": str, "Tags": list, "Address": str, "Port": int, "Meta": dict,
                  "Check": dict}
CHECK_FIELDS = {"GRPC": str, "GRPCUseTLS": bool, "HTTP": str, "TCP": str, "TLSSkipVerify": bool, "TLSServerName": str,
                "Interval": str, "Timeout": str, "DeregisterCriticalServiceAfter": str}


def seconds(text):
    if not DURATION.match(text):
        raise ValueError(f"time: invalid duration {text!r}")
    return sum(float(n) * UNITS[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)", text))


def decode_registration(body):
    """The registration, or ValueError with the reason (the agent's 400)."""
    try:
        reg = json.loads(body)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e}")
    if not isinstance(reg, dict):
        raise ValueError("a JSON object is required")
    for key, value in reg.items():
        if key not in SERVICE_FIELDS:
            raise ValueError(f"json: unknown field {key!r}")
        kind = SERVICE_FIELDS[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"json: cannot unmarshal {type(value).__name__} into field {key}")
    if not reg.get("Name"):
        raise ValueError("Missing service name")
    if not 0 <= reg.get("Port", 0) <= 65535:
        raise ValueError("Port out of range")
    if not all(isinstance(t, str) for t in reg.get("Tags", [])):
        raise ValueError("Tags must be strings")
    meta = reg.get("Meta", {})
    if len(meta) > 64 or any(not isinstance(v, str) or len(k) > 128 or len(v) > 512 for k, v in meta.items()):
        raise ValueError("Invalid service meta")
    check = reg.get("Check")
    if check is not None:
        for key, value in check.items():
            if key not in CHECK_FIELDS:
                raise ValueError(f"json: unknown field Check.{key!r}")
            if not isinstance(value, CHECK_FIELDS[key]):
                raise ValueError(f"json: cannot unmarshal {type(value).__name__} into field Check.{key}")
        if sum(kind in check for kind in ("GRPC", "HTTP", "TCP")) != 1:
            raise ValueError("a check needs exactly one of GRPC, HTTP or TCP here")
        for key in ("Interval", "Timeout", "DeregisterCriticalServiceAfter"):
            if key in check:
                check[key + "Seconds"] = seconds(check[key])
        if "Interval" not in check:
            raise ValueError("Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks")
    reg.setdefault("ID", reg["Name"])
    reg.setdefault("Tags", [])
    reg.setdefault("Address", "")
    reg.setdefault("Port", 0)
    reg.setdefault("Meta", {})
    return reg


class Agent:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Condition()
        self.services = {}  # id -> registration
        self.status = {}  # id -> (status, since, output)
        self.index = 1
        self.stopping = False

    def changed(self):
        self.index += 1
        self.lock.notify_all()

    def register(self, reg):
        with self.lock:
            sid = reg["ID"]
            self.services[sid] = reg
            self.status[sid] = ("critical", time.monotonic(), "not yet probed")
            self.changed()
        if reg.get("Check"):
            threading.Thread(target=self.probe_loop, args=(sid, reg), daemon=True).start()

    def deregister(self, sid):
        with self.lock:
            if sid not in self.services:
                return False
            del self.services[sid]
            self.status.pop(sid, None)
            self.changed()
            return True

    def set_status(self, sid, reg, status, output):
        with self.lock:
            if self.services.get(sid) is not reg:
                return False
            old = self.status.get(sid)
            if old is None or old[0] != status:
                self.status[sid] = (status, time.monotonic(), output)
                self.changed()
            return True

    def probe_loop(self, sid, reg):
        check = reg["Check"]
        interval = check["IntervalSeconds"]
        if interval < MIN_INTERVAL:
            # Consul's agent does the same (checks.MinInterval), with the same warning.
            print(f"check has interval below minimum: {sid} {check['Interval']}, running every "
                  f"{MIN_INTERVAL:g}s", file=sys.stderr, flush=True)
            interval = MIN_INTERVAL
        timeout = check.get("TimeoutSeconds", 10)
        while not self.stopping:
            status, output = self.probe(check, timeout)
            if not self.set_status(sid, reg, status, output):
                return
            time.sleep(interval)

    def probe(self, check, timeout):
        try:
            if "HTTP" in check:
                try:
                    with urllib.request.urlopen(check["HTTP"], timeout=timeout) as r:
                        code = r.status
                except urllib.error.HTTPError as e:
                    code = e.code
                if 200 <= code < 300:
                    return "passing", f"HTTP GET {check['HTTP']}: {code}"
                return ("warning" if code == 429 else "critical"), f"HTTP GET {check['HTTP']}: {code}"
            if "TCP" in check:
                host, _, port = check["TCP"].rpartition(":")
                socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
                return "passing", f"TCP connect {check['TCP']}: Success"
            return self.grpc_probe(check, timeout)
        except Exception as e:  # a probe that cannot run is a failing check
            return "critical", str(e)

    def grpc_probe(self, check, timeout):
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        target, _, service = check["GRPC"].partition("/")
        if check.get("GRPCUseTLS"):
            read = lambda p: open(p, "rb").read() if p else None
            creds = grpc.ssl_channel_credentials(read(self.args.ca), read(self.args.key), read(self.args.cert))
            options = [("grpc.ssl_target_name_override", check["TLSServerName"])] if check.get("TLSServerName") else []
            channel = grpc.secure_channel(target, creds, options=options)
        else:
            channel = grpc.insecure_channel(target)
        with channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        if answer.status == health_pb2.HealthCheckResponse.SERVING:
            return "passing", "gRPC health: SERVING"
        return "critical", f"gRPC health: {answer.status}"

    def reaper(self):
        while not self.stopping:
            time.sleep(self.args.reap_every)
            now = time.monotonic()
            with self.lock:
                for sid, reg in list(self.services.items()):
                    after = (reg.get("Check") or {}).get("DeregisterCriticalServiceAfterSeconds")
                    status, since, _ = self.status.get(sid, ("passing", now, ""))
                    if after is not None and status == "critical" and now - since > max(after, self.args.reap_floor):
                        del self.services[sid]
                        self.status.pop(sid, None)
                        self.changed()

    def health(self, name, passing):
        out = []
        for sid, reg in sorted(self.services.items()):
            if reg["Name"] != name:
                continue
            status, _, output = self.status.get(sid, ("passing", 0, ""))
            if passing and status != "passing":
                continue
            out.append({
                "Node": {"Node": "double", "Address": "127.0.0.1", "Datacenter": "dc1"},
                "Service": {"ID": sid, "Service": name, "Tags": reg["Tags"], "Address": reg["Address"],
                            "Port": reg["Port"], "Meta": reg["Meta"]},
                "Checks": [{"CheckID": f"service:{sid}", "ServiceID": sid, "Status": status,
                            "Output": output}],
            })
        return out


def handler(agent):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, code, body=b"", headers=()):
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            elif isinstance(body, str):
                body = body.encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def authorized(self):
            if agent.args.token and self.headers.get("X-Consul-Token") != agent.args.token:
                self.reply(403, "Permission denied")
                return False
            return True

        def do_PUT(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if not self.authorized():
                return
            path = urllib.parse.urlsplit(self.path).path
            if path == "/v1/agent/service/register":
                try:
                    reg = decode_registration(body)
                except ValueError as e:
                    return self.reply(400, f"Request decode failed: {e}")
                agent.register(reg)
                return self.reply(200)
            if path.startswith("/v1/agent/service/deregister/"):
                sid = urllib.parse.unquote(path.rsplit("/", 1)[1])
                if agent.deregister(sid):
                    return self.reply(200)
                return self.reply(404, f'Unknown service ID "{sid}". Ensure that the service ID is passed, not the service name.')
            self.reply(404, "not found")

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            if agent.args.token and self.headers.get("X-Consul-Token") != agent.args.token:
                if url.path.startswith("/v1/health/service/"):
                    with agent.lock:
                        current = agent.index
                    return self.reply(200, [], [("X-Consul-Index", str(current)),
                                                ("X-Consul-Results-Filtered-By-ACLs", "true"),
                                                ("Content-Type", "application/json")])
                return self.reply(403, "Permission denied")
            query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
            if url.path == "/v1/agent/services":
                with agent.lock:
                    body = {sid: {"ID": sid, "Service": r["Name"], "Tags": r["Tags"], "Address": r["Address"],
                                  "Port": r["Port"], "Meta": r["Meta"], "Check": r.get("Check")}
                            for sid, r in agent.services.items()}
                return self.reply(200, body)
            if url.path.startswith("/v1/agent/service/"):
                sid = urllib.parse.unquote(url.path.rsplit("/", 1)[1])
                with agent.lock:
                    r = agent.services.get(sid)
                    if r is None:
                        return self.reply(404, f"unknown service ID: {sid}")
                    body = {"ID": sid, "Service": r["Name"], "Tags": r["Tags"], "Address": r["Address"],
                            "Port": r["Port"], "Meta": r["Meta"]}
                return self.reply(200, body)
            if url.path == "/v1/agent/checks":
                with agent.lock:
                    body = {f"service:{sid}": {"ServiceID": sid, "Status": s, "Output": o}
                            for sid, (s, _, o) in agent.status.items()}
                return self.reply(200, body)
            if url.path.startswith("/v1/health/service/"):
                name = urllib.parse.unquote(url.path.rsplit("/", 1)[1])
                try:
                    index = int(query.get("index", ["0"])[0])
                    wait = min(seconds(query["wait"][0]), 600) if "wait" in query else 300
                except ValueError as e:
                    return self.reply(400, str(e))
                deadline = time.monotonic() + wait
                with agent.lock:
                    while index and agent.index <= index and not agent.stopping:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        agent.lock.wait(left)
                    body = agent.health(name, "passing" in query)
                    current = agent.index
                return self.reply(200, body, [("X-Consul-Index", str(current)),
                                              ("Content-Type", "application/json")])
            self.reply(404, "not found")

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--token", default="")
    ap.add_argument("--ca")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--port", type=int, default=0)
    # Consul's reaper runs every 30 s and reaps after at least 1 min, whatever the check says;
    # tests shorten both.
    ap.add_argument("--reap-every", type=float, default=30)
    ap.add_argument("--reap-floor", type=float, default=60)
    args = ap.parse_args()
    agent = Agent(args)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(agent))
    server.daemon_threads = True
    threading.Thread(target=agent.reaper, daemon=True).start()
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        agent.stopping = True
    return 0


if __name__ == "__main__":
    sys.exit(main())
