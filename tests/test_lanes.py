"""Lanes: STREAMCHAT_ENDPOINTS and --lane specs, and a comparison of 2–4 lanes on scripted servers
(failures stay in their lane, Stop all and Stop per lane, race sends together, keys stay home)."""
import socket

import pytest

from streamchat import compare, lanes
from streamchat.compare import RACE, SEQUENTIAL, Comparison
from streamchat.generation import DONE, FAILED, STOPPED, Endpoint
from streamchat.lanes import Lane, LaneSpecError, NamedEndpoint, parse_endpoints, parse_lane_spec
from streamchat.store import Store
from tests.harness.bounds import PROMPTLY_S
from tests.harness.scripted_server import Script, ScriptedServer

USER = [{"role": "user", "content": "Count"}]
QUICK = Script(ttft=0.02, tokens=10, rate=500)


# ---- STREAMCHAT_ENDPOINTS -----------------------------------------------------------------
def test_endpoints_are_parsed_with_their_own_keys_and_bad_entries_named():
    text = "a=http://127.0.0.1:8000/v1|llama-3-8b; b=https://api.example.com/v1/\n bad entry, c=ftp://x, a=http://y/v1"
    found, problems = parse_endpoints(text, {"STREAMCHAT_KEY_A": "sk-a", "STREAMCHAT_KEY_B": " sk-b "})
    assert found == [
        NamedEndpoint("a", "http://127.0.0.1:8000/v1", "llama-3-8b", "sk-a"),
        NamedEndpoint("b", "https://api.example.com/v1", None, "sk-b"),
    ]
    assert len(problems) == 3
    assert "entry 3 is not name=base_url[|model]" in problems[0]
    assert "entry 4 (c)" in problems[1] and "not a valid base URL" in problems[1]
    assert "'a' is taken" in problems[2]
    assert "sk-a" not in repr(found)  # keys never in a repr (logs)


def test_key_variable_names():
    assert lanes.key_variable("my-lab.gpu") == "STREAMCHAT_KEY_MY_LAB_GPU"
    assert lanes.key_for("Llama 3 8B (fast)") == "llama-3-8b-fast"


# ---- --lane specs ---------------------------------------------------------------------------
ENDPOINTS = [NamedEndpoint("a", "http://127.0.0.1:8000/v1", "model-a", "sk-a"),
             NamedEndpoint("b", "http://127.0.0.1:9000/v1", None, "sk-b")]


def spec(text, number=1, **kw):
    return parse_lane_spec(text, number, ENDPOINTS, **kw)


def test_a_lane_by_endpoint_name_takes_its_url_model_and_key():
    s = spec("a")
    assert (s.name, s.base_url, s.model, s.api_key, s.stream) == ("a", "http://127.0.0.1:8000/v1", "model-a", "sk-a", True)
    s = spec("name=a-whole,endpoint=a,stream=off,temperature=0.7,max_tokens=50")
    assert (s.name, s.base_url, s.api_key, s.stream, s.temperature, s.max_tokens) == \
        ("a-whole", "http://127.0.0.1:8000/v1", "sk-a", False, 0.7, 50)
    assert spec("local").local and spec("name=embedded,stream=off").local


def test_a_written_url_gets_no_key_but_its_own():
    s = spec("name=x,base_url=http://10.0.0.1:8000/v1,model=m", configured_key="sk-openai")
    assert s.api_key is None  # OPENAI_API_KEY is not sent to a URL it was not configured for
    s = spec("name=x,base_url=https://api.openai.com/v1,model=m", configured_key="sk-openai")
    assert s.api_key == "sk-openai"
    s = spec("name=b,base_url=http://127.0.0.1:9000/v1,model=m", configured_key="sk-openai")
    assert s.api_key == "sk-b"  # the endpoint of the lane's own name, at its own URL
    s = spec("name=b,base_url=http://10.0.0.1:8000/v1,model=m", configured_key="sk-openai")
    assert s.api_key is None  # …but never to another URL under its name


@pytest.mark.parametrize("text, message", [
    ("nobody", "lane 2 (nobody): unknown endpoint name 'nobody'"),
    ("b", "lane 2 (b): no model"),
    ("name=x,base_url=http://h:1/v1", "lane 2 (x): no model"),
    ("name=x,base_url=not-a-url,model=m", "lane 2 (x): 'not-a-url' is not a valid base URL"),
    ("name=a,stream=maybe", "lane 2 (a): stream must be on or off"),
    ("name=a,temperature=hot", "lane 2 (a): temperature must be a number from 0 to 2"),
    ("name=a,max_tokens=0", "lane 2 (a): max_tokens must be a number from 1"),
    ("name=a,colour=red", "lane 2: 'colour=red' is not one of name="),
    ("name=a,endpoint=a,base_url=http://h/v1", "give endpoint= or base_url=, not both"),
    ("name=a,name=b", "lane 2: name is given twice"),
])
def test_bad_specs_say_which_lane_and_what_is_wrong(text, message):
    with pytest.raises(LaneSpecError) as err:
        spec(text, 2)
    assert message in str(err.value)


