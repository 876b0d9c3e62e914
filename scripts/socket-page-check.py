#!/usr/bin/env python3
"""Checks the socket app's browser pages in a real browser (Debian's headless Chromium).

  scripts/socket-page-check.py URL_OF_PAGE2 [URL_OF_PAGE1]
      # e.g. http://127.0.0.1:8080/socket/index2 http://127.0.0.1:8080/socket/index

Run it with the python of the venv holding websockets (tests/clients/socket_client.py names the
pin; scripts/python-venv.sh makes it) and chromium installed (scripts/browser.sh). It starts
Chromium with a DevTools port of its own, drives the page over the Chrome DevTools Protocol and
clicks with real mouse events, as a user would:

  page 2 (views/socket2.html): the page's socket-url meta holds a loopback ws:// URL (the server
    filled `{{socket_url}}` in); Open → an `OPEN` line in #output; a unique message typed into the
    input and Send → `SEND: <it>` and `RESPONSE: recv data:<it>`; when the page has the room
    controls, Join / Publish / Leave of a unique room → `joined` (1 member), `published`
    (delivered 0), `left`; Close → a line starting with `CLOSE`. An `ERROR:` line fails.
  page 1 (views/socket.html, when given): a line containing `recv msg：张三_18` in #output and
    in the console.

Every wait is bounded (SOCKET_PAGE_TIMEOUT seconds, default 20). Loopback only: pages and the
socket URL must be on this machine, and Chromium resolves no other host. Chromium is killed and
its profile removed whatever happens. Exit 0 when both pages behave, 1 with #output's lines on
failure, 2 on bad usage.

Environment: CHROMIUM (default /usr/bin/chromium), SOCKET_PAGE_TIMEOUT (default 20).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from websockets.asyncio.client import connect

TIMEOUT = float(os.environ.get("SOCKET_PAGE_TIMEOUT", "20"))
JSON_REPLY = "recv msg：张三_18"
OUTPUT_LINES = '(() => { const o = document.getElementById("output"); return o ? Array.from(o.children, d => d.textContent) : null; })()'


class CheckFailed(Exception):
    pass


def log(message: str) -> None:
    print(f"socket-page: {message}", flush=True)


def is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Cdp:
    """One DevTools session on a page target: calls in order, events kept as they come."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict] = []

    async def call(self, method: str, **params):
        self.next_id += 1
        call_id = self.next_id
        await self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckFailed(f"chromium did not answer {method} in {TIMEOUT:g}s")
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

    def console_lines(self) -> list[str]:
        lines = []
        for event in self.events:
            if event.get("method") == "Runtime.consoleAPICalled":
                args = event["params"].get("args", [])
                lines.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
        return lines


class Page:
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

    async def lines(self) -> list[str]:
        lines = await self.cdp.evaluate(OUTPUT_LINES)
        if lines is None:
            raise CheckFailed(f"{self.url} has no element #output")
        return lines

    async def until(self, what: str, probe, timeout: float = TIMEOUT):
        """Polls probe() (async) until it returns a true value; fails naming what after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = await probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise CheckFailed(f"no {what} within {timeout:g}s")
            await asyncio.sleep(0.1)

    async def line(self, what: str, match) -> str:
        """Waits for a line of #output for which match(line) holds; an ERROR: line fails at once."""

        async def probe():
            lines = await self.lines()
            errors = [line for line in lines if line.startswith("ERROR:")]
            if errors:
                raise CheckFailed(f"the page printed {errors[0]!r} while waiting for {what}")
            return next((line for line in lines if match(line)), None)

        return await self.until(what, probe)

    async def click(self, element_id: str) -> None:
        """A real left click (mouse events at the element's centre), not element.click()."""
        point = await self.cdp.evaluate(
            f'(() => {{ const e = document.getElementById({json.dumps(element_id)}); if (!e) return null;'
            ' e.scrollIntoView({block: "center"}); const r = e.getBoundingClientRect();'
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        if point is None:
            raise CheckFailed(f"{self.url} has no element #{element_id}")
        x, y = point
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            extra = {} if kind == "mouseMoved" else {"button": "left", "clickCount": 1}
            await self.cdp.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, **extra)

    async def type_into(self, element_id: str, text: str) -> None:
        """Clicks into the input, selects what it holds and types text over it."""
        await self.click(element_id)
        await self.cdp.evaluate(f"document.getElementById({json.dumps(element_id)}).select()")
        await self.cdp.call("Input.insertText", text=text)
        value = await self.cdp.evaluate(f"document.getElementById({json.dumps(element_id)}).value")
        if value != text:
            raise CheckFailed(f"typed {text!r} into #{element_id}, which holds {value!r}")

    async def has(self, element_id: str) -> bool:
        return bool(await self.cdp.evaluate(f"document.getElementById({json.dumps(element_id)}) !== null"))


def response_json(line: str):
    if not line.startswith("RESPONSE: "):
        return None
    try:
        return json.loads(line[len("RESPONSE: "):])
    except ValueError:
        return None


