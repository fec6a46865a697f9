"""Shared fixtures, and the test tiers.

Tiers (markers, registered in pyproject.toml), set here from what a test uses and nowhere else:
  e2e     Chromium against `streamlit run`: the test or a fixture it uses (`stack`, `page`, or one
          built on them) calls the browser harness's chromium() or streamlit_app().
          Skipped here, in one place, when /usr/bin/chromium is missing.
  model   the real embedded llama.cpp server with the bundled GGUF: the `local_model` fixture
          (and `local_server` / `local_endpoint`, built on it). A test can be e2e and model.
  app     Streamlit's AppTest (the pages in process, no browser): `open_page` or AppTest itself.
  engine  the engine against a scripted server: a Runner (the `runner` fixture) or the harness's
          scripted server (in process or child process), in the test or a fixture it uses; and
          the store on PostgreSQL (a test's `backend` is "postgresql", or it uses the cluster:
          each xdist worker starts its own, ~1 s, so these run in the parallel first pass).
  unit    everything else.
`make test-fast` runs unit and engine (`-m "unit or engine"`); `make test` runs all.

Store backends: a test that takes `backend_store` (or `backend` / `open_backend_store`) runs once
on SQLite and once on PostgreSQL (a fresh schema of its own in one cluster per session, started
the first time a test asks; skipped where PostgreSQL is not installed). `@pytest.mark.sqlite_only`
keeps a test on SQLite (files, WAL, locking, corruption), `@pytest.mark.postgresql_only` on
PostgreSQL.
"""
from __future__ import annotations

import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from streamlit.testing.v1 import AppTest

from streamchat.runner import Runner
from streamchat.store import Store, store_at
from tests.harness.browser import CHROMIUM_PATH, app_env, app_page, chromium, have_chromium, streamlit_app
from tests.harness.postgres import MISSING, find_binaries, postgres_server
from tests.harness.scripted_server import ScriptedServer, scripted_server_process

TIERS = ("unit", "engine", "model", "app", "e2e")
# What puts a test in a tier: these harness objects, referred to by the test function or by a
# fixture it uses (directly or through other fixtures), or these fixtures of this file.
E2E_USES = {"chromium": chromium, "streamlit_app": streamlit_app, "sync_playwright": sync_playwright}
MODEL_FIXTURES = {"local_model"}
APP_USES = {"AppTest": AppTest}
ENGINE_USES = {"Runner": Runner, "ScriptedServer": ScriptedServer,
               "scripted_server_process": scripted_server_process, "postgres_server": postgres_server}
BACKENDS = ("sqlite", "postgresql")


def _names(code: types.CodeType) -> set[str]:
    """Global and local names a function's code uses, nested code (comprehensions, lambdas) included."""
    out = set(code.co_names) | set(code.co_varnames)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            out |= _names(const)
    return out


def _uses(func: object, objects: dict[str, object]) -> bool:
    """`func` refers to one of `objects` (a global bound to it, or a local import of that name)."""
    code = getattr(func, "__code__", None)
    if code is None:
        return False
    names, module_globals = _names(code), getattr(func, "__globals__", {})
    return any(n in names and (module_globals.get(n) is obj or n in code.co_varnames)
               for n, obj in objects.items())


def _on_postgres(item: pytest.Function) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and callspec.params.get("backend") == "postgresql"


