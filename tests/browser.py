"""Open an HTML file in headless Chromium and report what a reader would meet (test helper).

``inspect_page(path)`` starts Chromium with a throw-away profile, loads ``path`` over the Chrome
DevTools Protocol (CDP) and returns a ``PageReport``: images that did not load, in-page links
without a target, requests that left the machine, console errors, how much the screenshot varies
and, with ``click_sort=True``, what clicking (and Enter/Space on) each header of every
``table.sortable`` did to its rows. ``report.problems()`` lists everything a test should refuse.

CDP runs over a WebSocket; the ~60-line RFC 6455 client below (text frames, masking, ping,
no extensions) spare the suite a dependency. Every wait is bounded; Chromium and its profile
folder are gone when ``inspect_page`` returns or raises.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["find_chromium", "inspect_page", "PageReport", "SortResult", "SortStep", "LOCAL_SCHEMES"]

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# Loading these never leaves the machine; any other scheme counts as a network request.
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")
VIEWPORT = (1200, 900)
START_TIMEOUT = 30.0   # a cold start on two busy cores takes a few seconds
CALL_TIMEOUT = 30.0
LOAD_TIMEOUT = 60.0    # a report is one ~1 MB file with its figures inline
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"   # RFC 6455, section 1.3


def find_chromium() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


# -- WebSocket (RFC 6455), client side ------------------------------------------------------------
class _WebSocket:
    def __init__(self, url: str, timeout: float):
        parts = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        self.buffer = bytearray()
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        self.buffer = bytearray(rest)
        accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest())
        if not head.startswith(b"HTTP/1.1 101") or accept not in head:
            raise ConnectionError(f"DevTools refused the WebSocket upgrade: {head[:200]!r}")

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("DevTools closed the connection")
        self.buffer += chunk

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        length = bytes([0x80 | n]) if n < 126 else (
            bytes([0x80 | 126]) + struct.pack("!H", n) if n < 1 << 16 else bytes([0x80 | 127]) + struct.pack("!Q", n))
        mask = os.urandom(4)   # a client masks every frame (section 5.3)
        keystream = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(n, "big")
        self.sock.sendall(bytes([0x80 | opcode]) + length + mask + masked)

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def recv(self, timeout: float) -> str:
        """One whole message (continuation frames joined); answers pings on the way."""
        self.sock.settimeout(max(timeout, 0.001))
        message = bytearray()
        while True:
            first, second = self._read(2)
            opcode, n = first & 0x0F, second & 0x7F
            if second & 0x80:
                raise ConnectionError("DevTools sent a masked frame")
            if n >= 126:
                (n,) = struct.unpack("!H" if n == 126 else "!Q", self._read(2 if n == 126 else 8))
            payload = self._read(n)
            if opcode == 0x8:
                raise ConnectionError(f"DevTools closed the WebSocket: {payload[2:]!r}")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
            elif opcode in (0x0, 0x1):
                message += payload
                if first & 0x80:
                    return message.decode()

    def close(self) -> None:
        self.sock.close()


# -- the DevTools protocol over it ---------------------------------------------------------------
class _DevTools:
    """Commands wait for their answer; every event that arrives meanwhile is kept, in order."""

    def __init__(self, ws: _WebSocket):
        self.ws, self.last_id, self.events, self.session = ws, 0, [], None

    def _next(self, deadline: float, waiting_for: str) -> dict:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {waiting_for} from Chromium in time")
        try:
            message = json.loads(self.ws.recv(remaining))
        except socket.timeout:
            raise TimeoutError(f"no {waiting_for} from Chromium in time") from None
        if "method" in message:
            self.events.append(message)
        return message

    def call(self, method: str, timeout: float = CALL_TIMEOUT, **params) -> dict:
        self.last_id += 1
        command = {"id": self.last_id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            command["sessionId"] = self.session
        self.ws.send(json.dumps(command))
        deadline = time.monotonic() + timeout
        while True:
            message = self._next(deadline, f"answer to {method}")
            if message.get("id") == self.last_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def wait_for(self, event: str, timeout: float, since: int) -> None:
        """Until ``event`` arrives, counting only events after the first ``since`` kept ones."""
        deadline, seen = time.monotonic() + timeout, since
        while True:
            if any(e["method"] == event for e in self.events[seen:]):
                return
            seen = len(self.events)
            self._next(deadline, event)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression (awaited if it is a promise), as JSON."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"the harness's script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def of(self, method: str) -> list[dict]:
        return [e["params"] for e in self.events if e["method"] == method]


class _Chromium:
    """A headless Chromium of our own: own process group, own profile, killed and removed on exit."""

    def __init__(self, binary: str):
        self.root = Path(tempfile.mkdtemp(prefix="dlcv-chromium-"))
        self.log = self.root / "stderr.log"
        with self.log.open("wb") as stderr:   # a file, not a pipe: a full pipe would stall Chromium
            self.process = subprocess.Popen(
                [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
                 "--hide-scrollbars", "--remote-debugging-port=0", f"--user-data-dir={self.root / 'profile'}",
                 f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)

    def websocket_url(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for line in self.log.read_text(errors="replace").splitlines():
                if line.startswith("DevTools listening on ws://"):
                    return line.split(" on ", 1)[1].strip()
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"Chromium gave no DevTools address (exit {self.process.poll()}):\n"
                           + self.log.read_text(errors="replace")[-2000:])

    def close(self, grace: float) -> None:
        """Give a browser told to close ``grace`` seconds (it reaps its own helpers), then terminate
        its process group; then kill whatever is left of that group."""
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)   # our own group only: start_new_session above
        except ProcessLookupError:
            pass


# -- what the page shows --------------------------------------------------------------------------
@dataclass
class SortStep:
    action: str                  # "click", "Enter" or "Space" on the header
    aria_sort: str | None        # the header's aria-sort afterwards
    marker: str                  # what the header shows after its text (CSS ::after content)
    others_aria_sort: list       # aria-sort of the table's other headers (expect all None)
    column: list[str]            # the column's cells, top to bottom
    rows: list[str]              # each row's text, top to bottom


@dataclass
class SortResult:
    table: int                   # index among the page's table.sortable
    column: int
    header: str
    tabindex: int
    before: list[str]            # the column before the first click
    before_rows: list[str]
    steps: list[SortStep]


@dataclass
class PageReport:
    url: str
    images_total: int
    images_broken: list[str]     # src (shortened) of each <img> not loaded
    toc_links: int               # <a href="#..."> links on the page
    broken_links: list[str]      # their hrefs that name no element's id
    network_requests: list[str]  # URLs the page asked for outside LOCAL_SCHEMES
    console_errors: list[str]
    screenshot_stddev: float     # of the viewport's grey levels: about 0 for a blank page
    sortable_tables: int
    sorts: list[SortResult] = field(default_factory=list)
    screenshot_png: bytes = field(default=b"", repr=False)

    def problems(self, min_stddev: float = 5.0) -> list[str]:
        """Everything that is wrong with the page, one line each (empty: the page is fine)."""
        found = [f"image not loaded: {s}" for s in self.images_broken]
        found += [f"link without target: {h}" for h in self.broken_links]
        found += [f"network request: {u}" for u in self.network_requests]
        found += [f"console error: {e}" for e in self.console_errors]
        if self.screenshot_stddev < min_stddev:
            found.append(f"screenshot looks blank (grey-level stddev {self.screenshot_stddev:.2f})")
        return found


_PAGE_FACTS = """(() => ({
  images: Array.from(document.images, i => ({src: i.getAttribute('src') || '', ok: i.complete && i.naturalWidth > 0})),
  links: Array.from(document.querySelectorAll('a[href^="#"]'), a => {
    const id = decodeURIComponent(a.getAttribute('href').slice(1));
    return {href: a.getAttribute('href'), ok: id === '' || document.getElementById(id) !== null};
  }),
  sortable: document.querySelectorAll('table.sortable').length,
}))()"""

# Page-side functions, called as `(function)(table, column)`: table is an index among table.sortable.
_HEADERS = "t => { const head = document.querySelectorAll('table.sortable')[t].tHead; " \
           "return head && head.rows.length ? Array.from(head.rows[head.rows.length - 1].cells) : []; }"
_COLUMN_STATE = """(t, c) => {
  const heads = (%s)(t), th = heads[c], rows = Array.from(th.closest('table').tBodies[0].rows);
  return {header: th.textContent.trim(), tabindex: th.tabIndex, aria: th.getAttribute('aria-sort'),
          marker: getComputedStyle(th, '::after').content,
          others: heads.filter(h => h !== th).map(h => h.getAttribute('aria-sort')),
          column: rows.map(r => r.cells[c] ? r.cells[c].textContent.trim() : ''),
          rows: rows.map(r => Array.from(r.cells, x => x.textContent.trim()).join(' | ')),
          focused: document.activeElement === th};
}""" % _HEADERS
_HEADER_CENTRE = """(t, c) => {
  const th = (%s)(t)[c];
  th.scrollIntoView({block: 'center'});
  const r = th.getBoundingClientRect();
  return [r.left + r.width / 2, r.top + r.height / 2];
}""" % _HEADERS
# keyDown's text is what a real key types; event.key is what sortable.js reads.
_KEYS = {"Enter": ({"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}, "\r"),
         "Space": ({"key": " ", "code": "Space", "windowsVirtualKeyCode": 32}, " ")}
# Mouse click, click again, then the keyboard on the header the click focused: asc, desc, asc, desc.
SORT_ACTIONS = ("click", "click", "Enter", "Space")


def _sort_column(cdp: _DevTools, table: int, column: int) -> SortResult:
    def state() -> dict:
        return cdp.evaluate(f"({_COLUMN_STATE})({table}, {column})")

    before, steps = state(), []
    for action in SORT_ACTIONS:
        if action == "click":   # a real mouse press and release at the header's centre, not el.click()
            x, y = cdp.evaluate(f"({_HEADER_CENTRE})({table}, {column})")
            for kind in ("mousePressed", "mouseReleased"):
                cdp.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
        else:
            if not state()["focused"]:
                raise AssertionError(f"header {before['header']!r} did not take the focus on click")
            key, text = _KEYS[action]
            cdp.call("Input.dispatchKeyEvent", type="keyDown", text=text, **key)
            cdp.call("Input.dispatchKeyEvent", type="keyUp", **key)
        after = state()
        steps.append(SortStep(action, after["aria"], after["marker"], after["others"], after["column"], after["rows"]))
    return SortResult(table, column, before["header"], before["tabindex"], before["column"], before["rows"], steps)


def _console_errors(cdp: _DevTools) -> list[str]:
    """console.error/assert calls, uncaught exceptions, and the browser's own errors (failed loads)."""
    def argument(a: dict) -> str:
        return str(a.get("value", a.get("description", "")))

    errors = [f"console.{p['type']}: " + " ".join(map(argument, p["args"]))
              for p in cdp.of("Runtime.consoleAPICalled") if p["type"] in ("error", "assert")]
    for p in cdp.of("Runtime.exceptionThrown"):
        details = p["exceptionDetails"]
        errors.append(f"exception: {details.get('exception', {}).get('description') or details['text']}")
    errors += [f"{e['source']}: {e['text']} {e.get('url', '')}".rstrip()
               for e in (p["entry"] for p in cdp.of("Log.entryAdded")) if e["level"] == "error"]
    return errors