def test_lane_count_and_names_are_checked():
    e = Endpoint("remote", "http://127.0.0.1:1/v1", "m")
    one = Lane("a", "A", e)
    with pytest.raises(LaneSpecError, match="2 to 4 lanes, not 1"):
        lanes.check_lanes([one])
    with pytest.raises(LaneSpecError, match="2 to 4 lanes, not 5"):
        lanes.check_lanes([Lane(str(i), str(i), e) for i in range(5)])
    with pytest.raises(LaneSpecError, match="two lanes are called 'A'"):
        lanes.check_lanes([one, Lane("b", "A", e)])


# ---- comparisons of lanes on scripted servers --------------------------------------------------
@pytest.fixture(scope="module")
def servers():
    with ScriptedServer(QUICK) as a, ScriptedServer(QUICK) as b, ScriptedServer(QUICK) as c:
        yield a, b, c


@pytest.fixture(autouse=True)
def fresh(servers):
    for s in servers:
        s.reset()
        s.set_script(QUICK)


def lane(name, server, stream=True, key="", **kw):
    base_url = server if isinstance(server, str) else server.base_url
    return Lane(lanes.key_for(name), name, Endpoint("remote", base_url, f"model-{name}", key), stream,
                model=f"model-{name}", base_url=base_url, **kw)


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def test_three_lanes_each_with_own_endpoint_params_and_key(runner, servers, tmp_path):
    a, b, _ = servers
    store = Store(tmp_path)
    three = [lane("A", a, key="sk-lane-a-secret"), lane("B", b, key="sk-lane-b-secret", max_tokens=7),
             lane("A whole", a, stream=False, key="sk-lane-a-secret", temperature=0.5)]
    c = Comparison(USER, lanes=three, repeat=2, runner=runner,
                   on_generation_done=compare.record_to_store(store)).start()
    assert c.wait(30) and c.error is None
    assert c.progress == (6, 6)
    assert [g.state for r in c.rounds for g in r.generations] == [DONE] * 6
    # Sequential: one lane at a time, and who goes first rotates.
    assert [r.order for r in c.rounds] == [("a", "b", "a-whole"), ("b", "a-whole", "a")]
    measured_a = [r for r in a.requests() if r.body.get("max_tokens") != 1]
    measured_b = [r for r in b.requests() if r.body.get("max_tokens") != 1]
    assert len(measured_a) == 4 and len(measured_b) == 2
    # Each lane's key went to its own server only; each lane's params to its own requests.
    assert {r.headers["authorization"] for r in a.requests()} == {"Bearer sk-lane-a-secret"}
    assert {r.headers["authorization"] for r in b.requests()} == {"Bearer sk-lane-b-secret"}
    assert {r.body["max_tokens"] for r in measured_b} == {7}
    assert {r.body["temperature"] for r in measured_a if not r.stream} == {0.5}
    assert {r.body["temperature"] for r in measured_a if r.stream} == {0.0}
    # One uncounted warm-up per endpoint and model (A's lanes run two models).
    assert sorted(r.body["model"] for r in a.requests() if r.body.get("max_tokens") == 1) == \
        ["model-A", "model-A whole"]
    assert sum(r.body.get("max_tokens") == 1 for r in b.requests()) == 1
    summary = c.summary()
    first = next(r for r in summary if r["metric"] == "first_text_s")
    assert first["a_n"] == first["b_n"] == first["a_whole_n"] == 2
    # The runs share one compare id and carry their lane; no key reaches the store.
    rows = store.runs(source="compare")
    assert len({r["compare_id"] for r in rows}) == 1 and rows[0]["compare_id"]
    assert sorted(r["lane"] for r in rows) == ["a", "a", "a-whole", "a-whole", "b", "b"]
    assert "sk-lane" not in str(rows)
    store.close()


def test_a_lane_on_a_closed_port_fails_alone(runner, servers):
    a, b, _ = servers
    three = [lane("A", a), lane("Dead", closed_port_url()), lane("B", b)]
    c = Comparison(USER, lanes=three, repeat=2, mode=RACE, runner=runner).start()
    assert c.wait(30) and c.error is None
    first, second = c.rounds
    assert first.get("dead").state == FAILED and first.get("a").state == DONE and first.get("b").state == DONE
    assert second.get("dead") is None  # not tried again: the next repeat would only repeat it
    assert second.get("a").state == DONE and second.get("b").state == DONE
    out = c.outcomes()
    assert out["dead"][FAILED] == 1 and out["a"][DONE] == 2
    verdict = c.verdict()
    assert "lane Dead failed: Cannot reach http://127.0.0.1:" in verdict
    assert verdict.split(";")[0].endswith(("sooner than B", "sooner than A", "about the same time"))


