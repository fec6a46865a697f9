"""Team mode (issue 16): Stop pressed on a replica that does not own the reply.

Two app replicas on one PostgreSQL database (a throwaway cluster) and the scripted server. A
reply streams on replica 1 (held by the scripted server's gate); the same browser opens the
chat on replica 2, which follows it live; Stop is clicked there. Figure: click → the scripted
server seeing the connection closed (it goes through replica 1, which owns the connection;
target 250 ms). Also: how long replica 2 took to show the reply's first words after opening.

    python -m bench.team [--runs 5] [--json PATH]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

from bench.report import Column, guarded, print_and_merge
from tests.harness.browser import app_env, chromium, have_chromium, send_prompt, stop_button, wait_for_text, wait_idle
from tests.harness.postgres import MISSING, find_binaries, postgres_server
from tests.harness.processes import ROOT
from tests.harness.scripted_server import scripted_server_process
from tests.harness.team import conversation_of, open_at, replicas

STOP_TARGET_S = 0.250


def measure_stop_across(browser, srv, one, two) -> dict:
    srv.reset()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        first = open_at(context, one.url)
        srv.queue({"ttft": 0.0, "tokens": 5000, "rate": 50, "token_text": "w{i} ", "hold_after": 10})
        send_prompt(first, "follow me")
        rec = srv.wait_for_hold(timeout=20)
        cid = conversation_of(first)
        t_open = time.perf_counter()
        second = open_at(context, f"{two.url}/?c={cid}", idle=False)
        wait_for_text(second, "w9", timeout=20)
        shown_s = time.perf_counter() - t_open
        srv.release()
        wait_for_text(second, "w20", timeout=20)
        t_click = time.perf_counter()
        stop_button(second).click()
        t_closed = srv.wait_for_disconnect(rec.id, timeout=10)
        wait_idle(second)
        return {"stop_s": t_closed - t_click, "follow_shown_s": shown_s}
    finally:
        context.close()
        srv.release()


def run(runs: int) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-team-") as data, postgres_server() as db, \
            scripted_server_process() as srv:
        env = app_env(srv, data) | {"STREAMCHAT_DATABASE_URL": db, "STREAMCHAT_SHARED": "1"}
        with replicas(2, env) as (one, two), chromium() as browser:
            for i in range(runs):
                t0 = time.perf_counter()
                out["runs"].append(guarded(lambda: measure_stop_across(browser, srv, one, two)))
                print(f"  team: Stop on replica 2 {i + 1}/{runs} {time.perf_counter() - t0:5.1f} s", flush=True)
    return out


def report(results: dict[str, Any]) -> tuple[list[dict], str]:
    runs = results.get("runs", [])
    stops = [r["stop_s"] for r in runs if "stop_s" in r]
    shown = [r["follow_shown_s"] for r in runs if "follow_shown_s" in r]
    ok = bool(runs) and len(stops) == len(runs) and max(stops) <= STOP_TARGET_S
    rows = [
        {"figure": f"Stop clicked on replica 2 -> replica 1's connection closed (max of {len(runs)})",
         "value": f"{max(stops) * 1000:.0f} ms (p50 {statistics.median(stops) * 1000:.0f} ms)" if stops else "-",
         "target": f"<= {STOP_TARGET_S * 1000:.0f} ms", "verdict": "PASS" if ok else "FAIL"},
        {"figure": "replica 2 opened -> the followed reply's text shown (p50)",
         "value": f"{statistics.median(shown) * 1000:.0f} ms" if shown else "-", "target": "", "verdict": ""},
    ]
    rows += [{"figure": "error", "value": r["error"], "target": "", "verdict": ""} for r in runs if "error" in r]
    return rows, "TEAM SUMMARY: " + ("all targets met" if ok else "missed: Stop across replicas")


TABLE = [Column("figure", "figure", 74), Column("value", "value", 26), Column("target", "target", 10),
         Column("", "verdict")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", default=str(ROOT / "bench-results" / "bench.json"))
    args = parser.parse_args(argv)
    if find_binaries() is None or not have_chromium():
        print(f"TEAM SUMMARY: skipped ({MISSING if find_binaries() is None else 'no /usr/bin/chromium'})")
        return 0
    print("bench team: Stop across two replicas on PostgreSQL", flush=True)
    results = run(max(1, args.runs))
    rows, summary = report(results)
    print_and_merge(args.json, "team", results, rows, TABLE, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