def _short(src: str) -> str:
    return src if len(src) <= 80 else src[:77] + "..."


def inspect_page(path: Path, *, click_sort: bool = False) -> PageReport:
    """Load ``path`` in a fresh headless Chromium and report on it (see ``PageReport``).

    With ``click_sort``, every header of every ``table.sortable`` is clicked twice, then given Enter
    and Space (``SORT_ACTIONS``); the page's console is read after all of that."""
    binary = find_chromium()
    if binary is None:
        raise RuntimeError(f"no Chromium found (looked for {', '.join(BROWSERS)})")
    url = Path(path).resolve().as_uri()
    browser = _Chromium(binary)
    ws = None
    try:
        ws = _WebSocket(browser.websocket_url(), CALL_TIMEOUT)
        cdp = _DevTools(ws)
        target = cdp.call("Target.createTarget", url="about:blank")["targetId"]
        cdp.session = cdp.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):   # before navigating: see every request
            cdp.call(f"{domain}.enable")
        cdp.call("Emulation.setDeviceMetricsOverride", width=VIEWPORT[0], height=VIEWPORT[1],
                 deviceScaleFactor=1, mobile=False)
        before = len(cdp.events)   # about:blank's own load event must not count
        navigation = cdp.call("Page.navigate", url=url)
        if navigation.get("errorText"):
            raise RuntimeError(f"Chromium could not open {url}: {navigation['errorText']}")
        cdp.wait_for("Page.loadEventFired", LOAD_TIMEOUT, since=before)   # after every image loaded or failed
        facts = cdp.evaluate(_PAGE_FACTS)
        png = base64.b64decode(cdp.call("Page.captureScreenshot", format="png")["data"])
        grey = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
        sorts = [_sort_column(cdp, t, c) for t in range(facts["sortable"] if click_sort else 0)
                 for c in range(cdp.evaluate(f"({_HEADERS})({t}).length"))]
        cdp.evaluate("0")   # one more round trip: late console and network events arrive before its answer
    finally:
        if ws is not None:
            try:   # a browser told to close reaps its own helper processes
                cdp.call("Browser.close", timeout=5)
            except (ConnectionError, OSError, RuntimeError):
                pass   # it may drop the socket before it answers
            ws.close()
        browser.close(grace=10 if ws is not None else 0)

    requests = [p["request"]["url"] for p in cdp.of("Network.requestWillBeSent")]
    return PageReport(
        url=url,
        images_total=len(facts["images"]),
        images_broken=[_short(i["src"]) for i in facts["images"] if not i["ok"]],
        toc_links=len(facts["links"]),
        broken_links=[link["href"] for link in facts["links"] if not link["ok"]],
        network_requests=[u for u in requests if not u.startswith(LOCAL_SCHEMES)],
        console_errors=_console_errors(cdp),
        screenshot_stddev=float(grey.std()),
        sortable_tables=facts["sortable"],
        sorts=sorts,
        screenshot_png=png,
    )
