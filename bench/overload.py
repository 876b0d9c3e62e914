"""The overload suite of bench/run.py (`--suite overload`, issue 25): the adaptive load shedder
measured at 3x and 10x capacity on the HTTP and the gRPC app.

For each app, against its CPU-bound benchmark route (`GET /debug/burn?ms=1`, `bench.Burn/Burn`
with ms 1: 1 ms of CPU in 10 slices with a yield between them, served with
`server.debug_routes`), the server pinned to CPU 0 and h2load to CPU 1, rate limits off:

1. capacity: closed-loop h2load at 1, 4, 16 and 64 requests in flight, shedding off; the highest
   throughput of answered requests is the capacity. The unloaded p99: open-loop at a tenth of it,
   the median of three runs.
2. open loop: h2load `--rps` (per client) offering 3x and 10x capacity, shedding on and off,
   a fresh server each run: first a warm-up at the same offer (not counted: the shedder's CPU
   reading is an EMA with beta 0.95 per 250 ms sample, about 11 s from idle to 90 %), then the
   measured run with `--log-file`, its processes started as the warm-up's stop sending (not
   once they exit: h2load waits for its last answers, and a pause in the offer lets the CPU
   reading fall back under the threshold). h2load's own `--warm-up-time` sends nothing with
   `--rps`. Enough clients and streams (HTTP/1.1 pipelining, HTTP/2
   streams) that 1.2 s worth of the offer can be in flight: a request the client could not
   send would have been late anyway, so the client's limit never hides a server's collapse.
   Goodput: answers with 2xx (gRPC: status OK) within 1 s, per second. p99 admitted: the 99th
   percentile latency of the requests that were not shed. Drop %: shed answers (HTTP 503, gRPC
   RESOURCE_EXHAUSTED) of all answers.
3. the shedder's CPU reading (`process_cpu_usage` on the metrics listener) scraped every 250 ms
   during the runs; its maximum against `shedding.cpu_threshold`.

h2load logs the HTTP status only, and every gRPC answer is HTTP 200. The gRPC calls carry
`grpc-timeout: 1S` (the deadline, enforced by tonic), and the successes are counted exactly from
h2load's received DATA bytes: an OK answer to Burn has a 7-byte body (checked with nghttp before
the runs), an error is trailers-only with none. The shed answers are the shedder's own count
(`shedding_decisions_total`, scraped before and after the measured run) when the app serves
metrics, else what is neither OK nor late; the p99 of the admitted is read from the top of the
whole distribution, which is exact as long as no shed answer is slower than it (a shed answer is
given on arrival, before any work).
"""
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

# GET /debug/burn's and bench.Burn's work per request.
BURN_MS = 1
HTTP_PATH = f"/debug/burn?ms={BURN_MS}"
GRPC_PATH = "/bench.Burn/Burn"
# BurnRequest{ms: 1} as a gRPC frame: no compression, 2 bytes (field 1 varint 1).
BURN_FRAME = b"\x00\x00\x00\x00\x02\x08\x01"
# An OK answer's body: BurnResponse{burned_ms: 1}, framed the same way.
BURN_OK_BODY = 7
GRPC_HEADERS = ("content-type: application/grpc", "te: trailers", "user: root", "password: root123",
                "grpc-timeout: 1S")
# Answered within this counts as goodput (the gRPC calls' deadline too).
DEADLINE_S = 1.0
# In flight the open-loop client allows: this many seconds of the offer.
IN_FLIGHT_S = 1.2
# Per client at most this many requests a second: h2load's --rps timer fires every
# max(10 ms, 1/rps), so above 100 a client sends a few per tick, below it its requests come in
# bursts of one tick apart; more clients keep the offer smooth.
RPS_PER_CLIENT = 200
# h2load processes an open-loop offer is spread over, their starts a fraction of a timer tick
# apart (h2load_staggered).
STAGGER_GROUPS = 16
# HTTP/2 streams per gRPC connection (server.grpc.max_concurrent_streams is 200).
GRPC_STREAMS = 100
# Open-loop runs at a tenth of capacity whose median p99 is the unloaded p99.
UNLOADED_RUNS = 3
# Closed-loop concurrency levels of the capacity measurement.
CAPACITY_LEVELS = (1, 4, 16, 64)
MULTIPLES = (3, 10)
GOALS = {3: 0.90, 10: 0.80}
P99_GOAL = 3.0


