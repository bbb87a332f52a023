"""The report as a reader sees it: a page opened in headless Chromium.

``check_page(html, png)`` loads an HTML file at a given width (1280 px), saves a full-page
screenshot and returns what a reader would find wrong:

* **broken images**: an ``<img>`` that did not load (missing file, bad data URI, empty src);
* **console errors**: ``console.error``/``console.assert``, uncaught exceptions, and errors
  the browser logs (a resource that failed to load, ...);
* **content wider than the page**: the page scrolls sideways, an element sticks out past the
  right edge, or a box inside it needs its own horizontal scrollbar (a wide table).

Chromium (the Debian package ``chromium``) is driven through the DevTools protocol over
``--remote-debugging-pipe``: JSON messages on file descriptors 3 and 4, standard library
only, no port. The page never reaches the network: ``http(s)`` requests are failed by the
check and listed as ``external`` (a self-contained page has none); their own "failed to
load" messages are not counted as console errors, but what breaks without them is.

    python -m srlib.browser reports/index.html [--screenshot PNG] [--width 1280]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Headless and quiet: without the background-networking flags a closed network refuses the
# browser's own connections; a fresh profile each time.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-extensions",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
                  "--force-device-scale-factor=1", "--remote-debugging-pipe")
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
VIEWPORT_HEIGHT = 900
MAX_SCREENSHOT_HEIGHT = 30000  # px; taller pages are cut (and the result says so)
SLACK = 1  # px of sub-pixel rounding not counted as overflow

# Runs in the page once it has loaded: the images, the overflow, as JSON-able values.
PAGE_SCRIPT = r"""
(async () => {
  const imgs = [...document.images];
  for (const i of imgs) if (i.loading === 'lazy') i.loading = 'eager';
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + [...el.classList].slice(0, 3).map(c => '.' + c).join('');
  const path = el => {
    const parts = [];
    for (let a = el; a && a !== document.body && parts.length < 4; a = a.parentElement)
      parts.unshift(name(a));
    return parts.join(' > ');
  };
  const images = imgs.map(i => ({
    src: (i.getAttribute('src') || '').slice(0, 60), alt: i.alt,
    ok: i.complete && i.naturalWidth > 0 && !!i.getAttribute('src'),
    natural: [i.naturalWidth, i.naturalHeight],
    shown: [Math.round(i.getBoundingClientRect().width),
            Math.round(i.getBoundingClientRect().height)],
  }));
  const root = document.documentElement, vw = root.clientWidth, slack = SLACK;
  const clips = el => getComputedStyle(el).overflowX !== 'visible';
  // inside a box that clips or scrolls sideways (not the page itself)
  const inBox = el => {
    for (let a = el.parentElement; a && a !== document.body && a !== root; a = a.parentElement)
      if (clips(a)) return true;
    return false;
  };
  const sticksOut = el => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && (r.right > vw + slack || r.left < -slack);
  };
  const outside = [], scrolling = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (sticksOut(el) && !inBox(el) && !(el.parentElement !== document.body
                                         && sticksOut(el.parentElement)))
      outside.push({element: path(el), width: Math.round(r.width),
                    left: Math.round(r.left), right: Math.round(r.right)});
    if (['auto', 'scroll'].includes(getComputedStyle(el).overflowX)
        && el.scrollWidth > el.clientWidth + slack && el.clientWidth > 0)
      scrolling.push({element: path(el), width: el.clientWidth, content: el.scrollWidth});
  }
  const bySize = (a, b) => (b.width - a.width) || (b.content - a.content);
  return {title: document.title, images, viewport: vw, page: root.scrollWidth,
          body: document.body.scrollWidth, outside: outside.sort(bySize).slice(0, 8),
          scrolling: scrolling.sort((a, b) => (b.content - b.width) - (a.content - a.width))
                              .slice(0, 8),
          text: document.body.innerText.length};
})()
""".replace("SLACK;", f"{SLACK};")


class BrowserUnavailable(RuntimeError):
    """No Chromium here, or it would not start: the check cannot be made (tests skip)."""


class BrowserError(RuntimeError):
    """Chromium started but the protocol failed (an error reply, a timeout)."""


def find_chromium() -> str | None:
    """The Chromium executable: ``$CHROMIUM`` if set, else the first on ``PATH``."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])  # None: not there, say so
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


