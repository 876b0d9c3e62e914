"""What the browser checks share: Debian's headless Chromium and the Chrome DevTools Protocol.

  import cdp   # from scripts/excel-page-check.py, scripts/socket-page-check.py, scripts/swagger-ui-check.py

Not a script of its own. The checks put their own folder (scripts/) first on sys.path, so it is
found from any working directory. It holds:

  - Chromium's command line: headless, no sandbox, none of its own connections, every host but
    the given (loopback) ones unresolvable, a temporary profile; with a DevTools port of its own
    (start_chromium) or for a one-shot run such as --dump-dom (chromium_command);
  - finding the DevTools websocket URL of Chromium's page target (devtools_page);
  - a DevTools session (Cdp: calls with ids, events kept as they come, Runtime.evaluate) and a
    Page on it (navigation, bounded waits for a condition, real clicks and typing);
  - run(): Chromium started, a check driven on its page, Chromium killed and its profile removed
    whatever happens, `NAME: FAILED: ...` and exit 1 when the check fails.

Standard library only when imported: the websockets client (the venv of scripts/python-venv.sh)
is imported by run() alone, so scripts/swagger-ui-check.py runs with any python.

Environment: CHROMIUM (default /usr/bin/chromium).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Iterable


class CheckFailed(Exception):
    pass


def is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def rule_host(url: str) -> str:
    """The host of url as Chromium's --host-resolver-rules name it (an IPv6 literal in brackets)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    return f"[{host}]" if ":" in host else host


def loopback_hosts(urls: Iterable[str]) -> set[str]:
    """The hosts Chromium may resolve for a check of urls: theirs, localhost and 127.0.0.1."""
    return {host for host in {"localhost", "127.0.0.1"} | {rule_host(url) for url in urls} if host}


def chromium_path() -> str:
    return os.environ.get("CHROMIUM", "/usr/bin/chromium")


def require_chromium(installer: str) -> str:
    """Chromium's path; fails naming installer (the script that installs it) when it is missing."""
    chromium = chromium_path()
    if not os.access(chromium, os.X_OK):
        raise CheckFailed(f"{chromium} is missing ({installer} installs Debian's chromium)")
    return chromium


def chromium_command(chromium: str, profile: str, hosts: Iterable[str], *extra: str, devtools: bool) -> list[str]:
    """Chromium's command line with profile as its user data folder, then extra (flags, the URL).

    Only hosts resolve. devtools: for start_chromium, with a DevTools port of its own (a free
    one on 127.0.0.1), no proxy and a 1280x900 window; without it, for a one-shot run.
    """
    excluded = ", ".join(f"EXCLUDE {host}" for host in sorted(hosts))
    return [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        *(["--no-default-browser-check"] if devtools else []),
        # Without these Chromium's own connections are refused on a closed network.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        *(["--no-proxy-server"] if devtools else []),
        # Only the hosts (loopback): any other fails to resolve, at once (IP literals too).
        f"--host-resolver-rules=MAP * ~NOTFOUND, {excluded}",
        *(["--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"] if devtools else []),
        f"--user-data-dir={profile}",
        *(["--window-size=1280,900"] if devtools else []),
        *extra,
    ]


def start_chromium(profile: str, hosts: set[str]) -> subprocess.Popen:
    """Chromium on about:blank with a DevTools port of its own; its output goes to profile/chromium.log."""
    chromium = require_chromium("scripts/browser.sh")
    command = chromium_command(chromium, profile, hosts, "about:blank", devtools=True)
    with open(os.path.join(profile, "chromium.log"), "wb") as output:
        # A session of its own: the whole group (renderers, zygote) is ended with it.
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True)


