"""Browser test harness: `streamlit run`, headless Chromium, and probes (the scripted model server
is in tests/harness/scripted_server.py, child processes in tests/harness/processes.py).

Everything binds to 127.0.0.1 and stops by itself: child processes run in their own process group
(killed as a group when the context manager exits, and again at interpreter exit), get SIGTERM
when the test process dies (PR_SET_PDEATHSIG), and the scripted server also exits when its stdin
pipe closes or after ``max_lifetime``.

    with scripted_server_process() as srv, streamlit_app("app.py", app_env(srv, tmp_dir)) as url, \
            chromium() as browser:
        srv.queue({"ttft": 0.3, "tokens": 200, "rate": 100, "token_text": "w{i} "})
        with app_page(browser, url) as page:
            meter, watch = WebSocketMeter(page), TextWatch(page, markers=["w0", "w199"])
            send_prompt(page, "Go")
            watch.wait_for_marker("w199", timeout=10)
            wait_idle(page)
            print(meter.bytes_received, watch.read().marks)

Times handed back are ``time.perf_counter()`` values, comparable with the scripted server's record
timestamps (CLOCK_MONOTONIC, same machine). Browser times are converted from epoch milliseconds
(``performance.timeOrigin + performance.now()``) with the offset ``time.time() - time.perf_counter()``.
"""
from __future__ import annotations

import base64
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tests.harness.processes import ROOT, free_port, kill_process_group, spawn, tail
from tests.harness.scripted_server import ScriptedServer, ScriptedServerProcess

CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
LIVE_REPLY = ".st-key-live-reply"
MAIN = '[data-testid="stMainBlockContainer"]'
CHAT_INPUT = '[data-testid="stChatInputTextArea"]'
RUNNING_ICON = '[data-testid="stStatusWidgetRunningIcon"]'
# Environment variables that would leak a developer's setup into the app under test.
_SCRUB_PREFIXES = ("OPENAI_", "STREAMCHAT_", "STREAMLIT_", "LOCAL_MODEL_PATH")


def have_chromium() -> bool:
    return os.access(CHROMIUM_PATH, os.X_OK)


# ---------------------------------------------------------------- streamlit run

def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    env.update({"PYTHONUNBUFFERED": "1", **{k: str(v) for k, v in extra.items()}})
    return env


def app_env(srv: ScriptedServer | ScriptedServerProcess, data_dir: str | os.PathLike, model: str = "scripted") -> dict[str, str]:
    """The app's environment for talking to a scripted server (model "scripted" uses queued scripts)."""
    return {"OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": "sk-bench", "OPENAI_MODEL": model,
            "STREAMCHAT_DATA_DIR": str(data_dir)}


@contextlib.contextmanager
def streamlit_app(script_path: str | os.PathLike, env: dict[str, str], port: int | None = None, *,
                  startup_timeout: float = 60.0, log_path: str | os.PathLike | None = None,
                  cwd: Path = ROOT) -> Iterator[str]:
    """Run `streamlit run script_path` on 127.0.0.1; yield its URL once /_stcore/health answers."""
    with streamlit_process(script_path, env, port, startup_timeout=startup_timeout, log_path=log_path,
                           cwd=cwd) as (url, _):
        yield url


