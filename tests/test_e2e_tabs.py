"""One person, several tabs on one chat (issue 10 item 8), in Chromium: no tracebacks, the message
tree stays well formed (turns alternate), a chat deleted in one tab loses nothing in another."""
from __future__ import annotations

import urllib.parse

import pytest

from streamchat.store import Store
from tests.harness.browser import (
    CHAT_INPUT,
    send_prompt,
    wait_for_text,
    wait_idle,
)

pytestmark = pytest.mark.timeout(240)
HELD = {"tokens": 300, "rate": 0, "token_text": "{tag}{{i}} ", "stall_after": 20, "stall_timeout": 120}
EXCEPTION = '[data-testid="stException"]'


def held(tag: str) -> dict:
    return {**HELD, "token_text": HELD["token_text"].format(tag=tag)}


def conversation(page) -> str:
    page.wait_for_function("() => new URLSearchParams(location.search).has('c')", timeout=15_000)
    return urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)["c"][0]


def assert_well_formed(store: Store, cid: str) -> None:
    messages = {m["id"]: m for m in store.conversation_messages(cid)}
    for m in messages.values():
        parent = messages.get(m["parent_id"])
        expected = "assistant" if m["role"] == "user" else "user"
        assert parent is None and m["role"] == "user" or parent["role"] == expected, (
            m["role"], m["content"][:30], parent and parent["role"])


def test_sending_from_a_second_tab_while_the_first_streams(stack, page, data_dir):
    srv, url, _ = stack
    srv.queue(held("tabA"))
    send_prompt(page, "from tab A")
    wait_for_text(page, "tabA19", timeout=30)
    cid = conversation(page)
    with page.context.new_page() as other:
        other.goto(f"{url}/?c={cid}")
        other.locator(CHAT_INPUT).wait_for(state="visible", timeout=30_000)
        wait_for_text(other, "tabA19", timeout=15)        # B shows A's reply live
        srv.queue({"tokens": 3, "rate": 0, "token_text": "tabB{i} "})
        send_prompt(other, "from tab B")
        wait_for_text(other, "tabB2", timeout=30)
        wait_idle(other)
        wait_idle(page)
        for p in (page, other):
            assert p.locator(EXCEPTION).count() == 0, p.locator(EXCEPTION).all_inner_texts()
        store = Store(data_dir)
        try:
            assert_well_formed(store, cid)
            # A new message in the chat supersedes the reply in progress: kept, marked stopped.
            replies = [m for m in store.conversation_messages(cid) if m["role"] == "assistant"]
            assert [(r["state"], r["content"][:5]) for r in replies] == [("stopped", "tabA0"),
                                                                         ("done", "tabB0")]
        finally:
            store.close()


def test_a_chat_deleted_in_another_tab_stops_its_reply_and_loses_nothing(stack, page, data_dir):
    srv, url, _ = stack
    srv.queue(held("gone"))
    send_prompt(page, "soon deleted elsewhere")
    wait_for_text(page, "gone19", timeout=30)
    cid = conversation(page)
    with page.context.new_page() as other:
        other.goto(f"{url}/?c={cid}")
        other.locator(CHAT_INPUT).wait_for(state="visible", timeout=30_000)
        other.get_by_role("button", name="🗑 Delete this chat").click()
        record = srv.wait_for_end(timeout=10)
        assert record.outcome == "disconnected", record      # the reply in tab A stopped
        wait_idle(other)
    wait_idle(page)
    srv.queue({"tokens": 3, "rate": 0, "token_text": "kept{i} "})
    send_prompt(page, "my next message")
    wait_for_text(page, "kept2", timeout=30)
    wait_idle(page)
    assert page.locator(EXCEPTION).count() == 0, page.locator(EXCEPTION).all_inner_texts()
    store = Store(data_dir)
    try:
        assert store.get_conversation(cid) is None
        new = conversation(page)
        assert new != cid
        assert [m["content"] for m in store.conversation_messages(new)][0] == "my next message"
    finally:
        store.close()
