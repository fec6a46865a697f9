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
    """open_page(server, "chat"|"compare"|"runs", key=..., shared=...) -> an AppTest that has run
    once, for an app pointed at `server` with a fresh data dir (tmp_path/"data") and no stray
    .env; single-user mode unless `shared`."""
    monkeypatch.chdir(tmp_path)

    def open_(server, page: str = "chat", key: str = "sk-apptest-secret", shared: bool = False):
        for name, value in {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": key,
                            "OPENAI_MODEL": "scripted", "STREAMCHAT_DATA_DIR": str(tmp_path / "data"),
                            "STREAMCHAT_TEST_PAGE": page,
                            "STREAMCHAT_SHARED": "1" if shared else "0"}.items():
            monkeypatch.setenv(name, value)
        at = AppTest.from_file(str(PAGE_SCRIPT), default_timeout=60)
        at.run()
        assert not at.exception
        return at

    return open_


# ---- browser tests: one scripted server + `streamlit run app.py` + Chromium per module ----------
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("e2e-data")


@pytest.fixture(scope="module")
def stack(data_dir):
    """(scripted server, app url, browser); tests queue the scripts they need."""
    from tests.browser import app_env, chromium, scripted_server_process, streamlit_app
    with scripted_server_process(tokens=20, rate=0) as srv, \
            streamlit_app("app.py", app_env(srv, data_dir)) as url, chromium() as browser:
        yield srv, url, browser


@pytest.fixture
def page(stack):
    """A fresh browser context on the app, with the server's records and queue cleared."""
    from tests.browser import app_page
    srv, url, browser = stack
    srv.reset()
    with app_page(browser, url) as page:
        yield page
