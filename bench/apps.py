"""`make bench`: StreamChat (app.py) against Streamlit's chat tutorial (bench/baseline_app.py).

Both apps run side by side against one scripted model server and are driven by headless Chromium,
one fresh browser context per scenario. Times are perf_counter seconds on one machine: the
server's send/disconnect timestamps versus the browser's DOM-commit and click timestamps (see
tests/harness/browser.py). Prints a table with app/baseline ratios and PASS/FAIL against the targets,
writes bench-results/bench.json, and exits 0 whatever the outcome (it is a report).

    python -m bench [--runs 3] [--stop-runs 3] [--only app|baseline] [--json PATH] [--no-load]

Markdown that breaks the page (app only; the baseline freezes for minutes on both): a 1 MiB
code-block reply streamed in 2 KB tokens (websocket bytes / text size, target <= 3) and a
10,000-level nested message (longest main-thread block, target <= 200 ms, PerformanceObserver
'longtask' in the page).

What a person sees first (issue 12): the first-token lag (server sent -> painted) in each scenario
and with a 50-message history, beside the tutorial app (target: its median + 30 ms); Enter -> first
words painted; the app's own browser-measured visible TTFT against this bench's outside observer
(target: within 50 ms, chat and Compare); websocket bytes per turn at 10, 50 and 100 messages
(the history is sent once per turn: its bytes beyond one page load stay flat); the sidebar's figures in a freshly
started app against the server's schedule (target: within 3 %).

Then bench/lanes.py (three Compare lanes racing: each lane's figures against the schedule, how
far apart race mode sends them, Stop all), bench/team.py (Stop clicked on a replica that only
follows the reply, two replicas on PostgreSQL), and the load and soak scenarios of bench/load.py (20 sessions at once, 200 requests in a
row), which add their figures under "load" in the same JSON file; --no-load skips them.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import re
import statistics
import sys
import tempfile
import time
import traceback
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable

from bench.history import history_messages
from bench.report import Column, guarded, print_table
from streamchat.config import load_settings
from streamchat.store import open_store
from tests.harness.browser import (
    CHAT_INPUT,
    TextWatch,
    WebSocketMeter,
    app_env,
    app_page,
    chromium,
    click_stop,
    forward_msg_breakdown,
    have_chromium,
    send_prompt,
    stop_button,
    streamlit_app,
    wait_for_text,
    wait_idle,
)
from tests.harness.processes import ROOT
from tests.harness.scripted_server import scripted_server_process

APPS = {"app": ROOT / "app.py", "baseline": ROOT / "bench" / "baseline_app.py"}
PROMPT = "Go"
TOKEN_TEXT = "w{i} "   # distinct words, so "w<last index>" marks the last token exactly


def script(**fields: Any) -> dict:
    return {"token_text": TOKEN_TEXT, **fields}


WARMUP_SCRIPT = script(ttft=0.05, tokens=20, rate=1000)
LAG_SCRIPT = script(ttft=0.3, tokens=200, rate=100)
BYTES_SCRIPTS = {
    "a": ("2000 tok @1000/s, para/40", script(ttft=0.2, tokens=2000, rate=1000, paragraph_every=40)),
    "b": ("1000 tok @50/s, para/40", script(ttft=0.2, tokens=1000, rate=50, paragraph_every=40)),
    "c": ("2000 tok @1000/s, 1 para", script(ttft=0.2, tokens=2000, rate=1000)),
    # A thinking model: 500 thinking + 500 answer tokens; the tutorial app shows only the answer.
    "r": ("500 think + 500 tok @100/s", script(ttft=0.2, reasoning_tokens=500, tokens=500, rate=100,
                                               paragraph_every=40)),
}
# At 1000 tok/s Streamlit coalesces most updates, by timing luck, so those figures vary run to run.
BYTES_RUNS = {"a": 3, "b": 1, "c": 3, "r": 1}
# Prefill: the app gets the 30 s silent prefill of the spec; the baseline a short generation,
# so that "never" (the server finished without seeing a disconnect) is reached within the bench.
STOP_PREFILL = {"app": script(ttft=30, prefill_silent=True, tokens=50, rate=50),
                "baseline": script(ttft=4, prefill_silent=True, tokens=50, rate=50)}
STOP_PREFILL_CLICK_AFTER = 1.0      # s after the server received the request
STOP_STREAM = script(ttft=0.2, tokens=300, rate=50)
STOP_STREAM_CLICK_AT = 20           # click once token w20 is visible
STOP_WAIT_MAX = 6.0                 # s after the click, at most

LAG_TARGET_S = 0.150
STOP_TARGET_S = 0.250
BYTES_TARGET_RATIO = {"a": 1 / 20, "b": 1 / 20, "c": 1 / 5, "r": 1 / 5}

# A thinking model (issue 11): 1.0 s prefill, 60 thinking + 120 answer tokens at 40 tok/s, usage
# with reasoning_tokens. The sidebar after the reply must show these within 5 %.
REASONING_SCRIPT = script(ttft=1.0, reasoning_tokens=60, tokens=120, rate=40, usage_reasoning=True,
                          paragraph_every=40)
PLAIN_SCRIPT = script(ttft=1.0, tokens=120, rate=40)
REASONING_EXPECTED = {"TTFT": 1.0, "Decode tok/s": 40.0, "Output tokens": 180, "E2E": 1.0 + 179 / 40}
PLAIN_EXPECTED = {"TTFT": 1.0, "Decode tok/s": 40.0, "Output tokens": 120, "E2E": 1.0 + 119 / 40}
REASONING_TOLERANCE = 0.03   # the sidebar's figures, in a freshly started app
FIRST_TOKEN_LAG_MARGIN_S = 0.030   # first-token lag: at most the tutorial's median + this
HISTORY_LAG_MESSAGES = 50
HISTORY_LAG_RUNS = 3
SEEN_AGREEMENT_TARGET_S = 0.050    # the app's visible TTFT vs this bench's outside observer
SEEN = re.compile(r"You saw the first (?:streamed )?words after (\d+(?:\.\d+)?) (ms|s)")
TURN_SCRIPT = script(ttft=0.2, tokens=60, rate=100)
TURN_HISTORY_SIZES = (10, 50, 100)
# A turn sends the page once (the history is drawn again after the reply's first words) and the
# reply: its bytes beyond one page load stay flat as the history grows (100 messages <= this x 10).
TURN_FLAT_RATIO = 1.25
COMPARE_SEEN_SCRIPT = script(ttft=0.3, tokens=40, rate=100)

# Markdown that breaks the page (issue 10 items 14, 15); app only: the baseline freezes for minutes.
BIG_CODE_LINES = 512                # x 2 KB lines: a 1 MiB code block, one 2 KB token per line
BIG_CODE_END = "BIG-CODE-END"
BIG_CODE_TARGET_RATIO = 3.0         # websocket bytes / text bytes
NESTING_LEVELS = 10_000
NESTING_END = "NEST-REPLY-END"
MAIN_THREAD_TARGET_S = 0.200        # longest main-thread block while the message renders


def big_code_text(lines: int = BIG_CODE_LINES) -> str:
    """A reply that is one huge code block: 2 KB lines without spaces, so that the scripted
    server's `text` mode sends each line as one token."""
    return ("```python\n" + "".join(f"x{i:05d}=" + "y" * 2040 + "\n" for i in range(lines))
            + "```\n\n" + BIG_CODE_END)


