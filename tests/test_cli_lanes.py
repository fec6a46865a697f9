"""`python -m streamchat compare --lane …` (2–4 lanes) as a subprocess, against two in-process
scripted servers: the figures of each lane, a lane that cannot connect, each lane's key going
only to its own endpoint, and bad lane specs."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streamchat.store import Store
from tests.harness.bounds import PROMPTLY_S, follows
from tests.harness.scripted_server import Script, ScriptedServer

ROOT = Path(__file__).resolve().parents[1]
SCRIPT_A = Script(ttft=0.3, tokens=200, rate=100)   # the numbers
SCRIPT_B = Script(ttft=1.0, tokens=200, rate=50)
QUICK = Script(ttft=0.02, tokens=10, rate=500)      # where timing is not the point
KEY_A, KEY_B, OTHER_KEY = "sk-lane-a-secret", "lane-b-secret-9f3c2e", "sk-openai-elsewhere"
KEYS = (KEY_A, KEY_B, OTHER_KEY)


@pytest.fixture(scope="module")
def servers():
    with ScriptedServer(SCRIPT_A) as a, ScriptedServer(SCRIPT_B) as b:
        yield a, b


@pytest.fixture(autouse=True)
def fresh(servers):
    a, b = servers
    for srv, script in ((a, SCRIPT_A), (b, SCRIPT_B)):
        srv.reset()
        srv.set_script(script)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_env(tmp_path, servers, **extra):
    """STREAMCHAT_ENDPOINTS a and b (with their own keys); OPENAI_API_KEY set, for neither."""
    a, b = servers
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "LOCAL_MODEL", "STREAMCHAT_"))}
    env.update(PYTHONPATH=str(ROOT), STREAMCHAT_DATA_DIR=str(tmp_path / "data"),
               STREAMCHAT_ENDPOINTS=f"a={a.base_url}|scripted; b={b.base_url}|scripted",
               STREAMCHAT_KEY_A=KEY_A, STREAMCHAT_KEY_B=KEY_B, OPENAI_API_KEY=OTHER_KEY,
               OPENAI_BASE_URL=f"http://127.0.0.1:{free_port()}/v1")
    env.update(extra)
    return env


def cli(tmp_path, servers, *args, timeout=60, **env):
    # cwd is a temp dir so a developer's .env cannot change the run.
    proc = subprocess.run([sys.executable, "-m", "streamchat", "compare", "--prompt", "Count to 200", *args],
                          cwd=tmp_path, env=cli_env(tmp_path, servers, **env),
                          capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr
    assert not any(key in proc.stdout + proc.stderr for key in KEYS)
    return proc


def lanes(*specs):
    return [arg for spec in specs for arg in ("--lane", spec)]


def by_name(out):
    return {lane["name"]: lane for lane in out["lanes"]}


def test_three_lanes_race_each_at_its_own_pace(tmp_path, servers):
    a, b = servers
    proc = cli(tmp_path, servers, "--json", "--repeat", "1", "--mode", "race", "--no-warmup",
               *lanes(f"name=fast,base_url={a.base_url},model=scripted,stream=on",
                      "b",                                         # a STREAMCHAT_ENDPOINTS name
                      "name=fast-whole,endpoint=a,stream=off"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [(x["name"], x["key"], x["stream"], x["failed"], x["n"]) for x in out["lanes"]] == [
        ("fast", "fast", True, False, 1), ("b", "b", True, False, 1),
        ("fast-whole", "fast-whole", False, False, 1)]
    assert [x["base_url"] for x in out["lanes"]] == [a.base_url, b.base_url, a.base_url]
    assert {x["model"] for x in out["lanes"]} == {"scripted"} and out["endpoint"] is None
    assert all(x["max_tokens"] == 256 and x["temperature"] == 0 for x in out["lanes"])
    assert out["mode"] == "race" and out["error"] is None
    assert 0 <= out["send_spread_s"] < PROMPTLY_S

    # Each lane's figures against the script (never earlier) and the server's own record of the
    # same moment (later only by what a busy machine adds; the exact figures are `make bench`'s).
    stream_a, whole_a = sorted((a.wait_for_end(r.id) for r in a.requests()), key=lambda r: not r.stream)
    stream_b = b.wait_for_end(b.requests()[0].id)
    lane = by_name(out)
    expected = {  # lane: (server record, scheduled first text, scheduled E2E)
        "fast": (stream_a, 0.3, 0.3 + 199 / 100),
        "b": (stream_b, 1.0, 1.0 + 199 / 50),
        "fast-whole": (whole_a, 0.3 + 200 / 100, 0.3 + 200 / 100),
    }
    for name, (rec, first, e2e) in expected.items():
        median = lane[name]["median"]
        assert first <= median["first_text_s"] and e2e <= median["e2e_s"], (name, median)
        assert follows(median["first_text_s"], rec.t_first_content_sent - rec.t_received), (name, median)
        assert follows(median["e2e_s"], rec.t_last_content_sent - rec.t_received), (name, median)
        assert median["output_tokens"] == 200
    assert (lane["fast"]["median"]["first_text_s"] < lane["b"]["median"]["first_text_s"]
            < lane["fast-whole"]["median"]["first_text_s"])
    assert lane["fast"]["median"]["tok_per_s"] > lane["b"]["median"]["tok_per_s"]
    assert out["verdict"].startswith("fast showed text") and "sooner than b" in out["verdict"]
    assert "fast decoded" in out["verdict"] and "faster than b" in out["verdict"]
    # The top-level summary and runs keep their shape, keyed by lane.
    first = next(r for r in out["summary"] if r["metric"] == "first_text_s")
    assert first["fast_whole_median"] == lane["fast-whole"]["median"]["first_text_s"]
    assert sorted(r["side"] for r in out["runs"]) == ["b", "fast", "fast-whole"]
    assert set(out["outcomes"]) == {"fast", "b", "fast-whole"}
    # The lanes ran at once: every request reached its server before any reply ended.
    recs = [stream_a, whole_a, stream_b]
    assert max(r.t_received for r in recs) < min(r.t_end for r in recs)
    # Saved: each run with its lane and one comparison id.
    store = Store(tmp_path / "data")
    runs = store.runs(source="cli")
    store.close()
    assert sorted(r["lane"] for r in runs) == ["b", "fast", "fast-whole"]
    assert len({r["compare_id"] for r in runs}) == 1


def test_a_lane_that_cannot_connect_fails_alone_and_exits_1(tmp_path, servers):
    a, b = servers
    a.set_script(QUICK)
    b.set_script(QUICK)
    gone = f"http://127.0.0.1:{free_port()}/v1"
    proc = cli(tmp_path, servers, "--json", "--repeat", "2", "--no-warmup", "--no-save",
               *lanes("a", f"name=gone,base_url={gone},model=m", "b"))
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    lane = by_name(out)
    assert [x["name"] for x in out["lanes"]] == ["a", "gone", "b"]
    assert lane["gone"]["failed"] is True and lane["gone"]["n"] == 0
    assert "Cannot reach" in lane["gone"]["error"] and lane["gone"]["outcome"]["failed"] >= 1
    assert lane["gone"]["median"]["first_text_s"] is None
    for name in ("a", "b"):
        assert not lane[name]["failed"] and lane[name]["error"] is None and lane[name]["n"] == 2
        assert lane[name]["median"]["first_text_s"] is not None
    assert "lane gone failed: Cannot reach" in out["verdict"]
    assert "lane gone failed: Cannot reach" in proc.stderr
    assert len(a.requests()) == len(b.requests()) == 2


def test_each_lane_key_goes_to_its_own_endpoint_only(tmp_path, servers):
    a, b = servers
    a.set_script(QUICK)
    b.set_script(QUICK)
    # With the warm-up: one request per endpoint more, with its own key too.
    proc = cli(tmp_path, servers, "--repeat", "1", "--no-save",
               *lanes("a", "b", "name=a-whole,endpoint=a,stream=off"))
    assert proc.returncode == 0, proc.stderr
    assert len(a.requests()) == 3 and len(b.requests()) == 2
    assert {r.headers.get("authorization") for r in a.requests()} == {f"Bearer {KEY_A}"}
    assert {r.headers.get("authorization") for r in b.requests()} == {f"Bearer {KEY_B}"}
    # The table: a row per lane, then the verdict.
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("3 lanes · sequential")
    assert [line.split()[0] for line in lines[3:6]] == ["a", "b", "a-whole"]
    assert "non-stream" in lines[5] and "1/1" in lines[5]
    assert lines[-1].startswith(("a ", "b ", "a-whole "))


def test_a_key_the_server_echoes_is_never_printed(tmp_path, servers):
    a, b = servers
    a.set_script(QUICK)
    b.set_script(Script(status=401, error_body={"error": {"message": f"bad key {KEY_B} for b"}}))
    proc = cli(tmp_path, servers, "--json", "--repeat", "2", "--no-warmup", "--no-save",
               *lanes("a", "b"))
    assert proc.returncode == 1          # (cli() checks no key is in stdout or stderr)
    lane = by_name(json.loads(proc.stdout))
    assert lane["b"]["failed"] and not lane["a"]["failed"]
    assert "lane b failed" in proc.stderr and "***" in proc.stderr
    assert len(b.requests()) == 1        # an auth failure is not tried again


@pytest.mark.parametrize("specs,extra,words", [
    (["a", "zzz"], [], "lane 2 (zzz): unknown endpoint name 'zzz'"),
    (["a", "name=x,base_url=http://127.0.0.1:9/v1"], [], "lane 2 (x): no model"),
    (["name=x,base_url=not a url,model=m", "a"], [], "lane 1 (x): 'not a url' is not a valid base URL"),
    (["a", "name=b2,endpoint=b,stream=maybe"], [], "lane 2 (b2): stream must be on or off"),
    (["a", "name=a,endpoint=b"], [], "two lanes are called 'a'"),
    (["a"], [], "a comparison has 2 to 4 lanes, not 1"),
    (["a", "b", "local", "name=c,endpoint=a", "name=d,endpoint=b"], [], "a comparison has 2 to 4 lanes, not 5"),
    (["a", "b"], ["--base-url", "http://127.0.0.1:9/v1"], "--lane does not go with --base-url"),
    (["a", "b"], ["--model", "m"], "--lane does not go with --base-url or --model"),
])
def test_bad_lanes_are_one_line_and_exit_2_before_any_request(tmp_path, servers, specs, extra, words):
    proc = cli(tmp_path, servers, "--no-save", *extra, *lanes(*specs))
    assert proc.returncode == 2
    assert proc.stdout == ""
    line, = proc.stderr.strip().splitlines()
    assert line.startswith(f"python -m streamchat compare: error: {words}")
    assert not any(srv.requests() for srv in servers)
