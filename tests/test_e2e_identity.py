"""Who sees which conversations, in Chromium against `streamlit run` (issue 9 item 2, issue 10 item 3).

Single user (bound to localhost, as `make run`): opening the app again lists every local chat.
Shared (STREAMCHAT_SHARED=1): a per-browser identity in a cookie the app sets; a link can never
set it, and a chat made before owners existed opens for nobody.
"""
from __future__ import annotations

import sqlite3
import urllib.parse
import uuid

import pytest

from tests.harness.browser import (
    CHAT_INPUT,
    app_env,
    app_page,
    send_prompt,
    streamlit_app,
    wait_for_text,
    wait_idle,
)

pytestmark = pytest.mark.timeout(240)
SIDEBAR = '[data-testid="stSidebar"]'


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).items()}


def chat_once(page, srv, prompt: str, token: str) -> None:
    srv.queue({"tokens": 3, "rate": 0, "token_text": token + "{i} "})
    send_prompt(page, prompt)
    wait_for_text(page, token + "2", timeout=30)
    wait_idle(page)


def open_fresh(browser, url: str):
    """A page in a new browser context: no cookies, no history."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(url, timeout=30_000)
    page.locator(CHAT_INPUT).wait_for(state="visible", timeout=30_000)
    wait_idle(page)
    return page


def test_single_user_finds_every_chat_again_when_reopening_the_app(stack, page):
    srv, url, browser = stack
    chat_once(page, srv, "remember me please", "kept")
    assert set(query(page.url)) == {"c"}              # the URL carries no identity
    again = open_fresh(browser, url)                  # a new visit, no ?c=, no cookie
    try:
        sidebar = again.locator(SIDEBAR)
        wait_for_text(again, "remember me please", root=SIDEBAR, timeout=10)
        sidebar.get_by_role("button", name="remember me please").click()
        wait_for_text(again, "kept2", timeout=15)
    finally:
        again.context.close()


@pytest.fixture(scope="module")
def shared(stack, tmp_path_factory):
    """A second app in shared mode, on the same scripted server and Chromium."""
    srv, _, browser = stack
    data_dir = tmp_path_factory.mktemp("shared-data")
    with streamlit_app("app.py", {**app_env(srv, data_dir), "STREAMCHAT_SHARED": "1"}) as url:
        yield srv, url, browser, data_dir


def cookie_identity(page) -> str:
    page.wait_for_function("() => document.cookie.includes('streamchat_id=')", timeout=10_000)
    return {c["name"]: c["value"] for c in page.context.cookies()}["streamchat_id"]


def test_shared_identity_survives_a_new_visit_but_a_link_cannot_set_it(shared):
    srv, url, browser, _ = shared
    srv.reset()
    with app_page(browser, url) as page:
        chat_once(page, srv, "alice private chat", "alice")
        alice = cookie_identity(page)
        conversation = query(page.url)["c"]
        assert "u" not in query(page.url)
        # The same browser, a new visit to the bare address: its chats are listed again.
        page.goto(url)
        page.locator(CHAT_INPUT).wait_for(state="visible", timeout=30_000)
        wait_for_text(page, "alice private chat", root=SIDEBAR, timeout=15)
        assert cookie_identity(page) == alice

        # Another browser handed a link with Alice's identity and chat: neither is adopted.
        mallory = open_fresh(browser, f"{url}/?u={alice}&c={conversation}")
        try:
            wait_idle(mallory)
            body = mallory.locator("body").inner_text()
            assert "alice private chat" not in body and "alice2" not in body
            assert cookie_identity(mallory) != alice
            # …and what Mallory does is not filed under Alice.
            chat_once(mallory, srv, "mallory chat", "mal")
        finally:
            mallory.context.close()
        page.reload()
        page.locator(CHAT_INPUT).wait_for(state="visible", timeout=30_000)
        wait_idle(page)
        assert "mallory chat" not in page.locator(SIDEBAR).inner_text()


def test_shared_mode_never_opens_a_chat_without_an_owner(shared):
    srv, url, browser, data_dir = shared
    # A conversation from before owners existed (migration 002): owner NULL.
    cid = uuid.uuid4().hex
    with sqlite3.connect(data_dir / "streamchat.db") as db:
        db.execute("INSERT INTO conversations (id, title, created_at, updated_at, owner) "
                   "VALUES (?, 'ownerless old chat', '2026-01-01', '2026-01-01', NULL)", (cid,))
        db.execute("INSERT INTO messages (id, conversation_id, parent_id, role, content, state, "
                   "created_at, seq) VALUES (?, ?, NULL, 'user', 'ownerless secret text', 'done', "
                   "'2026-01-01', 1)", (uuid.uuid4().hex, cid))
    with app_page(browser, f"{url}/?c={cid}") as page:
        body = page.locator("body").inner_text()
        assert "ownerless secret text" not in body and "ownerless old chat" not in body
        assert page.get_by_role("button", name="✏️ Edit").count() == 0


def test_shared_mode_a_share_link_opens_the_chat_read_only_but_its_address_does_not(shared):
    srv, url, browser, _ = shared
    srv.reset()
    with app_page(browser, url) as page:
        chat_once(page, srv, "alice shares this", "shr")
        conversation = query(page.url)["c"]
        page.get_by_role("button", name="🔗 Share").click()
        page.get_by_role("button", name="Make a link").click()
        link = page.locator('[data-testid="stCode"]').filter(has_text="?share=").first
        link.wait_for(timeout=10_000)
        address = link.inner_text().strip()
        # Bob gets the link: the chat, read-only. Mallory has only the chat's address: nothing.
        bob = browser.new_context().new_page()
        mallory = open_fresh(browser, f"{url}/?c={conversation}")
        try:
            bob.goto(address)
            wait_for_text(bob, "shr2", timeout=30)
            assert bob.locator(CHAT_INPUT).count() == 0
            wait_idle(mallory)
            assert "alice shares this" not in mallory.locator("body").inner_text()
        finally:
            bob.context.close()
            mallory.context.close()


@pytest.fixture(scope="module")
def proxied(stack, tmp_path_factory):
    """A third app behind an (imagined) authenticating proxy: STREAMCHAT_TRUSTED_USER_HEADER."""
    srv, _, browser = stack
    data_dir = tmp_path_factory.mktemp("proxied-data")
    env = {**app_env(srv, data_dir), "STREAMCHAT_TRUSTED_USER_HEADER": "X-Forwarded-User"}
    with streamlit_app("app.py", env) as url:
        yield srv, url, browser, data_dir


def open_as(browser, url: str, user: str | None):
    """A fresh browser (no cookies) whose requests carry the proxy's header for `user`."""
    headers = {"X-Forwarded-User": user} if user else {}
    context = browser.new_context(viewport={"width": 1280, "height": 900}, extra_http_headers=headers)
    page = context.new_page()
    page.goto(url, timeout=30_000)
    page.locator(CHAT_INPUT).wait_for(state="visible", timeout=30_000)
    wait_idle(page)
    return page


