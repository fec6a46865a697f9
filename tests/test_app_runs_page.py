"""Runs page (AppTest): charts per mode, local times in the table, exports without "nan"."""
import csv
import io
import json
import os
import time
from datetime import datetime, timedelta

import pyarrow as pa
import pytest

from streamchat import export
from streamchat.store import Store
from tests.harness.scripted_server import Script, ScriptedServer

STREAM_TTFTS = (0.28, 0.31, 0.30, 0.33, 0.29)


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(Script(tokens=6, rate=0)) as srv:
        yield srv


@pytest.fixture
def runs_page(server, open_page, tmp_path):
    """The Runs page over five 0.3 s streaming runs, one 16 s non-streaming run (no decode rate,
    no conversation: empty fields) and one failed run (no numbers at all)."""
    store = Store(tmp_path / "data")
    for i, ttft in enumerate(STREAM_TTFTS):
        store.record_run(created_at=f"2025-03-01T12:0{i}:00.000000+00:00", source="compare",
                         model="scripted", mode="stream", state="done", ttft_s=ttft, e2e_s=2.0,
                         decode_tps=95.0 + i, output_tokens=200)
    store.record_run(created_at="2025-03-01T12:06:00.000000+00:00", source="compare",
                     model="scripted", mode="non-stream", state="done", ttft_s=16.2, e2e_s=16.2,
                     output_tokens=200)
    store.record_run(created_at="2025-03-01T12:07:00.000000+00:00", source="chat",
                     model="scripted", mode="stream", state="failed", error="HTTP 500")
    store.close()
    return lambda: open_page(server, "runs")


def charts(at):
    """(spec, {dataset name: DataFrame}) of every Vega-Lite chart on the page."""
    found = []
    for el in at.main.children.values():
        if getattr(el, "type", None) == "vega_lite_chart":
            data = {d.name: pa.ipc.open_stream(d.data.data).read_all().to_pandas()
                    for d in el.proto.datasets}
            found.append((json.loads(el.proto.spec), data))
    return found


def plotted(spec, data, field):
    """Rows of the datasets that plot `field` (the layer that draws it)."""
    layers = spec.get("layer", [spec])
    names = [layer["data"]["name"] for layer in layers
             if field in json.dumps(layer.get("encoding", {}))]
    return [data[name] for name in names]


def test_no_chart_mixes_streaming_and_non_streaming(runs_page):
    at = runs_page()
    assert not at.exception
    found = charts(at)
    assert found, "no charts"
    ttft_charts = []
    for spec, data in found:
        modes = set()
        for field in ("ttft_s", "decode_tps"):
            for frame in plotted(spec, data, field):
                modes |= set(frame["mode"])
                if field == "ttft_s":
                    ttft_charts.append((modes, frame))
        assert len(modes) <= 1, f"one chart plots {modes}: {spec.get('title')}"
        assert spec.get("title"), "each chart says which mode it shows"
    # The 16 s non-stream wait has a chart of its own: the streaming TTFT chart's scale is
    # set by 0.3 s values only, so they are not squashed into a line at the bottom.
    stream = [frame for modes, frame in ttft_charts if modes == {"stream"}]
    assert stream and all(frame["ttft_s"].max() < 1 for frame in stream)
    assert any(modes == {"non-stream"} for modes, _ in ttft_charts)


def test_mode_colours_are_the_colour_blind_safe_pair(runs_page):
    specs = json.dumps([spec for spec, _ in charts(runs_page())])
    assert "#E69F00" in specs and "#0072B2" in specs


def test_table_shows_the_browsers_local_time(runs_page):
    at = runs_page()
    at.context = {"timezone": "Asia/Kolkata", "timezone_offset": -330}
    at.run()
    assert not at.exception
    times = at.dataframe[0].value["time"]
    newest = times.iloc[0]
    assert newest.utcoffset() == timedelta(hours=5, minutes=30)
    assert (newest.hour, newest.minute) == (17, 37)   # 12:07 UTC
    assert any("Asia/Kolkata" in c.value for c in at.caption)


def test_offset_only_browser_still_gets_local_time(runs_page):
    at = runs_page()
    at.context = {"timezone_offset": 180}   # UTC-3, no zone name
    at.run()
    newest = at.dataframe[0].value["time"].iloc[0]
    assert newest.utcoffset() == timedelta(hours=-3) and newest.hour == 9


@pytest.fixture
def server_zone():
    """The server's local zone as Asia/Kathmandu (+05:45, no daylight saving)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kathmandu"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_without_a_browser_zone_the_servers_local_zone_is_used(runs_page, server_zone):
    at = runs_page()   # AppTest sends no browser context
    newest = at.dataframe[0].value["time"].iloc[0]
    assert newest.utcoffset() == timedelta(hours=5, minutes=45)


def test_exports_have_empty_fields_and_local_iso_times(runs_page, monkeypatch):
    made = {}
    for name in ("runs_csv", "runs_json"):
        real = getattr(export, name)
        monkeypatch.setattr(export, name,
                            lambda rows, real=real, name=name: made.setdefault(name, real(rows)))
    at = runs_page()
    made.clear()
    at.context = {"timezone": "Asia/Kolkata", "timezone_offset": -330}
    at.run()
    text = made["runs_csv"]
    assert "nan" not in text.lower() and "None" not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 7
    failed = next(r for r in rows if r["state"] == "failed")
    assert failed["ttft_s"] == "" and failed["decode_tps"] == "" and failed["output_tokens"] == ""
    whole = next(r for r in rows if r["mode"] == "non-stream")
    assert whole["decode_tps"] == "" and whole["output_tokens"] == "200"
    assert failed["created_at"] == "2025-03-01T17:37:00+05:30"
    assert datetime.fromisoformat(whole["created_at"]).utcoffset() == timedelta(hours=5, minutes=30)
    data = json.loads(made["runs_json"], parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert data[0]["created_at"] == "2025-03-01T17:37:00+05:30" and data[0]["ttft_s"] is None


def test_the_browser_measured_visible_ttft_is_a_column_beside_ttft(runs_page, tmp_path):
    store = Store(tmp_path / "data")
    run_id = store.runs(limit=1, source="compare")[0]["id"]
    assert store.record_run_visible_ttft(run_id, 0.412)
    store.close()
    table = runs_page().dataframe[0].value
    columns = list(table.columns)
    assert columns.index("seen in browser (s)") == columns.index("TTFT (s)") + 1
    assert sorted(table["seen in browser (s)"].dropna()) == [0.412]