def nesting_text(kind: str = "list", levels: int = NESTING_LEVELS) -> str:
    """A 20 KB message nested `levels` deep: "- - - … x" or "> > > … x"."""
    return ("- " if kind == "list" else "> ") * levels + "x"


# Long tasks (> 50 ms) of the page's main thread, and the longest gap between animation frames,
# from the moment the probe is installed.
MAIN_THREAD_JS = """() => {
  const w = {tasks: [], maxGap: 0, last: performance.now()};
  new PerformanceObserver(l => { for (const e of l.getEntries()) w.tasks.push(e.duration); })
    .observe({type: 'longtask'});
  const tick = (t) => { w.maxGap = Math.max(w.maxGap, t - w.last); w.last = t; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  window.__mainThread = w;
}"""


def main_thread_probe(page) -> Callable[[], dict]:
    """Install the probe; the returned function reads {longest_task_s, long_tasks, max_frame_gap_s}."""
    page.evaluate(MAIN_THREAD_JS)

    def read() -> dict:
        w = page.evaluate("() => window.__mainThread")
        return {"longest_task_s": max(w["tasks"], default=0) / 1000, "long_tasks": len(w["tasks"]),
                "max_frame_gap_s": w["maxGap"] / 1000}
    return read


def generation_seconds(spec: dict) -> float:
    return spec.get("ttft", 0) + spec["tokens"] / spec["rate"]


def markers(spec: dict) -> tuple[str, str]:
    return "w0", f"w{spec['tokens'] - 1}"


# ---------------------------------------------------------------- one measurement each

def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def history_path(name: str, data_dir: str, messages: int) -> str:
    """The URL suffix that opens app `name` with `messages` earlier messages: StreamChat gets a
    saved conversation, the tutorial app the same messages through ?history=N."""
    if name == "baseline":
        return f"?history={messages}"
    store = open_store(load_settings(None, {"STREAMCHAT_DATA_DIR": data_dir}))  # as the app's app_env
    try:
        conversation = store.create_conversation("bench history")
        for message in history_messages(messages):
            store.add_message(conversation, message["role"], message["content"])
    finally:
        store.close()
    return f"?c={conversation}"


def read_seen(page, timeout: float = 10.0) -> float:
    """The app's own browser-measured visible TTFT, as the page shows it."""
    wait_for_text(page, "You saw the first", timeout=timeout)
    match = SEEN.search(page.locator("body").inner_text())
    value = float(match.group(1))
    return value / 1000 if match.group(2) == "ms" else value


