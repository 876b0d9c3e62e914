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

import json
import os
import secrets
import sys

# scripts/cdp.py, from any working directory (and no __pycache__ left in scripts/).
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
sys.dont_write_bytecode = True
from cdp import Cdp, CheckFailed, Page, chromium_path, element, is_loopback, loopback_hosts, run  # noqa: E402

TIMEOUT = float(os.environ.get("SOCKET_PAGE_TIMEOUT", "20"))
JSON_REPLY = "recv msg：张三_18"
OUTPUT_LINES = '(() => { const o = document.getElementById("output"); return o ? Array.from(o.children, d => d.textContent) : null; })()'


def log(message: str) -> None:
    print(f"socket-page: {message}", flush=True)


class SocketPage(Page):
    """A socket page: what it prints goes into #output, a line per element."""

    async def lines(self) -> list[str]:
        lines = await self.cdp.evaluate(OUTPUT_LINES)
        if lines is None:
            raise CheckFailed(f"{self.url} has no element #output")
        return lines

    async def line(self, what: str, match) -> str:
        """Waits for a line of #output for which match(line) holds; an ERROR: line fails at once."""

        async def probe():
            lines = await self.lines()
            errors = [line for line in lines if line.startswith("ERROR:")]
            if errors:
                raise CheckFailed(f"the page printed {errors[0]!r} while waiting for {what}")
            return next((line for line in lines if match(line)), None)

        return await self.until(what, probe)

    async def has(self, selector: str) -> bool:
        return bool(await self.cdp.evaluate(f"{element(selector)} !== null"))


def response_json(line: str):
    if not line.startswith("RESPONSE: "):
        return None
    try:
        return json.loads(line[len("RESPONSE: "):])
    except ValueError:
        return None


async def check_page2(page: SocketPage, url: str, token: str) -> None:
    await page.open(url)
    socket_url = await page.cdp.evaluate(
        '(() => { const m = document.querySelector(\'meta[name="socket-url"]\'); return m ? m.content : null; })()'
    )
    if not socket_url or "{{" in socket_url:
        raise CheckFailed(f"the socket-url meta of {url} holds {socket_url!r}: the server did not fill {{{{socket_url}}}} in")
    if not socket_url.startswith("ws://") or not is_loopback(socket_url):
        raise CheckFailed(f"the socket-url meta of {url} holds {socket_url!r}, not a loopback ws:// URL")
    log(f"{url}: socket URL {socket_url}")

    await page.click("#open")
    await page.line("OPEN line", lambda line: line == "OPEN")
    log("Open -> OPEN")

    message = f"page check {token} 你好"
    await page.type_into("#input", message)
    await page.click("#send")
    await page.line(f"'SEND: {message}' line", lambda line: line == f"SEND: {message}")
    await page.line(f"'RESPONSE: recv data:{message}' line", lambda line: line == f"RESPONSE: recv data:{message}")
    log(f"Send {message!r} -> RESPONSE: recv data:{message}")

    if await page.has("#room") and await page.has("#join"):
        room = f"page-check-{token}"
        await page.type_into("#room", room)
        await page.click("#join")
        await page.line(f"joined {room}", lambda line: response_json(line) == {"type": "joined", "room": room, "members": 1})
        await page.click("#publish")
        await page.line(f"published to {room}", lambda line: response_json(line) == {"type": "published", "room": room, "delivered": 0})
        await page.click("#leave")
        await page.line(f"left {room}", lambda line: response_json(line) == {"type": "left", "room": room})
        log(f"Join / Publish / Leave {room} -> joined (1 member), published (delivered 0), left")

    await page.click("#close")
    closed = await page.line("CLOSE line", lambda line: line.startswith("CLOSE"))
    log(f"Close -> {closed}")


async def check_page1(page: SocketPage, url: str) -> None:
    await page.open(url)
    line = await page.line(f"line with {JSON_REPLY!r}", lambda line: JSON_REPLY in line)
    log(f"{url}: {line}")
    if not any(JSON_REPLY in text for text in page.cdp.console_lines()):
        raise CheckFailed(f"the console has no line with {JSON_REPLY!r}: {page.cdp.console_lines()!r}")
    log("the console has it too")


async def drive(session: Cdp, page2: str, page1: str | None, token: str) -> None:
    page = SocketPage(session)
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
    token = secrets.token_hex(4)
    run("socket-page", loopback_hosts(urls), TIMEOUT, lambda session, _profile: drive(session, page2, page1, token))
    log("the socket pages work in " + chromium_path())


if __name__ == "__main__":
    main()
