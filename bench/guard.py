#!/usr/bin/env python3
"""The regression guard of `make bench` (issue 23): which earlier build the run compares with,
that build's release binary (built once, cached), the environment an older build accepts, and
the verdict over the guarded rows.

Baseline, by default: the merge-base of HEAD with origin/main; without origin/main, the
merge-base with main; when that is HEAD itself (on main, or nothing committed beyond it),
HEAD~1. `--baseline REV` names a commit, `--baseline none` turns the comparison off, and
`--baseline BIN [--baseline-root DIR]` takes a binary built elsewhere (DIR: the checkout whose
configs/ it reads).

A commit's build is cached as ~/.cache/go_example-rs/baseline/<sha>/go_example beside that
commit's configs/ and views/ (the directory is the baseline root). It is built from a git
worktree of the commit at ~/.cache/go_example-rs/baseline-src with its own CARGO_TARGET_DIR
(~/.cache/go_example-rs/baseline-target): cargo keys path-dependency artefacts by path, so two
checkouts sharing one target directory rebuild (or corrupt) each other's, and one fixed source
path lets the next baseline reuse what did not change.

Flagging: a row (lower is better: CPU per request, KiB per connection, p99) is flagged when
every round of a run with fewer than 5 rounds is more than 5 % worse than the baseline's round
beside it; a flagged row is measured again with 5 rounds and counts as a regression when the
median of those is more than 5 % worse. With 5 rounds or more the medians decide at once.

    python3 bench/guard.py resolve [--baseline REV|none|BIN] [--baseline-root DIR]
        prints the baseline binary and its root, one a line (nothing for none), building it
        first when it is not cached.
"""
import argparse
import contextlib
import fcntl
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("GOEX_CACHE_DIR", os.path.expanduser("~/.cache/go_example-rs"))
# More than this fraction worse than the baseline (by a lower-is-better figure) flags a row.
TOLERANCE = 0.05
# Rounds a flagged row is measured again with; runs with at least this many rounds decide at once.
CONFIRM_ROUNDS = 5


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def git(*args, root=ROOT, check=True):
    out = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True)
    if check and out.returncode != 0:
        raise SystemExit(f"bench: git {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout.strip() if out.returncode == 0 else None


def default_commit(root=ROOT):
    """(sha, why) of the default baseline."""
    head = git("rev-parse", "HEAD", root=root)
    ref = next((r for r in ("origin/main", "main")
                if git("rev-parse", "--verify", "-q", f"{r}^{{commit}}", root=root, check=False)), None)
    if ref:
        note = "" if ref == "origin/main" else "no origin/main, so "
        base = git("merge-base", "HEAD", ref, root=root)
        if base != head:
            return base, f"{note}the merge-base of HEAD with {ref}"
        why = f"{note}HEAD~1: HEAD is its own merge-base with {ref} (nothing beyond {ref})"
    else:
        why = "HEAD~1: neither origin/main nor main exists"
    parent = git("rev-parse", "--verify", "-q", "HEAD~1^{commit}", root=root, check=False)
    if not parent:
        raise SystemExit("bench: no baseline commit (HEAD has no parent); pass --baseline none")
    return parent, why


class Baseline:
    """An earlier go_example build: its binary, the directory whose configs/ it reads, a label."""

    def __init__(self, binary, root, label):
        self.binary, self.root, self.label = binary, root, label
        self._keys = {}

    def env(self, env, profile="debug"):
        """`env` without the APP__ variables naming config keys this build predates (it refuses
        unknown keys): each dropped one is said once."""
        keys = self._keys.setdefault(profile, config_keys(self.root, profile))
        kept = {}
        for var, value in {**OLDER_BUILDS_ENV, **env}.items():
            if var.startswith("APP__") and not key_known(keys, var):
                if (profile, var) not in DROPPED:
                    DROPPED.add((profile, var))
                    log(f"the baseline predates {var}: left out")
                continue
            kept[var] = value
        return kept


DROPPED = set()

# Limits of older builds that the suites' load would hit, lifted for a baseline that has them
# (the keys it does not know are dropped like any other): before issue 25 the per-address
# throttle of GET /grpc/hello and the per-admin export allowance were keys of their own; since,
# they are rate-limit rules, off with `rate_limit.enabled`.
OLDER_BUILDS_ENV = {
    "APP__GRPC_CLIENT__MAX_PER_ADDRESS": "0",
    "APP__EXCEL__MAX_EXPORTS_PER_USER": "1000000",
}


def config_keys(root, profile):
    """(paths, lists): the lower-cased dotted key paths of configs/base.yaml (when the build has
    one) and configs/<profile>/common.yaml, and those whose value is a list."""
    paths, lists = set(), set()
    for name in ("base.yaml", os.path.join(profile, "common.yaml")):
        path = os.path.join(root, "configs", name)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                yaml_paths(f.read(), paths, lists)
    if not paths:
        raise SystemExit(f"bench: no config files under {root}/configs for profile {profile}")
    return paths, lists


def yaml_paths(text, paths, lists):
    """Key paths of a YAML file as written in configs/ (block mappings, flow or block lists);
    enough to tell whether a key exists, not a YAML parser."""
    stack = []  # (indent, path)
    block_indent = None  # inside a `|` or `>` scalar: lines more indented than this
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if block_indent is not None:
            if indent > block_indent:
                continue
            block_indent = None
        item = re.match(r"-(\s+|$)", stripped)
        if item:
            while stack and stack[-1][0] >= indent:
                stack.pop()
            if stack:
                lists.add(stack[-1][1])
            continue
        m = re.match(r"""("[^"]+"|'[^']+'|[^\s:#][^:#]*?)\s*:(\s+(.*))?$""", stripped)
        if not m:
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = m.group(1).strip("\"'").lower()
        path = f"{stack[-1][1]}.{key}" if stack else key
        paths.add(path)
        value = (m.group(3) or "").split(" #")[0].strip()
        if value.startswith("["):
            lists.add(path)
        elif value[:1] in ("|", ">"):
            block_indent = indent
        elif not value:
            stack.append((indent, path))


def key_known(keys, var):
    paths, lists = keys
    parts = var[len("APP__"):].lower().split("__")
    for i in range(1, len(parts) + 1):
        path = ".".join(parts[:i])
        if path in lists:
            return True  # APP__REDIS__ADDRS__0, APP__MYSQL__REPLICAS__0__DSN
        if path not in paths:
            return False
    return True


@contextlib.contextmanager
def locked(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cached(sha):
    """The cache directory holding `sha`'s build (named by any prefix of 7+ hex digits), or None."""
    base = os.path.join(CACHE, "baseline")
    if not os.path.isdir(base):
        return None
    for name in sorted(os.listdir(base)):
        d = os.path.join(base, name)
        if len(name) >= 7 and sha.startswith(name) and os.path.isfile(os.path.join(d, "go_example")):
            recorded = os.path.join(d, "commit")
            if os.path.exists(recorded) and open(recorded).read().strip() != sha:
                continue
            return d
    return None


def export_tree(sha, dest, paths=("configs", "views")):
    """`paths` of commit `sha` (those it has) into `dest`."""
    present = [p for p in paths if git("cat-file", "-e", f"{sha}:{p}", check=False) is not None]
    archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", sha, *present],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest)


def build(sha):
    """The cache directory of `sha`'s release build, building it first when needed."""
    d = cached(sha)
    if d and os.path.isdir(os.path.join(d, "configs")):
        return d
    with locked(os.path.join(CACHE, "baseline.lock")):
        d = cached(sha)
        if d:
            # A binary seeded by hand: add the commit's configs beside it.
            if not os.path.isdir(os.path.join(d, "configs")):
                export_tree(sha, d)
            return d
        src = os.path.join(CACHE, "baseline-src")
        target = os.path.join(CACHE, "baseline-target")
        if os.path.exists(os.path.join(src, ".git")):
            git("checkout", "-q", "--detach", "--force", sha, root=src)
            git("clean", "-q", "-fdx", root=src)
        else:
            shutil.rmtree(src, ignore_errors=True)
            # --force: also when a deleted copy is still registered.
            git("worktree", "add", "-q", "--detach", "--force", src, sha)
        log(f"building the baseline {sha[:7]} (release, once; cached in {CACHE}/baseline) "
            f"from {src} with CARGO_TARGET_DIR={target}")
        env = {**os.environ, "CARGO_TARGET_DIR": target}
        status = subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "go_example", "--bin", "go_example"],
                                cwd=src, env=env).returncode
        if status != 0:
            raise SystemExit(f"bench: the baseline {sha[:7]} did not build (pass --baseline REV or none)")
        d = os.path.join(CACHE, "baseline", sha[:7])
        partial = d + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        shutil.copy2(os.path.join(target, "release", "go_example"), os.path.join(partial, "go_example"))
        export_tree(sha, partial)
        with open(os.path.join(partial, "commit"), "w") as f:
            f.write(sha + "\n")
        shutil.rmtree(d, ignore_errors=True)
        os.rename(partial, d)
        return d


