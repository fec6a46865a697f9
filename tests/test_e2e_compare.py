"""Compare and Runs pages in Chromium against the scripted server (TTFT 0.5 s, 200 tok @ 100/s)."""
import csv
import json
import re
import subprocess
import sys

import pytest

from tests.harness.bounds import PROMPTLY_S
from tests.harness.browser import (
    app_env,
    app_page,
    chromium,
    clean_env,
    streamlit_app,
    wait_for_text,
    wait_idle,
)
from tests.harness.processes import ROOT
from tests.harness.scripted_server import scripted_server_process

pytestmark = pytest.mark.timeout(180)


def seconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+) (ms|s)", text).groups()
    return float(value) / (1000 if unit == "ms" else 1)


def panel_first_text(page, label: str) -> float:
    line = page.get_by_text(re.compile(r"^first text .* · total")).nth(0 if label == "stream" else 1)
    return seconds(re.match(r"first text (.+?) ·", line.inner_text()).group(1))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    data = tmp_path_factory.mktemp("compare-data")
    with scripted_server_process(ttft=0.5, tokens=200, rate=100) as srv, \
            streamlit_app("app.py", app_env(srv, data)) as url, chromium() as browser:
        yield srv, url, browser


def test_compare_page_shows_streaming_first_and_the_cli_agrees(stack):
    srv, url, browser = stack
    with app_page(browser, url) as page:
        page.get_by_role("link", name="Compare").click()
        page.get_by_role("button", name="Run comparison").click()
        wait_for_text(page, "sooner", timeout=30)
        stream_first, whole_first = panel_first_text(page, "stream"), panel_first_text(page, "whole")
        # Never sooner than the server's schedule (0.5 s / 2.5 s), late by at most PROMPTLY_S.
        assert 0.49 <= stream_first < 0.5 + PROMPTLY_S
        assert 2.49 <= whole_first < 2.5 + PROMPTLY_S
        assert stream_first < whole_first
        requests = [r for r in srv.requests() if r.body.get("max_tokens") != 1]  # no warm-up
        assert sorted(r.stream for r in requests) == [False, True]
        assert all(r.body["temperature"] == 0 for r in requests)

        # Runs lists both requests, and the CSV download holds them.
        page.get_by_role("link", name="Runs").click()
        wait_for_text(page, "2 of 2 requests", timeout=15)
        with page.expect_download() as download:
            page.get_by_role("button", name="⬇ CSV").click()
        rows = list(csv.DictReader(open(download.value.path(), encoding="utf-8")))
        assert sorted(r["mode"] for r in rows) == ["non-stream", "stream"]
        assert {r["source"] for r in rows} == {"compare"}
        assert all("sk-bench" not in v for r in rows for v in r.values())

    cli = subprocess.run(
        [sys.executable, "-m", "streamchat", "compare", "--prompt", "Count", "--repeat", "1",
         "--json", "--no-save", "--base-url", srv.base_url, "--model", "scripted"],
        cwd=ROOT, env=clean_env({"OPENAI_API_KEY": "sk-bench"}), capture_output=True, text=True,
        timeout=60)
    assert cli.returncode == 0, cli.stderr
    rows = {r["metric"]: r for r in json.loads(cli.stdout)["summary"]}
    # The CLI measures the same schedule the page did (never sooner, late by at most PROMPTLY_S).
    assert 0.49 <= rows["first_text_s"]["stream_median"] < 0.5 + PROMPTLY_S
    assert 2.49 <= rows["first_text_s"]["non_stream_median"] < 2.5 + PROMPTLY_S


def test_stop_on_the_compare_page_stops_both(stack):
    srv, url, browser = stack
    srv.reset()
    with app_page(browser, url) as page:
        page.get_by_role("link", name="Compare").click()
        page.get_by_text("Race (at once)").click()
        wait_idle(page)
        srv.queue({"tokens": 1}, {"ttft": 30, "prefill_silent": True},
                  {"ttft": 30, "prefill_silent": True})   # the warm-up, then both sides
        page.get_by_role("button", name="Run comparison").click()
        srv.wait_for_request(3, timeout=15)
        page.get_by_role("button", name="Stop", exact=True).click()
        records = [srv.wait_for_end(r.id, timeout=5) for r in srv.requests()
                   if r.body.get("max_tokens") != 1]
        assert len(records) == 2
        assert all(r.t_disconnected is not None for r in records)
        wait_for_text(page, "No comparison", timeout=10)
        wait_for_text(page, "stopped", timeout=10)


def test_clicking_a_chat_run_opens_its_conversation(stack):
    srv, url, browser = stack
    srv.reset()
    with app_page(browser, url) as page:
        srv.queue({"tokens": 4, "rate": 0, "token_text": "opened{i} "})
        page.locator('[data-testid="stChatInputTextArea"]').fill("find me again")
        page.keyboard.press("Enter")
        wait_for_text(page, "opened3", timeout=15)
        wait_idle(page)
        page.get_by_role("button", name="New chat").click()
        wait_idle(page)
        page.get_by_role("link", name="Runs").click()
        grid = page.locator('[data-testid="stDataFrame"]').first
        grid.wait_for(timeout=15_000)
        wait_idle(page)
        box = grid.bounding_box()
        # The grid is a canvas: the newest run is the first row; its selection box is at the left.
        page.mouse.click(box["x"] + 18, box["y"] + 35 + 17)
        wait_for_text(page, "opened3", timeout=15)
        assert page.get_by_text("find me again").count() >= 1
