"""Security in a real Chromium against `streamlit run` and the scripted model server.

- HTML/JS in model output, in a conversation title and in a server's error message is shown as
  text: no script runs (`window.__xss` stays unset) and no active element is ever created.
- The API key never reaches the browser (page HTML, websocket), the app's log, the SQLite files
  or any download, also after a 401 whose error body echoes the key.
- `.env` is git-ignored; the embedded model server listens on 127.0.0.1 only and wants its key.
- Two browser sessions chatting at once never see each other's prompts, replies or metrics.
"""
from __future__ import annotations

import contextlib
import csv
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.harness.browser import (
    CHAT_INPUT,
    MAIN,
    TextWatch,
    WebSocketMeter,
    app_env,
    app_page,
    chromium,
    send_prompt,
    streamlit_app,
    wait_for_text,
    wait_idle,
)
from tests.harness.processes import ROOT
from tests.harness.scripted_server import scripted_server_process

CANARY = "sk-secret-canary-123456"
CANARY_PARTS = (CANARY, "canary-123456")   # also a half-redacted key would be caught
SIDEBAR = '[data-testid="stSidebar"]'

CONVERSATION_BUTTONS = (SIDEBAR + ' [class*="st-key-conv_"]:not(.st-key-conv_new):not(.st-key-conv_delete)'
                        " button")

# Flags any active element the moment it is added (or an attribute changes), anywhere in the page:
# a script/iframe/object/embed inside the app, an on* handler attribute, a javascript: URL, srcdoc.
XSS_WATCH_JS = """
(() => {
  if (window.__xssHits) return;
  window.__xssHits = [];
  const URL_ATTRS = ['href', 'src', 'xlink:href', 'action', 'formaction', 'data', 'poster'];
  const check = (el) => {
    if (!(el instanceof Element)) return;
    const tag = el.tagName.toLowerCase();
    const inApp = el.closest('#root');
    if (inApp && ['script', 'iframe', 'frame', 'object', 'embed'].includes(tag))
      window.__xssHits.push(tag);
    if (tag === 'img' && el.getAttribute('src') === 'x') window.__xssHits.push('img[src=x]');
    for (const a of Array.from(el.attributes)) {
      const name = a.name.toLowerCase();
      const value = (a.value || '').replace(/[\\s\\u0000-\\u001f]/g, '').toLowerCase();
      if (name.startsWith('on')) window.__xssHits.push(`${tag}[${name}]`);
      if (name === 'srcdoc') window.__xssHits.push(`${tag}[srcdoc]`);
      if (URL_ATTRS.includes(name) && (value.startsWith('javascript:') || value.startsWith('vbscript:')))
        window.__xssHits.push(`${tag}[${name}=${value.slice(0, 40)}]`);
    }
  };
  const scan = (node) => {
    if (!(node instanceof Element)) return;
    check(node);
    node.querySelectorAll('*').forEach(check);
  };
  const start = () => {
    new MutationObserver((mutations) => {
      for (const m of mutations) {
        if (m.type === 'attributes') check(m.target);
        else m.addedNodes.forEach(scan);
      }
    }).observe(document, {childList: true, subtree: true, attributes: true});
    scan(document.documentElement);   // null while an init script runs: then nothing to scan
  };
  start();
})();
"""

REPLY_PAYLOADS = [
    '<img src=x onerror="window.__xss=1">',
    "<script>window.__xss=2</script>",
    '<svg onload="window.__xss=3"><circle r="5"/></svg>',
    "[click me](javascript:window.__xss=4)",
    '<iframe srcdoc="<script>parent.__xss=5</script>"></iframe>',
    "![picture](javascript:window.__xss=6)",
    '<a href="javascript:window.__xss=7">html link</a>',
    '<details open ontoggle="window.__xss=8">details</details>',
    "[reference link][r]\n\n[r]: javascript:window.__xss=9",
    "<javascript:window.__xss=10>",
    "[data link](data:text/html;base64,PHNjcmlwdD5wYXJlbnQuX194c3M9MTE8L3NjcmlwdD4=)",
    '<math><mtext><table><mglyph><style><img src=x onerror="window.__xss=12">',
]
TITLE_PAYLOADS = [   # <= 40 characters: the sidebar shows the first 40 of a title
    "<img src=x onerror=window.__xss=21>",
    "[t](javascript:window.__xss=22)",
    "![i](javascript:window.__xss=23)",
    "**b**<script>window.__xss=24</script>",
    "<svg onload=window.__xss=25>",
]


