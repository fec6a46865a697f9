"""`python -m streamchat replay <message-or-run-id> [--speed N]` as a subprocess: a reply recorded
against the scripted server, printed again at its recorded pace with no server at all."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from streamchat import replies
from streamchat.generation import Endpoint, GenerationRequest
from streamchat.store import Store
from tests.harness.scripted_server import Script, ScriptedServer
from tests.test_cli import cli_env

SCRIPT = Script(ttft=0.3, tokens=60, rate=50, token_text="w{i} ")   # last token ≈ 1.48 s


@pytest.fixture(scope="module")
def recorded(runner, tmp_path_factory):
    """(data dir, message id, run id) of a chat reply recorded in a store of its own."""
    data = tmp_path_factory.mktemp("cli-replay") / "data"
    store = Store(data)
    with ScriptedServer(SCRIPT) as srv:
        cid = store.create_conversation()
        store.add_message(cid, "user", "Count")
        reply = replies.start_reply(runner, store, cid, GenerationRequest(({"role": "user", "content": "Count"},)),
                                    Endpoint("remote", srv.base_url, "scripted", "sk-cli-replay-key"))
        assert reply.generation.wait(20) and reply.saved.wait(10)
    run_id = store.runs(message_id=reply.message_id)[0]["id"]
    summary = store.get_message(reply.message_id)["summary"]
    store.close()
    return data, reply.message_id, run_id, summary


def replay_cli(tmp_path, data, *args, timeout=60):
    env = cli_env(tmp_path)
    env["STREAMCHAT_DATA_DIR"] = str(data)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "streamchat", "replay", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return proc, time.perf_counter() - t0


@pytest.mark.parametrize("speed", ["1", "2"])
def test_replay_prints_the_reply_at_its_pace_and_the_figures(tmp_path, recorded, speed):
    data, message_id, _, summary = recorded
    proc, took = replay_cli(tmp_path, data, message_id, "--speed", speed)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("▶ replay of ") and ", scripted · " in out.splitlines()[0]
    assert "".join(f"w{i} " for i in range(60)) in out
    assert summary in out            # the recorded figures, as under the message
    assert "TTFT " in out and "60 tokens" in out and "sk-cli" not in out
    # At its pace: the process lasts at least the recorded reply / speed (plus start-up).
    assert took >= 1.48 / float(speed) * 0.9


def test_a_run_id_replays_too_and_instant_is_at_once(tmp_path, recorded):
    data, _, run_id, summary = recorded
    proc, _ = replay_cli(tmp_path, data, str(run_id), "--speed", "instant")
    assert proc.returncode == 0, proc.stderr
    assert "w59 " in proc.stdout and summary in proc.stdout and "· instant" in proc.stdout


def test_no_recording_is_one_line_and_exit_1(tmp_path, recorded):
    data = recorded[0]
    proc, _ = replay_cli(tmp_path, data, "123456789")
    assert proc.returncode == 1 and "no recording" in proc.stderr and "Traceback" not in proc.stderr
    proc, _ = replay_cli(tmp_path, data, recorded[1], "--speed", "fast")
    assert proc.returncode == 2 and "instant" in proc.stderr
