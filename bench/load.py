"""Load and soak scenarios of `make bench`: many sessions at once, then many requests in a row.

Load: N browser sessions (one Playwright context each, all in ONE Chromium) stream a long reply
from the scripted server at the same time. The server hands out queued scripts in arrival order,
so every queued script has the same shape but its own token text (`q07w{i} `); which session got
which script is read back from the server's records (the prompt is in the request body). Checks:
every session shows its own last token, no session ever shows another session's tokens or prompt
(a MutationObserver watches for every session's markers on every page), each page holds exactly
one user message and one reply, and the reply has every token in order. Measures browser-visible
TTFT, last-token lag, and the streamlit process's CPU and memory (RSS) before, during and after.
The browser runs on the same cores as the app: the report shows the CPU each side used, the app
threads' run-queue wait (schedstat) and what else the machine was doing, to read the times by.

Soak: M requests in a row through one page (short fast replies; every third a slower one that is
stopped mid-stream; "New chat" every 10 requests, so re-runs stay small). Counts threads, TCP
connections to the scripted server, child processes and open file descriptors of the streamlit
process before and after, checks that the server saw a client disconnect for every stopped
request, and follows RSS request by request.

Team load: the same load on --team-replicas (2) app replicas on one throwaway PostgreSQL database
(team mode, tests/harness/team.py), the sessions alternating between them; the same checks and
times, and each replica's RSS. Skipped (the reason printed) where PostgreSQL is not installed.
One function starts the app(s) (one_app, team_apps), another measures them (measure_load).

Prints a table, merges the figures into bench-results/bench.json under "load" (other keys kept;
the team load in its results as "load_team"), and exits 0 whatever the outcome (it is a report).

    python -m bench.load [--sessions 20] [--tokens 1500] [--rate 50] [--paragraph-every 40]
                               [--soak 200] [--skip-load] [--skip-team] [--team-replicas 2]
                               [--skip-soak] [--json PATH] [--keep DIR]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.report import Column, guarded, print_table
from tests.harness.browser import (
    CHAT_INPUT,
    MAIN,
    TextWatch,
    WebSocketMeter,
    app_env,
    app_page,
    chromium,
    have_chromium,
    send_prompt,
    stop_button,
    streamlit_app,
    wait_idle,
)
from tests.harness.postgres import MISSING as POSTGRES_MISSING
from tests.harness.postgres import find_binaries as find_postgres
from tests.harness.postgres import postgres_server
from tests.harness.processes import ROOT
from tests.harness.scripted_server import scripted_server_process
from tests.harness.team import replicas

# Twenty people at once: the app in shared mode (each browser its own identity and chats), as a
# team install runs; single-user mode would rightly list everyone's chats in every sidebar.
SHARED = {"STREAMCHAT_SHARED": "1"}

APP = ROOT / "app.py"
CLK_TCK = os.sysconf("SC_CLK_TCK")

LOAD_TTFT_S = 0.2               # scripted server TTFT of each load reply
PROBE_PAGES = 3                 # pages of the load that also time websocket frames (CDP)
POLL_S = 0.2                    # driver poll interval while 20 pages stream
AFTER_LOAD_S = 10.0             # memory is read this long after the load ended
EXTRA_IDLE_S = 30.0             # ... and again after this much more idle time, if it failed
MEMORY_TOLERANCE = 0.20         # "back to within 20 % of the start"
SOAK_FAST = {"ttft": 0.02, "tokens": 20, "rate": 400}
SOAK_STOPPED = {"ttft": 0.05, "tokens": 200, "rate": 50}   # 4 s: Stop always lands mid-stream
SOAK_STOP_AT = 3                # click Stop once token w3 of the reply is visible
SOAK_CHAT_LENGTH = 10           # "New chat" after this many requests: a 200-exchange conversation
                                # makes every re-run render 400 messages (slow, and not a leak)
SOAK_SETTLE_S = 0.15            # idle = no Stop button and no "Running..." for this long
TOLERANCE = {"threads": 2, "fds": 5, "children": 0}
CONNECTION_POOL_MAX = 20        # httpx's keep-alive pool default; expect 1-2


# ---------------------------------------------------------------- /proc probes

def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2:].split()   # fields from 3 (state) on: comm may hold spaces


def cpu_seconds(pid: int) -> float:
    f = _stat_fields(pid)
    return (int(f[11]) + int(f[12])) / CLK_TCK   # utime + stime (fields 14, 15)


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def sched_by_thread(pid: int) -> dict[str, tuple[float, float, int]]:
    """Per thread: (seconds on a CPU, seconds runnable but waiting for a CPU, times scheduled in),
    from /proc/<pid>/task/<tid>/schedstat."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            run_ns, wait_ns, slices = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[:3]
            out[tid] = (int(run_ns) / 1e9, int(wait_ns) / 1e9, int(slices))
    return out


def sched_of_all(pids: list[int]) -> dict[str, tuple[float, float, int]]:
    """sched_by_thread of several processes in one map (thread ids are unique system-wide)."""
    out = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            out.update(sched_by_thread(pid))
    return out


def sched_delta(before: dict, after: dict) -> tuple[float, float, int]:
    """(run s, run-queue wait s, times scheduled in) summed over threads between two
    sched_by_thread snapshots (a thread missing from `before` started in between)."""
    run = wait = 0.0
    slices = 0
    for tid, (r, w, n) in after.items():
        r0, w0, n0 = before.get(tid, (0.0, 0.0, 0))
        run, wait, slices = run + r - r0, wait + w - w0, slices + n - n0
    return run, wait, slices