def base_yaml(root):
    with open(os.path.join(root, "configs", "base.yaml")) as f:
        return f.read()


def section_key(text, section, key):
    """`key`'s scalar in the top-level `section` of a YAML file, or None (no YAML parser: run.py
    uses the standard library only)."""
    m = re.search(rf"^{section}:\n((?:[ #].*\n|\n)*)", text, re.M)
    if not m:
        return None
    k = re.search(rf"^  {key}:\s*([^\s#]+)", m.group(1), re.M)
    return k.group(1) if k else None


def h2load_cmd(argv, log=None):
    """The h2load command line (pinned to CPU 1); `log` is removed first (h2load appends)."""
    if log and os.path.exists(log):
        os.remove(log)
    return ["taskset", "-c", "1", "h2load", "-t1", *argv] + (["--log-file", log] if log else [])


def h2load(argv, log=None):
    """Runs h2load: its summary figures. `log` is written afresh."""
    cmd = h2load_cmd(argv, log)
    out = subprocess.run(cmd, capture_output=True, text=True)
    return summary_of(cmd, out.returncode, out.stdout, out.stderr)


def h2load_staggered(target, clients, streams, seconds, per_client, log=None):
    """An open-loop offer of `clients` × `per_client` req/s from STAGGER_GROUPS h2load processes
    whose starts are spread over one tick of h2load's --rps timer, so their requests interleave
    instead of arriving in one burst per tick: one h2load starts all its clients at once, and
    their timers fire together (every max(10 ms, 1/rps)), which makes the offer a burst of
    `clients` requests per tick. Summaries are summed and the logs joined into `log`."""
    return collect(start_staggered(target, clients, streams, seconds, per_client, log), log)


def start_staggered(target, clients, streams, seconds, per_client, log=None):
    """Starts h2load_staggered's processes; `collect` waits for them."""
    groups = min(clients, STAGGER_GROUPS)
    tick = max(0.010, 1.0 / per_client)
    procs = []
    start = time.monotonic()
    for i in range(groups):
        count = clients // groups + (1 if i < clients % groups else 0)
        part = f"{log}.{i}" if log else None
        cmd = h2load_cmd(target.argv(count, streams, seconds, rps=per_client), part)
        delay = start + i * tick / groups - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        procs.append((cmd, part, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    return procs


def collect(procs, log=None):
    """Waits for `start_staggered`'s processes: their summed summary, their logs joined into `log`."""
    total = None
    if log and os.path.exists(log):
        os.remove(log)
    for cmd, part, proc in procs:
        out, err = proc.communicate()
        summary = summary_of(cmd, proc.returncode, out, err)
        if total is None:
            total = summary
        else:
            for key in ("done", "failed", "errored", "2xx", "5xx", "data_bytes", "rps"):
                total[key] += summary[key]
            total["text"] += summary["text"]
        if part:
            with open(part) as src, open(log, "a") as dst:
                dst.write(src.read())
            os.remove(part)
    return total


def summary_of(cmd, returncode, stdout, stderr):
    """The figures of one h2load run's summary."""
    if returncode != 0 and "finished in" not in stdout:
        raise SystemExit(f"bench: h2load failed: {' '.join(cmd)}\n{stdout}\n{stderr}")
    text = stdout
    done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                     r"(\d+) errored", text)
    status = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    data = re.search(r"\((\d+)\) data", text)
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text)
    if not (done and status and data and rps):
        raise SystemExit(f"bench: cannot read h2load's summary\n{text}")
    return {"done": int(done.group(3)), "failed": int(done.group(5)), "errored": int(done.group(6)),
            "2xx": int(status.group(1)), "5xx": int(status.group(4)), "data_bytes": int(data.group(1)),
            "rps": float(rps.group(1)), "text": text}


def read_log(path):
    """(status, seconds) of every request in an h2load --log-file."""
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                rows.append((int(parts[1]), int(parts[2]) / 1e6))
    return rows


