#!/usr/bin/env python3
"""Checks the Excel upload page (views/index.html) in a real browser (Debian's headless Chromium).

  scripts/excel-page-check.py PAGE_URL USERNAME PASSWORD WORKBOOK_PATH EXPECTED_INSERTED
      # e.g. http://127.0.0.1:8080/excel/import_index pagecheck1 abc12345 users.xlsx 3

Run it with the python of the venv holding websockets (tests/clients/socket_client.py names the
pin; scripts/python-venv.sh makes it, the same `socket` venv as scripts/socket-page-check.py)
and chromium installed (scripts/browser.sh). It starts Chromium with a DevTools port of its own,
drives the page over the Chrome DevTools Protocol and types and clicks with real input events,
as a user would:

  sign in: USERNAME and PASSWORD typed into form #login, its submit button clicked → #who
    holds `✓` (the page got a token from POST /auth/login).
  import: WORKBOOK_PATH put into the file input uploadFile (DOM.setFileInputFiles), the submit
    button of form #upload clicked → #result holds the JSON of POST /excel/import with
    `data.committed` true and `data.inserted` == EXPECTED_INSERTED.
  export: downloads allowed into a temporary folder, #export clicked → a download completes
    (GET /excel/export through the page's blob link) whose file starts with the zip signature
    `PK\\x03\\x04` and is larger than 1000 bytes.

Every wait is bounded (EXCEL_PAGE_TIMEOUT seconds, default 30). Loopback only: the page must be on
this machine, and Chromium resolves no other host. Chromium is killed and its profile and the
download folder removed whatever happens. Exit 0 when the page behaves, 1 with #result's text
and the console's lines on failure, 2 on bad usage.

Environment: CHROMIUM (default /usr/bin/chromium), EXCEL_PAGE_TIMEOUT (default 30).
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

from websockets.asyncio.client import connect

TIMEOUT = float(os.environ.get("EXCEL_PAGE_TIMEOUT", "30"))
ZIP_SIGNATURE = b"PK\x03\x04"
MIN_EXPORT_BYTES = 1000
LOGIN_FORM = "form#login"
UPLOAD_FORM = "form#upload"
FILE_INPUT = 'form#upload input[type="file"][name="uploadFile"]'


class CheckFailed(Exception):
    pass


def log(message: str) -> None:
    print(f"excel-page: {message}", flush=True)


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
        """The page's console calls and uncaught exceptions (a failed fetch in a handler), in order."""
        lines = []
        for event in self.events:
            if event.get("method") == "Runtime.consoleAPICalled":
                args = event["params"].get("args", [])
                kind = event["params"].get("type", "log")
                lines.append(f"{kind}: " + " ".join(str(a.get("value", a.get("description", ""))) for a in args))
            elif event.get("method") == "Runtime.exceptionThrown":
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
        missing = await self.cdp.evaluate(
            "["
            + ", ".join(
                json.dumps(s)
                for s in (
                    LOGIN_FORM,
                    f'{LOGIN_FORM} input[name="username"]',
                    f'{LOGIN_FORM} input[name="password"]',
                    f'{LOGIN_FORM} button[type="submit"]',
                    "#who",
                    UPLOAD_FORM,
                    FILE_INPUT,
                    f'{UPLOAD_FORM} select[name="mode"]',
                    f'{UPLOAD_FORM} select[name="on_existing"]',
                    f'{UPLOAD_FORM} button[type="submit"]',
                    "#export",
                    "pre#result",
                )
            )
            + "].filter(s => document.querySelector(s) === null)"
        )
        if missing:
            raise CheckFailed(f"{url} has no element {', '.join(missing)}")

    async def text(self, selector: str) -> str:
        value = await self.cdp.evaluate(f"(() => {{ const e = {element(selector)}; return e ? e.textContent : null; }})()")
        if value is None:
            raise CheckFailed(f"{self.url} has no element {selector}")
        return value

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

    async def set_file(self, selector: str, path: str) -> None:
        """Puts the file at path into a file input, as picking it in the file chooser would."""
        found = await self.cdp.call("Runtime.evaluate", expression=element(selector))
        object_id = found.get("result", {}).get("objectId")
        if not object_id:
            raise CheckFailed(f"{self.url} has no element {selector}")
        await self.cdp.call("DOM.setFileInputFiles", files=[path], objectId=object_id)
        await self.cdp.call("Runtime.releaseObject", objectId=object_id)
        picked = await self.cdp.evaluate(
            f"(() => {{ const f = {element(selector)}.files; return f && f.length === 1 ? [f[0].name, f[0].size] : null; }})()"
        )
        size = os.path.getsize(path)
        if picked != [os.path.basename(path), size]:
            raise CheckFailed(f"{selector} holds {picked!r} after DOM.setFileInputFiles, not [{os.path.basename(path)!r}, {size}]")