def measure_reply(browser, url: str, srv, spec: dict, path: str = "", probe: bool = False) -> dict:
    """Send one prompt, wait for the last token and for the app to be idle; timings and bytes.
    `path` is added to the URL (a conversation to open); `probe`: read the app's own visible TTFT."""
    first, last = markers(spec)
    srv.reset()
    srv.queue(spec)
    with app_page(browser, url + path) as page:
        meter = WebSocketMeter(page, markers=[first, last], keep_payloads=True)
        watch = TextWatch(page, [first, last])
        meter.reset()
        t_send = send_prompt(page, PROMPT)
        watch.wait_for_marker(last, timeout=generation_seconds(spec) * 4 + 30)
        fully_idle = wait_idle(page, timeout=60)
        n_bytes, frames, frame_times = meter.bytes_received, list(meter.frames), dict(meter.marker_times)
        breakdown = forward_msg_breakdown(meter.payloads)
        seen_by_app = read_seen(page) if probe else None
        seen = watch.read()
        rec = srv.wait_for_end(timeout=10)
        n_requests = len(srv.requests())
    tokens = rec.tokens_sent
    enter_to_words = seen.marks[first] - seen.last_click("Enter")
    return {
        "enter_to_first_words_s": enter_to_words,
        "seen_by_app_s": seen_by_app,
        "seen_by_app_minus_outside_s": _minus(seen_by_app, enter_to_words),
        "server_ttft_s": rec.t_first_content_sent - rec.t_received,
        "send_to_server_s": rec.t_received - t_send,
        "visible_ttft_minus_server_s": seen.marks[first] - rec.t_first_content_sent,
        "last_token_lag_s": seen.marks[last] - rec.t_last_content_sent,
        # where the lag goes: server send -> websocket frame with the token -> DOM
        "first_token_server_to_frame_s": _minus(frame_times.get(first), rec.t_first_content_sent),
        "first_token_frame_to_dom_s": _minus(seen.marks[first], frame_times.get(first)),
        "last_token_server_to_frame_s": _minus(frame_times.get(last), rec.t_last_content_sent),
        "last_token_frame_to_dom_s": _minus(seen.marks[last], frame_times.get(last)),
        "tokens": tokens,
        "ws_bytes": n_bytes,
        "ws_frames": len(frames),
        "bytes_per_token": n_bytes / tokens,
        "frames_per_token": len(frames) / tokens,
        "largest_frame": max((n for _, n in frames), default=0),
        "text_updates": len(seen.samples),
        "idle_without_running_indicator": fully_idle,
        "chat_requests": n_requests,
        "bytes_by_kind": breakdown[:12],
    }


def measure_stop(browser, url: str, srv, spec: dict, phase: str) -> dict:
    """Click Stop during prefill or streaming; the server's disconnect time minus the click time.
    Waits for the disconnect until the generation would have ended (+1.5 s), at most STOP_WAIT_MAX."""
    watch_marker = f"w{STOP_STREAM_CLICK_AT}"
    srv.reset()
    srv.queue(spec)
    with app_page(browser, url) as page:
        meter = WebSocketMeter(page)
        watch = TextWatch(page, [watch_marker])
        send_prompt(page, PROMPT)
        rec = srv.wait_for_request(1, timeout=10)
        stop_button(page).first.wait_for(state="visible", timeout=10_000)
        if phase == "prefill":
            time.sleep(max(0.0, rec.t_received + STOP_PREFILL_CLICK_AFTER - time.perf_counter()))
        else:
            watch.wait_for_marker(watch_marker, timeout=generation_seconds(spec))
        t_click_py = click_stop(page)
        deadline = min(rec.t_received + generation_seconds(spec) + 1.5, t_click_py + STOP_WAIT_MAX)
        end = None
        while end is None and time.perf_counter() < deadline:
            time.sleep(0.01)
            end = next((r for r in srv.requests() if r.id == rec.id and r.t_end), None)
        t_click_browser = watch.read().last_click("Stop")
        t_click = t_click_browser or t_click_py
        t_backmsg = meter.first_sent_after(t_click)
    result = {"phase": phase, "script": spec, "click_time_from": "browser" if t_click_browser else "python",
              "click_after_request_s": t_click - rec.t_received}
    if end and end.t_disconnected is not None:
        result.update(outcome="disconnected", stop_latency_s=end.t_disconnected - t_click,
                      tokens_sent=end.tokens_sent, click_to_backmsg_s=_minus(t_backmsg, t_click),
                      backmsg_to_disconnect_s=_minus(end.t_disconnected, t_backmsg))
    elif end:
        result.update(outcome="never", detail=f"server finished the generation ({end.outcome})",
                      stop_latency_s=None, tokens_sent=end.tokens_sent)
    else:
        result.update(outcome="never", detail=f"no disconnect within {deadline - t_click:.1f} s of the click",
                      stop_latency_s=None)
    return result


def measure_big_code(browser, url: str, srv) -> dict:
    """A 1 MiB code-block reply streamed in 2 KB tokens at 50/s: websocket bytes per text byte."""
    text = big_code_text()
    srv.reset()
    srv.queue({"text": text, "rate": 50, "ttft": 0.2})
    with app_page(browser, url) as page:
        meter = WebSocketMeter(page, keep_payloads=True)
        watch = TextWatch(page, [BIG_CODE_END])
        probe = main_thread_probe(page)
        meter.reset()
        t0 = time.perf_counter()
        send_prompt(page, "One big code block, please")
        watch.wait_for_marker(BIG_CODE_END, timeout=180)
        wait_idle(page, timeout=120)
        seconds = time.perf_counter() - t0
        n_bytes, frames = meter.bytes_received, list(meter.frames)
        main_thread = probe()
        code_boxes = page.locator('[data-testid="stChatMessage"] [data-testid="stCode"]').count()
        breakdown = forward_msg_breakdown(meter.payloads)
    size = len(text.encode())
    return {"text_bytes": size, "ws_bytes": n_bytes, "ws_bytes_per_text_byte": n_bytes / size,
            "ws_frames": len(frames), "largest_frame": max((n for _, n in frames), default=0),
            "seconds": seconds, "code_elements_at_end": code_boxes, **main_thread,
            "bytes_by_kind": breakdown[:6]}


