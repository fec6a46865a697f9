"""Compare page (AppTest): the preset prompt, a readable timeline, short summary labels with their
explanation beside the table, and no blank panel for a side that did not run."""
import json
import threading
import time

import pytest

from streamchat import compare, presets
from tests.harness.scripted_server import Script, ScriptedServer


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(Script(ttft=0.05, tokens=30, rate=600)) as srv:
        yield srv


@pytest.fixture
def page(server, open_page):
    server.reset()
    return open_page(server, "compare")


def vega_specs(at):
    """The charts on the page, in containers too."""
    def walk(node):
        for el in getattr(node, "children", {}).values():
            if getattr(el, "type", None) == "vega_lite_chart":
                yield json.loads(el.proto.spec)
            yield from walk(el)
    return list(walk(at.main))


def test_the_default_prompt_is_the_presets_compare_prompt(server, open_page, monkeypatch):
    monkeypatch.setattr(presets, "COMPARE_PROMPT", "Name three colours of the rainbow.")
    at = open_page(server, "compare")
    assert at.text_area(key="cmp_prompt").value == "Name three colours of the rainbow."


def test_timeline_is_a_thick_colour_blind_safe_pair_with_a_legend(page):
    page.button(key="cmp_run").click().run()
    assert not page.exception
    (spec,) = vega_specs(page)
    layers = spec["layer"]
    lines = next(layer for layer in layers if layer["mark"]["type"] == "line")
    assert lines["mark"]["strokeWidth"] >= 3
    color = lines["encoding"]["color"]
    assert color["scale"]["domain"] == ["Streaming", "Non-streaming"]
    assert [c.upper() for c in color["scale"]["range"]] == ["#E69F00", "#0072B2"]
    assert color.get("legend") is not None   # a legend, drawn (not legend=None)
    assert color["legend"]["labelFontSize"] >= 14
    # No layer switches the shared legend off (Vega-Lite would then draw none at all).
    assert all(layer["encoding"].get("color", {}).get("legend", {}) is not None for layer in layers)
    rules = [layer for layer in layers if layer["mark"]["type"] == "rule"]
    assert all(layer["mark"].get("strokeWidth", 1) >= 2 for layer in rules)


def test_summary_labels_are_short_and_explained_beside_the_table(page):
    page.button(key="cmp_run").click().run()
    assert not page.exception
    table = page.table[0].value   # one row per lane, a column per figure
    labels = [column for column in table.columns if column != "Lane"]
    assert "Tok/s" in labels and "Time to first text" in labels
    assert all(len(label) <= 18 for label in labels), labels
    assert all(len(lane) <= 22 for lane in table["Lane"]), list(table["Lane"])
    assert not any("p95" in cell for cell in table["Time to first text"])   # repeat 1: medians only
    captions = " ".join(c.value for c in page.caption)
    assert "Tok/s" in captions and "decode rate" in captions and "effective rate" in captions
    assert "Output tokens**: Output tokens" not in captions


def test_verdict_never_reads_minus_zero(page):
    page.button(key="cmp_run").click().run()
    verdicts = [a.value for a in (*page.success, *page.warning)]
    assert verdicts and not any("-0 %" in v or "+0 %" in v for v in verdicts)


def test_a_side_that_never_ran_says_so_instead_of_staying_blank(page, server, monkeypatch):
    """Stopped while streaming (the first side) runs: non-streaming never starts, and its panel
    says why rather than staying empty."""
    started = []
    real_start = compare.Comparison.start
    monkeypatch.setattr(compare.Comparison, "start",
                        lambda self: started.append(self) or real_start(self))

    def stop_once_streaming():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pair = started[0].current if started else None
            if pair and pair.stream and pair.stream.content_chunk_count >= 3:
                started[0].stop()
                return
            time.sleep(0.01)

    stopper = threading.Thread(target=stop_once_streaming, daemon=True)
    stopper.start()
    server.queue(Script(tokens=1), Script(ttft=0.05, tokens=2000, rate=100))
    page.button(key="cmp_run").click().run()
    stopper.join(5)
    assert not page.exception
    assert started and started[0].stopped and started[0].pairs[0].whole is None
    notes = [i.value for i in page.info]
    assert any("Not run" in n and "stopped" in n for n in notes), notes