async def sign_in(page: Page, username: str, password: str) -> None:
    await page.type_into(f'{LOGIN_FORM} input[name="username"]', username)
    await page.type_into(f'{LOGIN_FORM} input[name="password"]', password)
    await page.click(f'{LOGIN_FORM} button[type="submit"]')

    async def probe():
        who = await page.text("#who")
        if "✓" in who:
            return who
        # The page shows the error body of a refused login in #result.
        result = (await page.text("#result")).strip()
        if result:
            raise CheckFailed(f"signing in as {username!r} failed: #result shows the answer of POST /auth/login")
        return None

    who = await page.until(f"'✓' in #who after signing in as {username!r}", probe)
    log(f"signed in: #who holds {who.strip()!r}")


async def upload(page: Page, workbook: str, expected_inserted: int) -> str:
    await page.set_file(FILE_INPUT, workbook)
    log(f"picked {workbook} ({os.path.getsize(workbook)} bytes) in the file input")
    await page.click(f'{UPLOAD_FORM} button[type="submit"]')

    async def probe():
        text = await page.text("#result")
        if text.strip() in ("", "…"):
            return None
        try:
            body = json.loads(text)
        except ValueError:
            return None
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or "committed" not in data:
            raise CheckFailed("#result holds another answer of POST /excel/import than an import report (data.committed)")
        if data["committed"] is not True:
            raise CheckFailed(f"the import was not committed (data.committed = {data['committed']!r})")
        if data.get("inserted") != expected_inserted:
            raise CheckFailed(f"the import inserted {data.get('inserted')!r} users, not {expected_inserted}")
        return data

    data = await page.until("import report in #result", probe)
    log(
        f"imported: committed, inserted {data['inserted']}, updated {data.get('updated')},"
        f" skipped {data.get('skipped')}, invalid {data.get('invalid')} of {data.get('rows')} rows"
    )
    return await page.text("#result")


async def export(page: Page, downloads: str, result_before: str) -> None:
    await page.cdp.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=downloads, eventsEnabled=True)
    await page.click("#export")

    async def probe():
        # The page shows the error body of a refused export in #result, over the import report.
        result = await page.text("#result")
        if result != result_before:
            raise CheckFailed("Export changed #result instead of downloading: GET /excel/export failed")
        for progress in page.cdp.events_named("Browser.downloadProgress"):
            if progress.get("state") == "canceled":
                raise CheckFailed(f"the download was canceled after {progress.get('receivedBytes')} bytes")
        begun = page.cdp.events_named("Browser.downloadWillBegin")
        completed = {p.get("guid") for p in page.cdp.events_named("Browser.downloadProgress") if p.get("state") == "completed"}
        for download in begun:
            if download.get("guid") in completed:
                name = download.get("suggestedFilename") or ""
                path = os.path.join(downloads, name)
                if name and os.path.isfile(path):
                    return path
        # Without the events, a finished file in the folder will do.
        names = sorted(n for n in os.listdir(downloads) if not n.endswith(".crdownload"))
        if names and not any(n.endswith(".crdownload") for n in os.listdir(downloads)):
            return os.path.join(downloads, names[0])
        return None

    path = await page.until("completed download after clicking Export", probe)
    with open(path, "rb") as f:
        head = f.read(len(ZIP_SIGNATURE))
    size = os.path.getsize(path)
    if head != ZIP_SIGNATURE:
        raise CheckFailed(f"the download {os.path.basename(path)} starts with {head!r}, not the zip signature {ZIP_SIGNATURE!r}")
    if size <= MIN_EXPORT_BYTES:
        raise CheckFailed(f"the download {os.path.basename(path)} has {size} bytes, not more than {MIN_EXPORT_BYTES}")
    log(f"exported: downloaded {os.path.basename(path)}, {size} bytes, a zip (.xlsx)")


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