def require_chromium() -> str:
    """``find_chromium()``, or ``BrowserUnavailable`` saying where it looked."""
    binary = find_chromium()
    if binary is None:
        where = f"$CHROMIUM={os.environ['CHROMIUM']!r}" if os.environ.get("CHROMIUM") else "PATH"
        raise BrowserUnavailable(f"chromium not found ({where}; Debian: apt-get install chromium)")
    return binary


def _high_fd(fd: int) -> int:
    """``fd`` moved to a number >= 10 (close-on-exec), so that the child's dup2 onto 3 and
    4 cannot clobber it."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class _Chromium:
    """A headless Chromium and its DevTools pipe: ``call`` sends a command and waits for its
    reply; the events that arrive meanwhile go to ``events`` (after ``on_event``)."""

    def __init__(self, binary: str, profile: Path, width: int, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        self.events: list[dict] = []
        self.on_event: Callable[[dict], None] | None = None
        self._next_id = 0
        self._buffer = b""
        self.log_path = profile.parent / "chromium.log"
        to_child_r, self._to_child = map(_high_fd, os.pipe())
        self._from_child, from_child_w = map(_high_fd, os.pipe())
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        args = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                f"--window-size={width},{VIEWPORT_HEIGHT}", "about:blank"]
        try:  # its own session (process group), so that close() ends its helpers too
            self.pid = os.posix_spawn(binary, args, os.environ, setsid=True, file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log, 1), (os.POSIX_SPAWN_DUP2, log, 2),
                (os.POSIX_SPAWN_DUP2, to_child_r, 3), (os.POSIX_SPAWN_DUP2, from_child_w, 4)])
        except OSError as err:
            for fd in (self._to_child, self._from_child):
                os.close(fd)
            raise BrowserUnavailable(f"{binary} would not start: {err}") from err
        finally:
            for fd in (to_child_r, from_child_w, log):
                os.close(fd)

    def log_tail(self, n: int = 6) -> str:
        """The last lines Chromium wrote to its stderr (for error messages)."""
        with contextlib.suppress(OSError):
            lines = [s for s in self.log_path.read_text(errors="replace").splitlines()
                     if s.strip() and "unexpected operator" not in s]  # the launcher's noise
            return " | ".join(lines[-n:])
        return ""

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        """Send a command without waiting; its id."""
        self._next_id += 1
        msg: dict = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._to_child, data):]
        except BrokenPipeError as err:
            raise BrowserUnavailable(f"chromium exited: {self.log_tail()}") from err
        return self._next_id

    def _read(self, until: float) -> dict | None:
        """The next message, or None when ``until`` (monotonic) passes first."""
        while b"\0" not in self._buffer:
            left = min(until, self.deadline) - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise BrowserUnavailable(f"chromium exited: {self.log_tail()}")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def _event(self, msg: dict) -> None:
        self.events.append(msg)
        if self.on_event:
            self.on_event(msg)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send a command and return its result (``BrowserError`` on an error reply)."""
        want = self.send(method, params, session)
        while True:
            msg = self._read(self.deadline)
            if msg is None:
                raise BrowserError(f"timed out waiting for {method}")
            if msg.get("id") == want:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error'].get('message')}")
                return msg.get("result", {})
            if "method" in msg:
                self._event(msg)

    def wait_for(self, method: str, seconds: float) -> dict | None:
        """Read events until ``method`` arrives (it) or ``seconds`` pass (None)."""
        until = time.monotonic() + seconds
        while (msg := self._read(until)) is not None:
            if "method" in msg:
                self._event(msg)
                if msg["method"] == method:
                    return msg
        return None

    def _reaped(self, seconds: float) -> bool:
        """Whether the browser process has exited within ``seconds`` (and is reaped)."""
        until = time.monotonic() + seconds
        while True:
            try:
                if os.waitpid(self.pid, os.WNOHANG)[0]:
                    return True
            except ChildProcessError:
                return True
            if time.monotonic() >= until:
                return False
            time.sleep(0.05)

    def close(self) -> None:
        """End the browser (politely, then its whole process group) and the pipes."""
        with contextlib.suppress(OSError, BrowserUnavailable):
            self.send("Browser.close")
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self._reaped(3.0):
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)
        self._reaped(3.0)
        with contextlib.suppress(ProcessLookupError):  # helpers left behind, if any
            os.killpg(self.pid, signal.SIGKILL)
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)