def resolve(spec, root_arg=None):
    """The Baseline named by --baseline (None: the default commit; "none": no baseline)."""
    if spec == "none":
        log("no baseline (--baseline none): no guard")
        return None
    if spec and os.path.isfile(spec):
        root = root_arg or ROOT
        log(f"baseline: the binary {spec} (configs from {root})")
        return Baseline(os.path.abspath(spec), root, os.path.basename(os.path.dirname(os.path.abspath(spec))))
    if spec:
        sha = git("rev-parse", "--verify", "-q", f"{spec}^{{commit}}", check=False)
        if not sha:
            raise SystemExit(f"bench: --baseline {spec}: neither a file nor a commit")
        why = f"--baseline {spec}"
    else:
        sha, why = default_commit()
    subject = git("log", "-1", "--format=%h %s", sha)
    log(f"baseline: {subject[:100]} ({why})")
    d = build(sha)
    return Baseline(os.path.join(d, "go_example"), d, sha[:7])


# --- the verdict -----------------------------------------------------------------------------

class Row:
    """A guarded figure: this build's and the baseline's value per round (lower is better),
    paired by round, and optionally their req/s medians."""

    def __init__(self, suite, name, unit, ours, base, rps=None):
        self.suite, self.name, self.unit = suite, name, unit
        self.ours, self.base, self.rps = list(ours), list(base), rps
        self.confirmed = None  # the 5-round Row that replaced this one's decision

    @property
    def ratio(self):
        """Baseline / this build by the median figure: above 1 is better, below 0.95 is worse."""
        return statistics.median(self.base) / statistics.median(self.ours)

    def worse_every_round(self):
        return all(o > b * (1 + TOLERANCE) for o, b in zip(self.ours, self.base))

    def as_json(self):
        out = {"suite": self.suite, "row": self.name, "unit": self.unit, "ours": self.ours, "baseline": self.base,
               "ratio": self.ratio}
        if self.rps:
            out["rps_ratio"] = self.rps[0] / self.rps[1]
        if self.confirmed:
            out["confirmed"] = self.confirmed.as_json()
        return out


