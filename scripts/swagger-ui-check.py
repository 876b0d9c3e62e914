#!/usr/bin/env python3
"""Checks that the app's Swagger UI really renders its OpenAPI document (run by scripts/contract.sh).

  scripts/swagger-ui-check.py URL     # URL: the app's base URL, e.g. http://127.0.0.1:8080

Reads URL/openapi.json, loads URL/swagger-ui/ in Debian's headless Chromium (no browser build
of its own, no network but loopback), dumps the DOM once the page's scripts have run and fails
unless it shows
  - the document's title (info.title) as the page's title,
  - an operation block (class `opblock`) for every operation of the document, by method and path,
  - no "Failed to load API definition" and no Swagger UI error panel (e.g. an unresolvable $ref).
The operations come from the served document, so the check follows it; an empty document fails
(nothing rendered would pass vacuously). Standard library only (and scripts/cdp.py); installs
nothing (contract.sh installs chromium). Exit 0 when rendered, 1 when not, 2 on bad usage.

Environment: CHROMIUM (default /usr/bin/chromium), SWAGGER_UI_BUDGET_MS (Chromium's virtual-time
budget for the page's scripts and fetches, default 10000), SWAGGER_UI_TIMEOUT (seconds Chromium
may take in real time, default 60).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from html.parser import HTMLParser

# scripts/cdp.py, from any working directory (and no __pycache__ left in scripts/).
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
sys.dont_write_bytecode = True
from cdp import CheckFailed, chromium_command, is_loopback, require_chromium, rule_host  # noqa: E402

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
LOAD_FAILED = "Failed to load API definition"
VOID = frozenset("area base br col embed hr img input link meta source track wbr".split())


def fail(message: str) -> None:
    print(f"swagger-ui: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def fetch_document(url: str) -> dict:
    # No proxy: the app is on loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=10) as response:
            return json.loads(response.read())
    except Exception as exc:  # noqa: BLE001 - any failure to read the document is the answer
        fail(f"cannot read {url}: {exc}")
    raise AssertionError  # unreachable


def document_operations(doc: dict) -> set[tuple[str, str]]:
    operations = set()
    for path, item in (doc.get("paths") or {}).items():
        if isinstance(item, dict):
            operations.update((method.upper(), path) for method in METHODS if method in item)
    return operations


class SwaggerDom(HTMLParser):
    """What Swagger UI rendered: operation blocks (method, path), the title, error panels."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.opblocks = 0
        self.operations: list[tuple[str, str]] = []
        self.title = ""
        self.errors: list[str] = []
        self._method: str | None = None
        self._capture: str | None = None  # "method" | "title" | "error"
        self._depth = 0  # open elements inside the captured one
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if self._capture is not None:
            # Void elements (<br>, <img>, ...) have no end tag to balance.
            if tag not in VOID:
                self._depth += 1
            return
        if "opblock" in classes:
            self.opblocks += 1
        if "opblock-summary-method" in classes:
            self._start("method")
        elif "opblock-summary-path" in classes and attributes.get("data-path") is not None:
            if self._method is not None:
                self.operations.append((self._method, attributes["data-path"] or ""))
                self._method = None
        elif "title" in classes and tag == "h2" and not self.title:
            self._start("title")
        elif "errors-wrapper" in classes:
            self._start("error")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # `<br/>`: a start tag with no end tag.
        if self._capture is None:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if self._capture is None or tag in VOID:
            return
        if self._depth > 0:
            self._depth -= 1
            return
        text = " ".join("".join(self._text).split())
        if self._capture == "method":
            self._method = text.upper()
        elif self._capture == "title":
            self.title = text
        else:
            self.errors.append(text)
        self._capture = None

    def handle_data(self, data: str) -> None:
        if self._capture is not None:
            self._text.append(data)

    def _start(self, what: str) -> None:
        self._capture, self._depth, self._text = what, 0, []


def dump_dom(page: str) -> str:
    try:
        chromium = require_chromium("scripts/contract.sh")
    except CheckFailed as e:
        fail(str(e))
    budget = os.environ.get("SWAGGER_UI_BUDGET_MS", "10000")
    timeout = float(os.environ.get("SWAGGER_UI_TIMEOUT", "60"))
    with tempfile.TemporaryDirectory(prefix="swagger-ui-check.") as profile:
        # Nothing but the app resolves.
        command = chromium_command(chromium, profile, {rule_host(page)}, f"--virtual-time-budget={budget}", "--dump-dom", page, devtools=False)
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            fail(f"chromium did not finish loading {page} in {timeout:g}s")
    if done.returncode != 0 or not done.stdout.strip():
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        fail(f"chromium exited {done.returncode} with no DOM for {page}:\n{tail}")
    return done.stdout


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        sys.exit(2)
    base = sys.argv[1].rstrip("/")
    if not is_loopback(base):
        print(f"swagger-ui: refusing {base}: not a loopback address", file=sys.stderr)
        sys.exit(2)
    doc_url, page = f"{base}/openapi.json", f"{base}/swagger-ui/"

    doc = fetch_document(doc_url)
    expected = document_operations(doc)
    title = " ".join(str((doc.get("info") or {}).get("title", "")).split())
    if not expected:
        fail(f"{doc_url} declares no operation: nothing to render")
    if not title:
        fail(f"{doc_url} has no info.title")

    dom = SwaggerDom()
    html = dump_dom(page)
    dom.feed(html)
    dom.close()

    problems = []
    if LOAD_FAILED in html:
        problems.append(f'the page says "{LOAD_FAILED}"')
    problems.extend(f"error panel: {text}" for text in dom.errors)
    # The title element also holds the version badges; the document's title opens it.
    if not dom.title.startswith(title):
        problems.append(f"title {dom.title!r} does not start with the document's {title!r}")
    rendered = set(dom.operations)
    missing = sorted(expected - rendered, key=lambda op: (op[1], op[0]))
    if missing:
        problems.append("operations not rendered: " + ", ".join(f"{m} {p}" for m, p in missing))
    if dom.opblocks < len(expected):
        problems.append(f"{dom.opblocks} operation blocks (class opblock) for {len(expected)} operations")
    if problems:
        fail(f"{page} did not render {doc_url}:\n  - " + "\n  - ".join(problems))
    print(f"swagger-ui: {page} renders {title!r}: {len(expected)} operations, {dom.opblocks} operation blocks")


if __name__ == "__main__":
    main()