# ---------------------------------------------------------------- fixtures and helpers

@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("security-data")


@pytest.fixture(scope="module")
def app_log(tmp_path_factory):
    return tmp_path_factory.mktemp("security-log") / "streamlit.log"


@pytest.fixture(scope="module")
def stack(data_dir, app_log):
    with scripted_server_process(tokens=5, rate=0) as srv, \
            streamlit_app("app.py", {**app_env(srv, data_dir), "OPENAI_API_KEY": CANARY,
                                     "STREAMCHAT_SHARED": "1"},   # strict per-browser isolation
                          log_path=app_log) as url, chromium() as browser:
        yield srv, url, browser


@contextlib.contextmanager
def watched_page(browser, url: str, *, meter: bool = False, timeout: float = 30.0):
    """A fresh context with the XSS watcher installed before any page script runs (so also on
    reloads), and optionally a websocket meter that sees every frame from the first one."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.add_init_script(XSS_WATCH_JS)
    try:
        page = context.new_page()
        ws = WebSocketMeter(page, keep_payloads=True) if meter else None
        page.goto(url, timeout=timeout * 1000)
        page.locator(CHAT_INPUT).wait_for(state="visible", timeout=timeout * 1000)
        wait_idle(page, timeout)
        yield page, ws
    finally:
        context.close()


def xss_state(page) -> tuple:
    return page.evaluate("[window.__xss, window.__xssHits]")


def assert_no_xss(page):
    flag, hits = xss_state(page)
    assert flag is None, f"injected script ran: window.__xss = {flag!r}"
    assert hits == [], f"active elements were created: {hits}"


def click_all_links(page, root: str) -> None:
    """Click every link the app rendered under `root`; a popup a link opens is closed again."""
    for link in page.locator(f"{root} a").all():
        with contextlib.suppress(Exception):
            link.click(timeout=2000, no_wait_after=True, modifiers=[])
    page.wait_for_timeout(300)
    for other in page.context.pages:
        if other is not page:
            other.close()


def metric_value(page, label: str) -> str:
    metric = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return metric.locator('[data-testid="stMetricValue"]').inner_text()


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).items()}


def identity(page) -> str:
    """The browser's identity: the cookie the app set on its first visit (shared mode)."""
    page.wait_for_function("() => document.cookie.includes('streamchat_id=')", timeout=10_000)
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    return cookies["streamchat_id"]


def download(page, button) -> bytes:
    with page.expect_download(timeout=15_000) as info:
        button.click()
    return Path(info.value.path()).read_bytes()


def assert_no_canary(where: str, data: bytes | str) -> None:
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    for part in CANARY_PARTS:
        assert part.encode() not in raw, f"the API key ({part}) leaked into {where}"


# ---------------------------------------------------------------- XSS

@pytest.mark.timeout(240)
def test_html_and_js_in_model_output_never_run(stack):
    srv, url, browser = stack
    srv.reset()
    text = "\n\n".join(REPLY_PAYLOADS) + "\n\nEND-OF-XSS"
    srv.queue({"text": text, "rate": 200})
    with watched_page(browser, url) as (page, _):
        send_prompt(page, "show me some html")
        wait_for_text(page, "END-OF-XSS", timeout=30)
        wait_idle(page)
        assert_no_xss(page)
        main = page.locator(MAIN)
        # Shown as text, not swallowed: the tags are visible to the reader.
        wait_for_text(page, "window.__xss=2", root=MAIN)
        assert main.locator("img[src='x'], script, iframe, svg[onload], details[ontoggle]").count() == 0
        click_all_links(page, '[data-testid="stChatMessage"]')
        assert_no_xss(page)
        # History renders the same text through another path (saved message, not the live view).
        page.reload()
        page.locator(CHAT_INPUT).wait_for(state="visible", timeout=30_000)
        wait_for_text(page, "END-OF-XSS", timeout=30)
        wait_idle(page)
        click_all_links(page, '[data-testid="stChatMessage"]')
        assert_no_xss(page)