def quantile_ms(seconds, q):
    if not seconds:
        return float("nan")
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class Target:
    """One app under test: how h2load reaches its burn route and how its answers are read."""

    def __init__(self, kind, port, body=None):
        self.kind, self.port, self.body = kind, port, body

    def argv(self, clients, streams, seconds, rps=None):
        common = [f"-c{clients}", f"-m{streams}", f"-D{seconds}"] + ([f"--rps={rps:.3f}"] if rps else [])
        if self.kind == "http":
            return common + ["--h1", f"http://127.0.0.1:{self.port}{HTTP_PATH}"]
        headers = [a for h in GRPC_HEADERS for a in ("-H", h)]
        return common + ["-d", self.body, *headers, f"https://127.0.0.1:{self.port}{GRPC_PATH}"]

    def ok_count(self, summary):
        """Answers that succeeded: HTTP 2xx; gRPC status OK (an OK answer is the only one with a
        body)."""
        if self.kind == "http":
            return summary["2xx"]
        return summary["data_bytes"] // BURN_OK_BODY


def closed_loop(target, in_flight, seconds, log):
    """Throughput of successes (req/s) and p99 (ms) at `in_flight` requests in flight."""
    if target.kind == "http":
        clients, streams = in_flight, 1
    else:
        clients = max(1, in_flight // 16)
        streams = in_flight // clients
    summary = h2load(target.argv(clients, streams, seconds), log)
    rows = read_log(log)
    return target.ok_count(summary) / seconds, quantile_ms([s for _, s in rows], 0.99)


def open_loop_shape(kind, rate, per_client=RPS_PER_CLIENT):
    """(clients, streams per client, rps per client) offering `rate` req/s with IN_FLIGHT_S of
    it allowed in flight, each client offering at most `per_client`."""
    budget = max(8, int(rate * IN_FLIGHT_S) + 1)
    clients = max(4, -(-int(rate) // per_client))
    if kind == "grpc":
        clients = max(clients, -(-budget // GRPC_STREAMS))
    streams = max(1, -(-budget // clients))
    return clients, streams, rate / clients


class Scraper(threading.Thread):
    """Samples the metrics listener every 250 ms: the shedder's CPU reading, capacity estimate
    and decision counters."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop_flag, self.samples = port, threading.Event(), []

    def scrape(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=0.5) as r:
                return r.read().decode()
        except Exception:
            return None

    def run(self):
        while not self.stop_flag.is_set():
            text = self.scrape()
            if text is not None:
                self.samples.append(parse_metrics(text))
            self.stop_flag.wait(0.25)

    def stop(self):
        self.stop_flag.set()
        self.join(2)

    def max_of(self, name):
        values = [s[name] for s in self.samples if name in s]
        return max(values) if values else None


def parse_metrics(text):
    """The shedder's series of a Prometheus text page: process_cpu_usage, shedding_capacity and
    shedding_decisions_total by outcome (summed over `app`: one app per process)."""
    found = {}
    for line in text.splitlines():
        # The registry's namespace (go_example_) comes first.
        m = re.match(r"^(?:\w+_)?(process_cpu_usage|shedding_capacity|shedding_decisions_total)(\{[^}]*\})?\s+(\S+)",
                     line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        if name == "shedding_decisions_total":
            outcome = re.search(r'outcome="([^"]*)"', labels)
            key = f"decisions_{outcome.group(1) if outcome else ''}"
            found[key] = found.get(key, 0.0) + value
        else:
            found[name] = value
    return found


def dropped_total(sample):
    """Shed decisions in a parsed page (the outcome named dropped, or shed)."""
    if sample is None:
        return None
    keys = [k for k in sample if k.startswith("decisions_") and k[len("decisions_"):] in ("dropped", "drop", "shed")]
    return sum(sample[k] for k in keys) if keys else None


def judge(ok):
    return "✓" if ok else "✗"


def suite(args, work, kit):
    """Runs the overload suite; `kit` is bench/run.py (Server, stack_env, free_port, ROOT)."""
    root = kit.ROOT
    yaml = base_yaml(root)
    shedding = section_key(yaml, "shedding", "enabled") is not None
    threshold = section_key(yaml, "shedding", "cpu_threshold")
    threshold = float(threshold) if threshold else None
    if threshold is not None and threshold > 1:
        threshold /= 100 if threshold <= 100 else 1000
    rate_limits = section_key(yaml, "rate_limit", "enabled") is not None
    if not shedding:
        print("bench: note: this build has no shedding section (configs/base.yaml): the open-loop runs "
              "measure it as it is, without a shedder", file=sys.stderr)
    quick = args.quick
    cap_seconds = 3 if quick else 5
    warmup = args.overload_warmup if args.overload_warmup is not None else (12 if quick else 15)
    seconds = args.overload_seconds or (5 if quick else 20)
    multiples = (3,) if quick else MULTIPLES
    per_client = args.overload_rps_per_client or RPS_PER_CLIENT
    certs = os.path.join(work, "overload-certs")
    subprocess.run([args.stack, "--config-dir", os.path.join(root, "configs"), "certs", "generate",
                    "--out", certs], check=True, capture_output=True)
    body = os.path.join(work, "burn.frame")
    with open(body, "wb") as f:
        f.write(BURN_FRAME)

    def make(kind, enabled, tag):
        http_port, grpc_port, metrics_port = kit.free_port(), kit.free_port(), kit.free_port()
        workdir = os.path.join(work, f"overload-{kind}-{tag}")
        os.makedirs(workdir, exist_ok=True)
        env = kit.stack_env(http_port, workdir)
        env.update({
            "APP__SERVER__GRPC__ADDR": f"127.0.0.1:{grpc_port}", "APP__SERVER__GRPC__TLS__DIR": certs,
            # The HTTP app's metrics listener, and the gRPC app's own where the build has one.
            "APP__METRICS__ADDR": f"127.0.0.1:{metrics_port}",
            # The request's own cost, not a log record's: no access log, warnings only.
            "APP__SERVER__HTTP__ACCESS_LOG": "false", "APP__LOG__LEVEL": "warning",
        })
        if section_key(yaml, "metrics", "grpc_addr") is not None:
            env["APP__METRICS__GRPC_ADDR"] = f"127.0.0.1:{metrics_port}"
        if rate_limits:
            env["APP__RATE_LIMIT__ENABLED"] = "false"
        if shedding:
            env["APP__SHEDDING__ENABLED"] = "true" if enabled else "false"
        for setting in args.overload_set:
            key, _, value = setting.partition("=")
            if not key.startswith("APP__"):
                raise SystemExit(f"bench: --overload-set {setting}: not an APP__ variable")
            env[key] = value
        port = http_port if kind == "http" else grpc_port
        server = kit.Server(f"go_example {kind} ({tag})", [args.stack, kind, "--env", "debug"], port, env, root)
        return server, metrics_port

    def start(server, kind):
        if kind == "http":
            server.start(HTTP_PATH)
        else:
            server.start(tcp=True)
            burn_check(server.port, body)
        return Target(kind, server.port, body)

    figures = {}
    log = os.path.join(work, "overload.log")
    for kind in args.overload_apps.split(","):
        server, _ = make(kind, False, "capacity")
        try:
            target = start(server, kind)
            h2load(target.argv(4, 4 if kind == "grpc" else 1, 1))  # warm-up: connections, caches
            levels = {}
            for in_flight in CAPACITY_LEVELS:
                levels[in_flight] = closed_loop(target, in_flight, cap_seconds, log)
                print(f"overload {kind}: closed loop, {in_flight:>2} in flight: {levels[in_flight][0]:8.0f} req/s  "
                      f"p99 {levels[in_flight][1]:.2f} ms", file=sys.stderr)
            capacity = max(rps for rps, _ in levels.values())
            low = capacity / 10
            # One client: its timer sends one request every 10 ms or so, none waiting for another.
            # The median of UNLOADED_RUNS runs: one run's p99 is its fifth slowest request or so,
            # and one hiccup of the machine made it 11 ms instead of 1.7 (session 13).
            p99s = []
            for _ in range(UNLOADED_RUNS):
                summary = h2load(target.argv(1, 4, cap_seconds, rps=low), log)
                p99s.append(quantile_ms([s for _, s in read_log(log)], 0.99))
            unloaded = sorted(p99s)[len(p99s) // 2]
            print(f"overload {kind}: capacity {capacity:.0f} req/s; unloaded p99 {unloaded:.2f} ms at "
                  f"{summary['rps']:.0f} req/s (median of {', '.join(f'{p:.2f}' for p in p99s)})",
                  file=sys.stderr)
        finally:
            server.stop()
        runs = {}
        for multiple in multiples:
            for enabled in ((True, False) if shedding else (False,)):
                tag = f"{multiple}x-{'on' if enabled else 'off'}"
                server, metrics_port = make(kind, enabled, tag)
                try:
                    target = start(server, kind)
                    runs[(multiple, enabled)] = open_loop(target, multiple * capacity, warmup, seconds, log,
                                                          metrics_port, per_client)
                finally:
                    server.stop()
                r = runs[(multiple, enabled)]
                print(f"overload {kind} {tag}: goodput {r['goodput']:.0f}/s ({r['goodput'] / capacity:.2f} of "
                      f"capacity), p50/p99 admitted {r['p50_admitted']:.1f}/{r['p99_admitted']:.1f} ms, "
                      f"dropped {r['drop_pct']:.1f} %, shedder's capacity (median) {fmt(r['capacity_estimate'], '.0f')}, "
                      f"answered {r['answered_pct']:.1f} % of the offer, max CPU reading "
                      f"{fmt(r['max_cpu'], '.2f')}", file=sys.stderr)
        figures[kind] = {"capacity": capacity, "unloaded_p99_ms": unloaded, "levels": levels,
                         "runs": {f"{m}x {'on' if e else 'off'}": r for (m, e), r in runs.items()}}
        print_table(kind, capacity, unloaded, runs, threshold, warmup, seconds)
        print()
    return {"overload": figures}


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def open_loop(target, rate, warmup, seconds, log, metrics_port, per_client=RPS_PER_CLIENT):
    """One open-loop run at `rate` req/s: a warm-up, then `seconds` measured."""
    clients, streams, per_client = open_loop_shape(target.kind, rate, per_client)
    scraper = Scraper(metrics_port)
    scraper.start()
    try:
        # The measured processes start as the warm-up's stop sending, not once they have exited
        # (they wait for their last answers): a pause in the offer would let the shedder's CPU
        # reading fall back under the threshold, and the measured run would begin unshed.
        warming = []
        if warmup > 0:
            warming = start_staggered(target, clients, streams, warmup, per_client)
            time.sleep(warmup)
        before = scraper.scrape()
        measured = start_staggered(target, clients, streams, seconds, per_client, log)
        collect(warming)
        summary = collect(measured, log)
        after = scraper.scrape()
    finally:
        scraper.stop()
    rows = read_log(log)
    answered = len(rows)
    late = [s for _, s in rows if s >= DEADLINE_S]
    counted = [parse_metrics(t) if t is not None else None for t in (before, after)]
    shed_by_server = None
    if dropped_total(counted[0]) is not None and dropped_total(counted[1]) is not None:
        shed_by_server = dropped_total(counted[1]) - dropped_total(counted[0])
    if target.kind == "http":
        ok_fast = sum(1 for status, s in rows if 200 <= status < 300 and s < DEADLINE_S)
        shed = sum(1 for status, _ in rows if status == 503)
        admitted = sorted((s for status, s in rows if status != 503), reverse=True)
    else:
        ok = target.ok_count(summary)
        # The OK answers come within the deadline (tonic ends a call at grpc-timeout).
        ok_fast = min(ok, answered - len(late))
        shed = shed_by_server if shed_by_server is not None else max(0, answered - ok - len(late))
        shed = int(min(shed, answered))
        # The shed answers are the fastest: the p99 of the rest is read from the top.
        admitted = sorted((s for _, s in rows), reverse=True)[:answered - shed]
    p99 = admitted[int(0.01 * len(admitted))] * 1000 if admitted else float("nan")
    p50 = admitted[len(admitted) // 2] * 1000 if admitted else float("nan")
    estimates = sorted(s["shedding_capacity"] for s in scraper.samples if "shedding_capacity" in s)
    offered = rate * seconds
    return {"rate": rate, "clients": clients, "streams": streams, "rps_per_client": per_client,
            "goodput": ok_fast / seconds, "p99_admitted": p99, "p50_admitted": p50,
            "drop_pct": 100.0 * shed / answered if answered else float("nan"),
            "answered_pct": 100.0 * answered / offered, "late": len(late), "answered": answered,
            "shed": shed, "shed_counted_by_server": shed_by_server is not None,
            "max_cpu": scraper.max_of("process_cpu_usage"),
            "capacity_estimate": estimates[len(estimates) // 2] if estimates else None}


def print_table(kind, capacity, unloaded, runs, threshold, warmup, seconds):
    route = f"GET {HTTP_PATH} (HTTP/1.1, h2load --h1, pipelined)" if kind == "http" else \
        f"{GRPC_PATH} ms={BURN_MS} (gRPC over TLS, grpc-timeout 1S)"
    print(f"overload, {kind}: {route}; server on CPU 0, h2load on CPU 1; open loop: {warmup} s warm-up, "
          f"{seconds} s measured, a fresh server per run")
    print(f"capacity {capacity:.0f} req/s (closed loop, best of {', '.join(map(str, CAPACITY_LEVELS))} in flight, "
          f"shedding off); unloaded p99 {unloaded:.2f} ms (open loop at a tenth of capacity)")
    cpu_head = f"max CPU (≥ {threshold:.2f})" if threshold is not None else "max CPU"
    print(f"{'offer':<6}{'shedding':<10}{'goodput/cap':>13}{'p99 admitted ms':>18}{'drop %':>8}"
          f"{'answered %':>12}{cpu_head:>18}")
    for (multiple, enabled), r in runs.items():
        ratio = r["goodput"] / capacity
        goal = GOALS.get(multiple)
        goodput = f"{ratio:.2f} {judge(goal is not None and ratio >= goal)}"
        p99_ok = r["p99_admitted"] <= P99_GOAL * unloaded
        p99 = f"{r['p99_admitted']:.1f} {judge(p99_ok)}"
        cpu = fmt(r["max_cpu"], ".2f")
        if r["max_cpu"] is not None and threshold is not None:
            cpu += f" {judge(r['max_cpu'] >= threshold)}"
        print(f"{str(multiple) + 'x':<6}{'on' if enabled else 'off':<10}{goodput:>13}{p99:>18}"
              f"{r['drop_pct']:>8.1f}{r['answered_pct']:>12.1f}{cpu:>18}")
    print(f"goals: goodput ≥ {GOALS[3]:.2f} of capacity at 3x, ≥ {GOALS[10]:.2f} at 10x; p99 admitted ≤ "
          f"{P99_GOAL:.0f} x unloaded p99 ({P99_GOAL * unloaded:.2f} ms); the CPU reading reaches "
          f"shedding.cpu_threshold at 3x")
    if kind == "grpc" and any(enabled and not r["shed_counted_by_server"] for (_, enabled), r in runs.items()):
        print("note: gRPC shed answers estimated as those neither OK nor late (no shedding_decisions_total "
              "on this app's metrics listener)")


def burn_check(port, body):
    """One bench.Burn call answered grpc-status 0 with the 7-byte body the counts rely on."""
    out = subprocess.run(
        ["nghttp", "-v", "-H", ":method: POST", *[a for h in GRPC_HEADERS for a in ("-H", h)],
         "-d", body, f"https://127.0.0.1:{port}{GRPC_PATH}"], capture_output=True).stdout
    if b"grpc-status: 0" not in out or f"DATA frame <length={BURN_OK_BODY},".encode() not in out:
        raise SystemExit(f"bench: bench.Burn on port {port} did not answer OK with a {BURN_OK_BODY}-byte body "
                         f"(is server.debug_routes on?)\n{out.decode(errors='replace')[-2000:]}")
