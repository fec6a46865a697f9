"""Issue 16: a reply streaming in one app replica, followed and stopped from another, over
PostgreSQL LISTEN/NOTIFY (streamchat.live_bus). Two replicas are two PgBus instances in this
process (each with its own connections), or a real second process for the owner killed mid-reply.
The store is one SQLite file both replicas share (the PostgreSQL store is another change)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from streamchat import live_bus
from streamchat.chat import ChatSession
from streamchat.generation import DONE, FAILED, STOPPED, Endpoint, GenerationRequest
from streamchat.kinds import MessageState
from streamchat.live_bus import OWNER_TIMEOUT_S, PAYLOAD_BUDGET, FollowedGeneration, PgBus, split_text
from streamchat.replies import PartialFlusher, start_reply
from streamchat.store import Store
from tests.harness.bounds import PROMPTLY_S
from tests.harness.postgres import MISSING, find_binaries, postgres_server
from tests.harness.processes import ROOT, kill_process_group, spawn
from tests.harness.scripted_server import Script, ScriptedServer

pytestmark = pytest.mark.timeout(180)

USER = ({"role": "user", "content": "Count"},)
GONE_S = OWNER_TIMEOUT_S + 2 * live_bus.LISTEN_WAKE_S + PROMPTLY_S  # owner gone -> follower ends


def wait_until(predicate, timeout=10.0, interval=0.005, what="condition"):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout} s")


@pytest.fixture(scope="module")
def pg_url():
    if find_binaries() is None:
        pytest.skip(MISSING)
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(Script()) as srv:
        yield srv


@pytest.fixture(autouse=True)
def fresh_server(request):
    if "server" in request.fixturenames:
        srv = request.getfixturevalue("server")
        srv.reset()
        srv.set_script(Script())


@pytest.fixture
def buses(pg_url):
    """Two replicas: the owner writes replies, the follower follows them."""
    owner, follower = PgBus(pg_url, replica="owner"), PgBus(pg_url, replica="follower")
    yield owner, follower
    owner.close()
    follower.close()


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path)


def endpoint(server):
    return Endpoint("remote", server.base_url, "scripted", "sk-test-key-123456")


def start(runner, store, server, owner, script):
    server.queue(script)
    cid = store.create_conversation(owner="tester")
    reply = start_reply(runner, store, cid, GenerationRequest(USER), endpoint(server))
    owner.publish(reply)
    return reply


def follow(follower, store, message_id) -> FollowedGeneration:
    wait_until(lambda: follower.is_live(message_id), what="the owner's reply is seen as live")
    g = follower.follow(message_id, lambda: store.get_message(message_id))
    assert g is not None
    return g


# ---- SQLite mode -------------------------------------------------------------------------------
def test_without_postgres_the_bus_does_nothing_and_a_lost_reply_is_interrupted(tmp_path, runner):
    bus = live_bus.get_bus(None)
    assert type(bus) is live_bus.LiveBus and live_bus.get_bus(str(tmp_path / "x.db")) is bus
    assert live_bus.current() is bus        # nothing configured: the in-process no-op
    store = Store(tmp_path)
    cid = store.create_conversation(owner="u")
    store.add_message(cid, "user", "hi")
    store.add_message(cid, "assistant", "half a rep", state=MessageState.STREAMING)
    chat = ChatSession(store, runner, "u", {}, {})
    messages = store.conversation_path(cid)
    assert chat.live_reply(cid, messages) is None
    assert chat.is_interrupted(messages[-1])


def test_split_text_keeps_every_piece_under_the_payload_budget():
    text = "é" * 5000 + '"\\\n' * 3000 + "\x00" + "日本" * 4000
    pieces = list(split_text(text, 1000))
    assert "".join(pieces) == text
    assert all(len(json.dumps(p, ensure_ascii=False).encode()) <= 1000 for p in pieces)
    assert len(pieces) < 3 * len(json.dumps(text, ensure_ascii=False).encode()) / 1000


class StubBus:
    def __init__(self):
        self.syncs = []

    def send_sync(self, message_id):
        self.syncs.append(message_id)


def ev(seq, **fields):
    return {"m": "m1", "replica": "r", "seq": seq, **fields}


def test_a_follower_applies_groups_whole_in_seq_order_and_asks_again_after_a_gap():
    bus = StubBus()
    saved = {"content": "Hel", "reasoning": "", "state": "streaming", "error": None}
    g = FollowedGeneration("m1", bus, lambda: saved, saved)
    assert g.text == "Hel" and g.state == "streaming"
    g.receive(ev(4, at=0, text="Hello", state="streaming", t=0.1), 1.0)    # not a snapshot: waits
    assert g.text == "Hel" and g.events == 0
    g.receive(ev(5, snap=1, at=0, text="Hello wo"), 1.0)                    # a split snapshot…
    assert g.text == "Hel"                                                   # …shown only whole
    g.receive(ev(6, snap=2, rat=0, reasoning="hmm", state="streaming", t=0.2, tok=3, first_token=0.05), 1.0)
    assert (g.text, g.reasoning, g.events) == ("Hello wo", "hmm", 1)
    assert g.t_sent == pytest.approx(0.8) and g.t_first_token == pytest.approx(0.85)
    assert len(g.token_times) == 3 and g.token_times[-1] == pytest.approx(1.0)
    g.receive(ev(7, snap=1, at=0, text="Hello wo", rat=0, reasoning="hmm", state="streaming"), 1.1)
    assert g.events == 1                                 # another follower's snapshot: skipped
    g.receive(ev(8, at=8, text="rld", state="streaming"), 1.1)
    assert g.text == "Hello world" and g.answer_restarts == 0
    g.receive(ev(9, at=0, text="", rat=3, reasoning="Hello world", state="thinking"), 1.2)
    assert (g.text, g.reasoning, g.answer_restarts) == ("", "hmmHello world", 1)   # taken back
    g.receive(ev(11, at=0, text="lost?", state="streaming"), 1.3)                  # 10 is missing
    assert g.text == "" and bus.syncs == ["m1"]
    g.receive(ev(12, snap=1, at=0, text="Hi", rat=0, reasoning="hmmHello world", state="done",
                 t=0.6, end=0.6, finish="stop"), 1.4)
    assert g.is_finished and g.state == DONE and g.text == "Hi" and g.finish_reason == "stop"
    assert not g.saved.is_set()
    g.receive(ev(13, saved=1), 1.5)
    assert g.saved.is_set()


# ---- two replicas ------------------------------------------------------------------------------
def test_a_follower_joining_mid_stream_ends_with_the_owners_text(runner, server, buses, store):
    owner, follower = buses
    tokens, rate = 300, 150
    reply = start(runner, store, server, owner,
                  Script(tokens=tokens, rate=rate, token_text="w{i} ", hold_after=60))
    server.wait_for_hold()
    # The store has the text up to its last flush: the follower starts from it, then catches up.
    wait_until(lambda: (store.get_message(reply.message_id)["content"] or "").endswith("w59 "))
    g = follow(follower, store, reply.message_id)
    wait_until(lambda: g.text == reply.text, what="the follower caught up")
    sent_before = owner.notifies_sent
    t_release = time.perf_counter()
    server.release()
    assert follow(follower, store, reply.message_id) is g     # a second session: the same follower
    third = PgBus(owner.url, replica="third")                  # a replica joining while text flows
    try:
        g3 = follow(third, store, reply.message_id)
        assert not g3.is_finished, "the stream ended before the third replica joined"
        assert reply.generation.wait(15) and g.wait(15) and g3.wait(15)
    finally:
        third.close()
    streamed_s = time.perf_counter() - t_release
    sent = owner.notifies_sent - sent_before
    assert g3.state == DONE and g3.text == reply.text
    expected = "".join(f"w{i} " for i in range(tokens))
    assert (reply.generation.state, g.state) == (DONE, DONE)
    assert reply.text == g.text == expected
    assert g.saved.wait(10) and store.get_message(reply.message_id)["content"] == expected
    # Coalesced: at most one notification a PUBLISH_EVERY_S (plus the final state and saved),
    # not one a token.
    print(f"\nnotify rate while streaming {tokens - 60} tokens at {rate}/s: {sent / streamed_s:.1f}/s "
          f"({g.events} groups applied by the follower)")
    assert sent <= streamed_s * (1 / live_bus.PUBLISH_EVERY_S + 1 / live_bus.HEARTBEAT_S) + 3
    assert sent < (tokens - 60) / 3


@pytest.mark.parametrize("form", ["reasoning_content", "think_close_only"])
def test_a_follower_from_the_first_token_sees_thinking_and_answer_as_the_owner(
        runner, server, buses, store, form):
    owner, follower = buses
    reply = start(runner, store, server, owner, Script(
        tokens=40, reasoning_tokens=30, rate=400, reasoning_form=form, hold_after=0))
    server.wait_for_hold()
    g = follow(follower, store, reply.message_id)
    wait_until(lambda: g.events > 0, what="the follower's snapshot")
    server.release()
    assert reply.generation.wait(15) and g.wait(15)
    assert g.state == DONE
    assert (g.reasoning, g.text) == (reply.reasoning, reply.text)
    assert reply.reasoning.startswith("think0 ") and reply.text
    if form == "think_close_only":  # the answer so far was taken back into the thinking
        assert reply.generation.answer_restarts >= 1
    assert g.t_first_token is not None and g.t_first_token <= g.t_first_content <= g.t_end


def test_deltas_over_the_notify_limit_are_split_and_joined(runner, server, buses, store):
    owner, follower = buses
    big = "é" * 3000 + "{i}|"     # 6 KB a token: every notification would be over 8000 bytes
    reply = start(runner, store, server, owner,
                  Script(tokens=12, rate=0, token_text=big, hold_after=5))
    server.wait_for_hold()
    g = follow(follower, store, reply.message_id)
    wait_until(lambda: g.text == reply.text, what="the follower caught up (a split snapshot)")
    server.release()
    assert reply.generation.wait(15) and g.wait(15)
    assert g.text == reply.text == "".join(big.replace("{i}", str(i)) for i in range(12))
    assert len(g.text.encode()) > 8 * PAYLOAD_BUDGET


def test_stop_on_the_follower_closes_the_owners_connection_promptly(runner, server, buses, store):
    owner, follower = buses
    reply = start(runner, store, server, owner,
                  Script(tokens=10_000, rate=50, token_text="s{i} ", hold_after=30))
    server.wait_for_hold()
    g = follow(follower, store, reply.message_id)
    wait_until(lambda: g.text == reply.text, what="the follower caught up")
    t_stop = time.perf_counter()
    g.stop()
    t_disconnected = server.wait_for_disconnect()
    latency = t_disconnected - t_stop
    print(f"\nstop on the follower -> the model server saw the disconnect: {latency * 1000:.1f} ms "
          f"(stop notification received by the owner after "
          f"{(owner.stops_received[reply.message_id] - t_stop) * 1000:.1f} ms)")
    assert 0 < latency < PROMPTLY_S
    assert g.wait(10) and g.state == STOPPED and reply.generation.state == STOPPED
    assert g.text == reply.text and g.saved.wait(10)
    saved = store.get_message(reply.message_id)
    assert (saved["state"], saved["content"]) == ("stopped", g.text)


def test_a_chat_session_on_another_replica_follows_and_does_not_call_it_interrupted(
        runner, server, buses, store, monkeypatch):
    owner, follower = buses
    # The other replica is this process: its flusher (where the owner's reply is live) is not hers.
    monkeypatch.setattr("streamchat.chat.get_flusher", PartialFlusher)
    reply = start(runner, store, server, owner, Script(tokens=50, rate=200, hold_after=10))
    server.wait_for_hold()
    chat = ChatSession(store, runner, "tester", {}, {}, bus=follower)
    wait_until(lambda: follower.is_live(reply.message_id))
    messages = store.conversation_path(reply.conversation_id)
    assert not chat.is_interrupted(messages[-1])
    active = chat.live_reply(reply.conversation_id, messages)
    assert active is not None and isinstance(active.generation, FollowedGeneration)
    assert chat.replies[reply.conversation_id] is active
    server.release()
    assert active.generation.wait(15) and active.saved.wait(15)
    assert active.text == reply.text
    assert chat.finished(active)["content"] == reply.text


# ---- the owner killed --------------------------------------------------------------------------
OWNER_CHILD = textwrap.dedent("""
    import sys, threading
    from streamchat import live_bus
    from streamchat.generation import Endpoint, GenerationRequest
    from streamchat.replies import start_reply
    from streamchat.runner import Runner
    from streamchat.store import Store

    data_dir, url, base_url, cid = sys.argv[1:5]
    store = Store(data_dir)
    live_bus.get_bus(url)       # the app's set-up: start_reply then publishes through current()
    reply = start_reply(Runner(), store, cid, GenerationRequest(({"role": "user", "content": "go"},)),
                        Endpoint("remote", base_url, "scripted", "sk-test-key-123456"))
    print(reply.message_id, flush=True)
    threading.Event().wait(600)