def streamlit_metrics(url: str) -> dict[str, float]:
    """Streamlit's own counters from /_stcore/metrics (active_sessions, session_events_total...)."""
    out: dict[str, float] = {}
    try:
        with urllib.request.urlopen(f"{url}/_stcore/metrics", timeout=10) as resp:
            text = resp.read().decode(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        m = re.match(r"^(active_sessions|session_events_total|session_duration_seconds_total)(\{[^}]*\})? (\S+)$", line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def rss_mb(pid: int) -> float:
    return status_kb(pid, "VmRSS") / 1024


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def thread_names(pid: int) -> dict[str, int]:
    names: dict[str, int] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            names[name] = names.get(name, 0) + 1
    return dict(sorted(names.items()))


def fd_targets(pid: int) -> list[str]:
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return out


def fd_kinds(pid: int) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for target in fd_targets(pid):
        kind = target.split(":")[0] if ":" in target and not target.startswith("/") else \
            ("file " + Path(target).suffix if Path(target).suffix else "file")
        kinds[kind] = kinds.get(kind, 0) + 1
    return dict(sorted(kinds.items()))


def children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int(_stat_fields(int(entry))[1]) == pid:
                    kids.append(int(entry))
    return kids


TCP_STATES = {"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "0A": "LISTEN"}


def tcp_to_port(pid: int, port: int) -> dict[str, int]:
    """TCP sockets owned by `pid` (via its fd inode links) whose remote port is `port`, by state."""
    inodes = {t[len("socket:["):-1] for t in fd_targets(pid) if t.startswith("socket:[")}
    states: dict[str, int] = {}
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                cols = line.split()
                remote, state, inode = cols[2], cols[3], cols[9]
                if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == port:
                    name = TCP_STATES.get(state, state)
                    states[name] = states.get(name, 0) + 1
    return states


def process_counts(pid: int, server_port: int) -> dict[str, Any]:
    tcp = tcp_to_port(pid, server_port)
    return {"threads": thread_count(pid), "connections": tcp.get("ESTABLISHED", 0),
            "tcp_by_state": tcp, "children": len(children(pid)), "fds": len(fd_targets(pid)),
            "rss_mb": rss_mb(pid), "thread_names": thread_names(pid), "fd_kinds": fd_kinds(pid)}


def find_streamlit_pid(port: int) -> int:
    """The `streamlit run` child of this process serving `port`."""
    for pid in children(os.getpid()):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"streamlit" in argv and str(port).encode() in argv:
                return pid
    raise RuntimeError(f"no streamlit child process serving port {port}")


class Sampler:
    """Samples CPU seconds, RSS and threads of some processes every `every` s on a daemon thread."""

    def __init__(self, pids: dict[str, int], every: float = 0.2, sched_of: Sequence[int] = ()):
        self.pids, self.every, self.sched_of = pids, every, sched_of
        self.samples: list[dict] = []
        self.sched_last: dict[str, tuple[float, float]] = {}   # thread -> last schedstat seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def _sample(self) -> dict:
        s: dict[str, Any] = {"t": time.perf_counter()}
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError):
                s[name] = {"cpu_s": cpu_seconds(pid), "rss_mb": rss_mb(pid), "threads": thread_count(pid)}
        self.sched_last.update(sched_of_all(self.sched_of))
        return s

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self._sample())
            self._stop.wait(self.every)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)

    def peak(self, name: str, key: str, t0: float = 0.0, t1: float = float("inf")) -> float | None:
        values = [s[name][key] for s in self.samples if name in s and t0 <= s["t"] <= t1]
        return max(values) if values else None


def cpu_percents(pids: list[int], seconds: float) -> list[float]:
    """% of one core used by each of `pids` over the next `seconds`."""
    c0, t0 = [cpu_seconds(pid) for pid in pids], time.perf_counter()
    time.sleep(seconds)
    elapsed = time.perf_counter() - t0
    return [(cpu_seconds(pid) - c) / elapsed * 100 for pid, c in zip(pids, c0, strict=True)]