async def check_page2(page: Page, url: str, token: str) -> None:
    await page.open(url)
    socket_url = await page.cdp.evaluate(
        '(() => { const m = document.querySelector(\'meta[name="socket-url"]\'); return m ? m.content : null; })()'
    )
    if not socket_url or "{{" in socket_url:
        raise CheckFailed(f"the socket-url meta of {url} holds {socket_url!r}: the server did not fill {{{{socket_url}}}} in")
    if not socket_url.startswith("ws://") or not is_loopback(socket_url):
        raise CheckFailed(f"the socket-url meta of {url} holds {socket_url!r}, not a loopback ws:// URL")
    log(f"{url}: socket URL {socket_url}")

    await page.click("open")
    await page.line("OPEN line", lambda line: line == "OPEN")
    log("Open -> OPEN")

    message = f"page check {token} 你好"
    await page.type_into("input", message)
    await page.click("send")
    await page.line(f"'SEND: {message}' line", lambda line: line == f"SEND: {message}")
    await page.line(f"'RESPONSE: recv data:{message}' line", lambda line: line == f"RESPONSE: recv data:{message}")
    log(f"Send {message!r} -> RESPONSE: recv data:{message}")

    if await page.has("room") and await page.has("join"):
        room = f"page-check-{token}"
        await page.type_into("room", room)
        await page.click("join")
        await page.line(f"joined {room}", lambda line: response_json(line) == {"type": "joined", "room": room, "members": 1})
        await page.click("publish")
        await page.line(f"published to {room}", lambda line: response_json(line) == {"type": "published", "room": room, "delivered": 0})
        await page.click("leave")
        await page.line(f"left {room}", lambda line: response_json(line) == {"type": "left", "room": room})
        log(f"Join / Publish / Leave {room} -> joined (1 member), published (delivered 0), left")

    await page.click("close")
    closed = await page.line("CLOSE line", lambda line: line.startswith("CLOSE"))
    log(f"Close -> {closed}")


async def check_page1(page: Page, url: str) -> None:
    await page.open(url)
    line = await page.line(f"line with {JSON_REPLY!r}", lambda line: JSON_REPLY in line)
    log(f"{url}: {line}")
    if not any(JSON_REPLY in text for text in page.cdp.console_lines()):
        raise CheckFailed(f"the console has no line with {JSON_REPLY!r}: {page.cdp.console_lines()!r}")
    log("the console has it too")


def start_chromium(profile: str, hosts: set[str]) -> subprocess.Popen:
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not os.access(chromium, os.X_OK):
        raise CheckFailed(f"{chromium} is missing (scripts/browser.sh installs Debian's chromium)")
    excluded = ", ".join(f"EXCLUDE {host}" for host in sorted(hosts))
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        # Without these Chromium's own connections are refused on a closed network.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-proxy-server",
        # Only loopback: any other host fails to resolve, at once (IP literals too).
        f"--host-resolver-rules=MAP * ~NOTFOUND, {excluded}",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
        "about:blank",
    ]
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


def devtools_page(process: subprocess.Popen, profile: str) -> str:
    """The webSocketDebuggerUrl of Chromium's page target, once its DevTools port is up."""
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + TIMEOUT
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
                raise CheckFailed(f"chromium wrote no {port_file} in {TIMEOUT:g}s:\n{chromium_log(profile)}")
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


async def drive(debugger_url: str, page2: str, page1: str | None, token: str) -> Page:
    async with connect(debugger_url, proxy=None, ping_interval=None, max_size=2**24) as ws:
        page = Page(Cdp(ws))
        await page.cdp.call("Page.enable")
        await page.cdp.call("Runtime.enable")
        try:
            await check_page2(page, page2, token)
            if page1:
                await check_page1(page, page1)
        except CheckFailed as e:
            try:
                lines = await page.lines()
            except CheckFailed:
                lines = None
            raise CheckFailed(f"{e}\n#output of {page.url}:\n" + ("\n".join(f"  {line}" for line in lines) if lines else "  (empty)" if lines is not None else "  (no #output)")) from None
        return page


def stopped(signum, _frame) -> None:
    print(f"socket-page: FAILED: stopped by signal {signum}", file=sys.stderr, flush=True)
    sys.exit(1)


def main() -> None:
    urls = sys.argv[1:]
    if not 1 <= len(urls) <= 2 or any(not u.startswith(("http://", "https://")) for u in urls):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        sys.exit(2)
    for url in urls:
        if not is_loopback(url):
            print(f"socket-page: refusing {url}: not a loopback address", file=sys.stderr)
            sys.exit(2)
    page2, page1 = urls[0], (urls[1] if len(urls) == 2 else None)
    # SIGTERM (a test's timeout) unwinds like an error: chromium is killed, the profile removed.
    signal.signal(signal.SIGTERM, stopped)
    hosts = {"localhost", "127.0.0.1"} | {urllib.parse.urlsplit(u).hostname or "" for u in urls}
    hosts = {f"[{h}]" if ":" in h else h for h in hosts if h}
    token = secrets.token_hex(4)
    with tempfile.TemporaryDirectory(prefix="socket-page-check.", ignore_cleanup_errors=True) as profile:
        process = None
        try:
            process = start_chromium(profile, hosts)
            debugger_url = devtools_page(process, profile)
            asyncio.run(drive(debugger_url, page2, page1, token))
        except CheckFailed as e:
            print(f"socket-page: FAILED: {e}", file=sys.stderr)
            sys.exit(1)
        finally:
            if process is not None:
                stop_chromium(process)
    log("the socket pages work in " + os.environ.get("CHROMIUM", "/usr/bin/chromium"))


if __name__ == "__main__":
    main()
