"""Recording a reply and replaying it at its recorded pace (streamchat.recording, streamchat.replay),
engine only, against the scripted server.

Timing: the replay's own schedule (`scheduled`, computed from the recording) is checked exactly;
wall-clock lateness (`delivered` − `scheduled`) only against generous bounds, so a loaded 2-core
box does not make these flake."""
from __future__ import annotations

import math
import random
import time

import pytest

from streamchat import metrics, recording, replay, replies
from streamchat.compare import Comparison, record_to_store
from streamchat.generation import DONE, STOPPED, Endpoint, GenerationRequest
from streamchat.replies import metrics_dict
from streamchat.store import Store
from tests.harness.scripted_server import Script, ScriptedServer

USER = ({"role": "user", "content": "Count to 200"},)
PAPER = Script(ttft=0.5, tokens=200, rate=50, token_text="w{i} ")   # the reply: ~4.5 s
LATE_OK_S = 0.25   # a chunk may go out this much after it was due on a loaded box


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(PAPER) as srv:
        yield srv


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = Store(tmp_path_factory.mktemp("replay-data"))
    yield s
    s.close()


def endpoint(server, model="scripted"):
    return Endpoint("remote", server.base_url, model, "sk-test-secret-key")


@pytest.fixture(scope="module")
def recorded(runner, server, store):
    """The issue's reply (TTFT 0.5 s, 200 tokens at 50 tok/s), sent and saved as a chat reply."""
    server.set_script(PAPER)
    cid = store.create_conversation()
    store.add_message(cid, "user", USER[0]["content"])
    reply = replies.start_reply(runner, store, cid, GenerationRequest(USER), endpoint(server))
    assert reply.generation.wait(30) and reply.saved.wait(10) and reply.save_problem is None
    return reply


def test_a_saved_reply_keeps_its_recording(recorded, store):
    g = recorded.generation
    rec = replay.load(store, message_id=recorded.message_id)
    assert rec is not None
    assert rec.text == g.text and len(rec.chunks) == len(g.chunks)
    assert rec.first_token == pytest.approx(g.t_first_token - g.t_sent, abs=1e-5)
    assert rec.last_token == pytest.approx(g.t_last_token - g.t_sent, abs=1e-5)
    assert rec.first_token >= 0.5 and rec.last_token >= 4.48   # the scripted server is never early
    assert rec.settings["model"] == "scripted" and rec.settings["stream"] is True
    assert "sk-test" not in str(recording.to_dict(rec))
    assert rec.prompt == "Count to 200"
    saved = store.get_message(recorded.message_id)
    assert {k: saved["metrics"][k] for k in rec.metrics} == rec.metrics
    # The reply's run has the same recording.
    run = store.runs(message_id=recorded.message_id)[0]
    assert store.recorded_runs([run["id"]]) == {run["id"]}
    assert replay.load(store, run_id=run["id"]).text == rec.text
    assert store.recorded_messages(saved["conversation_id"]) == {recorded.message_id}


def test_an_old_reply_has_no_recording(store):
    cid = store.create_conversation()
    mid = store.add_message(cid, "assistant", "from before recordings")
    assert replay.load(store, message_id=mid) is None
    assert replay.load_any(store, "999999") is None
    assert replay.NO_RECORDING == "no recording"