def tiers_of(item: pytest.Function) -> list[str]:
    """The tiers of a test, from what it uses (see the module docstring)."""
    funcs = [item.function]
    for defs in item._fixtureinfo.name2fixturedefs.values():
        if defs:
            funcs.append(defs[-1].func)     # the definition this test gets
    fixtures = set(item.fixturenames)
    out = []
    module_globals = vars(item.module) if item.module is not None else {}
    if any(_uses(f, E2E_USES) for f in funcs):
        out.append("e2e")
    if fixtures & MODEL_FIXTURES:
        out.append("model")
    if out:
        return out
    if any(_uses(f, APP_USES) for f in funcs) or module_globals.get("AppTest") is AppTest:
        return ["app"]   # (also a module whose tests reach AppTest through a helper)
    if any(_uses(f, ENGINE_USES) for f in funcs) or _on_postgres(item):
        return ["engine"]
    return ["unit"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_chromium = None if have_chromium() else pytest.mark.skip(
        reason=f"needs {CHROMIUM_PATH} (make chromium; Playwright cannot download a browser here)")
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        for tier in tiers_of(item):
            item.add_marker(tier)
            if tier == "e2e" and no_chromium is not None:
                item.add_marker(no_chromium)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that uses `backend` (through `backend_store` etc.) runs on each store backend."""
    if "backend" in metafunc.fixturenames:
        chosen = [b for b in BACKENDS if metafunc.definition.get_closest_marker(f"{b}_only")]
        metafunc.parametrize("backend", chosen or list(BACKENDS), indirect=True)


# ---- the store on SQLite and on PostgreSQL --------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[str]:
    """One throwaway PostgreSQL cluster per test session (per xdist worker), started when a test
    first asks; its URL. Skips where PostgreSQL is not installed."""
    if find_binaries() is None:
        pytest.skip(MISSING)
    with postgres_server() as url:
        yield url


def _admin(cluster_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(cluster_url, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def postgres_url(postgres_cluster) -> Iterator[str]:
    """A URL whose connections see a fresh, empty schema of the test's own (dropped after it)."""
    schema = f"test_{uuid.uuid4().hex[:16]}"
    _admin(postgres_cluster, f"CREATE SCHEMA {schema}")
    yield f"{postgres_cluster}?options=-csearch_path%3D{schema}"
    _admin(postgres_cluster, f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def backend(request) -> str:
    """"sqlite" or "postgresql" (see pytest_generate_tests)."""
    return request.param


@pytest.fixture
def open_backend_store(backend, tmp_path, request) -> Iterator[Callable[[], Store]]:
    """open() -> a Store on the test's backend: each call opens the same database again (as
    another process or a restart would); all are closed after the test."""
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    opened: list[Store] = []

    def open_() -> Store:
        opened.append(store_at(tmp_path / "data", url))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def backend_store(open_backend_store) -> Store:
    """A fresh store, on SQLite and on PostgreSQL (the test runs once on each)."""
    return open_backend_store()


# ---- engine ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runner():
    """A runner of the module's own (its own loop thread), shut down after the module."""
    r = Runner()
    yield r
    r.shutdown()


# ---- the real embedded model ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def local_model() -> Path:
    """The bundled GGUF (SmolLM2-135M); a test that asks for it runs the real llama.cpp server."""
    from streamchat.local_server import LocalModelError, default_model_path

    try:
        path = default_model_path()
    except LocalModelError as err:
        pytest.skip(f"no embedded model: {err}")
    if not path.is_file():
        pytest.skip(f"no embedded model at {path}")
    return path


@pytest.fixture(scope="module")
def local_server(local_model):
    """A started LocalServer of the module's own, stopped after the module."""
    from streamchat.local_server import LocalServer

    s = LocalServer(local_model)
    s.start(timeout=60)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def local_endpoint(local_model):
    """The app's endpoint for the embedded model (the process-wide shared server), stopped after
    the module."""
    from streamchat.local_server import stop_shared_server
    from streamchat.providers import local_endpoint as endpoint

    yield endpoint()
    stop_shared_server()


# ---- AppTest --------------------------------------------------------------------------------------
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
    with scripted_server_process(tokens=20, rate=0) as srv, \
            streamlit_app("app.py", app_env(srv, data_dir)) as url, chromium() as browser:
        yield srv, url, browser


@pytest.fixture
def page(stack):
    """A fresh browser context on the app, with the server's records and queue cleared."""
    srv, url, browser = stack
    srv.reset()
    with app_page(browser, url) as page:
        yield page