def flagged(rows):
    """Rows of a short run whose every round was more than 5 % worse: to measure again."""
    return [r for r in rows if len(r.ours) < CONFIRM_ROUNDS and r.worse_every_round()]


def regression(row):
    decided = row.confirmed or row
    if len(decided.ours) < CONFIRM_ROUNDS:
        return False  # not flagged: some round was within 5 %
    return decided.ratio < 1 / (1 + TOLERANCE)


def report(rows, label):
    """Prints every guarded row as a ratio to the baseline and the verdict; True when clean."""
    print()
    print(f"against the baseline {label}: every figure is lower-is-better; ratio = baseline / this build "
          f"(above 1: this build better; below {1 / (1 + TOLERANCE):.3f}: more than 5 % worse); "
          f"req/s = this build / baseline")
    print(f"{'row':<34}{'unit':<14}{'this build':>11}{'baseline':>11}{'ratio':>8}{'req/s':>8}  rounds")
    for r in rows:
        shown = r.confirmed or r
        rps = f"{shown.rps[0] / shown.rps[1]:>8.3f}" if shown.rps else f"{'':>8}"
        mark = "  FLAGGED, re-measured" if r.confirmed else ("  FLAGGED" if r.worse_every_round()
                                                             and len(r.ours) < CONFIRM_ROUNDS else "")
        print(f"{r.suite + ' ' + r.name:<34}{r.unit:<14}{statistics.median(shown.ours):>11.2f}"
              f"{statistics.median(shown.base):>11.2f}{shown.ratio:>8.3f}{rps}  {len(shown.ours)}{mark}")
    bad = [r for r in rows if regression(r)]
    if bad:
        print("verdict: REGRESSION in " + "; ".join(
            f"{r.suite} {r.name} ({(1 / (r.confirmed or r).ratio - 1) * 100:+.1f} % {r.unit})" for r in bad))
    else:
        print(f"verdict: no regression against {label} (no row more than 5 % worse after confirmation)")
    return not bad


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["resolve"])
    ap.add_argument("--baseline")
    ap.add_argument("--baseline-root")
    args = ap.parse_args()
    base = resolve(args.baseline, args.baseline_root)
    if base:
        print(base.binary)
        print(base.root)


if __name__ == "__main__":
    main()