@pytest.mark.timeout(300)
def test_html_and_js_in_conversation_titles_never_run(stack):
    srv, url, browser = stack
    srv.reset()
    with watched_page(browser, url) as (page, _):
        for i, payload in enumerate(TITLE_PAYLOADS):
            if i:
                page.get_by_role("button", name="New chat").click()
                wait_idle(page)
            srv.queue({"tokens": 2, "rate": 0, "token_text": f"title{i}x{{i}} "})
            send_prompt(page, payload)
            wait_for_text(page, f"title{i}x1", timeout=30)
            wait_idle(page)
            assert_no_xss(page)
        buttons = page.locator(CONVERSATION_BUTTONS)
        n = len(TITLE_PAYLOADS)
        assert buttons.count() == n, [b.inner_text() for b in buttons.all()]
        labels = page.locator(SIDEBAR).inner_text()
        for payload in ("<img src=x", "<script>", "<svg onload"):   # tags are shown as text
            assert payload in labels, labels
        # Any link a label rendered, then every conversation through its sidebar button.
        click_all_links(page, CONVERSATION_BUTTONS)
        assert_no_xss(page)
        for k in range(n):
            buttons.nth(k).click()
            wait_idle(page)
            assert_no_xss(page)
        page.reload()
        page.locator(CHAT_INPUT).wait_for(state="visible", timeout=30_000)
        wait_idle(page)
        assert_no_xss(page)


@pytest.mark.timeout(240)
def test_html_and_js_in_a_server_error_message_never_run(stack):
    srv, url, browser = stack
    srv.reset()
    srv.queue({"status": 400, "error_body": {"error": {
        "message": '<img src=x onerror="window.__xss=31"> [x](javascript:window.__xss=32) '
                   "<script>window.__xss=33</script> ERR-END"}}})
    with watched_page(browser, url) as (page, _):
        send_prompt(page, "make the server say html")
        wait_for_text(page, "ERR-END", timeout=30)
        wait_idle(page)
        assert_no_xss(page)
        click_all_links(page, MAIN)
        assert_no_xss(page)


# ---------------------------------------------------------------- the API key