def _console_text(event: dict) -> str | None:
    """An error-level console / log / exception event as one line; None for the rest."""
    method, p = event["method"], event.get("params", {})
    if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
        args = [a.get("value", a.get("description", "")) for a in p.get("args", [])]
        return f"console.{p['type']}: " + " ".join(map(str, args))
    if method == "Runtime.exceptionThrown":
        d = p.get("exceptionDetails", {})
        text = d.get("exception", {}).get("description") or d.get("text", "exception")
        where = f" ({d['url']}:{d.get('lineNumber', 0) + 1})" if d.get("url") else ""
        return f"uncaught: {text.splitlines()[0]}{where}"
    if method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
        e = p["entry"]
        url = f" ({e['url'][:80]})" if e.get("url") else ""
        return f"{e.get('source', 'log')}: {e.get('text', '')}{url}"
    return None


def check_page(html_path: str | Path, screenshot_path: str | Path, width: int = 1280,
               timeout: float = 60.0) -> dict:
    """Open ``html_path`` in headless Chromium at ``width`` px, save a full-page PNG at
    ``screenshot_path`` and return the findings:

    ``ok`` and ``problems`` (one line each), ``images`` (each ``src`` prefix, ``ok``, sizes),
    ``broken_images``, ``console_errors``, ``viewport``/``page`` widths, ``outside``
    (outermost elements past the page's edges) and ``scrolling`` (boxes with a horizontal
    scrollbar), ``external`` (blocked network requests), ``browser``, ``screenshot``,
    ``seconds``. ``BrowserUnavailable`` when Chromium is absent or will not start,
    ``BrowserError`` when the page will not load, ``FileNotFoundError`` for a missing page."""
    start = time.monotonic()
    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise FileNotFoundError(f"no page at {html_path}")
    binary = require_chromium()
    with tempfile.TemporaryDirectory(prefix="srlib-browser-") as tmp:
        browser = _Chromium(binary, Path(tmp) / "profile", width, timeout)
        try:
            found = _inspect(browser, html_path.as_uri(), Path(screenshot_path), width)
        finally:
            browser.close()
    found["seconds"] = round(time.monotonic() - start, 2)
    return found


