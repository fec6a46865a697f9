"""Compare with three lanes in Chromium, on two scripted servers offered by STREAMCHAT_ENDPOINTS:
a (TTFT 0.3 s, 100 tok/s) and b (TTFT 1.0 s, 50 tok/s), 200 tokens each. Lanes: A = a streamed,
B = a not streamed, C = b streamed, raced. The streamed bodies grow at the same time while the
non-streamed one stays empty until its body arrives; the summary shows each lane's schedule; Stop
all closes every connection at once, a lane's own Stop only its own. The scripted servers hold the
replies at a gate (hold_after) wherever a test needs them mid-stream."""
import re
import time

import pytest

from tests.harness.bounds import PROMPTLY_S
from tests.harness.browser import (app_env, app_page, browser_ms_to_perf, chromium, set_up_lanes, streamlit_app,
                                   wait_for_text, wait_idle)
from tests.harness.scripted_server import scripted_server_process

pytestmark = pytest.mark.timeout(120)

A = {"ttft": 0.3, "tokens": 200, "rate": 100, "token_text": "a{i} "}
B = {"ttft": 1.0, "tokens": 200, "rate": 50, "token_text": "b{i} "}
WARM_UP = {"tokens": 1}
BODIES = {key: f".st-key-cmp-live-{key}-0" for key in "abc"}