def test_race_sends_every_lane_together_and_stop_all_closes_every_connection(runner, servers):
    held = Script(ttft=0.0, tokens=1000, rate=200, hold_after=5)
    for s in servers:
        s.queue(QUICK, held)  # the warm-up (it readies each lane's client and connection), then held
    three = [lane(n, s) for n, s in zip("ABC", servers)]
    c = Comparison(USER, lanes=three, mode=RACE, runner=runner).start()
    recs = [s.wait_for_hold() for s in servers]  # every lane mid-stream, held by the test
    rnd = c.current
    # All three held at once: they were sent together (the 10 ms target is `make bench`'s figure).
    assert rnd.send_spread_s is not None and c.send_spread_s() == rnd.send_spread_s
    c.stop()
    closed = [s.wait_for_disconnect(r.id) for s, r in zip(servers, recs)]
    assert c.wait(5)
    assert [g.state for g in rnd.generations] == [STOPPED] * 3
    stop_requested = min(g.t_stop_requested for g in rnd.generations)
    assert all(0 <= t - stop_requested < PROMPTLY_S for t in closed)


def test_stop_one_lane_leaves_the_others_running(runner, servers):
    a, b, _ = servers
    a.set_script(Script(ttft=0.0, tokens=1000, rate=200, hold_after=3))
    b.set_script(Script(ttft=0.0, tokens=30, rate=300))
    c = Comparison(USER, lanes=[lane("A", a), lane("B", b)], mode=RACE, repeat=2, warmup=False,
                   runner=runner).start()
    rec = a.wait_for_hold()
    c.stop_lane("a")
    a.wait_for_disconnect(rec.id)
    assert c.wait(30)
    assert [r.get("a") is not None for r in c.rounds] == [True, False]  # no more of the stopped lane
    assert [r.get("b").state for r in c.rounds] == [DONE, DONE]
    assert c.outcomes()["a"][STOPPED] == 1
    assert c.verdict() == "Only B finished; lane A was stopped"


def test_lanes_verdict_names_the_winner_per_figure():
    e = Endpoint("remote", "http://h/v1", "m")
    a, b, w = Lane("a", "llama-3-8b", e), Lane("b", "gpt-4o-mini", e), Lane("w", "whole", e, False)

    def rows(first, e2e, rate):
        return [{"metric": m, **{f"{k}_median": v for k, v in zip("abw", values)}}
                for m, values in (("first_text_s", first), ("e2e_s", e2e), ("tok_per_s", rate))]
    ok = {k: {"runs": 1, DONE: 1, STOPPED: 0, FAILED: 0, "errors": []} for k in "abw"}
    assert compare.lanes_verdict(rows((0.3, 0.93, 2.3), (2.3, 5.0, 3.2), (100, 50, 87)), ok, [a, b, w]) == (
        "llama-3-8b showed text 3.1× sooner than gpt-4o-mini; llama-3-8b finished 1.4× faster than whole; "
        "llama-3-8b decoded 2.0× faster than gpt-4o-mini")
    same = compare.lanes_verdict(rows((0.3, 0.31, None), (2.0, 2.02, None), (None, None, None)), ok, [a, b, w])
    assert same.startswith("llama-3-8b and gpt-4o-mini showed text at about the same time; ")
    failed = dict(ok, b={"runs": 1, DONE: 0, STOPPED: 0, FAILED: 1, "errors": ["Could not connect to x."]})
    assert compare.lanes_verdict(rows((0.3, None, 2.3), (2.3, None, 2.3), (100, None, 87)), failed, [a, b, w]) \
        .endswith("; lane gpt-4o-mini failed: Could not connect to x.")
    none = {k: {"runs": 1, DONE: 0, STOPPED: 0, FAILED: 1, "errors": ["boom"]} for k in "abw"}
    assert compare.lanes_verdict([], none, [a, b, w]).startswith("No comparison: lane llama-3-8b failed: boom")


def test_the_default_pair_keeps_its_verdict_and_keys():
    e = Endpoint("remote", "http://h/v1", "m")
    c = Comparison(USER, e)
    assert c.is_default_pair and c.lane_keys == ["stream", "non-stream"]
    assert lanes.is_default_pair(lanes.default_lanes(e)) and not lanes.is_default_pair(
        [Lane("a", "A", e), Lane("b", "B", Endpoint("remote", "http://other/v1", "m"), False)])
    # Two lanes of one endpoint, streamed and not, but named by the person: the lanes verdict.
    named = Comparison(USER, lanes=[Lane("x", "X", e), Lane("y", "Y", e, False)])
    assert not named.is_default_pair and named.verdict().startswith("No comparison: lane X did not run")
    with pytest.raises(ValueError, match="an endpoint or lanes"):
        Comparison(USER)
    assert SEQUENTIAL in compare.MODES