def descendants(root: int) -> list[int]:
    """All live descendants of `root` (from /proc/*/stat ppid links)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parent[int(entry)] = int(_stat_fields(int(entry))[1])
    out, frontier = [], [root]
    while frontier:
        kids = [p for p, pp in parent.items() if pp in frontier]
        out += kids
        frontier = kids
    return out


def process_name(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return ""


def postgres_processes(pids: list[int]) -> list[int]:
    return [pid for pid in pids if process_name(pid) == "postgres"]


def tree_cpu_seconds(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            out[pid] = cpu_seconds(pid)
    return out


def cpu_spent(before: dict[int, float], after: dict[int, float], count_new: bool = False) -> float:
    """CPU seconds between two tree_cpu_seconds snapshots, of the processes alive at both (and, with
    count_new, all of those that started in between)."""
    return sum(after[q] - before.get(q, 0.0) for q in after if count_new or q in before)


def machine_busy() -> tuple[float, float]:
    """(busy jiffies, total jiffies) over all cores, from /proc/stat."""
    cols = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = cols[3] + cols[4]
    return sum(cols) - idle, sum(cols)


# ---------------------------------------------------------------- helpers

def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def last_user_text(body: dict) -> str:
    users = [m.get("content") for m in (body.get("messages") or []) if m.get("role") == "user"]
    return users[-1] if users else ""


def log_problems(log: Path, limit: int = 6) -> list[str]:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    bad = [ln for ln in lines if "Traceback" in ln or " ERROR " in ln or "Exception" in ln]
    return bad[:limit] + ([f"... {len(bad) - limit} more"] if len(bad) > limit else [])


_MARK_KEYS = "() => window.__streamWatch ? Object.keys(window.__streamWatch.marks) : []"
_PAGE_FACTS = """
(root) => {
  const main = document.querySelector(root) || document.body;
  const msgs = Array.from(main.querySelectorAll('[data-testid="stChatMessage"]'));
  const kind = (m) => m.querySelector('[data-testid="stChatMessageAvatarUser"]') ? 'user'
                    : m.querySelector('[data-testid="stChatMessageAvatarAssistant"]') ? 'assistant' : '?';
  const live = document.querySelector('.st-key-live-reply');
  return {messages: msgs.map(m => [kind(m), m.innerText]),
          reply: live ? live.innerText : null,
          body: document.body.innerText,
          exceptions: document.querySelectorAll('[data-testid="stException"]').length};
}
"""


# ---------------------------------------------------------------- load

def open_pages(stack: contextlib.ExitStack, browser, urls: list[str], n: int, timeout: float = 90.0) -> list:
    """n fresh contexts with the app loaded and idle, page p on urls[p % len(urls)]; they load in
    parallel (app_page does one)."""
    pages = []
    for p in range(n):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        stack.callback(context.close)
        page = context.new_page()
        page.goto(urls[p % len(urls)], wait_until="commit", timeout=timeout * 1000)
        pages.append(page)
    for page in pages:
        page.locator(CHAT_INPUT).wait_for(state="visible", timeout=timeout * 1000)
    for page in pages:
        wait_idle(page, timeout)
    return pages


@dataclass(frozen=True)
class AppUnderLoad:
    """A running `streamlit run app.py` the load is measured on: its URL, its pid, its output."""
    url: str
    pid: int
    log: Path


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@contextlib.contextmanager
def one_app(srv, workdir: Path) -> Iterator[list[AppUnderLoad]]:
    """The app alone on SQLite (its data in workdir/load-data)."""
    data_dir = workdir / "load-data"
    data_dir.mkdir()
    log = workdir / "streamlit-load.log"
    with streamlit_app(APP, {**app_env(srv, data_dir), **SHARED}, log_path=log) as url:
        yield [AppUnderLoad(url, find_streamlit_pid(port_of(url)), log)]


@contextlib.contextmanager
def team_apps(srv, workdir: Path, n: int) -> Iterator[list[AppUnderLoad]]:
    """Team mode: n replicas on one throwaway PostgreSQL database; their logs are copied to
    workdir/streamlit-team-<i>.log at the end (the harness deletes its own)."""
    data_dir = workdir / "team-data"
    data_dir.mkdir()
    with postgres_server() as db, replicas(n, {**app_env(srv, data_dir), **SHARED,
                                                "STREAMCHAT_DATABASE_URL": db}) as running:
        apps = []
        for replica in running:
            pid = find_streamlit_pid(replica.port)
            apps.append(AppUnderLoad(replica.url, pid, Path(os.readlink(f"/proc/{pid}/fd/1"))))
        try:
            yield apps
        finally:
            for i, app in enumerate(apps, 1):
                with contextlib.suppress(OSError):
                    shutil.copyfile(app.log, workdir / f"streamlit-team-{i}.log")


def run_load(browser, srv, sessions: int, tokens: int, rate: float, paragraph_every: int, workdir: Path) -> dict:
    """The load on one app on SQLite."""
    with one_app(srv, workdir) as apps:
        return measure_load(browser, srv, apps, sessions, tokens, rate, paragraph_every)


def run_load_team(browser, srv, replica_count: int, sessions: int, tokens: int, rate: float, paragraph_every: int,
                  workdir: Path) -> dict:
    """The same load, its sessions alternating over replicas on one PostgreSQL database."""
    with team_apps(srv, workdir, replica_count) as apps:
        return measure_load(browser, srv, apps, sessions, tokens, rate, paragraph_every)


def measure_load(browser, srv, apps: list[AppUnderLoad], sessions: int, tokens: int, rate: float,
                 paragraph_every: int) -> dict:
    """The load on running apps, session p on apps[p % len(apps)]. The app processes' figures
    (CPU, RSS, threads...) are totals over the apps; out["apps"] holds each app's own."""
    pids = [app.pid for app in apps]
    out: dict[str, Any] = {"sessions": sessions, "tokens": tokens, "rate": rate, "scripted_ttft_s": LOAD_TTFT_S,
                           "paragraph_every": paragraph_every}
    per_app: list[dict[str, Any]] = [{"url": app.url, "pid": app.pid} for app in apps]
    out["apps"] = per_app
    if len(apps) == 1:
        out["pid"] = pids[0]

    def each(key: str, values: list) -> None:   # each app's figure, and their total
        for own_figures, value in zip(per_app, values, strict=True):
            own_figures[key] = value
        out[key] = sum(values)

    def memory_ok(key: str, rss_key: str) -> None:   # "back to within 20 % of the start", app by app
        for own_figures in per_app:
            own_figures[key] = own_figures[rss_key] <= own_figures["rss_start_mb"] * (1 + MEMORY_TOLERANCE)
        out[key] = all(own_figures[key] for own_figures in per_app)

    # Warm-up: the first reply of a fresh process pays for lazy imports (openai, httpx...).
    for app in apps:
        srv.reset()
        srv.queue({"ttft": 0.02, "tokens": 20, "rate": 1000, "token_text": "warm{i} "})
        with app_page(browser, app.url) as page:
            watch = TextWatch(page, ["warm19"])
            send_prompt(page, "warm up")
            watch.wait_for_marker("warm19", timeout=30)
            wait_idle(page, timeout=30)
    time.sleep(2.0)
    each("rss_start_mb", [rss_mb(pid) for pid in pids])
    each("threads_start", [thread_count(pid) for pid in pids])
    each("idle_cpu_pct_before", cpu_percents(pids, 1.0))

    srv.reset()
    nonce = uuid.uuid4().hex[:6]
    prompts = [f"Load prompt P{p:02d}x{nonce} please stream" for p in range(sessions)]
    scripts = [{"ttft": LOAD_TTFT_S, "tokens": tokens, "rate": rate, "token_text": f"q{k:02d}w{{i}} ",
                "paragraph_every": paragraph_every} for k in range(sessions)]
    first = [f"q{k:02d}w0" for k in range(sessions)]
    last = [f"q{k:02d}w{tokens - 1}" for k in range(sessions)]
    srv.queue(*scripts)

    sampler = Sampler({**{f"app{i}": pid for i, pid in enumerate(pids)}, "server": srv.proc.pid},
                      every=0.2, sched_of=pids)
    with contextlib.ExitStack() as pages_stack, sampler:
        t_open = time.perf_counter()
        pages = open_pages(pages_stack, browser, [app.url for app in apps], sessions)
        out["open_pages_s"] = time.perf_counter() - t_open
        each("rss_pages_open_mb", [rss_mb(pid) for pid in pids])
        watches = [TextWatch(page, first + last) for page in pages]
        # A few pages also time websocket frames (CDP): server send -> frame -> DOM.
        meters = [WebSocketMeter(page, markers=first + last) for page in pages[:PROBE_PAGES]]

        # What else is the machine doing? (others may be running tests on these 2 cores)
        b0 = machine_busy()
        time.sleep(1.0)
        b1 = machine_busy()
        out["machine_busy_before_pct"] = (b1[0] - b0[0]) / max(1, b1[1] - b0[1]) * 100
        out["loadavg_before"] = Path("/proc/loadavg").read_text().split()[:3]
        family = [q for q in descendants(os.getpid()) if q not in pids and q != srv.proc.pid]
        database = postgres_processes(family)   # team mode's server and its backends
        others = [q for q in family if q not in database]
        browser_cpu0, database_cpu0 = tree_cpu_seconds(others), tree_cpu_seconds(database)

        busy0 = machine_busy()
        cpu0, t0 = [cpu_seconds(pid) for pid in pids], time.perf_counter()
        srv_cpu0 = cpu_seconds(srv.proc.pid)
        sched0 = sched_of_all(pids)
        sampler.sched_last.clear()   # from now on: threads that start and end in the window count too
        driver_cpu0 = time.process_time()
        t_send = [send_prompt(page, prompts[p]) for p, page in enumerate(pages)]
        out["send_all_s"] = time.perf_counter() - t0

        # Which queued script (marker) did each session get? Records are in arrival order.
        deadline = time.perf_counter() + 30
        recs: list = []
        while time.perf_counter() < deadline:
            recs = srv.requests()
            if len(recs) >= sessions:
                break
            time.sleep(POLL_S)
        arrival = {last_user_text(r.body): k for k, r in enumerate(recs)}
        own = [arrival.get(prompts[p]) for p in range(sessions)]
        out["requests_received"] = len(recs)

        # Poll every page until it shows its own last token (or the time is up).
        done_at: dict[int, float] = {}
        generation_s = LOAD_TTFT_S + tokens / rate
        deadline = t0 + generation_s * 2 + 60
        pending = [p for p in range(sessions) if own[p] is not None]
        while pending and time.perf_counter() < deadline:
            time.sleep(POLL_S)
            for p in list(pending):
                if last[own[p]] in pages[p].evaluate(_MARK_KEYS):
                    done_at[p] = time.perf_counter()
                    pending.remove(p)
        t1 = time.perf_counter()
        cpu1, srv_cpu1, busy1 = [cpu_seconds(pid) for pid in pids], cpu_seconds(srv.proc.pid), machine_busy()
        browser_cpu1 = tree_cpu_seconds(others)
        database_cpu1 = tree_cpu_seconds(postgres_processes(descendants(os.getpid())))   # and new backends
        sampler.sched_last.update(sched_of_all(pids))
        run_s, wait_s, slices = sched_delta(sched0, sampler.sched_last)
        out.update(app_sched_run_s=run_s, app_runqueue_wait_s=wait_s, app_wakeups_per_s=slices / (t1 - t0))
        driver_cpu = (time.process_time() - driver_cpu0)
        window = t1 - t0
        out.update(browser_cpu_pct_one_core=cpu_spent(browser_cpu0, browser_cpu1) / window * 100,
                   database_cpu_pct_one_core=cpu_spent(database_cpu0, database_cpu1, count_new=True) / window * 100,
                   driver_cpu_pct_one_core=driver_cpu / window * 100,
                   loadavg_after=Path("/proc/loadavg").read_text().split()[:3])
        out["load_window_s"] = window
        each("cpu_s", [c1 - c0 for c0, c1 in zip(cpu0, cpu1, strict=True)])
        each("cpu_pct_one_core", [(c1 - c0) / window * 100 for c0, c1 in zip(cpu0, cpu1, strict=True)])
        out.update(server_cpu_pct_one_core=(srv_cpu1 - srv_cpu0) / window * 100,
                   machine_busy_pct=(busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]) * 100,
                   completed_sessions=len(done_at))

        # Let the runs end (Stop button gone), then check what each page shows.
        deadline = time.perf_counter() + 20
        while time.perf_counter() < deadline and any(stop_button(pg).count() for pg in pages):
            time.sleep(POLL_S)
        recs = {r.id: r for r in srv.requests()}
        rec_by_k = sorted(recs.values(), key=lambda r: r.id)
        sess: list[dict] = []
        for p, page in enumerate(pages):
            k = own[p]
            seen = watches[p].read()
            facts = page.evaluate(_PAGE_FACTS, MAIN)
            info: dict[str, Any] = {"session": p, "app": p % len(apps), "script": k, "completed": p in done_at,
                                    "exceptions": facts["exceptions"]}
            foreign = sorted({m for m in seen.marks if k is None or not m.startswith(f"q{k:02d}w")})
            other_prompts = [q for i, q in enumerate(prompts) if i != p and q in facts["body"]]
            roles = [r for r, _ in facts["messages"]]
            expected = [f"q{k:02d}w{i}" for i in range(tokens)] if k is not None else []
            got = (facts["reply"] or "").replace("▌", "").split()
            info.update(foreign_markers=foreign, other_prompts=len(other_prompts), roles=roles,
                        user_text_ok=bool(facts["messages"]) and prompts[p] in facts["messages"][0][1],
                        reply_tokens=len(got), reply_exact=got == expected)
            if k is not None:
                rec = rec_by_k[k].to_json() if k < len(rec_by_k) else {}
                t_first_vis, t_last_vis = seen.marks.get(first[k]), seen.marks.get(last[k])
                info.update(
                    ttft_visible_s=None if t_first_vis is None else t_first_vis - t_send[p],
                    send_to_server_s=rec.get("t_received", 0) - t_send[p] if rec else None,
                    server_first_to_visible_s=(t_first_vis - rec["t_first_content_sent"])
                    if rec and t_first_vis and rec.get("t_first_content_sent") else None,
                    last_token_lag_s=(t_last_vis - rec["t_last_content_sent"])
                    if rec and t_last_vis and rec.get("t_last_content_sent") else None,
                    server_outcome=rec.get("outcome"), server_tokens=rec.get("tokens_sent"))
                if p < len(meters):   # websocket frame times: where the lag is (app side or browser side)
                    meters[p].sync()
                    f_first, f_last = meters[p].marker_times.get(first[k]), meters[p].marker_times.get(last[k])
                    info.update(
                        probe_server_to_frame_first_s=_minus(f_first, rec.get("t_first_content_sent")),
                        probe_frame_to_dom_first_s=_minus(t_first_vis, f_first),
                        probe_server_to_frame_last_s=_minus(f_last, rec.get("t_last_content_sent")),
                        probe_frame_to_dom_last_s=_minus(t_last_vis, f_last),
                        probe_ws_bytes=meters[p].bytes_received, probe_ws_frames=len(meters[p].frames))
                    foreign += sorted(m for m in meters[p].marker_times if not m.startswith(f"q{k:02d}w"))
            info["isolated"] = (not foreign and not info["other_prompts"] and roles == ["user", "assistant"]
                                and info["user_text_ok"])
            sess.append(info)
        out["per_session"] = sess
    # (pages closed: their websockets are gone; Streamlit keeps the sessions ~2 min for reconnects)
    t_load_end = t0 + window
    each("rss_peak_sampled_mb", [sampler.peak(f"app{i}", "rss_mb") for i in range(len(pids))])
    each("rss_hwm_mb", [status_kb(pid, "VmHWM") / 1024 for pid in pids])
    each("threads_peak", [sampler.peak(f"app{i}", "threads") for i in range(len(pids))])
    out["pages_closed_s_after_load"] = time.perf_counter() - t_load_end
    time.sleep(max(0.0, t_load_end + AFTER_LOAD_S - time.perf_counter()))
    each("rss_after_mb", [rss_mb(pid) for pid in pids])
    each("threads_after", [thread_count(pid) for pid in pids])
    for own_figures, app in zip(per_app, apps, strict=True):
        own_figures["streamlit_metrics_after"] = streamlit_metrics(app.url)
        own_figures["log_problems"] = log_problems(app.log)
    metric_names = dict.fromkeys(key for a in per_app for key in a["streamlit_metrics_after"])
    out["streamlit_metrics_after"] = {key: sum(a["streamlit_metrics_after"].get(key, 0.0) for a in per_app)
                                      for key in metric_names}
    each("idle_cpu_pct_after", cpu_percents(pids, 1.0))
    memory_ok("memory_ok", "rss_after_mb")
    if not out["memory_ok"]:
        time.sleep(EXTRA_IDLE_S)
        each("rss_after_idle_mb", [rss_mb(pid) for pid in pids])
        out["rss_after_idle_s"] = time.perf_counter() - t_load_end
        memory_ok("memory_ok_after_idle", "rss_after_idle_mb")
    out["log_problems"] = [line for a in per_app for line in a["log_problems"]]

    ok = [s for s in sess if s.get("ttft_visible_s") is not None]
    def series(key: str) -> list[float]:
        return [s[key] for s in ok if s.get(key) is not None]
    for key in ("ttft_visible_s", "send_to_server_s", "server_first_to_visible_s", "last_token_lag_s"):
        out[f"{key[:-2]}_p50_s"] = pct(series(key), 0.5)
        out[f"{key[:-2]}_p95_s"] = pct(series(key), 0.95)
        out[f"{key[:-2]}_max_s"] = max(series(key), default=None)
    for key in ("probe_server_to_frame_first_s", "probe_frame_to_dom_first_s", "probe_server_to_frame_last_s",
                "probe_frame_to_dom_last_s"):
        out[f"{key[:-2]}_p50_s"] = pct(series(key), 0.5)
    out["all_completed"] = len(done_at) == sessions
    out["all_isolated"] = all(s["isolated"] for s in sess) and len(sess) == sessions
    out["all_exact"] = all(s["reply_exact"] for s in sess) and len(sess) == sessions
    return out


