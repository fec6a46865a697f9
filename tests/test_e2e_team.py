"""Team mode in Chromium: two app replicas on one PostgreSQL database (issue 16).

A chat started on replica 1 opens on replica 2 in the same browser; a reply streaming on replica 1
is shown growing on replica 2, and Stop pressed there reaches the model server (through the
replica that owns the connection); another browser sees nothing; killing replica 1 mid-reply
leaves its saved text on replica 2, marked interrupted; and the app works through nginx with the
project's deploy/nginx.conf.
"""
from __future__ import annotations

import time

import pytest

from components.message_view import INTERRUPTED
from streamchat import live_bus
from tests.harness.bounds import PROMPTLY_S
from tests.harness.browser import (
    app_env,
    chromium,
    send_prompt,
    stop_button,
    wait_for_text,
    wait_idle,
)
from tests.harness.postgres import MISSING, find_binaries, postgres_server
from tests.harness.scripted_server import scripted_server_process
from tests.harness.team import NGINX_MISSING, conversation_of, nginx_binary, nginx_in_front, open_at, replicas

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(find_binaries() is None, reason=MISSING)]
SIDEBAR = '[data-testid="stSidebar"]'


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    data = tmp_path_factory.mktemp("team-data")
    with postgres_server() as db, scripted_server_process() as srv:
        env = app_env(srv, data) | {"STREAMCHAT_DATABASE_URL": db, "STREAMCHAT_SHARED": "1"}
        with replicas(2, env) as apps, chromium() as browser:
            yield srv, apps, browser


@pytest.fixture
def context(team):
    """A fresh browser (one identity cookie, whichever replica it visits); the server reset."""
    srv, _, browser = team
    srv.reset()
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    yield ctx
    ctx.close()
    srv.release()


def test_a_reply_on_replica_1_grows_on_replica_2_and_stops_from_there(team, context):
    srv, (one, two), browser = team
    first = open_at(context, one.url)
    srv.queue({"ttft": 0.0, "tokens": 2000, "rate": 20, "token_text": "w{i} ", "hold_after": 10})
    send_prompt(first, "follow me")
    rec = srv.wait_for_hold(timeout=20)                 # replica 1 owns the connection
    cid = conversation_of(first)
    # Same browser (same identity cookie), replica 2, the conversation's address.
    second = open_at(context, f"{two.url}/?c={cid}", idle=False)
    wait_for_text(second, "w9", timeout=15)
    srv.release()                                         # the reply goes on: replica 2 follows
    wait_for_text(second, "w14", timeout=15)
    assert stop_button(second).count() == 1
    t_click = time.perf_counter()
    stop_button(second).click()
    t_closed = srv.wait_for_disconnect(rec.id, timeout=10)
    assert t_click <= t_closed < t_click + PROMPTLY_S     # via replica 1, which owns it
    wait_idle(second)
    wait_idle(first)
    # Both replicas now show the same stopped reply.
    for page in (first, second):
        wait_for_text(page, "w14", timeout=10)
    # Another browser has no cookie of this identity: the address shows it nothing.
    other = browser.new_context()
    try:
        stranger = open_at(other, f"{two.url}/?c={cid}")
        assert "follow me" not in stranger.locator("body").inner_text()
    finally:
        other.close()


def test_a_chat_made_on_replica_1_is_listed_on_replica_2(team, context):
    srv, (one, two), _ = team
    first = open_at(context, one.url)
    srv.queue({"tokens": 3, "rate": 0, "token_text": "kept{i} "})
    send_prompt(first, "list me everywhere")
    wait_for_text(first, "kept2", timeout=20)
    wait_idle(first)                                     # saved
    second = open_at(context, two.url)
    wait_for_text(second, "list me everywhere", root=SIDEBAR, timeout=15)
    second.locator(SIDEBAR).get_by_role("button", name="list me everywhere").click()
    wait_for_text(second, "kept2", timeout=15)


@pytest.mark.skipif(nginx_binary() is None, reason=NGINX_MISSING)
def test_through_nginx_a_reply_streams_and_is_kept_for_both_replicas(team, context):
    srv, apps, _ = team
    with nginx_in_front([a.port for a in apps]) as url:
        page = open_at(context, url)
        srv.queue({"ttft": 0.1, "tokens": 40, "rate": 100, "token_text": "via{i} "})
        send_prompt(page, "through the balancer")
        wait_for_text(page, "via39", timeout=20)          # the websocket upgrade works
        wait_idle(page)
        cid = conversation_of(page)
        for app in apps:                                  # and the chat is in the shared database
            direct = open_at(context, f"{app.url}/?c={cid}")
            wait_for_text(direct, "via39", timeout=15)
            direct.close()


def test_killing_the_owner_mid_reply_leaves_its_text_interrupted_on_the_other(context, tmp_path):
    """Its own pair of replicas (and database): this one kills replica 1."""
    with postgres_server() as db, scripted_server_process() as srv:
        env = app_env(srv, tmp_path) | {"STREAMCHAT_DATABASE_URL": db, "STREAMCHAT_SHARED": "1"}
        with replicas(2, env) as (one, two):
            try:
                first = open_at(context, one.url)
                srv.queue({"ttft": 0.0, "tokens": 2000, "rate": 20, "token_text": "w{i} ", "hold_after": 12})
                send_prompt(first, "do not lose me")
                srv.wait_for_hold(timeout=20)
                cid = conversation_of(first)
                second = open_at(context, f"{two.url}/?c={cid}", idle=False)
                wait_for_text(second, "w11", timeout=15)
                one.kill()
                # The follower hears nothing from the owner for OWNER_TIMEOUT_S and says so; the
                # text replica 1 saved last stays (a reload shows the same, as interrupted).
                wait_for_text(second, live_bus.INTERRUPTED.split(";")[0], timeout=20)
                assert "w11" in second.locator("body").inner_text()
                again = open_at(context, f"{two.url}/?c={cid}", idle=False)
                wait_for_text(again, INTERRUPTED.split(" (")[0], timeout=15)
                assert "w11" in again.locator("body").inner_text()
            finally:
                srv.release()