def _check_pace(r: replay.Replay, rec: recording.Recording, speed: float) -> None:
    t0 = r.t_replay_start
    token_idx = [i for i, c in enumerate(rec.chunks) if c.token]
    first, last = token_idx[0], token_idx[-1]
    # The schedule is the recording's clock divided by the speed, exactly.
    for i in (first, last, len(rec.chunks) // 2):
        assert r.scheduled[i] - t0 == pytest.approx(rec.chunks[i].t / speed, abs=1e-6)
    assert r.scheduled[first] - t0 == pytest.approx(0.5 / speed, abs=0.1 / speed)
    assert r.scheduled[last] - t0 == pytest.approx(4.5 / speed, rel=0.1)
    # And it was kept: every chunk went out when due (generous: a loaded box), none early.
    lateness = [d - s for d, s in zip(r.delivered, r.scheduled, strict=True)]
    assert min(lateness) >= 0
    assert sorted(lateness)[len(lateness) // 2] < 0.05
    assert r.delivered[first] - t0 == pytest.approx(0.5 / speed, abs=LATE_OK_S)
    assert r.delivered[last] - t0 == pytest.approx(4.5 / speed, rel=0.1, abs=LATE_OK_S)


def _same_figures(r: replay.Replay, rec: recording.Recording, summary: str) -> None:
    got = metrics_dict(metrics.final_metrics(r))
    for key, want in rec.metrics.items():
        if isinstance(want, dict):
            assert got[key]["source"] == want["source"], key
            if isinstance(want["value"], float):
                assert got[key]["value"] == pytest.approx(want["value"], rel=1e-4, abs=1e-5), key
            else:
                assert got[key]["value"] == want["value"], key
        else:
            assert got[key] == want, key
    assert metrics.summary_line(metrics.final_metrics(r)) == summary


@pytest.mark.parametrize("speed", [1.0, 2.0])
def test_replay_keeps_the_recorded_pace_and_figures(recorded, store, speed):
    summary = store.get_message(recorded.message_id)["summary"]
    rec = replay.load(store, message_id=recorded.message_id)
    r = replay.replay(rec, speed)
    assert r.label.startswith("replay of ") and r.label.endswith(", scripted")
    assert not r.is_finished and r.state == "waiting_first_token"
    assert r.wait(4.5 / speed + 10)
    assert r.state == DONE and r.text == rec.text
    _check_pace(r, rec, speed)
    _same_figures(r, rec, summary)
    # Live figures from the replay read the recorded clock too.
    m = metrics.final_metrics(r)
    assert m.ttft.value == pytest.approx(rec.first_token, abs=1e-5)
    assert m.e2e.value == pytest.approx(rec.last_token, abs=1e-5)


def test_instant_replay_ends_at_once_with_the_same_figures(recorded, store):
    summary = store.get_message(recorded.message_id)["summary"]
    rec = replay.load(store, message_id=recorded.message_id)
    t0 = time.perf_counter()
    r = replay.replay(rec, "instant")
    assert r.wait(5) and time.perf_counter() - t0 < 2
    assert r.state == DONE and r.text == rec.text and math.isinf(r.speed)
    _same_figures(r, rec, summary)


def test_stop_ends_a_replay_at_once(recorded, store):
    rec = replay.load(store, message_id=recorded.message_id)
    r = replay.replay(rec, 1)
    deadline = time.perf_counter() + 10
    while len(r.token_times) < 20:
        assert time.perf_counter() < deadline
        time.sleep(0.01)
    assert r.is_active
    r.stop()
    assert r.wait(1.0)
    assert r.state == STOPPED and not r.is_active
    assert 20 <= len(r.token_times) < 150 and rec.text.startswith(r.text)
    m = metrics.final_metrics(r)   # figures of what was played
    assert m.output_tokens.value == len(r.token_times)


def test_speed_words():
    assert replay.parse_speed("2") == replay.parse_speed("2x") == replay.parse_speed("2×") == 2.0
    assert math.isinf(replay.parse_speed("instant"))
    with pytest.raises(ValueError):
        replay.parse_speed("-1")
    assert replay.speed_label(5.0) == "5×" and replay.speed_label(math.inf) == "instant"


def test_a_compare_run_is_recorded_and_replays_side_by_side(runner, server, store):
    quick = "script:ttft=0.2,tokens=20,rate=100"
    c = Comparison(USER, endpoint(server, quick), runner=runner, repeat=1, warmup=False,
                   on_generation_done=record_to_store(store, owner="alice"))
    c.start()
    assert c.wait(30)
    runs = store.runs(source="compare", owner="alice")
    assert len(runs) == 2
    group = store.recording_group(runs[0]["id"])
    assert sorted(group) == sorted(r["id"] for r in runs)
    recs = replay.load_group(store, runs[0]["id"])
    assert [r.side for r in recs] == ["stream", "non-stream"]
    assert len(recs[1].chunks) == 1 and not recs[1].stream
    pair = replay.start_together(recs, 2)
    assert pair[0].t_replay_start == pair[1].t_replay_start
    assert all(r.wait(10) for r in pair)
    assert [r.state for r in pair] == [DONE, DONE]
    # Non-streaming: nothing until the body, at the recorded E2E.
    stream_first = pair[0].delivered[0] - pair[0].t_replay_start
    whole_first = pair[1].delivered[0] - pair[1].t_replay_start
    assert stream_first < whole_first


# ---- size ------------------------------------------------------------------------------------
WORDS = ("the of and to in is that it for was on are as with his they at be this from have or by one "
         "had not but what all were when we there can an your which their said if do will each about "
         "how up out them then she many some so these would other into has more her two like him see "
         "time could no make than first been its who now people my made over did down only way find "
         "use may water long little very after words called just where most know").split()


def test_a_2000_token_reply_records_well_under_100_kb(runner, server):
    rng = random.Random(14)
    text = "".join(rng.choice(WORDS) + (",\n\n" if rng.random() < 0.03 else " ") for _ in range(2000))
    server.queue(Script(text=text, rate=0))
    g = runner.start(GenerationRequest(USER), endpoint(server))
    assert g.wait(30) and g.state == DONE and g.text == text
    rec = recording.from_generation(g)
    packed = recording.encode(rec)
    raw = len(recording.json.dumps(recording.to_dict(rec), separators=(",", ":")).encode())
    print(f"\n2,000-token reply: {len(packed):,} bytes packed, {raw:,} bytes as JSON")
    assert len(packed) < 30_000
    back = recording.decode(packed)
    assert back.text == text and [c.t for c in back.chunks] == pytest.approx(
        [c.t for c in rec.chunks], abs=1e-6)
    assert [c.token for c in back.chunks] == [c.token for c in rec.chunks]
    assert [c.bytes_total for c in back.chunks] == [c.bytes_total for c in rec.chunks]


def test_damaged_recordings_are_refused():
    with pytest.raises(recording.RecordingError):
        recording.decode(b"not zlib")
    with pytest.raises(recording.RecordingError):
        recording.from_dict({"v": 99})
    with pytest.raises(recording.RecordingError):
        recording.from_dict({"v": 1, "dt": [1, 2], "db": [1], "c": ["a", "b"], "end": 1})