@pytest.mark.timeout(300)
def test_api_key_never_leaves_the_server_process(stack, data_dir, app_log):
    srv, url, browser = stack
    srv.reset()
    srv.queue({"tokens": 6, "rate": 0, "token_text": "fine{i} "},
              {"status": 401, "error_body": {"error": {
                  "message": f"Incorrect API key provided: {CANARY}. You can find your key at "
                             "https://example.invalid/keys.", "type": "invalid_request_error",
                  "code": "invalid_api_key"}}})
    exports: dict[str, bytes] = {}
    with watched_page(browser, url, meter=True) as (page, meter):
        send_prompt(page, "a normal question")
        wait_for_text(page, "fine5", timeout=30)
        wait_idle(page)
        send_prompt(page, "a question with a bad key")
        wait_for_text(page, "rejected the API key", timeout=30)
        wait_for_text(page, "Incorrect API key provided: ***")   # the echo is shown, redacted
        wait_idle(page)
        # The key was really in use: the server got it, and echoed it in the 401 body.
        recs = srv.requests()
        assert len(recs) == 2 and recs[1].outcome == "error"
        assert_no_canary("the chat page HTML", page.content())

        # Downloads hold what the page showed (a reload re-renders the sidebar with the whole
        # conversation, error included, whatever the timing of the last run).
        page.reload()
        page.locator(CHAT_INPUT).wait_for(state="visible", timeout=30_000)
        wait_for_text(page, "rejected the API key", timeout=30)
        wait_idle(page)
        sidebar = page.locator(SIDEBAR)
        exports["conversation.md"] = download(page, sidebar.get_by_role("button", name="⬇ Markdown"))
        exports["conversation.json"] = download(page, sidebar.get_by_role("button", name="⬇ JSON"))
        assert b"rejected the API key" in exports["conversation.md"]   # the error is exported
        assert b"fine5" in exports["conversation.json"]

        conversation_id = query(page.url)["c"]
        page.get_by_role("link", name="Runs").click()
        wait_for_text(page, "requests · newest first", timeout=30)
        wait_idle(page)
        main = page.locator(MAIN)
        exports["runs.csv"] = download(page, main.get_by_role("button", name="⬇ CSV"))
        exports["runs.json"] = download(page, main.get_by_role("button", name="⬇ JSON"))
        runs = [r for r in json.loads(exports["runs.json"]) if r["conversation_id"] == conversation_id]
        assert sorted(r["state"] for r in runs) == ["done", "failed"]
        rows = list(csv.DictReader(exports["runs.csv"].decode().splitlines()))
        assert sum(r["conversation_id"] == conversation_id for r in rows) == 2
        assert_no_canary("the Runs page HTML", page.content())

        meter.sync()
        assert meter.payloads, "the websocket meter saw no frames"
        for i, payload in enumerate(meter.payloads):
            assert_no_canary(f"websocket frame {i}", payload)

    for name, data in exports.items():
        assert_no_canary(f"the {name} download", data)
    files = [p for p in Path(data_dir).rglob("*") if p.is_file()]
    assert any(p.name.endswith(".db") for p in files), files
    for path in files:   # the database, its -wal and -shm, whatever else is there
        assert_no_canary(f"data file {path.name}", path.read_bytes())
    log = Path(app_log).read_bytes()
    assert log, "the app log is empty: is log_path wired up?"
    assert_no_canary("the app log", log)


@pytest.mark.timeout(240)
# The identity cookie alone gates listing a browser's chats: it must not be in a file people share.
def test_conversation_json_download_does_not_carry_the_session_token(stack):
    srv, url, browser = stack
    srv.reset()
    srv.queue({"tokens": 3, "rate": 0, "token_text": "own{i} "})
    with watched_page(browser, url) as (page, _):
        send_prompt(page, "whose chat is this")
        wait_for_text(page, "own2", timeout=30)
        wait_idle(page)
        owner = identity(page)
        data = download(page, page.locator(SIDEBAR).get_by_role("button", name="⬇ JSON"))
        assert b"own2" in data or b"whose chat" in data
        assert owner.encode() not in data, "the session token is in the JSON download"


@pytest.mark.timeout(240)
# The sidebar is drawn before the reply streams in the same run: the downloads must be built
# when clicked, not when drawn.
def test_downloads_right_after_a_reply_include_that_reply(stack):
    srv, url, browser = stack
    srv.reset()
    # The reply starts well after the run that renders the sidebar (no race with a fast reply).
    srv.queue({"ttft": 1.0, "tokens": 4, "rate": 20, "token_text": "fresh{i} "})
    with watched_page(browser, url) as (page, _):
        send_prompt(page, "download me right away")
        wait_for_text(page, "fresh3", timeout=30)
        wait_idle(page)
        sidebar = page.locator(SIDEBAR)
        markdown = download(page, sidebar.get_by_role("button", name="⬇ Markdown"))
        as_json = json.loads(download(page, sidebar.get_by_role("button", name="⬇ JSON")))
        assert b"fresh3" in markdown
        assert as_json["messages"][-1]["state"] == "done"


# ---------------------------------------------------------------- configuration and the embedded server

def test_dot_env_is_git_ignored():
    result = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT)
    assert result.returncode == 0, ".env is not ignored by git"