def measure_nesting(browser, url: str, srv, kind: str = "list") -> dict:
    """A 10,000-level nested user message: the longest main-thread block from Enter until it is
    shown and answered, and again while the chat is opened from the sidebar. (Filling the 20 KB
    into the chat input is measured apart, as "typed": that is the browser's textarea at work.)"""
    srv.reset()
    srv.queue({"text": "WARM-UP-END", "rate": 0}, {"text": NESTING_END, "rate": 0})
    with app_page(browser, url) as page:
        # A first exchange loads what any first reply loads (chart, fonts); then a new chat.
        send_prompt(page, "warm up")
        TextWatch(page, ["WARM-UP-END"]).wait_for_marker("WARM-UP-END", timeout=60)
        wait_idle(page)
        page.get_by_role("button", name="New chat").click()
        wait_idle(page)
        box = page.locator(CHAT_INPUT)
        probe = main_thread_probe(page)
        box.fill(nesting_text(kind))     # the paste is the browser's own work: measured apart
        typed = probe()
        probe = main_thread_probe(page)
        t0 = time.perf_counter()
        box.press("Enter")
        TextWatch(page, [NESTING_END]).wait_for_marker(NESTING_END, timeout=120)
        wait_idle(page, timeout=120)
        shown_s = time.perf_counter() - t0
        sent = probe()
        page.get_by_role("button", name="New chat").click()
        wait_idle(page)
        probe = main_thread_probe(page)
        t0 = time.perf_counter()
        page.locator('[data-testid="stSidebar"] [class*="st-key-conv_"]:not(.st-key-conv_new)'
                     ':not(.st-key-conv_delete) button').filter(has_text="- - - -" if kind == "list" else "> > > >")\
            .first.click()
        TextWatch(page, [NESTING_END]).wait_for_marker(NESTING_END, timeout=120)
        wait_idle(page, timeout=120)
        reopen_s = time.perf_counter() - t0
        reopened = probe()
        body = page.locator("body").inner_text()
    return {"kind": kind, "send_to_reply_s": shown_s, "reopen_s": reopen_s,
            "longest_task_s": max(sent["longest_task_s"], reopened["longest_task_s"]),
            "max_frame_gap_s": max(sent["max_frame_gap_s"], reopened["max_frame_gap_s"]),
            "typed": typed, "sent": sent, "reopened": reopened,
            "range_error": "RangeError" in body or "Maximum call stack" in body,
            "plain_text_caption": "Shown as plain text" in body}


# ---------------------------------------------------------------- the run

def _sidebar_number(text: str) -> float:
    """'1.01 s' / '980 ms' / '~40.0' / '180' -> seconds or a plain number."""
    value = text.strip().lstrip("~").split()[0].replace(",", "")
    number = float(value)
    return number / 1000 if text.strip().endswith("ms") else number


def measure_sidebar_figures(browser, url: str, srv, spec: dict, expected: dict) -> dict:
    """One reply; the sidebar's four figures after it, against the server's schedule; for a
    thinking model also whether its thinking was on screen before the first answer word."""
    srv.reset()
    srv.queue(spec)
    last = f"w{spec['tokens'] - 1}"
    with app_page(browser, url) as page:
        watch = TextWatch(page, ["think0", "w0", last], selector=".st-key-live-reply")
        send_prompt(page, PROMPT)
        watch.wait_for_marker(last, timeout=generation_seconds(spec) * 4 + 30)
        wait_idle(page, timeout=60)
        page.wait_for_timeout(600)   # the panel's last (final-figures) update
        shown = {}
        for label in expected:
            metric = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
            shown[label] = metric.locator('[data-testid="stMetricValue"]').inner_text()
        marks = watch.read().marks
    values = {label: _sidebar_number(text) for label, text in shown.items()}
    errors = {label: abs(values[label] - want) / want for label, want in expected.items()}
    return {"shown": shown, "errors": errors, "max_error": max(errors.values()),
            "thinking_seen_before_answer": ("think0" in marks and "w0" in marks
                                            and marks["think0"] < marks["w0"])
            if spec.get("reasoning_tokens") else None}


def measure_turn_bytes(browser, url: str, srv, path: str) -> dict:
    """Websocket bytes of one page load of a conversation, then of one turn in it (the page drawn
    again once, and the reply)."""
    first, last = markers(TURN_SCRIPT)
    srv.reset()
    srv.queue(TURN_SCRIPT)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        meter = WebSocketMeter(page)
        page.goto(url + path, timeout=30_000)
        page.locator(CHAT_INPUT).wait_for(state="visible", timeout=30_000)
        wait_idle(page, timeout=60)
        load_bytes = meter.bytes_received
        meter.reset()
        watch = TextWatch(page, [first, last])
        send_prompt(page, PROMPT)
        watch.wait_for_marker(last, timeout=60)
        wait_idle(page, timeout=60)
        page.wait_for_timeout(500)   # the visible-TTFT report's fragment run, if any
        total = meter.bytes_received
    finally:
        context.close()
    return {"page_load_bytes": load_bytes, "turn_bytes": total}


def measure_compare_seen(browser, url: str, srv) -> dict:
    """Compare's Run -> first streamed words: the app's own figure against this bench's observer."""
    srv.reset()
    srv.set_script(**COMPARE_SEEN_SCRIPT)
    try:
        with app_page(browser, url) as page:
            page.get_by_role("link", name="Compare").click()
            run_button = page.get_by_role("button", name="Run comparison")
            run_button.wait_for(timeout=30_000)
            wait_idle(page)
            watch = TextWatch(page, ["w0"])
            run_button.click()
            shown = read_seen(page, timeout=60)
            seen = watch.read()
    finally:
        srv.set_script()
    outside = seen.marks["w0"] - seen.last_click("Run comparison")
    return {"seen_by_app_s": shown, "outside_s": outside, "difference_s": abs(shown - outside)}


