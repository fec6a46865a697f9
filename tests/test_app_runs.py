"""Runs page logic with AppTest."""
import csv
import io

import pytest

from streamchat import export
from streamchat.store import Store
from tests.harness.scripted_server import Script, ScriptedServer


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(Script(tokens=6, rate=0)) as srv:
        yield srv


@pytest.fixture
def page(server, open_page):
    return lambda name: open_page(server, name, key="sk-runs-secret")


def test_no_runs_yet_says_so(page):
    at = page("runs")
    assert any("No requests yet" in i.value for i in at.info)


def test_runs_are_listed_filtered_and_exported_without_the_key(page, server, tmp_path):
    chat = page("chat")
    chat.chat_input[0].set_value("one").run()
    server.queue(Script(status=500))
    chat.chat_input[0].set_value("two").run()
    at = page("runs")
    table = at.dataframe[0].value
    assert sorted(table["state"]) == ["done", "failed"]
    assert set(table["model"]) == {"scripted"}
    at.multiselect(key="runs_state").set_value(["failed"]).run()
    table = at.dataframe[0].value
    assert list(table["state"]) == ["failed"] and "500" in table["error"].iloc[0]
    rows = list(csv.DictReader(io.StringIO(export.runs_csv(Store(tmp_path / "data").runs()))))
    assert len(rows) == 2
    assert all("sk-runs-secret" not in value for row in rows for value in row.values())
