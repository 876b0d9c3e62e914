"""The tracing suite of bench/run.py (`--suite tracing`, issue 26): what OpenTelemetry tracing
costs `GET /hello` on the HTTP app, off, on with every new trace sampled out (ratio 0), and on
with every trace kept and exported (ratio 1), in one run.

1. Instructions per request, counted by Debian's valgrind (`--tool=callgrind`): the differences
   that matter here (a few hundred instructions in ~26,000) are far below this machine's timing
   noise, and an instruction count does not move with it. Each build runs under callgrind on
   one worker (`server.http.workers: 1`), pinned to CPU 0, with the suites' settings
   (`stack_env`: access log on, SQLite); h2load `--h1 -c4` on CPU 1. After 1,000 requests of
   warm-up, each round zeroes the counters, sends 10,000 requests, dumps; zeroes, waits as long
   idle, dumps: (load - idle) / 10,000. Median of 3 rounds. Rows: the baseline build (the
   guard's, tracing off), this build off, this build on at ratio 0.
2. Server CPU per request with every trace kept: this build off against on at ratio 1,
   exporting to the collector double (tests/otlp/collector_double.py with `--count`, on CPU 1),
   by wrk in alternating rounds as the http suite measures (`measure`).

Goals (issue 26): off at most 1 % more instructions per request than the build before tracing;
sampled out at most 3 % more; kept and exported at most 15 % more server CPU per request than
off. The "build before" is the baseline: `--baseline 9dd4aea` is the last build without
tracing (docs/benchmarks.md).
"""
import glob
import os
import re
import statistics
import subprocess
import sys
import time

IR_WARMUP = 1_000
IR_REQUESTS = 10_000
IR_ROUNDS = 3
# The collector double's packages: exactly the tests' (tests/api/tracing.rs), so both use one venv.
OTLP_PACKAGES = ["grpcio==1.85.1", "protobuf==7.36.2", "opentelemetry-proto==1.45.2"]
GOALS = {"off": 1.0, "ratio 0": 3.0, "ratio 1": 15.0}
# Valgrind runs a program ~50 times slower: its start takes seconds.
VALGRIND_START_S = 120


def h2load(port, requests):
    """`requests` GET /hello over 4 HTTP/1.1 connections from CPU 1; its wall time."""
    started = time.monotonic()
    out = subprocess.run(["taskset", "-c", "1", "h2load", "--h1", "-c4", "-n", str(requests),
                          f"http://127.0.0.1:{port}/hello"], capture_output=True, text=True, check=True)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out.stdout)
    if not done or int(done.group(2)) != requests:
        raise SystemExit(f"bench: h2load did not get {requests} answers:\n{out.stdout[-800:]}")
    return time.monotonic() - started


def dump(pid, out_dir):
    """Dumps the callgrind counters of `pid` and returns the instructions counted since the last
    zeroing."""
    before = set(glob.glob(os.path.join(out_dir, "cg.*")))
    subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        new = set(glob.glob(os.path.join(out_dir, "cg.*"))) - before
        for path in new:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            total = re.search(r"^(?:totals|summary):\s+(\d+)", text, re.M)
            if total:
                os.remove(path)
                return int(total.group(1))
        time.sleep(0.1)
    raise SystemExit("bench: callgrind wrote no dump")


def zero(pid):
    subprocess.run(["callgrind_control", "--zero", str(pid)], check=True, capture_output=True)


def instructions_per_request(bench, name, binary, root, env, work):
    """The median over IR_ROUNDS of one build's instructions per GET /hello under callgrind."""
    port = bench.free_port()
    out_dir = os.path.join(work, "callgrind-" + re.sub(r"\W+", "-", name))
    os.makedirs(out_dir, exist_ok=True)
    env = {**env, "APP__SERVER__HTTP__ADDR": f"127.0.0.1:{port}", "APP__SERVER__HTTP__WORKERS": "1"}
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_dir}/cg.%p", "--dump-line=no",
            binary, "http", "--env", "debug"]
    server = bench.Server(name, argv, port, env, root)
    server.start(timeout=VALGRIND_START_S)
    try:
        pid = server.proc.pid
        h2load(port, IR_WARMUP)
        rounds = []
        for r in range(IR_ROUNDS):
            zero(pid)
            elapsed = h2load(port, IR_REQUESTS)
            load = dump(pid, out_dir)
            zero(pid)
            time.sleep(elapsed)
            idle = dump(pid, out_dir)
            rounds.append((load - idle) / IR_REQUESTS)
            print(f"round {r + 1}: {name:<28} {rounds[-1]:>10.0f} Ir/req  (idle {idle / IR_REQUESTS:.0f})",
                  file=sys.stderr)
        return statistics.median(rounds), rounds
    finally:
        server.stop()