def indented(lines: list[str] | None, missing: str) -> str:
    return "\n".join(f"  {line}" for line in lines) if lines else missing


async def drive(debugger_url: str, url: str, username: str, password: str, workbook: str, expected: int, downloads: str) -> None:
    async with connect(debugger_url, proxy=None, ping_interval=None, max_size=2**24) as ws:
        page = Page(Cdp(ws))
        await page.cdp.call("Page.enable")
        await page.cdp.call("Runtime.enable")
        try:
            await page.open(url)
            log(f"opened {url}")
            await sign_in(page, username, password)
            result = await upload(page, workbook, expected)
            await export(page, downloads, result)
        except CheckFailed as e:
            try:
                result = await page.text("#result")
                shown = indented(result.splitlines(), "  (empty)")
            except CheckFailed:
                shown = "  (no #result)"
            console = indented(page.cdp.console_lines(), "  (nothing)")
            raise CheckFailed(f"{e}\n#result of {page.url or url}:\n{shown}\nconsole:\n{console}") from None


def stopped(signum, _frame) -> None:
    print(f"excel-page: FAILED: stopped by signal {signum}", file=sys.stderr, flush=True)
    sys.exit(1)


def usage(problem: str | None = None) -> None:
    if problem:
        print(f"excel-page: {problem}", file=sys.stderr)
    print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
    sys.exit(2)


def main() -> None:
    args = sys.argv[1:]
    if len(args) != 5:
        usage()
    url, username, password, workbook, expected_text = args
    if not url.startswith(("http://", "https://")):
        usage(f"{url} is not an http(s) URL")
    if not is_loopback(url):
        print(f"excel-page: refusing {url}: not a loopback address", file=sys.stderr)
        sys.exit(2)
    if not username or not password:
        usage("USERNAME and PASSWORD must not be empty")
    workbook = os.path.abspath(workbook)
    if not os.path.isfile(workbook):
        usage(f"{workbook} is not a file")
    try:
        expected = int(expected_text)
    except ValueError:
        expected = -1
    if expected < 0:
        usage(f"EXPECTED_INSERTED {expected_text!r} is not a whole number")
    # SIGTERM (a test's timeout) unwinds like an error: chromium is killed, the profile removed.
    signal.signal(signal.SIGTERM, stopped)
    hosts = {"localhost", "127.0.0.1", urllib.parse.urlsplit(url).hostname or ""}
    hosts = {f"[{h}]" if ":" in h else h for h in hosts if h}
    with tempfile.TemporaryDirectory(prefix="excel-page-check.", ignore_cleanup_errors=True) as profile:
        downloads = os.path.join(profile, "downloads")
        os.mkdir(downloads)
        process = None
        try:
            process = start_chromium(profile, hosts)
            debugger_url = devtools_page(process, profile)
            asyncio.run(drive(debugger_url, url, username, password, workbook, expected, downloads))
        except CheckFailed as e:
            print(f"excel-page: FAILED: {e}", file=sys.stderr)
            sys.exit(1)
        finally:
            if process is not None:
                stop_chromium(process)
    log("the Excel page works in " + os.environ.get("CHROMIUM", "/usr/bin/chromium"))


if __name__ == "__main__":
    main()