def _listening(port: int) -> list[tuple[str, str]]:
    """(table, local address hex) of every LISTEN socket on `port` in /proc/net/tcp{,6}."""
    found = []
    for table in ("tcp", "tcp6"):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, state = fields[1], fields[3]
            ip, _, hex_port = address.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.append((table, ip))
    return found


def _status(url: str, key: str | None) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


@pytest.mark.timeout(180)
def test_embedded_server_listens_on_loopback_only_and_requires_its_key(local_model):
    from streamchat.local_server import LocalServer

    server = LocalServer(local_model)
    server.start(timeout=120)
    try:
        port = int(server.base_url.rsplit(":", 1)[1].split("/")[0])
        sockets = _listening(port)
        assert sockets, f"no listening socket on port {port}"
        assert sockets == [("tcp", "0100007F")], f"listens beyond 127.0.0.1: {sockets}"
        models = server.base_url + "/models"
        assert _status(models, None) == 401
        assert _status(models, "wrong-key") == 401
        assert _status(models, server.api_key) == 200
        assert len(server.api_key) >= 32 and server.api_key != LocalServer().api_key
        assert server.api_key not in repr(server)
    finally:
        server.stop()


# ---------------------------------------------------------------- sessions

@pytest.mark.timeout(300)
def test_two_sessions_chatting_at_once_never_see_each_other(stack):
    srv, url, browser = stack
    srv.reset()
    sessions = {
        "ONE": {"prompt": "prompt-from-session-ONE", "token": "ALPHA", "tokens": 60},
        "TWO": {"prompt": "prompt-from-session-TWO", "token": "BRAVO", "tokens": 37},
    }
    srv.queue(*({"tokens": s["tokens"], "rate": 20, "token_text": s["token"] + "{i} "}
                for s in sessions.values()))
    with app_page(browser, url) as one, app_page(browser, url) as two:
        pages = {"ONE": one, "TWO": two}
        watches = {}
        for name, page in pages.items():
            other = sessions["TWO" if name == "ONE" else "ONE"]
            mine = sessions[name]
            watches[name] = TextWatch(page, root="body", markers=[
                other["prompt"], other["token"], mine["token"] + str(mine["tokens"] - 1)])
        send_prompt(one, sessions["ONE"]["prompt"])
        srv.wait_for_request(1, timeout=20)
        send_prompt(two, sessions["TWO"]["prompt"])
        srv.wait_for_request(2, timeout=20)
        for name, page in pages.items():
            mine = sessions[name]
            watches[name].wait_for_marker(mine["token"] + str(mine["tokens"] - 1), timeout=60)
        for page in pages.values():
            wait_idle(page)
        first, second = srv.requests()[:2]
        assert second.t_first_content_sent < first.t_last_content_sent, \
            "the two replies did not stream at the same time"

        owners = {}
        for name, page in pages.items():
            mine, other = sessions[name], sessions["TWO" if name == "ONE" else "ONE"]
            marks = watches[name].read().marks
            assert other["prompt"] not in marks and other["token"] not in marks, \
                f"session {name} showed the other session's text: {sorted(marks)}"
            sidebar = page.locator(SIDEBAR).inner_text()
            assert mine["prompt"] in sidebar and other["prompt"] not in sidebar
            assert int(metric_value(page, "Output tokens").split()[0]) == mine["tokens"]
            owners[name] = {**query(page.url), "u": identity(page)}
        assert owners["ONE"]["u"] != owners["TWO"]["u"]
        assert "u" not in query(one.url) and "u" not in query(two.url)

        # Knowing another session's conversation id (or identity) is not enough to open it.
        for name, page in pages.items():
            other_name = "TWO" if name == "ONE" else "ONE"
            other = sessions[other_name]
            page.goto(f"{url}/?u={owners[other_name]['u']}&c={owners[other_name]['c']}")
            page.locator(CHAT_INPUT).wait_for(state="visible", timeout=30_000)
            wait_idle(page)
            body = page.locator("body").inner_text()
            assert other["prompt"] not in body and other["token"] not in body
            assert sessions[name]["prompt"] in page.locator(SIDEBAR).inner_text()