def stop_chromium(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        except ProcessLookupError:
            pass
    # Children that outlived their parent are still in its group.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def chromium_log(profile: str) -> str:
    try:
        with open(os.path.join(profile, "chromium.log"), errors="replace") as f:
            return "\n".join(f.read().strip().splitlines()[-5:])
    except OSError:
        return ""


def devtools_page(process: subprocess.Popen, profile: str, timeout: float) -> str:
    """The webSocketDebuggerUrl of Chromium's page target, once its DevTools port is up."""
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + timeout
    port = None
    while port is None:
        if process.poll() is not None:
            raise CheckFailed(f"chromium exited {process.returncode} at start:\n{chromium_log(profile)}")
        try:
            with open(port_file) as f:
                first = f.readline().strip()
            port = int(first) if first else None
        except (OSError, ValueError):
            pass
        if port is None:
            if time.monotonic() > deadline:
                raise CheckFailed(f"chromium wrote no {port_file} in {timeout:g}s:\n{chromium_log(profile)}")
            time.sleep(0.1)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while True:
        try:
            with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
                targets = json.loads(response.read())
            pages = [t for t in targets if t.get("type") == "page" and t.get("webSocketDebuggerUrl")]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise CheckFailed(f"chromium's DevTools on port {port} lists no page target")
        time.sleep(0.1)


class Cdp:
    """One DevTools session on a page target: calls in order, events kept as they come."""

    def __init__(self, ws, timeout: float) -> None:
        self.ws = ws
        self.timeout = timeout
        self.next_id = 0
        self.events: list[dict] = []

    async def call(self, method: str, **params):
        self.next_id += 1
        call_id = self.next_id
        await self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckFailed(f"chromium did not answer {method} in {self.timeout:g}s")
            try:
                message = json.loads(await asyncio.wait_for(self.ws.recv(), left))
            except asyncio.TimeoutError:
                continue
            if message.get("id") == call_id:
                if "error" in message:
                    raise CheckFailed(f"{method}: {message['error'].get('message')}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = (details.get("exception") or {}).get("description") or details.get("text")
            raise CheckFailed(f"the page threw evaluating {expression[:60]!r}: {text}")
        return result.get("result", {}).get("value")

    def console_lines(self, labelled: bool = False) -> list[str]:
        """The page's console calls, in order; labelled: each after its kind (`log: ...`), and
        the uncaught exceptions (a failed fetch in a handler) among them (`exception: ...`)."""
        lines = []
        for event in self.events:
            if event.get("method") == "Runtime.consoleAPICalled":
                args = event["params"].get("args", [])
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in args)
                lines.append(f"{event['params'].get('type', 'log')}: {text}" if labelled else text)
            elif labelled and event.get("method") == "Runtime.exceptionThrown":
                details = event["params"].get("exceptionDetails", {})
                text = (details.get("exception") or {}).get("description") or details.get("text")
                lines.append(f"exception: {text}")
        return lines

    def events_named(self, method: str) -> list[dict]:
        return [event["params"] for event in self.events if event.get("method") == method]


def element(selector: str) -> str:
    """A page expression for the first element matching selector (or null)."""
    return f"document.querySelector({json.dumps(selector)})"


class Page:
    """The page of a session, its elements named by CSS selectors (e.g. `#send`)."""

    def __init__(self, cdp: Cdp) -> None:
        self.cdp = cdp
        self.url = ""

    async def open(self, url: str) -> None:
        self.url = url
        result = await self.cdp.call("Page.navigate", url=url)
        if result.get("errorText"):
            raise CheckFailed(f"cannot load {url}: {result['errorText']}")
        await self.until(
            f"{url} to load",
            lambda: self.cdp.evaluate('document.readyState === "complete" && location.href !== "about:blank"'),
        )

    async def until(self, what: str, probe, timeout: float | None = None):
        """Polls probe() (async) until it returns a true value; fails naming what after timeout
        (default: the session's)."""
        timeout = self.cdp.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            value = await probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise CheckFailed(f"no {what} within {timeout:g}s")
            await asyncio.sleep(0.1)

    async def click(self, selector: str) -> None:
        """A real left click (mouse events at the element's centre), not element.click()."""
        point = await self.cdp.evaluate(
            f"(() => {{ const e = {element(selector)}; if (!e) return null;"
            ' e.scrollIntoView({block: "center"}); const r = e.getBoundingClientRect();'
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        if point is None:
            raise CheckFailed(f"{self.url} has no element {selector}")
        x, y = point
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            extra = {} if kind == "mouseMoved" else {"button": "left", "clickCount": 1}
            await self.cdp.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, **extra)

    async def type_into(self, selector: str, text: str) -> None:
        """Clicks into the input, selects what it holds and types text over it."""
        await self.click(selector)
        await self.cdp.evaluate(f"{element(selector)}.select()")
        await self.cdp.call("Input.insertText", text=text)
        value = await self.cdp.evaluate(f"{element(selector)}.value")
        if value != text:
            if "password" in selector:  # no password in the output
                raise CheckFailed(f"typed {len(text)} characters into {selector}, which holds {len(value or '')}")
            raise CheckFailed(f"typed {text!r} into {selector}, which holds {value!r}")


def run(
    name: str,
    hosts: set[str],
    timeout: float,
    check: Callable[[Cdp, str], Awaitable[object]],
    prepare: Callable[[str], object] | None = None,
) -> None:
    """Runs check(session, profile) on the page target of a Chromium of its own; returns when it passes.

    name prefixes the messages (`NAME: FAILED: ...`) and the temporary profile folder
    (`NAME-check.`); prepare(profile), when given, runs before Chromium starts. Chromium may
    resolve only hosts, and every wait is bounded by timeout seconds. A failed check (CheckFailed)
    exits 1, as does SIGTERM (a test's timeout), which unwinds like an error; either way
    Chromium is killed and the profile removed.
    """
    # Only here: the rest of this module is standard library (scripts/swagger-ui-check.py).
    from websockets.asyncio.client import connect

    def stopped(signum, _frame) -> None:
        print(f"{name}: FAILED: stopped by signal {signum}", file=sys.stderr, flush=True)
        sys.exit(1)

    async def session(debugger_url: str, profile: str) -> None:
        async with connect(debugger_url, proxy=None, ping_interval=None, max_size=2**24) as ws:
            cdp = Cdp(ws, timeout)
            await cdp.call("Page.enable")
            await cdp.call("Runtime.enable")
            await check(cdp, profile)

    signal.signal(signal.SIGTERM, stopped)
    with tempfile.TemporaryDirectory(prefix=f"{name}-check.", ignore_cleanup_errors=True) as profile:
        if prepare is not None:
            prepare(profile)
        process = None
        try:
            process = start_chromium(profile, hosts)
            debugger_url = devtools_page(process, profile, timeout)
            asyncio.run(session(debugger_url, profile))
        except CheckFailed as e:
            print(f"{name}: FAILED: {e}", file=sys.stderr)
            sys.exit(1)
        finally:
            if process is not None:
                stop_chromium(process)