def _inspect(b: _Chromium, url: str, screenshot: Path, width: int) -> dict:
    """Load ``url`` in a fresh tab of ``b``, run ``PAGE_SCRIPT``, take the screenshot."""
    try:
        version = b.call("Browser.getVersion").get("product", "")
    except BrowserError as err:  # no reply: the browser never came up
        raise BrowserUnavailable(f"chromium did not answer: {err}; {b.log_tail()}") from err
    target = b.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    s = b.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    external: list[str] = []

    def block(event: dict) -> None:  # the page stays off the network
        if event["method"] == "Fetch.requestPaused" and event.get("sessionId") == s:
            external.append(event["params"]["request"]["url"])
            b.send("Fetch.failRequest", {"requestId": event["params"]["requestId"],
                                         "errorReason": "BlockedByClient"}, s)

    b.on_event = block
    for method in ("Page.enable", "Runtime.enable", "Log.enable"):
        b.call(method, session=s)
    b.call("Fetch.enable", {"patterns": [{"urlPattern": "http://*"},
                                         {"urlPattern": "https://*"}]}, s)
    b.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": VIEWPORT_HEIGHT,
                                                  "deviceScaleFactor": 1, "mobile": False}, s)
    b.events.clear()
    nav = b.call("Page.navigate", {"url": url}, s)
    if nav.get("errorText"):
        raise BrowserError(f"{url} did not load: {nav['errorText']}")
    loaded = any(e["method"] == "Page.loadEventFired" for e in b.events)
    if not loaded and b.wait_for("Page.loadEventFired", b.deadline - time.monotonic()) is None:
        raise BrowserError(f"{url}: no load event before the timeout")
    page = b.call("Runtime.evaluate", {"expression": PAGE_SCRIPT, "awaitPromise": True,
                                       "returnByValue": True}, s)
    if "exceptionDetails" in page:
        raise BrowserError(f"the page script failed: {page['exceptionDetails'].get('text')}")
    found = page["result"]["value"]
    b.wait_for("(settle)", 0.3)  # late errors (a timer, a script that ran on load)

    # the whole page, at the reader's width (what sticks out past it is cut, as they see it)
    height = int(b.call("Page.getLayoutMetrics", session=s)["cssContentSize"]["height"])
    shot_height = max(1, min(height, MAX_SCREENSHOT_HEIGHT))
    png = b.call("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True, "fromSurface": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": shot_height, "scale": 1}}, s)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.write_bytes(base64.b64decode(png["data"]))

    blocked = set(external)
    errors = []
    for event in b.events:
        text = _console_text(event)
        url_of = event.get("params", {}).get("entry", {}).get("url")
        if text and not (url_of in blocked and "ERR_BLOCKED_BY_CLIENT" in text):
            errors.append(text)
    found.update(url=url, width=width, browser=version, screenshot=str(screenshot),
                 screenshot_size=[width, shot_height], page_height=height,
                 broken_images=[i for i in found["images"] if not i["ok"]],
                 console_errors=errors, external=sorted(blocked))
    found["problems"] = _problems(found)
    found["ok"] = not found["problems"]
    return found


def _problems(f: dict) -> list[str]:
    """The findings that fail the check, one line each."""
    out = [f"broken image: src={i['src']!r} alt={i['alt']!r}" for i in f["broken_images"]]
    out += [f"console error: {t}" for t in f["console_errors"]]
    if f["page"] > f["viewport"] + SLACK:
        out.append(f"the page is {f['page']} px wide at a {f['viewport']} px window")
    out += [f"past the page's edge: {o['element']} ({o['width']} px wide, "
            f"{o['left']}..{o['right']} px)" for o in f["outside"]]
    out += [f"scrolls sideways: {o['element']} ({o['content']} px of content in "
            f"{o['width']} px)" for o in f["scrolling"]]
    return out


def summary(found: dict) -> str:
    """The findings as a few lines for a terminal or a log."""
    imgs = found["images"]
    lines = [f"{found['url']} at {found['width']} px: {'ok' if found['ok'] else 'FAILED'} "
             f"({found['seconds']} s); {len(imgs)} images, page {found['page']} x "
             f"{found['page_height']} px; screenshot {found['screenshot']}"]
    lines += [f"  {p}" for p in found["problems"]]
    if found["screenshot_size"][1] < found["page_height"]:
        lines.append(f"  note: the screenshot stops at {found['screenshot_size'][1]} px")
    if found["external"]:
        lines.append(f"  note: not self-contained, {len(found['external'])} blocked request(s): "
                     + ", ".join(found["external"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """0: the page passed; 1: it failed the check; 2: it could not be checked."""
    ap = argparse.ArgumentParser(prog="python -m srlib.browser", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("html", type=Path)
    ap.add_argument("--screenshot", type=Path, help="PNG path (default: beside the page, "
                    "screenshots/<name>-<width>.png)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--json", action="store_true", help="print the findings as JSON")
    a = ap.parse_args(argv)
    shot = a.screenshot or a.html.parent / "screenshots" / f"{a.html.stem}-{a.width}.png"
    try:
        found = check_page(a.html, shot, a.width)
    except (BrowserUnavailable, BrowserError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(found, indent=1) if a.json else summary(found))
    return 0 if found["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