def collector(bench, work):
    """The collector double in counting mode, on CPU 1: (process, endpoint, count file)."""
    python = subprocess.run([os.path.join(bench.ROOT, "scripts/python-venv.sh"), "otlp"] + OTLP_PACKAGES,
                            capture_output=True, text=True, check=True).stdout.strip()
    out = os.path.join(work, "spans-received")
    proc = subprocess.Popen(["taskset", "-c", "1", python, os.path.join(bench.ROOT, "tests/otlp/collector_double.py"),
                             "--out", out, "--count"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("LISTENING "):
        proc.kill()
        raise SystemExit(f"bench: the collector double did not start: {line!r}")
    return proc, f"http://127.0.0.1:{line.split()[1]}", out


def traced_env(bench, port, work, name, ratio, endpoint):
    workdir = os.path.join(work, name)
    os.makedirs(workdir, exist_ok=True)
    env = bench.stack_env(port, workdir)
    if ratio is not None:
        env.update({"APP__TRACING__ENABLED": "true", "APP__TRACING__SAMPLE_RATIO": str(ratio),
                    "APP__TRACING__ENDPOINT": endpoint})
    return env


def suite(args, work, bench):
    if not bench.shutil.which("valgrind"):
        raise SystemExit("bench: valgrind is missing (Debian: valgrind; bench/run.sh installs it)")
    # Nothing listens here: at ratio 0 no span is exported (the exporter connects lazily).
    nowhere = f"http://127.0.0.1:{bench.free_port()}"
    builds = []
    if args.baseline:
        builds.append(("baseline (off)", args.baseline.binary, args.baseline.root,
                       args.baseline.env(traced_env(bench, 0, work, "ir-baseline", None, None))))
    builds += [("this build, off", args.stack, bench.ROOT, traced_env(bench, 0, work, "ir-off", None, None)),
               ("this build, ratio 0", args.stack, bench.ROOT, traced_env(bench, 0, work, "ir-ratio0", 0, nowhere))]
    ir = {}
    for name, binary, root, env in builds:
        ir[name] = instructions_per_request(bench, name, binary, root, env, work)

    # Server CPU per request: off against every trace kept and exported.
    double, endpoint, count_file = collector(bench, work)
    servers = []
    try:
        for name, ratio in (("tracing off", None), ("tracing ratio 1", 1)):
            port = bench.free_port()
            env = traced_env(bench, port, work, "cpu-" + name.replace(" ", "-"), ratio, endpoint)
            servers.append(bench.Server(name, [args.stack, "http", "--env", "debug"], port, env, bench.ROOT))
            servers[-1].start()
        med, _ = bench.measure(servers, args, "/hello")
    finally:
        for s in servers:
            s.stop()
        double.stdin.close()
        double.wait(30)
    with open(count_file, encoding="utf-8") as f:
        received = int(f.read().strip() or 0)

    print()
    print(f"GET /hello: instructions per request under callgrind (one worker, h2load --h1 -c4, "
          f"{IR_REQUESTS:,} requests less as long idle, median of {IR_ROUNDS})")
    print(f"{'build':<28}{'Ir/req':>10}  rounds")
    for name, (median, rounds) in ir.items():
        print(f"{name:<28}{median:>10.0f}  {', '.join(f'{r:.0f}' for r in rounds)}")
    off = ir["this build, off"][0]
    ratio0 = ir["this build, ratio 0"][0]
    figures = {"ir": {n: {"median": m, "rounds": r} for n, (m, r) in ir.items()}}
    print()
    if args.baseline:
        base = ir["baseline (off)"][0]
        for label, value, goal in (("off", off, GOALS["off"]), ("ratio 0", ratio0, GOALS["ratio 0"])):
            more = (value / base - 1) * 100
            mark = "ok" if more <= goal else "OVER"
            print(f"tracing {label:<8} against the baseline {args.baseline.label}: {more:+.2f} % instructions "
                  f"(goal <= +{goal:.0f} % against the build before tracing) {mark}")
        figures["against_baseline"] = {"off": off / base, "ratio 0": ratio0 / base}
    print(f"tracing ratio 0 against this build off:     {(ratio0 / off - 1) * 100:+.2f} % instructions")
    on, plain = med["tracing ratio 1"], med["tracing off"]
    more_cpu = (on[2] / plain[2] - 1) * 100
    print()
    print(f"GET /hello, wrk -t1 -c{args.connections}, {args.rounds} alternating rounds of {args.seconds} s "
          f"(median): server CPU per request")
    bench.table(med)
    print(f"tracing ratio 1 (exported to the collector double) against off: {more_cpu:+.1f} % CPU per request "
          f"(goal <= +{GOALS['ratio 1']:.0f} %) {'ok' if more_cpu <= GOALS['ratio 1'] else 'OVER'}; "
          f"spans received by the double: {received:,} (a span dropped at the bounded queue is not)")
    figures["cpu"] = {"median": med, "ratio_1_more_cpu_pct": more_cpu, "spans_received": received}
    return {"tracing": figures}
