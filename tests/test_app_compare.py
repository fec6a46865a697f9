"""Compare page logic with AppTest against the scripted server."""
import pytest

from streamchat.store import Store
from tests.harness.scripted_server import Script, ScriptedServer


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(Script(ttft=0.05, tokens=30, rate=600)) as srv:
        yield srv


@pytest.fixture
def page(server, open_page):
    server.reset()
    return open_page(server, "compare")


def test_before_running_it_says_what_to_do(page):
    assert any("Run comparison" in i.value for i in page.info)


def test_a_comparison_runs_both_modes_and_records_them(page, server, tmp_path):
    page.number_input(key="cmp_repeat").set_value(2).run()
    page.button(key="cmp_run").click().run()
    assert not page.exception
    assert any("sooner" in s.value for s in page.success)
    counted = [r for r in server.requests() if r.body.get("max_tokens") != 1]   # not the warm-up
    assert sorted(r.stream for r in counted) == [False, False, True, True]
    assert all(r.body["temperature"] == 0 and r.body["seed"] == 1234 for r in counted)
    summary = page.table[0].value   # one row per lane, a column per figure
    assert list(summary["Lane"]) == ["Streaming", "Non-streaming"]
    assert "Time to first text" in summary.columns
    assert all("p95" in cell for cell in summary["Time to first text"])   # repeat 2: p95 shown
    runs = Store(tmp_path / "data").runs()
    assert sorted(r["mode"] for r in runs) == ["non-stream", "non-stream", "stream", "stream"]
    assert {r["source"] for r in runs} == {"compare"}


def test_empty_prompt_gets_a_message(page, server):
    page.text_area(key="cmp_prompt").set_value("   ").run()
    page.button(key="cmp_run").click().run()
    assert any("Type a prompt first" in e.value for e in page.error)
    assert not server.requests()


def test_a_failing_side_is_named_in_the_verdict(page, server):
    server.queue(Script(tokens=1), Script(status=500), Script(status=500))   # warm-up, then both
    page.button(key="cmp_run").click().run()
    assert not page.exception
    assert any("No comparison" in w.value and "500" in w.value for w in page.warning)
