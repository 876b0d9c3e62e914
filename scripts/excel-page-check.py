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

import json
import os
import sys

# scripts/cdp.py, from any working directory (and no __pycache__ left in scripts/).
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
sys.dont_write_bytecode = True
from cdp import Cdp, CheckFailed, Page, chromium_path, element, is_loopback, loopback_hosts, run  # noqa: E402

TIMEOUT = float(os.environ.get("EXCEL_PAGE_TIMEOUT", "30"))
ZIP_SIGNATURE = b"PK\x03\x04"
MIN_EXPORT_BYTES = 1000
LOGIN_FORM = "form#login"
UPLOAD_FORM = "form#upload"
FILE_INPUT = 'form#upload input[type="file"][name="uploadFile"]'


def log(message: str) -> None:
    print(f"excel-page: {message}", flush=True)


class ExcelPage(Page):
    """The upload page: its elements are there once it has loaded; text and file inputs."""

    async def open(self, url: str) -> None:
        await super().open(url)
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


async def sign_in(page: ExcelPage, username: str, password: str) -> None:
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


async def upload(page: ExcelPage, workbook: str, expected_inserted: int) -> str:
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


async def export(page: ExcelPage, downloads: str, result_before: str) -> None:
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


def indented(lines: list[str] | None, missing: str) -> str:
    return "\n".join(f"  {line}" for line in lines) if lines else missing


def downloads_in(profile: str) -> str:
    """The folder Chromium downloads into: in its profile, so it goes with it."""
    return os.path.join(profile, "downloads")


async def drive(session: Cdp, url: str, username: str, password: str, workbook: str, expected: int, downloads: str) -> None:
    page = ExcelPage(session)
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
        console = indented(page.cdp.console_lines(labelled=True), "  (nothing)")
        raise CheckFailed(f"{e}\n#result of {page.url or url}:\n{shown}\nconsole:\n{console}") from None


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
    run(
        "excel-page",
        loopback_hosts([url]),
        TIMEOUT,
        lambda session, profile: drive(session, url, username, password, workbook, expected, downloads_in(profile)),
        prepare=lambda profile: os.mkdir(downloads_in(profile)),
    )
    log("the Excel page works in " + chromium_path())


if __name__ == "__main__":
    main()