@contextlib.contextmanager
def streamlit_process(script_path: str | os.PathLike, env: dict[str, str], port: int | None = None, *,
                      startup_timeout: float = 60.0, log_path: str | os.PathLike | None = None,
                      cwd: Path = ROOT) -> Iterator[tuple[str, subprocess.Popen]]:
    """streamlit_app, yielding (URL, process) for a test that kills it mid-way."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(script_path), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true",
           "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    own_log = log_path is None
    log = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="streamlit-", suffix=".log")[1])
    with open(log, "wb") as out:
        proc = spawn(cmd, env=clean_env(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{tail(log)}")
            try:
                if _health_ok(f"{url}/_stcore/health"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"streamlit not healthy after {startup_timeout:g}s:\n{tail(log)}")
            time.sleep(0.2)
        yield url, proc
    finally:
        kill_process_group(proc)
        if own_log:
            log.unlink(missing_ok=True)


def _health_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status == 200


# ---------------------------------------------------------------- Chromium

@contextlib.contextmanager
def chromium(headless: bool = True):
    """A Playwright Browser on Debian's Chromium."""
    from playwright.sync_api import sync_playwright

    if not have_chromium():
        raise RuntimeError(f"{CHROMIUM_PATH} is missing (apt-get install -y chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS, headless=headless)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def app_page(browser, url: str, timeout: float = 30.0):
    """A fresh browser context (no history, cookies or cache) with the app loaded and idle."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(url, timeout=timeout * 1000)
        page.locator(CHAT_INPUT).wait_for(state="visible", timeout=timeout * 1000)
        wait_idle(page, timeout)
        yield page
    finally:
        context.close()


def choose(page, label: str, option: str) -> None:
    """Pick the option whose text starts with `option` in the selectbox labelled `label`."""
    box = page.get_by_role("combobox", name=label)
    page.mouse.move(0, 0)   # no tooltip over it
    box.scroll_into_view_if_needed()
    for attempt in range(3):   # a click during a re-run can be lost: open the list again then
        box.click()
        try:
            page.get_by_role("option").first.wait_for(timeout=3_000)
            break
        except Exception:
            if attempt == 2:
                raise
    page.get_by_role("option").filter(has_text=re.compile("^" + re.escape(option))).click()
    wait_idle(page)


def set_up_lanes(page, lanes: list[tuple[str, bool]], race: bool = True) -> None:
    """On the Compare page: lanes (endpoint name as the lane editor lists it, streamed) per
    lane, A first; race mode unless `race` is False."""
    page.get_by_role("link", name="Compare").click()
    page.get_by_text("Lanes: streaming vs non-streaming").click()
    page.get_by_role("combobox", name="Endpoint A").wait_for(timeout=10_000)
    wait_idle(page)
    for n, (endpoint, stream) in enumerate(lanes):
        letter = "ABCD"[n]
        if n >= 2:
            page.get_by_role("button", name="Add lane").click()
            page.get_by_role("combobox", name=f"Endpoint {letter}").wait_for(timeout=10_000)
            wait_idle(page)
        choose(page, f"Endpoint {letter}", f"{endpoint} (")
        toggle = page.get_by_label(f"Stream {letter}", exact=True)
        if toggle.is_checked() != stream:
            toggle.click(force=True)
            wait_idle(page)
    if race:
        page.get_by_text("Race (at once)").click()
        wait_idle(page)


def send_prompt(page, text: str) -> float:
    """Type `text` into the chat input and submit it; return perf_counter just before Enter."""
    box = page.locator(CHAT_INPUT)
    box.fill(text)
    t = time.perf_counter()
    box.press("Enter")
    return t


def wait_for_text(page, text: str, timeout: float = 10.0, root: str = "body") -> None:
    """Wait until `text` is part of the rendered text under `root`."""
    page.wait_for_function("([sel, t]) => (document.querySelector(sel) || document.body).innerText.includes(t)",
                           arg=[root, text], timeout=timeout * 1000, polling=50)


def stop_button(page):
    return page.get_by_role("button", name="Stop", exact=True)


def stop_controls(page):
    """What a running page shows: chat's Stop, or Compare's Stop / Stop all (lanes)."""
    return page.get_by_role("button", name=re.compile(r"^Stop( all)?$"))


def click_stop(page, timeout: float = 5.0) -> float:
    """Click the visible Stop button; return perf_counter just before the click is dispatched.
    (TextWatch records the browser's own click time, which is more precise.)"""
    button = stop_button(page).first
    button.wait_for(state="visible", timeout=timeout * 1000)
    t = time.perf_counter()
    button.click(timeout=timeout * 1000)
    return t


def is_running(page) -> bool:
    return page.locator(RUNNING_ICON).count() > 0


def wait_idle(page, timeout: float = 30.0, settle: float = 0.3, run_timeout: float = 5.0) -> bool:
    """Wait until no Stop / Stop all button is shown (raises TimeoutError after `timeout`), then up to
    `run_timeout` more until Streamlit's "Running..." indicator stayed away for `settle` seconds.
    Returns False if the app kept running (e.g. a fragment on a timer) but shows no Stop button."""
    deadline = time.perf_counter() + timeout
    while stop_controls(page).count() > 0:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"Stop button still visible after {timeout:g}s")
        page.wait_for_timeout(20)
    deadline = time.perf_counter() + run_timeout
    quiet_since = None
    while True:
        now = time.perf_counter()
        if stop_controls(page).count() > 0 or is_running(page):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= settle:
            return True
        if now > deadline:
            return False
        page.wait_for_timeout(20)


# ---------------------------------------------------------------- probes

class WebSocketMeter:
    """Websocket frames of the page as seen by Chromium (CDP Network domain).

    Streamlit sends each ForwardMsg as one binary frame; CDP hands binary payloads over base64
    encoded, so decoded sizes are counted. CDP frame timestamps are CLOCK_MONOTONIC seconds, i.e.
    directly comparable with perf_counter. Reading `bytes_received` first does a CDP round trip so
    that frame events already delivered to Playwright are counted. `markers`: byte strings to look
    for in received payloads (UTF-8 text sits verbatim in protobuf); `marker_times` holds the
    arrival time of the first frame containing each. `keep_payloads`: keep received payloads in
    `payloads` (for forward_msg_breakdown).
    """

    def __init__(self, page, markers: list[str] = (), keep_payloads: bool = False):
        self._cdp = page.context.new_cdp_session(page)
        self._cdp.on("Network.webSocketFrameReceived", self._on_received)
        self._cdp.on("Network.webSocketFrameSent", self._on_sent)
        self._cdp.send("Network.enable")
        self._markers = [(m, m.encode()) for m in markers]
        self._keep = keep_payloads
        self.reset(sync=False)

    @staticmethod
    def _decode(response: dict) -> bytes:
        payload = response.get("payloadData", "")
        return base64.b64decode(payload) if response.get("opcode") == 2 else payload.encode()

    def _on_received(self, event: dict) -> None:
        data = self._decode(event["response"])
        t = event.get("timestamp", 0.0)
        self._bytes += len(data)
        self.frames.append((t, len(data)))
        if self._keep:
            self.payloads.append(data)
        for text, raw in self._markers:
            if text not in self.marker_times and raw in data:
                self.marker_times[text] = t

    def _on_sent(self, event: dict) -> None:
        self.frames_sent.append((event.get("timestamp", 0.0), len(self._decode(event["response"]))))

    def sync(self) -> None:
        self._cdp.send("Runtime.evaluate", {"expression": "0"})

    def reset(self, sync: bool = True) -> None:
        if sync:
            self.sync()
        self._bytes = 0
        self.frames: list[tuple[float, int]] = []        # received: (perf_counter, payload bytes)
        self.frames_sent: list[tuple[float, int]] = []   # sent (BackMsgs): (perf_counter, payload bytes)
        self.marker_times: dict[str, float] = {}
        self.payloads: list[bytes] = []

    @property
    def bytes_received(self) -> int:
        self.sync()
        return self._bytes

    @property
    def frames_received(self) -> int:
        self.sync()
        return len(self.frames)

    def first_sent_after(self, t: float) -> float | None:
        """perf_counter time of the first frame the page sent at or after `t`."""
        self.sync()
        return next((ts for ts, _ in self.frames_sent if ts >= t), None)


def forward_msg_breakdown(payloads: list[bytes]) -> list[dict]:
    """Bytes and message counts per kind of Streamlit ForwardMsg, biggest first. A kind is e.g.
    "sidebar new_element.metric" or "main new_element.markdown" (container: root of the delta path)."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from streamlit.proto.RootContainer_pb2 import RootContainer

    totals: dict[str, list[int]] = {}
    for data in payloads:
        msg = ForwardMsg.FromString(data)
        kind = msg.WhichOneof("type") or "?"
        if kind == "delta":
            delta_kind = msg.delta.WhichOneof("type") or "?"
            if delta_kind == "new_element":
                delta_kind += "." + (msg.delta.new_element.WhichOneof("type") or "?")
            path = msg.metadata.delta_path
            root = RootContainer.Name(path[0]).lower() if path and path[0] in RootContainer.values() else "?"
            kind = f"{root} {delta_kind}"
        entry = totals.setdefault(kind, [0, 0])
        entry[0] += len(data)
        entry[1] += 1
    return [{"kind": k, "bytes": b, "messages": n}
            for k, (b, n) in sorted(totals.items(), key=lambda item: -item[1][0])]


_WATCH_JS = """
([selector, rootSelector, markers]) => {
  if (window.__streamWatch) window.__streamWatch.observer.disconnect();
  const now = () => performance.timeOrigin + performance.now();
  const pending = new Set(markers);
  const w = {samples: [], marks: {}, clicks: [], observer: null};
  const check = () => {
    const t = now();
    const el = document.querySelector(selector);
    const len = el ? el.textContent.length : 0;
    const last = w.samples.length ? w.samples[w.samples.length - 1][1] : null;
    if (len !== last) w.samples.push([t, len]);
    if (pending.size) {
      const text = (document.querySelector(rootSelector) || document.body).textContent;
      for (const m of Array.from(pending)) if (text.includes(m)) { w.marks[m] = t; pending.delete(m); }
    }
  };
  w.observer = new MutationObserver(check);
  w.observer.observe(document.body, {characterData: true, childList: true, subtree: true});
  if (!window.__streamWatchClicks) {
    window.__streamWatchClicks = true;
    document.addEventListener('click', (e) => {
      const b = e.target.closest && e.target.closest('button');
      if (b && window.__streamWatch) window.__streamWatch.clicks.push([now(), b.innerText.trim() || b.getAttribute('aria-label') || '']);
    }, true);
    document.addEventListener('keydown', (e) => {   // Enter in the chat input counts as a click on "Enter"
      if (e.key === 'Enter' && !e.shiftKey && e.target && e.target.tagName === 'TEXTAREA' && window.__streamWatch)
        window.__streamWatch.clicks.push([now(), 'Enter']);
    }, true);
  }
  window.__streamWatch = w;
  check();
}
"""


@dataclass
class WatchResult:
    samples: list[tuple[float, int]]           # (perf_counter, live reply text length), on every change
    marks: dict[str, float]                    # marker -> perf_counter when first in the main area's text
    clicks: list[tuple[float, str]] = field(default_factory=list)   # (perf_counter, button label)

    def lengths(self) -> list[int]:
        return [n for _, n in self.samples]

    def first_text(self) -> float | None:
        return next((t for t, n in self.samples if n > 0), None)

    def last_click(self, label: str) -> float | None:
        """Time of the last click on a button whose text contains `label` (icons add ligature text)."""
        return next((t for t, name in reversed(self.clicks) if label.lower() in name.lower()), None)


class TextWatch:
    """A MutationObserver in the page that timestamps every change of the live reply's text length
    and the first moment each marker string is in the main area's text (DOM commit time; the paint
    follows within a frame). Marks present at install time get the install time."""

    def __init__(self, page, markers: list[str] = (), selector: str = LIVE_REPLY, root: str = MAIN):
        self.page, self.markers, self.selector, self.root = page, list(markers), selector, root
        self.install()

    def install(self) -> None:
        self.page.evaluate(_WATCH_JS, [self.selector, self.root, self.markers])

    def read(self) -> WatchResult:
        raw = self.page.evaluate("() => { const w = window.__streamWatch;"
                                 " return {samples: w.samples, marks: w.marks, clicks: w.clicks}; }")
        to_perf = browser_ms_to_perf
        return WatchResult([(to_perf(t), n) for t, n in raw["samples"]],
                           {m: to_perf(t) for m, t in raw["marks"].items()},
                           [(to_perf(t), name) for t, name in raw["clicks"]])

    def wait_for_marker(self, marker: str, timeout: float = 10.0) -> float:
        """Wait until `marker` (one of the watched markers) was seen; return its perf_counter time."""
        self.page.wait_for_function("m => window.__streamWatch && (m in window.__streamWatch.marks)",
                                    arg=marker, timeout=timeout * 1000, polling=20)
        return self.read().marks[marker]


def browser_ms_to_perf(epoch_ms: float) -> float:
    """Browser epoch milliseconds -> this machine's perf_counter seconds."""
    return epoch_ms / 1000.0 - (time.time() - time.perf_counter())
