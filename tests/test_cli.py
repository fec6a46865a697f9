"""`python -m streamchat compare` as a subprocess, against an in-process scripted server."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamchat.store import Store
from tests.harness.bounds import PROMPTLY_S
from tests.harness.scripted_server import Script, ScriptedServer

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-cli-secret"
QUICK = "script:ttft=0.05,tokens=20,rate=200"


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(Script(ttft=0.5, tokens=200, rate=100)) as srv:
        yield srv


@pytest.fixture(autouse=True)
def fresh(server):
    server.reset()


def cli_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LOCAL_MODEL"))}
    env.update(PYTHONPATH=str(ROOT), STREAMCHAT_DATA_DIR=str(tmp_path / "data"), **extra)
    return env


def cli(tmp_path, *args, env=None, timeout=60):
    # cwd is a temp dir so a developer's .env cannot change the run.
    return subprocess.run([sys.executable, "-m", "streamchat", "compare", *args],
                          cwd=tmp_path, env=env or cli_env(tmp_path, OPENAI_API_KEY=KEY),
                          capture_output=True, text=True, timeout=timeout)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_clean(proc):
    assert KEY not in proc.stdout and KEY not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_json_output_shows_first_text_sooner(tmp_path, server):
    proc = cli(tmp_path, "--prompt", "Count to 200", "--json", "--repeat", "1",
               "--base-url", server.base_url, "--model", "scripted", "--no-save")
    assert proc.returncode == 0, proc.stderr
    assert_clean(proc)
    out = json.loads(proc.stdout)
    first = next(r for r in out["summary"] if r["metric"] == "first_text_s")
    assert 0.5 <= first["stream_median"] < 0.5 + PROMPTLY_S     # never early; late only by the load
    assert 2.5 <= first["non_stream_median"] < 2.5 + PROMPTLY_S
    assert "sooner" in out["verdict"]
    assert [(r["side"], r["state"]) for r in out["runs"]] == [("stream", "done"), ("non-stream", "done")]
    assert out["params"]["temperature"] == 0 and out["params"]["seed"] is not None
    warmup, *measured = server.requests()
    assert warmup.body["max_tokens"] == 1 and warmup.stream and len(measured) == 2
    assert measured[0].headers["authorization"] == f"Bearer {KEY}"          # key from the env
    assert not (tmp_path / "data").exists()                                  # --no-save


def test_table_output_has_the_verdict_and_runs_are_saved(tmp_path, server):
    proc = cli(tmp_path, "--prompt", "hi", "--repeat", "2", "--base-url", server.base_url,
               "--model", QUICK, "--no-warmup")
    assert proc.returncode == 0, proc.stderr
    assert_clean(proc)
    lines = proc.stdout.strip().splitlines()
    assert "Time to first text" in proc.stdout and "Bytes on the wire" in proc.stdout
    assert lines[-1].startswith("Streaming showed text") and "sooner" in lines[-1]
    store = Store(tmp_path / "data")
    runs = store.runs(source="cli")
    store.close()
    assert sorted(r["mode"] for r in runs) == ["non-stream", "non-stream", "stream", "stream"]
    assert all(KEY not in json.dumps(r) for r in runs)
    assert len(server.requests()) == 4          # --no-warmup


def test_unreachable_server_is_one_line_and_exit_1(tmp_path):
    proc = cli(tmp_path, "--prompt", "hi", "--repeat", "3",
               "--base-url", f"http://127.0.0.1:{free_port()}/v1", "--model", "m", "--json",
               "--no-save")
    assert proc.returncode == 1
    assert_clean(proc)
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "Cannot reach" in proc.stderr


def test_unreachable_server_without_a_model_is_one_line_too(tmp_path):
    proc = cli(tmp_path, "--prompt", "hi", "--base-url", f"http://127.0.0.1:{free_port()}/v1",
               "--no-save")
    assert proc.returncode == 1
    assert_clean(proc)
    assert len(proc.stderr.strip().splitlines()) == 1 and "Cannot reach" in proc.stderr


@pytest.mark.parametrize("args,words", [
    (["--repeat", "0"], "must be a whole number from 1 to 20"),
    (["--repeat", "21"], "must be a whole number from 1 to 20"),
    (["--prompt", " "], "Type a message first"),
    (["--base-url", "not a url"], "not a valid base URL"),
])
def test_bad_arguments_get_a_message_not_a_traceback(tmp_path, server, args, words):
    proc = cli(tmp_path, "--prompt", "hi", "--model", QUICK, "--no-save",
               *(["--base-url", server.base_url] if "--base-url" not in args else []), *args)
    assert proc.returncode in (1, 2)
    assert_clean(proc)
    assert words in proc.stderr


def test_a_failing_side_is_reported_and_exits_1(tmp_path, server):
    # The warm-up gets a quick reply, the streaming request fails, the other one works.
    server.queue(Script(ttft=0, tokens=2), Script(status=500))
    proc = cli(tmp_path, "--prompt", "hi", "--repeat", "1", "--base-url", server.base_url,
               "--model", "scripted", "--no-save", "--json")
    assert proc.returncode == 1
    assert_clean(proc)
    out = json.loads(proc.stdout)
    assert out["outcomes"]["stream"]["failed"] == 1
    assert out["verdict"].startswith("No comparison: Streaming failed")
    assert "stream run failed: The server failed (500)" in proc.stderr


def test_ctrl_c_stops_cleanly_closes_the_connection_and_exits_130(tmp_path, server):
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamchat", "compare", "--prompt", "hi", "--repeat", "5",
         "--base-url", server.base_url, "--model", "script:ttft=0,tokens=10000,rate=100"],
        cwd=tmp_path, env=cli_env(tmp_path, OPENAI_API_KEY=KEY),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        server.wait_for_requests(2, timeout=20)  # the warm-up, then the first measured run
        time.sleep(0.3)                       # well into the stream
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "Traceback" not in stderr and "stopped" in stderr and KEY not in stderr + stdout
    warmup, first = server.requests()
    server.wait_for_disconnect(first.id)
    assert warmup.outcome == "disconnected"   # stopped: the script ignores max_tokens
    store = Store(tmp_path / "data")
    runs = store.runs(source="cli")
    store.close()
    assert [r["state"] for r in runs] == ["stopped"]


@pytest.mark.timeout(300)
def test_default_is_the_embedded_model(tmp_path, local_model):
    proc = cli(tmp_path, "--prompt", "Say hello.", "--repeat", "1", "--max-tokens", "8", "--json",
               "--no-save", env=cli_env(tmp_path), timeout=280)
    assert proc.returncode == 0, (proc.stderr, proc.stdout)
    assert "Traceback" not in proc.stderr
    out = json.loads(proc.stdout)
    assert out["endpoint"]["provider"] == "local"
    assert [r["state"] for r in out["runs"]] == ["done", "done"]
    assert all(0 < r["output_tokens"] <= 8 for r in out["runs"])