""")


def test_owner_killed_mid_reply_the_follower_ends_interrupted_with_the_saved_text(
        pg_url, server, tmp_path, buses):
    _, follower = buses
    store = Store(tmp_path)
    cid = store.create_conversation(owner="tester")
    server.queue(Script(tokens=1000, rate=0, token_text="k{i} ", hold_after=40))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = spawn([sys.executable, "-c", OWNER_CHILD, str(tmp_path), pg_url, server.base_url, cid],
                  env=env, stdout=subprocess.PIPE)
    try:
        message_id = child.stdout.readline().decode().strip()
        assert message_id, "the owner process did not start its reply"
        server.wait_for_hold(timeout=30)
        wait_until(lambda: (store.get_message(message_id)["content"] or "").endswith("k39 "),
                   what="the owner flushed the text")
        g = follow(follower, store, message_id)
        wait_until(lambda: g.text.endswith("k39 ") and g.events > 0, what="the follower synced")
        t_kill = time.perf_counter()
        os.killpg(child.pid, signal.SIGKILL)
        assert g.wait(GONE_S + 2), "the follower did not notice its owner was gone"
        noticed = time.perf_counter() - t_kill
        print(f"\nowner SIGKILLed -> follower ended after {noticed:.2f} s "
              f"(heartbeat timeout {OWNER_TIMEOUT_S} s)")
        assert noticed < GONE_S
    finally:
        kill_process_group(child)
    saved = store.get_message(message_id)
    assert g.state == FAILED and g.interrupted and g.saved.is_set()
    assert g.text == saved["content"] == "".join(f"k{i} " for i in range(40))
    assert saved["state"] == MessageState.STREAMING          # as the killed owner left it
    assert not follower.is_live(message_id)
    chat = ChatSession(store, None, "tester", {}, {}, bus=follower)
    assert chat.is_interrupted(saved) and chat.live_reply(cid, [saved]) is None
