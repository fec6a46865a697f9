from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from streamchat.runner import Runner


@pytest.fixture(scope="module")
def runner():
    """A runner of the module's own (its own loop thread), shut down after the module."""
    r = Runner()
    yield r
    r.shutdown()


PAGE_SCRIPT = Path(__file__).parent / "apps" / "page.py"


@pytest.fixture
def open_page(tmp_path, monkeypatch):
    """open_page(server, "chat"|"compare"|"runs", key=...) -> an AppTest that has run once, for an
    app pointed at `server` with a fresh data dir (tmp_path/"data") and no stray .env."""
    monkeypatch.chdir(tmp_path)

    def open_(server, page: str = "chat", key: str = "sk-apptest-secret"):
        for name, value in {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": key,
                            "OPENAI_MODEL": "scripted", "STREAMCHAT_DATA_DIR": str(tmp_path / "data"),
                            "STREAMCHAT_TEST_PAGE": page}.items():
            monkeypatch.setenv(name, value)
        at = AppTest.from_file(str(PAGE_SCRIPT), default_timeout=60)
        at.run()
        assert not at.exception
        return at

    return open_