def run(runs: int, stop_runs: int, only: list[str]) -> dict:
    results: dict[str, Any] = {"apps": {}, "started": {}}
    with contextlib.ExitStack() as stack:
        srv = stack.enter_context(scripted_server_process(max_lifetime=900))
        browser = stack.enter_context(chromium())
        urls, data_dirs = {}, {}
        for name in only:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{name}-"))
            data_dirs[name] = data_dir
            log = Path(data_dir) / "streamlit.log"
            try:
                urls[name] = stack.enter_context(streamlit_app(APPS[name], app_env(srv, data_dir), log_path=log))
                results["started"][name] = True
            except Exception as exc:  # noqa: BLE001
                results["started"][name] = f"{type(exc).__name__}: {exc}"[:2000]
            results["apps"][name] = {"warmup": None, "lag_runs": [],
                                     "bytes": {key: [] for key in BYTES_SCRIPTS},
                                     "stop": {"prefill": [], "stream": []}, "markdown": {},
                                     "history_lag": [], "turns": {}}

        def each_app(label: str, measure: Callable[[str, str], dict], store: Callable[[dict, dict], None]) -> None:
            for name in only:
                t0 = time.perf_counter()
                out = guarded(lambda: measure(name, urls[name])) if name in urls else {"error": "app did not start"}
                store(results["apps"][name], out)
                print(f"  {label:<30} {name:<9} {time.perf_counter() - t0:5.1f} s  {out.get('error') or 'ok'}",
                      flush=True)

        # The first reply of a fresh server process pays for lazy imports; keep it out of the figures.
        each_app("warm-up", lambda n, u: measure_reply(browser, u, srv, WARMUP_SCRIPT),
                 lambda app, out: app.__setitem__("warmup", out))
        for i in range(runs):
            each_app(f"lag {i + 1}/{runs}", lambda n, u: measure_reply(browser, u, srv, LAG_SCRIPT,
                                                                        probe=n == "app"),
                     lambda app, out: app["lag_runs"].append(out))
        for i in range(HISTORY_LAG_RUNS):
            each_app(f"lag, {HISTORY_LAG_MESSAGES}-message history {i + 1}/{HISTORY_LAG_RUNS}",
                     lambda n, u: measure_reply(browser, u, srv, LAG_SCRIPT,
                                                path=history_path(n, data_dirs[n], HISTORY_LAG_MESSAGES)),
                     lambda app, out: app["history_lag"].append(out))
        for size in TURN_HISTORY_SIZES:
            each_app(f"bytes of a turn, {size} messages",
                     lambda n, u, size=size: measure_turn_bytes(browser, u, srv,
                                                                history_path(n, data_dirs[n], size)),
                     lambda app, out, size=size: app["turns"].__setitem__(size, out))
        for key, (label, spec) in BYTES_SCRIPTS.items():
            n = BYTES_RUNS[key]
            for i in range(n):
                each_app(f"bytes ({key}) {i + 1}/{n} {label}", lambda n, u, spec=spec: measure_reply(browser, u, srv, spec),
                         lambda app, out, key=key: app["bytes"][key].append(out))
        for i in range(stop_runs):
            each_app(f"stop in prefill {i + 1}/{stop_runs}",
                     lambda n, u: measure_stop(browser, u, srv, STOP_PREFILL[n], "prefill"),
                     lambda app, out: app["stop"]["prefill"].append(out))
            each_app(f"stop in streaming {i + 1}/{stop_runs}",
                     lambda n, u: measure_stop(browser, u, srv, STOP_STREAM, "stream"),
                     lambda app, out: app["stop"]["stream"].append(out))
        for name in [n for n in only if n == "app" and n in urls]:   # the baseline has no probe
            t0 = time.perf_counter()
            out = guarded(lambda: measure_compare_seen(browser, urls[name], srv))
            results["apps"][name]["compare_seen"] = out
            print(f"  {'Compare: Run -> first words':<30} {name:<9} {time.perf_counter() - t0:5.1f} s  "
                  f"{out.get('error') or 'ok'}", flush=True)
        for name in [n for n in only if n == "app" and n in urls]:   # the baseline has no sidebar
            # A freshly started app: its first reply pays every lazy set-up there is.
            fresh_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-fresh-"))
            fresh_url = stack.enter_context(streamlit_app(APPS[name], app_env(srv, fresh_dir),
                                                          log_path=Path(fresh_dir) / "streamlit.log"))
            for label, key, spec, expected in (
                    ("thinking model: sidebar figures", "reasoning", REASONING_SCRIPT,
                     REASONING_EXPECTED),
                    ("no thinking: sidebar figures", "plain", PLAIN_SCRIPT, PLAIN_EXPECTED))[::-1]:
                t0 = time.perf_counter()
                out = guarded(lambda spec=spec, expected=expected: measure_sidebar_figures(
                    browser, fresh_url, srv, spec, expected))
                results["apps"][name].setdefault("figures", {})[key] = out
                print(f"  {label:<30} {name:<9} {time.perf_counter() - t0:5.1f} s  {out.get('error') or 'ok'}",
                      flush=True)
        for name in [n for n in only if n == "app" and n in urls]:   # the baseline would freeze
            for label, key, measure in (
                    ("1 MB code-block reply", "big_code", lambda: measure_big_code(browser, urls[name], srv)),
                    ("10,000-level nested list", "nesting", lambda: measure_nesting(browser, urls[name], srv))):
                t0 = time.perf_counter()
                out = guarded(measure)
                results["apps"][name]["markdown"][key] = out
                print(f"  {label:<30} {name:<9} {time.perf_counter() - t0:5.1f} s  {out.get('error') or 'ok'}",
                      flush=True)
    return results