def test_the_proxys_user_is_the_identity_in_every_browser_and_nobody_else_sees_it(proxied):
    srv, url, browser, data_dir = proxied
    srv.reset()
    alice = open_as(browser, url, "alice@example.com")
    try:
        chat_once(alice, srv, "alice's plan", "secret")
    finally:
        alice.context.close()
    alice_again, bob, nobody = (open_as(browser, url, u) for u in ("alice@example.com", "bob@example.com", None))
    try:
        # Another browser of the same person (as another replica would serve it): her chat.
        wait_for_text(alice_again, "alice's plan", root=SIDEBAR, timeout=10)
        alice_again.locator(SIDEBAR).get_by_role("button", name="alice's plan").click()
        wait_for_text(alice_again, "secret2", timeout=15)
        for other in (bob, nobody):   # another person, or a request that did not come via the proxy
            assert "alice's plan" not in other.locator(SIDEBAR).inner_text()
    finally:
        for p in (alice_again, bob, nobody):
            p.context.close()
    with sqlite3.connect(data_dir / "streamchat.db") as db:
        owners = {row[0] for row in db.execute("SELECT owner FROM conversations")}
    assert owners == {"user:alice@example.com"}


def test_the_header_means_nothing_unless_the_trusted_header_is_configured(shared):
    srv, url, browser, data_dir = shared
    srv.reset()
    mallory = open_as(browser, url, "alice@example.com")   # anyone can send any header
    try:
        chat_once(mallory, srv, "claiming to be alice", "nope")
    finally:
        mallory.context.close()
    with sqlite3.connect(data_dir / "streamchat.db") as db:
        owner, = db.execute("SELECT owner FROM conversations WHERE title LIKE 'claiming%'").fetchone()
    assert not owner.startswith("user:") and len(owner) == 32   # a cookie identity of its own