# ---------------------------------------------------------------- soak

def stop_click(page) -> tuple[float, bool]:
    """Click Stop; (perf_counter before the click, whether it had to be forced). The button sits
    under the growing reply and moves with it, so on a busy machine Playwright may not see it
    'stable' for long; then click it where it is (force=True skips that actionability wait)."""
    button = stop_button(page).first
    button.wait_for(state="visible", timeout=5_000)
    t = time.perf_counter()
    try:
        button.click(timeout=2_000)
        return t, False
    except Exception:  # noqa: BLE001 - playwright TimeoutError: not stable / covered
        t = time.perf_counter()
        button.click(timeout=5_000, force=True)
        return t, True


def run_soak(browser, srv, n: int, workdir: Path) -> dict:
    data_dir = workdir / "soak-data"
    data_dir.mkdir()
    log = workdir / "streamlit-soak.log"
    port = srv.port
    out: dict[str, Any] = {"requests": n, "fast_script": SOAK_FAST, "stopped_script": SOAK_STOPPED}
    rows: list[dict] = []
    with streamlit_app(APP, {**app_env(srv, data_dir), **SHARED}, log_path=log) as url, app_page(browser, url) as page:
        pid = find_streamlit_pid(port_of(url))
        out["pid"] = pid
        watch = TextWatch(page, [])

        def new_chat() -> None:
            page.locator(".st-key-conv_new button").click(timeout=10_000)
            page.get_by_text("Try one of these").wait_for(state="visible", timeout=10_000)
            wait_idle(page, timeout=15, settle=SOAK_SETTLE_S)

        def one(k: int, stop: bool) -> dict:
            spec = dict(SOAK_STOPPED if stop else SOAK_FAST, token_text=f"r{k}w{{i}} ")
            first, stop_at, last = f"r{k}w0", f"r{k}w{SOAK_STOP_AT}", f"r{k}w{spec['tokens'] - 1}"
            srv.reset()
            srv.queue(spec)
            watch.markers = [first, stop_at, last]
            watch.install()
            t0 = send_prompt(page, f"soak {k}")
            row: dict[str, Any] = {"k": k, "stop": stop}
            if stop:
                row["t_visible"] = watch.wait_for_marker(stop_at, timeout=15)
                row["t_click"], row["forced_click"] = stop_click(page)
            else:
                row["t_visible"] = watch.wait_for_marker(last, timeout=15)
            wait_idle(page, timeout=15, settle=SOAK_SETTLE_S)
            t_idle = time.perf_counter()
            rec = srv.wait_for_end(timeout=5)
            recs = srv.requests()
            row.update(seconds=time.perf_counter() - t0, requests=len(recs), outcome=rec.outcome,
                       tokens_sent=rec.tokens_sent, disconnected=rec.t_disconnected is not None,
                       send_to_server_s=rec.t_received - t0, send_to_visible_s=row["t_visible"] - t0,
                       send_to_idle_s=t_idle - t0, rss_mb=rss_mb(pid))
            if stop and rec.t_disconnected is not None:
                click = watch.read().last_click("Stop") or row["t_click"]
                row["stop_latency_s"] = rec.t_disconnected - click
            return row

        for k in range(3):   # warm-up: lazy imports, the client's pool, the save threads; ends
            one(-1 - k, stop=k == 1)   # with a completed reply, so its connection is in the pool
        new_chat()
        time.sleep(1.5)
        before = process_counts(pid, port)
        t_start, cpu0 = time.perf_counter(), cpu_seconds(pid)
        for k in range(1, n + 1):
            try:
                if k > 1 and (k - 1) % SOAK_CHAT_LENGTH == 0:
                    new_chat()
                rows.append(one(k, stop=k % 3 == 0))
            except Exception as exc:  # noqa: BLE001 - count it, carry on
                rows.append({"k": k, "stop": k % 3 == 0, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
                with contextlib.suppress(Exception):
                    wait_idle(page, timeout=15)
        out["soak_s"] = time.perf_counter() - t_start
        out["cpu_pct_one_core"] = (cpu_seconds(pid) - cpu0) / out["soak_s"] * 100
        time.sleep(2.0)
        after = process_counts(pid, port)
        facts = page.evaluate(_PAGE_FACTS, MAIN)
        out["page_exceptions"] = facts["exceptions"]
        out["page_messages"] = len(facts["messages"])
        out["log_problems"] = log_problems(log)
    out["before"], out["after"] = before, after
    stopped = [r for r in rows if r["stop"]]
    errors = [r for r in rows if "error" in r]
    out["errors"] = len(errors)
    out["error_examples"] = [r["error"] for r in errors[:5]]
    out["stopped"] = len(stopped)
    out["stopped_disconnected"] = sum(1 for r in stopped if r.get("disconnected"))
    out["fast_completed"] = sum(1 for r in rows if not r["stop"] and r.get("outcome") == "completed")
    out["extra_requests"] = sum(1 for r in rows if r.get("requests", 1) != 1)
    lat = [r["stop_latency_s"] for r in stopped if r.get("stop_latency_s") is not None]
    out["stop_latency_p50_s"], out["stop_latency_max_s"] = pct(lat, 0.5), max(lat, default=None)
    out["forced_clicks"] = sum(1 for r in stopped if r.get("forced_click"))
    rss = [(r["k"], r["rss_mb"]) for r in rows if "rss_mb" in r]
    out["rss_trend_mb"] = [(k, round(v, 1)) for k, v in rss if k in (1, 10, 25, 50, 100, 150, 200) or k == rss[-1][0]]
    later = [(k, v) for k, v in rss if k >= 25]   # after the first conversations: steady state
    if len(later) >= 2:
        (k0, v0), (k1, v1) = later[0], later[-1]
        out["rss_growth_kb_per_request"] = (v1 - v0) * 1024 / (k1 - k0)
    for key in ("send_to_server_s", "send_to_visible_s", "send_to_idle_s"):
        out[f"fast_{key[:-2]}_p50_s"] = pct([r[key] for r in rows if key in r and not r["stop"]], 0.5)
    secs = [r["seconds"] for r in rows if "seconds" in r and not r["stop"]]
    if len(secs) >= 20:
        out["fast_request_s_first10"] = statistics.median(secs[:10])
        out["fast_request_s_last10"] = statistics.median(secs[-10:])
    grow = {key: after[key] - before[key] for key in ("threads", "fds", "children", "connections")}
    out["growth"] = grow
    out["checks"] = {
        "threads": grow["threads"] <= TOLERANCE["threads"],
        "fds": grow["fds"] <= TOLERANCE["fds"],
        "children": grow["children"] <= TOLERANCE["children"],
        "connections": after["connections"] <= min(CONNECTION_POOL_MAX, max(2, before["connections"] + 1))
        and not after["tcp_by_state"].get("CLOSE_WAIT"),
        "disconnects": out["stopped_disconnected"] == len(stopped) and not errors,
    }
    out["rows"] = rows
    return out


# ---------------------------------------------------------------- report

def _ms(v: Any) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"


def _mb(v: Any) -> str:
    return "-" if v is None else f"{v:.0f} MB"


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "FAIL")


Row = Callable[..., None]   # report()'s row(figure, shown, value=None, target="", ok=None)


def team_label(team: dict) -> str:
    n = team.get("replicas", 2)
    return f"load, {n} replica{'s' if n != 1 else ''} on PostgreSQL"


def _load_rows(row: Row, load: dict | None, label: str, more: Callable[[Row, dict, str], None]) -> None:
    """A load scenario's rows: those every scenario reports, then `more` of its own. One row if it
    was skipped or failed."""
    if not load:
        return
    if "skipped" in load:
        row(label, "skipped")
        return
    if "error" in load:
        row(label, load["error"][:60], None, "", False)
        return
    n = load["sessions"]
    row(f"{label}: sessions completed", f"{load['completed_sessions']}/{n}", load["completed_sessions"],
        "all", load["all_completed"])
    iso = sum(1 for s in load["per_session"] if s["isolated"])
    row(f"{label}: sessions isolated", f"{iso}/{n}", iso, "all", load["all_isolated"])
    exact = sum(1 for s in load["per_session"] if s["reply_exact"])
    row(f"{label}: replies with every token", f"{exact}/{n}", exact, "all", load["all_exact"])
    row(f"{label}: visible TTFT p50", _ms(load["ttft_visible_p50_s"]), load["ttft_visible_p50_s"])
    row(f"{label}: visible TTFT p95", _ms(load["ttft_visible_p95_s"]), load["ttft_visible_p95_s"])
    row(f"{label}: prompt sent -> server p50/p95",
        f"{_ms(load['send_to_server_p50_s'])}/{_ms(load['send_to_server_p95_s'])}".replace(" ms/", "/"))
    row(f"{label}: server 1st tok -> visible p50/p95",
        f"{_ms(load['server_first_to_visible_p50_s'])}/{_ms(load['server_first_to_visible_p95_s'])}"
        .replace(" ms/", "/"))
    row(f"{label}: last-token lag p50/p95",
        f"{_ms(load['last_token_lag_p50_s'])}/{_ms(load['last_token_lag_p95_s'])}".replace(" ms/", "/"))
    more(row, load, label)


def _others_row(row: Row, load: dict, label: str) -> None:
    others = (load["machine_busy_pct"] * 2 - load["cpu_pct_one_core"] - load["browser_cpu_pct_one_core"]
              - load["server_cpu_pct_one_core"] - load["driver_cpu_pct_one_core"]
              - load.get("database_cpu_pct_one_core", 0.0))
    row(f"{label}: browser / others' CPU (% of a core)",
        f"{load['browser_cpu_pct_one_core']:.0f} / {max(0.0, others):.0f} %", load["browser_cpu_pct_one_core"])


def _rss_after_idle_row(row: Row, figure: str, load: dict, app: dict) -> None:
    """The RSS once more, EXTRA_IDLE_S later, where it was not back to the start AFTER_LOAD_S after."""
    if "rss_after_idle_mb" in app:
        limit = app["rss_start_mb"] * (1 + MEMORY_TOLERANCE)
        row(f"{figure} {load['rss_after_idle_s']:.0f} s after", _mb(app["rss_after_idle_mb"]),
            app["rss_after_idle_mb"], f"<= {limit:.0f} MB", app["memory_ok_after_idle"])


def _one_app_rows(row: Row, load: dict, label: str) -> None:
    row(f"{label}: app CPU (% of one core)", f"{load['cpu_pct_one_core']:.0f} %", load["cpu_pct_one_core"])
    _others_row(row, load, label)
    row(f"{label}: app threads' run-queue wait",
        f"{load['app_runqueue_wait_s']:.1f} s (ran {load['app_sched_run_s']:.1f} s)", load["app_runqueue_wait_s"])
    row(f"{label}: app threads scheduled in, per s", f"{load['app_wakeups_per_s']:.0f} /s", load["app_wakeups_per_s"])
    row(f"{label}: app CPU seconds", f"{load['cpu_s']:.1f} s / {load['load_window_s']:.0f} s", load["cpu_s"])
    row(f"{label}: machine busy (2 cores)", f"{load['machine_busy_pct']:.0f} %", load["machine_busy_pct"])
    row(f"{label}: RSS start", _mb(load["rss_start_mb"]), load["rss_start_mb"])
    row(f"{label}: RSS peak (sampled / HWM)", f"{load['rss_peak_sampled_mb']:.0f}/{load['rss_hwm_mb']:.0f} MB",
        load["rss_peak_sampled_mb"])
    limit = load["rss_start_mb"] * (1 + MEMORY_TOLERANCE)
    row(f"{label}: RSS {AFTER_LOAD_S:.0f} s after", _mb(load["rss_after_mb"]), load["rss_after_mb"],
        f"<= {limit:.0f} MB (+{MEMORY_TOLERANCE:.0%})", load["memory_ok"])
    _rss_after_idle_row(row, f"{label}: RSS", load, load)
    row(f"{label}: app threads start/peak/after",
        f"{load['threads_start']}/{load['threads_peak']}/{load['threads_after']}", load["threads_peak"])


def _replica_rows(row: Row, load: dict, label: str) -> None:
    for i, app in enumerate(load["apps"], 1):
        limit = app["rss_start_mb"] * (1 + MEMORY_TOLERANCE)
        row(f"{label}: replica {i} RSS start/peak/after",
            f"{app['rss_start_mb']:.0f}/{app['rss_peak_sampled_mb']:.0f}/{app['rss_after_mb']:.0f} MB",
            app["rss_after_mb"], f"after <= {limit:.0f} MB", app["memory_ok"])
        _rss_after_idle_row(row, f"{label}: replica {i} RSS", load, app)
    row(f"{label}: app CPU per replica (% of a core)",
        " / ".join(f"{app['cpu_pct_one_core']:.0f}" for app in load["apps"]) + " %", load["cpu_pct_one_core"])
    row(f"{label}: PostgreSQL CPU (% of a core)", f"{load['database_cpu_pct_one_core']:.0f} %",
        load["database_cpu_pct_one_core"])
    _others_row(row, load, label)
    row(f"{label}: machine busy (2 cores)", f"{load['machine_busy_pct']:.0f} %", load["machine_busy_pct"])


def report(results: dict) -> tuple[list[dict], str]:
    rows: list[dict] = []

    def row(figure: str, shown: str, value: Any = None, target: str = "", ok: bool | None = None) -> None:
        rows.append({"figure": figure, "value": value, "shown": shown, "target": target, "verdict": _verdict(ok)})

    _load_rows(row, results.get("load"), "load", _one_app_rows)
    team = results.get("load_team")
    if team:
        _load_rows(row, team, team_label(team), _replica_rows)

    soak = results.get("soak")
    if soak and "error" not in soak:
        b, a, c = soak["before"], soak["after"], soak["checks"]
        row("soak: requests ok (fast completed + stopped)",
            f"{soak['fast_completed']}+{soak['stopped']} of {soak['requests']}",
            soak["requests"] - soak["errors"], "no errors", soak["errors"] == 0 and soak["extra_requests"] == 0)
        row("soak: threads before/after", f"{b['threads']}/{a['threads']}", a["threads"],
            f"growth <= {TOLERANCE['threads']}", c["threads"])
        row("soak: fds before/after", f"{b['fds']}/{a['fds']}", a["fds"], f"growth <= {TOLERANCE['fds']}", c["fds"])
        row("soak: children before/after", f"{b['children']}/{a['children']}", a["children"], "same",
            c["children"])
        row("soak: conns to server before/after", f"{b['connections']}/{a['connections']}", a["connections"],
            "<= 2, no CLOSE_WAIT", c["connections"])
        row("soak: stopped -> server disconnect", f"{soak['stopped_disconnected']}/{soak['stopped']}",
            soak["stopped_disconnected"], "all", c["disconnects"])
        row("soak: Stop -> disconnect p50/max",
            f"{_ms(soak['stop_latency_p50_s'])}/{_ms(soak['stop_latency_max_s'])}".replace(" ms/", "/"),
            soak["stop_latency_max_s"])
        row("soak: Stop clicks that needed force", f"{soak['forced_clicks']}/{soak['stopped']}", soak["forced_clicks"])
        row("soak: fast req sent->server/visible/idle",
            "/".join(_ms(soak[f"fast_send_to_{x}_p50_s"]).replace(" ms", "") for x in ("server", "visible", "idle"))
            + " ms", soak["fast_send_to_idle_p50_s"])
        row("soak: RSS before/after", f"{b['rss_mb']:.0f}/{a['rss_mb']:.0f} MB", a["rss_mb"])
        if soak.get("rss_growth_kb_per_request") is not None:
            row("soak: RSS growth per request (k >= 25)", f"{soak['rss_growth_kb_per_request']:.0f} KB",
                soak["rss_growth_kb_per_request"])
        if "fast_request_s_first10" in soak:
            row("soak: fast request, first/last 10 (p50)",
                f"{soak['fast_request_s_first10'] * 1000:.0f}/{soak['fast_request_s_last10'] * 1000:.0f} ms",
                soak["fast_request_s_last10"])
        row("soak: app CPU (% of one core)", f"{soak['cpu_pct_one_core']:.0f} %", soak["cpu_pct_one_core"])
    elif soak:
        row("soak", soak["error"][:60], None, "", False)

    checked = [r for r in rows if r["verdict"]]
    failed = [r["figure"] for r in checked if r["verdict"] == "FAIL"]
    summary = (f"LOAD SUMMARY: {len(checked) - len(failed)}/{len(checked)} checks passed"
               + (f"; FAILED: {'; '.join(failed)}" if failed else ""))
    return rows, summary


TABLE = [Column("figure", "figure", 44), Column("value", "shown", 22, ">"), Column("target", "target", 22, gap=2),
         Column("", "verdict")]


def _load_notes(load: dict, label: str) -> list[str]:
    if "skipped" in load:
        return [f"{label}: skipped, {load['skipped']}"]
    if "per_session" not in load:
        return []
    apps = load.get("apps") or [load]
    out = []
    if len(apps) > 1:
        out.append(f"{label}: session p on replica p mod {len(apps)} ("
                   + ", ".join(app["url"] for app in apps) + "); RSS with pages open per replica "
                   + "/".join(f"{app['rss_pages_open_mb']:.0f}" for app in apps) + " MB; the app's figures in the "
                   "next lines are totals over the replicas")
    out.append(f"{label}: {load['sessions']} sessions x {load['tokens']} tok @{load['rate']:g}/s "
               f"(scripted TTFT {load['scripted_ttft_s']} s), one Chromium; opening the pages took "
               f"{load['open_pages_s']:.1f} s, sending the prompts {load['send_all_s']:.1f} s; "
               f"RSS with pages open before sending {load['rss_pages_open_mb']:.0f} MB; "
               f"app idle CPU before/after {load['idle_cpu_pct_before']:.0f}/{load['idle_cpu_pct_after']:.0f} %; "
               f"scripted server CPU {load['server_cpu_pct_one_core']:.0f} %, driver {load['driver_cpu_pct_one_core']:.0f} %")
    out.append(f"{label}: machine before the load: {load['machine_busy_before_pct']:.0f} % busy, load average "
               f"{' '.join(load['loadavg_before'])} (after: {' '.join(load['loadavg_after'])}); "
               f"replies with a paragraph break every {load['paragraph_every'] or 'never'} tokens")
    sm = load.get("streamlit_metrics_after") or {}
    if sm:
        connects = sm.get('session_events_total{type="connect"}', 0)
        disconnects = sm.get('session_events_total{type="disconnect"}', 0)
        out.append(f"{label}: {AFTER_LOAD_S:.0f} s after (pages closed), Streamlit's /_stcore/metrics: active_sessions "
                   f"{sm.get('active_sessions', -1):.0f}, connects {connects:.0f}, disconnects {disconnects:.0f}")
    if load.get("probe_server_to_frame_first_p50_s") is not None:
        out.append(f"{label}, {PROBE_PAGES} probe pages (p50): first token server send -> websocket frame "
                   f"{_ms(load['probe_server_to_frame_first_p50_s'])}, frame -> DOM "
                   f"{_ms(load['probe_frame_to_dom_first_p50_s'])}; last token server -> frame "
                   f"{_ms(load['probe_server_to_frame_last_p50_s'])}, frame -> DOM "
                   f"{_ms(load['probe_frame_to_dom_last_p50_s'])}")

    def where(i: int) -> str:
        return f" (replica {i + 1})" if len(apps) > 1 else ""
    for s in load["per_session"]:
        if not (s["isolated"] and s["reply_exact"] and s["completed"]):
            out.append(f"{label} session {s['session']}{where(s.get('app', 0))}: completed={s['completed']} "
                       f"roles={s['roles']} foreign={s['foreign_markers'][:4]} other_prompts={s['other_prompts']} "
                       f"reply_tokens={s['reply_tokens']} server={s.get('server_outcome')}/{s.get('server_tokens')}")
    for i, app in enumerate(apps):
        for line in app.get("log_problems", []):
            out.append(f"{label} streamlit log{where(i)}: {line[:200]}")
    return out


def notes(results: dict) -> list[str]:
    out = _load_notes(results.get("load") or {}, "load")
    team = results.get("load_team") or {}
    out += _load_notes(team, team_label(team))
    soak = results.get("soak") or {}
    if "before" in soak:
        for side in ("before", "after"):
            c = soak[side]
            out.append(f"soak {side}: threads {c['thread_names']}; fds {c['fd_kinds']}; tcp {c['tcp_by_state']}")
        out.append(f"soak: {soak['requests']} requests in {soak['soak_s']:.0f} s; page shows {soak['page_messages']} "
                   f"messages, {soak['page_exceptions']} exceptions; RSS after request k (MB): "
                   + ", ".join(f"{k}: {v}" for k, v in soak.get("rss_trend_mb", [])))
        for e in soak["error_examples"]:
            out.append(f"soak error: {e}")
        for line in soak.get("log_problems", []):
            out.append(f"soak streamlit log: {line[:200]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=1500)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--paragraph-every", type=int, default=40,
                        help="a paragraph break every N tokens of the load replies (0: one long paragraph)")
    parser.add_argument("--soak", type=int, default=200, help="requests in the soak")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-team", action="store_true", help="skip the load on replicas on PostgreSQL")
    parser.add_argument("--team-replicas", type=int, default=2, help="replicas of the team load")
    parser.add_argument("--skip-soak", action="store_true")
    parser.add_argument("--json", default=str(ROOT / "bench-results" / "bench.json"))
    parser.add_argument("--keep", metavar="DIR", help="keep the streamlit logs and databases in DIR")
    args = parser.parse_args(argv)
    if not have_chromium():
        print("LOAD SUMMARY: skipped, /usr/bin/chromium is missing (make chromium)")
        return 0
    t0 = time.perf_counter()
    print(f"bench load/soak: {args.sessions} sessions x {args.tokens} tok @{args.rate:g}/s, "
          f"then {args.soak} requests in one page", flush=True)
    results: dict[str, Any] = {}
    try:
        with contextlib.ExitStack() as stack:
            if args.keep:
                workdir = Path(args.keep)
                workdir.mkdir(parents=True, exist_ok=False)
            else:
                workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-load-")))
            srv = stack.enter_context(scripted_server_process(max_lifetime=900))
            browser = stack.enter_context(chromium())
            if not args.skip_load:
                t = time.perf_counter()
                results["load"] = guarded(lambda: run_load(browser, srv, args.sessions, args.tokens, args.rate,
                                                           args.paragraph_every, workdir), traceback_limit=6)
                print(f"  load {time.perf_counter() - t:6.1f} s  {results['load'].get('error') or 'ok'}", flush=True)
            if not args.skip_team:
                t = time.perf_counter()
                team: dict[str, Any] = {"replicas": args.team_replicas}
                if find_postgres() is None:
                    team["skipped"] = POSTGRES_MISSING
                else:
                    team |= guarded(lambda: run_load_team(browser, srv, args.team_replicas, args.sessions, args.tokens,
                                                          args.rate, args.paragraph_every, workdir), traceback_limit=6)
                results["load_team"] = team
                print(f"  {team_label(team)} {time.perf_counter() - t:6.1f} s  "
                      f"{team.get('error') or team.get('skipped') or 'ok'}", flush=True)
            if not args.skip_soak:
                t = time.perf_counter()
                results["soak"] = guarded(lambda: run_soak(browser, srv, args.soak, workdir), traceback_limit=6)
                print(f"  soak {time.perf_counter() - t:6.1f} s  {results['soak'].get('error') or 'ok'}", flush=True)
    except Exception:  # noqa: BLE001 - still a report, still exit 0
        traceback.print_exc()
        print("\nLOAD SUMMARY: the load bench itself failed (see the traceback above)")
        return 0
    rows, summary = report(results)
    print()
    widest = max((len(r["figure"]) for r in rows), default=0)
    print_table(rows, [replace(TABLE[0], width=max(TABLE[0].width, widest)), *TABLE[1:]])
    print()
    for line in notes(results):
        print(f"  {line}")
    for name, data in results.items():
        if "error" in data:
            print(f"\n{name}: {data['error']}\n{data.get('traceback', '')}")
    elapsed = time.perf_counter() - t0
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        existing = json.loads(out.read_text())
        if not isinstance(existing, dict):
            existing = {}
    except (OSError, ValueError):
        existing = {}
    existing["load"] = {"summary": summary, "elapsed_s": elapsed, "rows": rows, "results": results,
                        "time": time.time()}
    out.write_text(json.dumps(existing, indent=2, default=str))
    print(f"\n{summary}\n(results in {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} "
          f"under \"load\", {elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
