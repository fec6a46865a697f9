"""Runs page logic with AppTest."""
import csv
import io

import pytest
from streamlit.testing.v1 import AppTest

from streamchat import export
from streamchat.store import Store
from tests.scripted_server import Script, ScriptedServer
from tests.test_app import PAGE_SCRIPT


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(Script(tokens=6, rate=0)) as srv:
        yield srv


@pytest.fixture
def env(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-runs-secret")
    monkeypatch.setenv("OPENAI_MODEL", "scripted")
    monkeypatch.setenv("STREAMCHAT_DATA_DIR", str(tmp_path / "data"))
    return monkeypatch


def page(env, name):
    env.setenv("STREAMCHAT_TEST_PAGE", name)
    at = AppTest.from_file(str(PAGE_SCRIPT), default_timeout=30)
    at.run()
    assert not at.exception
    return at


def test_no_runs_yet_says_so(env):
    at = page(env, "runs")
    assert any("No requests yet" in i.value for i in at.info)


def test_runs_are_listed_filtered_and_exported_without_the_key(env, server, tmp_path):
    chat = page(env, "chat")
    chat.chat_input[0].set_value("one").run()
    server.queue(Script(status=500))
    chat.chat_input[0].set_value("two").run()
    at = page(env, "runs")
    table = at.dataframe[0].value
    assert sorted(table["state"]) == ["done", "failed"]
    assert set(table["model"]) == {"scripted"}
    at.multiselect(key="runs_state").set_value(["failed"]).run()
    table = at.dataframe[0].value
    assert list(table["state"]) == ["failed"] and "500" in table["error"].iloc[0]
    rows = list(csv.DictReader(io.StringIO(export.runs_csv(Store(tmp_path / "data").runs()))))
    assert len(rows) == 2
    assert all("sk-runs-secret" not in value for row in rows for value in row.values())