# Every body's text length, time-stamped in the browser on each change (DOM commit time).
WATCH_JS = """
(bodies) => {
  const now = () => performance.timeOrigin + performance.now();
  const w = {samples: []};
  const check = () => {
    const lens = bodies.map(sel => { const el = document.querySelector(sel); return el ? el.textContent.length : -1; });
    const last = w.samples.length ? w.samples[w.samples.length - 1][1] : null;
    if (!last || lens.some((n, i) => n !== last[i])) w.samples.push([now(), lens]);
  };
  new MutationObserver(check).observe(document.body, {characterData: true, childList: true, subtree: true});
  window.__lanes = w;
}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    data = tmp_path_factory.mktemp("lanes-data")
    with scripted_server_process(**A) as a, scripted_server_process(**B) as b:
        env = app_env(a, data) | {
            "STREAMCHAT_ENDPOINTS": f"a={a.base_url}|model-a,b={b.base_url}|model-b"}
        with streamlit_app("app.py", env) as url, chromium() as browser:
            yield a, b, url, browser


def seconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+) (ms|s)", text.split(" · ")[0]).groups()
    return float(value) / (1000 if unit == "ms" else 1)


def shown_near(shown: str, schedule: float, actual: float) -> bool:
    """The page's figure (rounded for display) against the schedule and the server's own record
    of the same moment: never before the schedule, late by at most PROMPTLY_S."""
    value = seconds(shown)
    half_digit = 0.0005 if shown.endswith("ms") else 0.005
    return schedule - half_digit <= value < actual + PROMPTLY_S + half_digit


def summary_rows(page, lanes: int = 3) -> dict[str, dict[str, str]]:
    table = page.locator('[data-testid="stTable"]').first
    table.locator("tbody tr").nth(lanes - 1).wait_for(timeout=30_000)   # drawn, however busy the box
    head = [th.inner_text().strip() for th in table.locator("thead th").all()]
    rows = {}
    for tr in table.locator("tbody tr").all():
        cells = [c.inner_text().strip() for c in tr.locator("th, td").all()]
        rows[cells[0].split(" · ")[0]] = dict(zip(head, cells))
    return rows


def test_three_lanes_race_grow_together_and_keep_their_schedules(stack):
    a, b, url, browser = stack
    a.reset(), b.reset()
    with app_page(browser, url) as page:
        set_up_lanes(page, [("a", True), ("a", False), ("b", True)])
        a.queue(WARM_UP), b.queue(WARM_UP)
        page.evaluate(WATCH_JS, [BODIES["a"], BODIES["b"], BODIES["c"]])
        page.get_by_role("button", name="Run comparison").click()
        wait_for_text(page, "Summary", timeout=30)
        wait_idle(page)
        samples = [(browser_ms_to_perf(t), lens) for t, lens in page.evaluate("() => window.__lanes.samples")]

        counted = {k: [r for r in srv.requests() if r.body.get("max_tokens") != 1] for k, srv in (("a", a), ("b", b))}
        stream_a = next(r for r in counted["a"] if r.stream)
        whole_a = next(r for r in counted["a"] if not r.stream)
        (stream_b,) = counted["b"]
        # Race: every lane's request was sent together.
        received = [stream_a.t_received, whole_a.t_received, stream_b.t_received]
        assert max(received) - min(received) < PROMPTLY_S
        assert "sent within" in page.locator('[data-testid="stMain"]').inner_text()

        # While B's body has not arrived, A and C both show text and both grow; B stays empty.
        body_b = whole_a.t_last_content_sent
        before_body = [(t, lens) for t, lens in samples if t < body_b]
        assert all(lens[1] <= 0 for _, lens in before_body), "the non-streamed lane showed text early"
        both = [lens for _, lens in before_body if lens[0] > 0 and lens[2] > 0]
        assert len({lens[0] for lens in both}) >= 3 and len({lens[2] for lens in both}) >= 3, both[:5]
        assert max(lens[1] for _, lens in samples) > 0   # and B's body did arrive

        rows = summary_rows(page)
        print("lanes summary:", {lane: (row["Time to first text"], row["Total time (E2E)"]) for lane, row in rows.items()})
        first, total = "Time to first text", "Total time (E2E)"
        expect = {   # lane: (server record, first text schedule, total schedule)
            "A": (stream_a, 0.3, 2.29),
            "B": (whole_a, 2.29, 2.29),
            "C": (stream_b, 1.0, 4.98),
        }
        for lane, (rec, first_s, total_s) in expect.items():
            row = rows[lane]
            assert shown_near(row[first], first_s, rec.t_first_content_sent - rec.t_received), (lane, row)
            assert shown_near(row[total], total_s, rec.t_last_content_sent - rec.t_received), (lane, row)
        verdict = page.locator('[data-testid="stAlertContentSuccess"]').first.inner_text()
        assert "A showed text" in verdict and "sooner than C" in verdict, verdict


def test_stop_all_closes_every_lane_at_once(stack):
    a, b, url, browser = stack
    a.reset(), b.reset()
    held_a, held_b = {**A, "hold_after": 20}, {**B, "hold_after": 20}
    try:
        with app_page(browser, url) as page:
            set_up_lanes(page, [("a", True), ("b", True), ("a", False)])
            a.queue(WARM_UP, held_a, held_a)
            b.queue(WARM_UP, held_b)
            page.get_by_role("button", name="Run comparison").click()
            # Mid-stream: the streamed lanes have sent 20 tokens and the body of the non-streamed
            # one is ready; every one of them is held there (a: two lanes, b: one).
            for srv, held in ((a, 2), (b, 1)):
                srv.wait_until(lambda recs, k=held: sum(r.t_held is not None for r in recs) >= k or None,
                               timeout=20)
            wait_for_text(page, "a19", timeout=10, root=BODIES["a"])
            wait_for_text(page, "b19", timeout=10, root=BODIES["b"])
            assert page.locator(BODIES["c"]).inner_text().strip() == ""   # the body is still on the way
            stop = page.get_by_role("button", name="Stop all")
            t_click = time.perf_counter()
            stop.click()
            records = [srv.wait_for_end(r.id, timeout=10) for srv in (a, b) for r in srv.requests()
                       if r.body.get("max_tokens") != 1]
            assert len(records) == 3
            for rec in records:
                assert rec.t_disconnected is not None, rec.outcome
                assert t_click <= rec.t_disconnected < t_click + PROMPTLY_S
            print("stop all → closed after", [round(r.t_disconnected - t_click, 3) for r in records], "s")
            wait_for_text(page, "No comparison", timeout=15)
            assert page.get_by_text("stopped").count() >= 3
    finally:
        a.release(), b.release()


def test_stop_one_lane_closes_its_connection_only(stack):
    a, b, url, browser = stack
    a.reset(), b.reset()
    held_a, held_b = {**A, "hold_after": 20}, {**B, "hold_after": 20}
    try:
        with app_page(browser, url) as page:
            set_up_lanes(page, [("a", True), ("b", True)])
            a.queue(WARM_UP, held_a)
            b.queue(WARM_UP, held_b)
            page.get_by_role("button", name="Run comparison").click()
            wait_for_text(page, "a19", timeout=20, root=BODIES["a"])
            wait_for_text(page, "b19", timeout=20, root=BODIES["b"])
            t_click = time.perf_counter()
            page.get_by_role("button", name="Stop B", exact=True).click()
            (lane_b,) = [r for r in b.requests() if r.body.get("max_tokens") != 1]
            lane_b = b.wait_for_end(lane_b.id, timeout=10)
            assert lane_b.t_disconnected is not None and lane_b.t_disconnected < t_click + PROMPTLY_S
            a.release()   # lane A goes on and finishes
            wait_for_text(page, "Summary", timeout=20)
            (lane_a,) = [r for r in a.requests() if r.body.get("max_tokens") != 1]
            assert a.wait_for_end(lane_a.id).completed
            assert "lane B was stopped" in page.locator('[data-testid="stMain"]').inner_text()
    finally:
        a.release(), b.release()
