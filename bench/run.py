#!/usr/bin/env python3
"""Side-by-side HTTP benchmarks for `make bench`.

Each server is pinned to CPU 0 and wrk (one thread) to CPU 1. The three servers are measured in
alternating rounds within one run, so drift on the machine hits them alike; the reported figure is
the median of the rounds. Also measured: go_example's time from process start to the first 200
and its idle resident memory, on the embedded default.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_200(url, deadline):
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=0.5) as r:
                if r.status == 200:
                    return True
        except Exception:
            time.sleep(0.002)
    return False


def stack_env(port, workdir):
    env = dict(os.environ)
    env.update({
        "APP__SERVER__HTTP__ADDR": f"127.0.0.1:{port}",
        "APP__SQLITE__PATH": os.path.join(workdir, "bench.db"),
        "APP__PPROF__ENABLED": "false",
        "APP__LOG__LEVEL": "info",
        "APP__LOG__FILE__PATH": os.path.join(workdir, "logs", "go_example.log"),
    })
    return env


class Server:
    def __init__(self, name, argv, port, env=None, cwd=None):
        self.name, self.argv, self.port, self.env, self.cwd = name, argv, port, env, cwd
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0"] + self.argv, env=self.env, cwd=self.cwd,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        if not wait_200(f"http://127.0.0.1:{self.port}/hello", time.monotonic() + 30):
            raise SystemExit(f"bench: {self.name} did not answer on port {self.port}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def wrk(port, seconds, connections):
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
         f"http://127.0.0.1:{port}/hello"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"bench: {errors.group(1)} non-2xx responses\n{out}")
    return rps, float(m.group(1)) * scale


def startup_and_rss(stack_bin, workdir, runs):
    times, rss = [], []
    for i in range(runs):
        port = free_port()
        run_dir = os.path.join(workdir, f"start{i}")
        os.makedirs(run_dir)
        env = stack_env(port, run_dir)
        t0 = time.monotonic()
        proc = subprocess.Popen([stack_bin, "http", "--env", "debug"], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ok = wait_200(f"http://127.0.0.1:{port}/hello", t0 + 30)
        elapsed = (time.monotonic() - t0) * 1000
        if not ok:
            raise SystemExit("bench: go_example did not start")
        times.append(elapsed)
        time.sleep(1.0)
        with open(f"/proc/{proc.pid}/status") as f:
            kb = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        rss.append(kb / 1024)
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    return statistics.median(times), statistics.median(rss)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stack", required=True)
    ap.add_argument("--bare", required=True)
    ap.add_argument("--gin", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench: wrk is missing")

    work = tempfile.mkdtemp(prefix="goex-bench-")
    stack_port, bare_port, gin_port = free_port(), free_port(), free_port()
    servers = [
        Server("go_example", [args.stack, "http", "--env", "debug"], stack_port, stack_env(stack_port, work), ROOT),
        Server("bare actix-web", [args.bare, f"127.0.0.1:{bare_port}"], bare_port),
        Server("gin (original)", [args.gin, f"127.0.0.1:{gin_port}"], gin_port),
    ]
    results = {s.name: [] for s in servers}
    try:
        for s in servers:
            s.start()
            wrk(s.port, 2, args.connections)  # warm-up
        for r in range(args.rounds):
            for s in servers:
                rps, p99 = wrk(s.port, args.seconds, args.connections)
                results[s.name].append((rps, p99))
                print(f"round {r + 1}: {s.name:<16} {rps:>10.0f} req/s  p99 {p99:.2f} ms", file=sys.stderr)
    finally:
        for s in servers:
            s.stop()

    med = {n: (statistics.median(v[0] for v in rs), statistics.median(v[1] for v in rs)) for n, rs in results.items()}
    start_ms, rss_mib = startup_and_rss(args.stack, work, 5)
    shutil.rmtree(work, ignore_errors=True)

    stack, bare, gin = med["go_example"], med["bare actix-web"], med["gin (original)"]
    print()
    print(f"GET /hello, wrk -t1 -c{args.connections}, {args.rounds} alternating rounds of {args.seconds} s, "
          f"server on CPU 0, wrk on CPU 1 (median of rounds)")
    print(f"{'server':<18}{'req/s':>12}{'p99 ms':>10}")
    for name, (rps, p99) in med.items():
        print(f"{name:<18}{rps:>12.0f}{p99:>10.2f}")
    print()
    print(f"go_example / bare actix-web: {stack[0] / bare[0]:.3f}  (goal >= 0.90)")
    print(f"go_example / gin:            {stack[0] / gin[0]:.3f}  (goal >= 1.60)")
    print(f"start to first 200:          {start_ms:.0f} ms (median of 5; goal <= 150 ms)")
    print(f"idle RSS:                    {rss_mib:.1f} MiB (median of 5; goal <= 40 MiB)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"median": med, "rounds": results, "ratio_bare": stack[0] / bare[0],
                       "ratio_gin": stack[0] / gin[0], "startup_ms": start_ms, "idle_rss_mib": rss_mib}, f, indent=2)


if __name__ == "__main__":
    main()
