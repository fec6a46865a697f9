"""Shared mode shows each identity its own runs only; a single user sees every run (issue 10 item 2)."""
from __future__ import annotations

import pytest

from streamchat.store import Store
from tests.harness.scripted_server import Script, ScriptedServer


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(Script(tokens=3, rate=0, token_text="w{i} ")) as srv:
        yield srv


def test_runs_are_per_identity_when_shared(server, open_page, tmp_path):
    chat = open_page(server, shared=True)
    chat.chat_input[0].set_value("my SECRET prompt").run()
    assert not chat.exception
    store = Store(tmp_path / "data")
    run = store.runs()[0]
    assert run["owner"] == chat.session_state["owner"]          # filed under its identity
    store.close()
    mine = open_page(server, "runs", shared=True)                 # another browser: nothing
    assert not mine.exception
    assert any("No requests yet" in i.value for i in mine.info)
    single = open_page(server, "runs", shared=False)              # one person: everything
    assert not single.exception
    assert not any("No requests yet" in i.value for i in single.info)
    assert len(single.dataframe) >= 1