# ---------------------------------------------------------------- report

def p50(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def stop_figure(runs: list[dict], pick: Callable[[list[float]], float]) -> float | str | None:
    """Median or max Stop latency over runs; a run without disconnect counts as infinitely late."""
    done = [r for r in runs if "error" not in r]
    if not done:
        return runs[0]["error"] if runs else None
    value = pick([r["stop_latency_s"] if r["outcome"] == "disconnected" else math.inf for r in done])
    return "never" if value == math.inf else value


def figures(app: dict) -> dict[str, Any]:
    ok_runs = [r for r in app["lag_runs"] if "error" not in r]
    fig: dict[str, Any] = {
        "visible_ttft_minus_server_p50_s": p50([r["visible_ttft_minus_server_s"] for r in ok_runs]),
        "last_token_lag_p50_s": p50([r["last_token_lag_s"] for r in ok_runs]),
        "enter_to_first_words_p50_s": p50([r["enter_to_first_words_s"] for r in ok_runs]),
    }
    agreement = [abs(r["seen_by_app_minus_outside_s"]) for r in ok_runs
                 if r.get("seen_by_app_minus_outside_s") is not None]
    if agreement:
        fig["seen_agreement_chat_max_s"] = max(agreement)
    compare_seen = app.get("compare_seen") or {}
    if compare_seen:
        fig["seen_agreement_compare_s"] = compare_seen.get("difference_s", compare_seen.get("error"))
    history = [r for r in app.get("history_lag", []) if "error" not in r]
    fig["first_token_lag_history"] = p50([r["visible_ttft_minus_server_s"] for r in history])
    for key, runs in app["bytes"].items():
        fig[f"first_token_lag_{key}"] = p50([r["visible_ttft_minus_server_s"] for r in runs if "error" not in r])
    turns = app.get("turns", {})
    for size, out in turns.items():
        fig[f"turn_beyond_page_{size}"] = (out["turn_bytes"] - out["page_load_bytes"]
                                           if "turn_bytes" in out else out.get("error"))
    small, large = turns.get(min(TURN_HISTORY_SIZES), {}), turns.get(max(TURN_HISTORY_SIZES), {})
    if small.get("turn_bytes") and large.get("turn_bytes"):
        fig["turn_growth"] = ((large["turn_bytes"] - large["page_load_bytes"])
                              / (small["turn_bytes"] - small["page_load_bytes"]))
    for key, runs in app["bytes"].items():
        ok = [r for r in runs if "error" not in r]
        fig[f"bytes_per_token_{key}"] = p50([r["bytes_per_token"] for r in ok]) if ok else (runs or [{}])[0].get("error")
        fig[f"frames_per_token_{key}"] = p50([r["frames_per_token"] for r in ok])
    for phase, runs in app["stop"].items():
        fig[f"stop_{phase}_p50_s"] = stop_figure(runs, statistics.median)
        fig[f"stop_{phase}_max_s"] = stop_figure(runs, max)
    for key, out in (app.get("figures") or {}).items():
        fig[f"sidebar_error_{key}"] = out.get("max_error", out.get("error"))
        if out.get("thinking_seen_before_answer") is not None:
            fig["thinking_seen_before_answer"] = "yes" if out["thinking_seen_before_answer"] else "NO"
    md = app.get("markdown", {})
    big, nest = md.get("big_code") or {}, md.get("nesting") or {}
    fig["big_code_ws_ratio"] = big.get("ws_bytes_per_text_byte", big.get("error"))
    fig["nesting_longest_block_s"] = ("RangeError" if nest.get("range_error")
                                      else nest.get("longest_task_s", nest.get("error")))
    return fig


def fmt(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value[:10]
    if unit == "ms":
        return f"{value * 1000:.0f} ms"
    if unit == "B":
        return f"{value:,.0f} B"
    return f"{value:.2f}"


def report(results: dict) -> tuple[list[dict], str]:
    fig = {name: figures(data) for name, data in results["apps"].items()}
    app, base = fig.get("app"), fig.get("baseline", {})
    rows: list[dict] = []

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def row(label: str, key: str, unit: str, target: str = "",
            check: Callable[[float, Any], bool] | None = None) -> None:
        a, b = (app or {}).get(key), base.get(key)
        verdict = ""
        if check is not None:
            verdict = "n/a" if app is None else ("PASS" if number(a) and check(a, b) else "FAIL")
        rows.append({"figure": label, "key": key, "app": a, "baseline": b,
                     "ratio": a / b if number(a) and number(b) and b else None, "target": target,
                     "verdict": verdict, "app_shown": fmt(a, unit), "baseline_shown": fmt(b, unit)})

    row("visible TTFT - server TTFT (p50)", "visible_ttft_minus_server_p50_s", "ms")
    margin = f"<= base + {FIRST_TOKEN_LAG_MARGIN_S * 1000:.0f} ms"

    def within_margin(a: float, b: Any) -> bool:
        return number(b) and a <= b + FIRST_TOKEN_LAG_MARGIN_S

    for key, (label, _) in BYTES_SCRIPTS.items():
        if key != "r":
            row(f"first-token lag (p50), {label}", f"first_token_lag_{key}", "ms", margin, within_margin)
    row(f"first-token lag (p50), {HISTORY_LAG_MESSAGES}-message history", "first_token_lag_history", "ms",
        margin, within_margin)
    row("Enter -> first words painted (p50)", "enter_to_first_words_p50_s", "ms")
    for page in ("chat", "compare"):
        row(f"visible TTFT, app's own vs outside observer ({page}, max)", f"seen_agreement_{page}_max_s"
            if page == "chat" else f"seen_agreement_{page}_s", "ms",
            f"<= {SEEN_AGREEMENT_TARGET_S * 1000:.0f} ms", lambda a, b: a <= SEEN_AGREEMENT_TARGET_S)
    for size in TURN_HISTORY_SIZES:
        row(f"turn at {size} messages: bytes beyond one page load", f"turn_beyond_page_{size}", "B")
    row(f"turn bytes beyond one page load, {max(TURN_HISTORY_SIZES)} / {min(TURN_HISTORY_SIZES)} messages",
        "turn_growth", "", f"<= {TURN_FLAT_RATIO:g} (history once)", lambda a, b: a <= TURN_FLAT_RATIO)
    row("last-token lag (p50)", "last_token_lag_p50_s", "ms", f"<= {LAG_TARGET_S * 1000:.0f} ms",
        lambda a, b: a <= LAG_TARGET_S)
    for key, (label, _) in BYTES_SCRIPTS.items():
        ratio = BYTES_TARGET_RATIO[key]
        row(f"bytes/tok ({key}) {label}", f"bytes_per_token_{key}", "B", f"<= 1/{1 / ratio:.0f} of baseline",
            lambda a, b, ratio=ratio: number(b) and a <= b * ratio)
    for key in BYTES_SCRIPTS:
        row(f"ws frames/tok ({key})", f"frames_per_token_{key}", "")
    row("1 MB code-block reply: websocket bytes / text size", "big_code_ws_ratio", "", f"<= {BIG_CODE_TARGET_RATIO:g}",
        lambda a, b: a <= BIG_CODE_TARGET_RATIO)
    row("10,000-level nesting: longest main-thread block", "nesting_longest_block_s", "ms",
        f"<= {MAIN_THREAD_TARGET_S * 1000:.0f} ms", lambda a, b: a <= MAIN_THREAD_TARGET_S)
    for key, label in (("reasoning", "thinking model (60+120 tok @40/s)"),
                       ("plain", "no thinking (120 tok @40/s)")):
        row(f"sidebar vs schedule, fresh app, {label}: worst error", f"sidebar_error_{key}", "",
            f"<= {REASONING_TOLERANCE:.0%}", lambda a, b: a <= REASONING_TOLERANCE)
    row("thinking on screen before the first answer word", "thinking_seen_before_answer", "")
    for phase in ("prefill", "stream"):
        row(f"Stop -> disconnect, {phase} (p50)", f"stop_{phase}_p50_s", "ms")
        row(f"Stop -> disconnect, {phase} (max)", f"stop_{phase}_max_s", "ms", f"<= {STOP_TARGET_S * 1000:.0f} ms",
            lambda a, b: a <= STOP_TARGET_S)
    checked = [r for r in rows if r["verdict"] in ("PASS", "FAIL")]
    failed = [r["figure"] for r in checked if r["verdict"] == "FAIL"]
    if app is None:
        summary = "BENCH SUMMARY: app not measured (baseline only)"
    else:
        summary = (f"BENCH SUMMARY: {len(checked) - len(failed)}/{len(checked)} targets met"
                   + (f"; FAILED: {'; '.join(failed)}" if failed else ""))
    return rows, summary


def _ratio(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "-"


TABLE = [Column("figure", "figure", 50), Column("app", "app_shown", 10, ">"),
         Column("baseline", "baseline_shown", 10, ">"), Column("app/base", "ratio", 9, ">", fmt=_ratio),
         Column("target", "target", 20, gap=2), Column("", "verdict")]


def notes(results: dict) -> list[str]:
    out = [f"lag/TTFT: {LAG_SCRIPT['tokens']} tok @{LAG_SCRIPT['rate']}/s, ttft {LAG_SCRIPT['ttft']} s; "
           "bytes = websocket payload bytes received by the browser, prompt sent -> app idle"]
    for name, data in results["apps"].items():
        ok = [r for r in data["lag_runs"] if r.get("last_token_server_to_frame_s") is not None]
        if ok:
            to_frame = p50([r["last_token_server_to_frame_s"] for r in ok])
            to_dom = p50([r["last_token_frame_to_dom_s"] for r in ok])
            out.append(f"{name} last-token lag split (p50): server send -> websocket frame {to_frame * 1000:.0f} ms, "
                       f"frame -> DOM {to_dom * 1000:.0f} ms")
        for key, runs in data["bytes"].items():
            ok = [r for r in runs if "error" not in r]
            if ok and ok[-1].get("bytes_by_kind"):
                top = ", ".join(f"{k['kind']} {k['bytes'] / ok[-1]['tokens']:.0f} B/tok ({k['messages']} msgs)"
                                for k in ok[-1]["bytes_by_kind"][:4])
                out.append(f"{name} ({key}) biggest senders: {top}")
        spread = [f"({key}) " + "/".join(f"{r['bytes_per_token']:.0f}" for r in runs if "error" not in r)
                  for key, runs in data["bytes"].items() if len(runs) > 1]
        if spread:
            out.append(f"{name} bytes/tok of each run: " + ", ".join(spread))
        for phase, runs in data["stop"].items():
            shown = []
            for r in runs:
                if r.get("outcome") == "disconnected":
                    split = ""
                    if r.get("click_to_backmsg_s") is not None:
                        split = (f" = click->BackMsg {r['click_to_backmsg_s'] * 1000:.0f}"
                                 f" + BackMsg->disconnect {r['backmsg_to_disconnect_s'] * 1000:.0f}")
                    shown.append(f"{r['stop_latency_s'] * 1000:.0f} ms{split} ({r['tokens_sent']} tok sent)")
                elif r.get("outcome") == "never":
                    shown.append(f"never: {r['detail']}")
                else:
                    shown.append(f"error: {r.get('error')}")
            if runs and "script" in runs[0]:
                script_shown = ",".join(f"{k}={v}" for k, v in runs[0]["script"].items() if k != "token_text")
                out.append(f"{name} Stop in {phase} [{script_shown}]: " + "; ".join(shown))
        md = data.get("markdown", {})
        if "ws_bytes" in (md.get("big_code") or {}):
            r = md["big_code"]
            out.append(f"{name} 1 MB code block: {r['ws_bytes']:,} ws bytes for {r['text_bytes']:,} text bytes in "
                       f"{r['seconds']:.1f} s, {r['ws_frames']} frames, longest main-thread block "
                       f"{r['longest_task_s'] * 1000:.0f} ms, {r['code_elements_at_end']} code element(s) at the end")
        if "sent" in (md.get("nesting") or {}):
            r = md["nesting"]
            ms = {k: f"{r[k]['longest_task_s'] * 1000:.0f} ms" for k in ("typed", "sent", "reopened")}
            out.append(f"{name} 10,000-level nesting: reply shown {r['send_to_reply_s']:.1f} s after Enter, "
                       f"chat reopened in {r['reopen_s']:.1f} s; longest block sending {ms['sent']} / "
                       f"reopening {ms['reopened']}, longest frame gap {r['max_frame_gap_s'] * 1000:.0f} ms; "
                       f"RangeError shown: {r['range_error']}; filling the 20 KB into the chat input: "
                       f"longest block {ms['typed']}")
        for r in data["lag_runs"] + [r for runs in data["bytes"].values() for r in runs]:
            if r.get("chat_requests", 1) != 1:
                out.append(f"{name}: {r['chat_requests']} chat requests for one prompt (expected 1)")
            if r.get("idle_without_running_indicator") is False:
                out.append(f"{name}: Streamlit still showed 'Running...' 5 s after the Stop button went away")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of the 200-token reply for TTFT / lag p50")
    parser.add_argument("--stop-runs", type=int, default=3, help="runs of each Stop scenario")
    parser.add_argument("--only", choices=list(APPS), action="append", help="measure only this app")
    parser.add_argument("--json", default=str(ROOT / "bench-results" / "bench.json"))
    parser.add_argument("--no-load", action="store_true", help="skip the load/soak scenarios (bench/load.py)")
    args = parser.parse_args(argv)
    if not have_chromium():
        print("BENCH SUMMARY: skipped, /usr/bin/chromium is missing (make chromium)")
        return 0
    only = args.only or list(APPS)
    t0 = time.perf_counter()
    print(f"bench: {', '.join(only)} against the scripted server, headless Chromium", flush=True)
    try:
        results = run(max(1, args.runs), max(1, args.stop_runs), only)
    except Exception:  # noqa: BLE001 - still a report, still exit 0
        traceback.print_exc()
        print("\nBENCH SUMMARY: the bench itself failed (see the traceback above)")
        return 0
    rows, summary = report(results)
    for name, started in results["started"].items():
        if started is not True:
            print(f"\n{name} did not start:\n{started}")
    print()
    print_table(rows, TABLE)
    print()
    for line in notes(results):
        print(f"  {line}")
    for name, data in results["apps"].items():
        for group in ([data["warmup"] or {}], data["lag_runs"], *data["bytes"].values(), *data["stop"].values(),
                      list(data.get("markdown", {}).values()), data.get("history_lag", []),
                      list(data.get("turns", {}).values()), [data.get("compare_seen") or {}]):
            for r in group:
                if "error" in r:
                    print(f"\n{name}: {r['error']}\n{r.get('traceback', '')}")
    elapsed = time.perf_counter() - t0
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "summary": summary, "elapsed_s": elapsed, "rows": rows, "results": results,
        "targets": {"last_token_lag_p50_s": LAG_TARGET_S, "stop_s": STOP_TARGET_S,
                    "bytes_per_token_ratio": BYTES_TARGET_RATIO, "big_code_ws_ratio": BIG_CODE_TARGET_RATIO,
                    "nesting_longest_block_s": MAIN_THREAD_TARGET_S,
                    "first_token_lag_margin_s": FIRST_TOKEN_LAG_MARGIN_S,
                    "seen_agreement_s": SEEN_AGREEMENT_TARGET_S, "turn_flat_ratio": TURN_FLAT_RATIO, "sidebar_tolerance": REASONING_TOLERANCE},
        "environment": {"python": platform.python_version(), "streamlit": version("streamlit"),
                        "openai": version("openai"), "playwright": version("playwright"), "machine": platform.machine(), "time": time.time()},
    }, indent=2, default=str))
    print(f"\n{summary}\n(results in {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}, {elapsed:.0f} s)")
    from bench import lanes

    print(flush=True)
    lanes.main(["--json", args.json])
    from bench import team

    print(flush=True)
    team.main(["--json", args.json])
    if not args.no_load:
        from bench import load
        print(flush=True)
        load.main(["--json", args.json])
    return 0


if __name__ == "__main__":
    sys.exit(main())
