"""Setup problems get a clear message, not a traceback (issue 10 item 10)."""
from __future__ import annotations

import subprocess

import pytest
from streamlit.testing.v1 import AppTest

from streamchat.store import Store
from tests.conftest import PAGE_SCRIPT
from tests.harness.scripted_server import Script, ScriptedServer


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(Script(tokens=3, rate=0, token_text="w{i} ")) as srv:
        yield srv


def test_a_dotenv_that_is_not_utf8_is_named_and_the_app_works(server, open_page, tmp_path):
    (tmp_path / ".env").write_bytes(b"OPENAI_MODEL=caf\xe9\n")   # latin-1, not UTF-8
    at = open_page(server)
    assert not at.exception
    assert any(".env" in w.value and "UTF-8" in w.value for w in at.warning)
    at.chat_input[0].set_value("still works").run()
    assert not at.exception
    assert any("w2" in m.markdown[0].value for m in at.chat_message if m.name == "assistant")


def test_a_read_only_data_folder_gets_the_data_folder_message(server, open_page, tmp_path,
                                                              monkeypatch):
    data = tmp_path / "data"
    Store(data).close()
    for side in data.glob("streamchat.db-*"):
        side.unlink()
    # Read-only even for root: the folder is made immutable (ext4/xfs `chattr +i`).
    if subprocess.run(["chattr", "+i", str(data)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("STREAMCHAT_DATA_DIR", str(data))
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        at = AppTest.from_file(str(PAGE_SCRIPT), default_timeout=30)
        at.run()
        assert not at.exception
        assert any("Cannot use the data folder" in e.value for e in at.error)
    finally:
        subprocess.run(["chattr", "-i", str(data)], check=True)


def test_an_over_long_message_is_kept_to_download_or_shorten(server, open_page):
    at = open_page(server)
    text = "long words " * 150_000          # 1.65 MB
    at.chat_input[0].set_value(text).run()
    assert not at.exception
    assert any("the limit is" in t.value for t in at.toast)
    assert any(c.value.startswith("long words long words") for c in at.code)
    assert not any(b.label == "Send again" for b in at.button)     # it would fail again
    assert len(server.requests()) == 0 or "long words" not in str(server.requests()[-1].body)


def test_a_database_damaged_while_the_app_runs_gets_a_message(server, open_page, tmp_path):
    at = open_page(server)
    at.chat_input[0].set_value("before the damage").run()
    db = tmp_path / "data" / "streamchat.db"
    with open(db, "r+b") as f:                      # another program scribbles over the pages
        f.seek(4096)
        f.write(b"\xde\xad" * 8192)
    for side in db.parent.glob("streamchat.db-*"):  # and over the WAL it would recover from
        side.write_bytes(b"\x00" * 1024)
    at.chat_input[0].set_value("after the damage").run()
    assert not at.exception
    assert any("database cannot be used" in e.value for e in at.error)
