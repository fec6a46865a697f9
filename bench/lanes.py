"""Compare lanes (issue 15): three lanes racing on two scripted servers, through the engine the
Compare page and the CLI share.

- The issue's scene: A (TTFT 0.3 s, 100 tok/s) and B (TTFT 1.0 s, 50 tok/s), 200 tokens each;
  lanes A stream, B stream, A non-stream; race mode, `--repeat` rounds. Each lane's median first
  text and E2E against the schedule (0.3 / 1.0 / 2.3 s and 2.3 / 5.0 / 2.3 s; target within 15 %).
- How far apart the lanes' requests were sent in race mode (target: within 10 ms).
- Stop all with three lanes mid-stream: Stop → the last of the three servers seeing its
  connection closed (target: 250 ms), in the engine and from the click in Chromium on the
  Compare page (three lanes on two scripted servers offered by STREAMCHAT_ENDPOINTS).

    python -m bench.lanes [--repeat 3] [--stop-runs 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

from bench.report import Column, guarded, print_and_merge
from streamchat import compare
from streamchat.generation import Endpoint
from streamchat.lanes import Lane
from streamchat.runner import Runner
from tests.harness.browser import app_env, app_page, chromium, have_chromium, set_up_lanes, streamlit_app, wait_for_text
from tests.harness.processes import ROOT
from tests.harness.scripted_server import Script, ScriptedServer, scripted_server_process

A = Script(ttft=0.3, tokens=200, rate=100)
B = Script(ttft=1.0, tokens=200, rate=50)
EXPECTED = {  # lane key -> (first text, E2E): the schedule
    "a": (0.3, 0.3 + 199 / 100),
    "b": (1.0, 1.0 + 199 / 50),
    "a-whole": (0.3 + 199 / 100, 0.3 + 199 / 100),
}
FIGURE_TOLERANCE = 0.15
SPREAD_TARGET_S = 0.010
STOP_TARGET_S = 0.250
USER = [{"role": "user", "content": "Count"}]


def three_lanes(a: ScriptedServer, b: ScriptedServer) -> list[Lane]:
    def lane(key: str, name: str, srv: ScriptedServer, stream: bool = True) -> Lane:
        return Lane(key, name, Endpoint("remote", srv.base_url, f"model-{key[0]}", f"sk-{key[0]}"), stream)

    return [lane("a", "A", a), lane("b", "B", b), lane("a-whole", "A whole", a, stream=False)]


def measure_race(runner: Runner, a: ScriptedServer, b: ScriptedServer, repeat: int) -> dict:
    a.set_script(A)
    b.set_script(B)
    c = compare.Comparison(USER, lanes=three_lanes(a, b), mode=compare.RACE, repeat=repeat, runner=runner)
    c.start()
    if not c.wait(60 + 10 * repeat):
        c.stop()
        raise TimeoutError("the comparison did not finish")
    summary = {r["metric"]: r for r in c.summary()}
    lanes = {}
    for key, (first, e2e) in EXPECTED.items():
        prefix = compare.stat_prefix(key)
        got_first = summary["first_text_s"][f"{prefix}_median"]
        got_e2e = summary["e2e_s"][f"{prefix}_median"]
        lanes[key] = {"first_text_s": got_first, "e2e_s": got_e2e, "expected_first_s": first,
                      "expected_e2e_s": e2e, "n": summary["first_text_s"][f"{prefix}_n"]}
    spreads = [s for r in c.rounds if (s := r.send_spread_s) is not None]
    return {"lanes": lanes, "spreads_s": spreads, "verdict": c.verdict()}


def measure_stop_all(runner: Runner, servers: list[ScriptedServer]) -> dict:
    held = Script(ttft=0.0, tokens=1000, rate=200, hold_after=10)
    for srv in servers:
        srv.reset()
        srv.queue(Script(tokens=1, rate=0), held)  # the warm-up, then the held reply
    lanes = [Lane(k, k.upper(), Endpoint("remote", s.base_url, "m"), True) for k, s in zip("abc", servers)]
    c = compare.Comparison(USER, lanes=lanes, mode=compare.RACE, runner=runner).start()
    recs = [srv.wait_for_hold(timeout=30) for srv in servers]
    t_stop = time.perf_counter()
    c.stop()
    closed = [srv.wait_for_disconnect(rec.id) for srv, rec in zip(servers, recs)]
    c.wait(5)
    return {"stop_s": max(closed) - t_stop}


def measure_stop_all_clicked(page, a, b) -> dict:
    """Three lanes (a streamed, b streamed, a not) held mid-stream; Stop all clicked."""
    held = {"ttft": 0.0, "tokens": 1000, "rate": 200, "hold_after": 20, "token_text": "w{i} "}
    a.reset(), b.reset()
    try:
        a.queue({"tokens": 1}, held, held)
        b.queue({"tokens": 1}, held)
        page.get_by_role("button", name="Run comparison").click()
        for srv, n in ((a, 2), (b, 1)):
            srv.wait_until(lambda recs, n=n: sum(r.t_held is not None for r in recs) >= n or None, timeout=30)
        page.get_by_role("button", name="Stop all").wait_for(timeout=10_000)
        t_click = time.perf_counter()
        page.get_by_role("button", name="Stop all").click()
        records = [srv.wait_for_end(r.id, timeout=10) for srv in (a, b) for r in srv.requests()
                   if r.body.get("max_tokens") != 1]
        closed = [r.t_disconnected for r in records]
        if None in closed or len(closed) != 3:
            raise RuntimeError(f"not every lane's connection was closed: {[r.outcome for r in records]}")
        wait_for_text(page, "No comparison", timeout=15)
        return {"stop_s": max(closed) - t_click}
    finally:
        a.release(), b.release()


def run_browser(stop_runs: int) -> list[dict]:
    out: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-lanes-") as data, \
            scripted_server_process() as a, scripted_server_process() as b:
        env = app_env(a, data) | {"STREAMCHAT_ENDPOINTS": f"a={a.base_url}|model-a,b={b.base_url}|model-b"}
        with streamlit_app(ROOT / "app.py", env) as url, chromium() as browser, app_page(browser, url) as page:
            set_up_lanes(page, [("a", True), ("b", True), ("a", False)])
            for i in range(stop_runs):
                t0 = time.perf_counter()
                out.append(guarded(lambda: measure_stop_all_clicked(page, a, b)))
                print(f"  lanes: Stop all clicked {i + 1}/{stop_runs} {time.perf_counter() - t0:5.1f} s", flush=True)
    return out


def run(repeat: int, stop_runs: int) -> dict[str, Any]:
    runner = Runner()
    results: dict[str, Any] = {"race": None, "stop_all": []}
    try:
        with ScriptedServer(A) as a, ScriptedServer(B) as b, ScriptedServer(A) as c:
            t0 = time.perf_counter()
            results["race"] = guarded(lambda: measure_race(runner, a, b, repeat))
            print(f"  lanes: race, 3 lanes x {repeat}   {time.perf_counter() - t0:5.1f} s", flush=True)
            for i in range(stop_runs):
                t0 = time.perf_counter()
                results["stop_all"].append(guarded(lambda: measure_stop_all(runner, [a, b, c])))
                print(f"  lanes: Stop all {i + 1}/{stop_runs}       {time.perf_counter() - t0:5.1f} s", flush=True)
    finally:
        runner.shutdown()
    if have_chromium():
        results["stop_all_clicked"] = run_browser(stop_runs)
    return results


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def report(results: dict[str, Any]) -> tuple[list[dict], str]:
    rows: list[dict] = []
    failures: list[str] = []

    def row(figure: str, value: str, target: str, ok: bool | None) -> None:
        rows.append({"figure": figure, "value": value, "target": target,
                     "verdict": "" if ok is None else "PASS" if ok else "FAIL"})
        if ok is False:
            failures.append(figure)

    race = results.get("race") or {}
    if "error" in race:
        row("race of 3 lanes", race["error"], "", False)
    for key, lane in (race.get("lanes") or {}).items():
        for what in ("first_text_s", "e2e_s"):
            got, want = lane[what], lane["expected_" + what.replace("_text", "")]
            off = None if got is None else abs(got - want) / want
            row(f"lane {key}: {'first text' if what == 'first_text_s' else 'E2E'} (median of {lane['n']})",
                f"{got:.3f} s (schedule {want:.2f} s, {off:.1%} off)" if got is not None else "-",
                f"within {FIGURE_TOLERANCE:.0%}", off is not None and off <= FIGURE_TOLERANCE)
    spreads = race.get("spreads_s") or []
    if spreads:
        row("race: lanes sent within (max over rounds)", _ms(max(spreads)) + f" (p50 {_ms(statistics.median(spreads))})",
            f"<= {SPREAD_TARGET_S * 1000:.0f} ms", max(spreads) <= SPREAD_TARGET_S)
    stops = [r.get("stop_s") for r in results.get("stop_all", [])]
    done = [s for s in stops if s is not None]
    if stops:
        row(f"Stop all -> last of 3 connections closed (max of {len(stops)})",
            _ms(max(done)) if len(done) == len(stops) else "a run failed",
            f"<= {STOP_TARGET_S * 1000:.0f} ms", len(done) == len(stops) and max(done) <= STOP_TARGET_S)
    clicked = [r.get("stop_s") for r in results.get("stop_all_clicked", [])]
    done = [s for s in clicked if s is not None]
    if clicked:
        row(f"Stop all clicked in Chromium -> last of 3 closed (max of {len(clicked)})",
            _ms(max(done)) + f" (p50 {_ms(statistics.median(done))})" if len(done) == len(clicked) else "a run failed",
            f"<= {STOP_TARGET_S * 1000:.0f} ms", len(done) == len(clicked) and max(done) <= STOP_TARGET_S)
    for r in results.get("stop_all_clicked", []):
        if "error" in r:
            rows.append({"figure": "Stop all clicked: error", "value": r["error"], "target": "", "verdict": ""})
    if race.get("verdict"):
        rows.append({"figure": "verdict", "value": race["verdict"], "target": "", "verdict": ""})
    summary = "LANES SUMMARY: " + ("all targets met" if not failures else "missed: " + "; ".join(failures))
    return rows, summary


TABLE = [Column("figure", "figure", 58), Column("value", "value", 38), Column("target", "target", 10),
         Column("", "verdict")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stop-runs", type=int, default=5)
    parser.add_argument("--json", default=str(ROOT / "bench-results" / "bench.json"))
    args = parser.parse_args(argv)
    print("bench lanes: 3 lanes on scripted servers, through the comparison engine", flush=True)
    results = run(max(1, args.repeat), max(1, args.stop_runs))
    rows, summary = report(results)
    print_and_merge(args.json, "lanes", results, rows, TABLE, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
