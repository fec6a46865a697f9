"""Compare page with more lanes (AppTest against scripted servers): a third lane on another server,
a dead lane failing on its own, and a key typed for one lane never reaching another's server."""
import pytest

from tests.harness.processes import free_port
from tests.harness.scripted_server import Script, ScriptedServer

FAST = Script(ttft=0.05, tokens=20, rate=600)


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(FAST) as srv:
        yield srv


@pytest.fixture(scope="module")
def other():
    with ScriptedServer(FAST) as srv:
        yield srv


@pytest.fixture
def page(server, other, open_page, monkeypatch):
    """The Compare page with STREAMCHAT_ENDPOINTS offering `other` as endpoint "b"."""
    server.reset()
    other.reset()
    monkeypatch.setenv("STREAMCHAT_ENDPOINTS", f"b={other.base_url}|model-b")
    monkeypatch.delenv("STREAMCHAT_KEY_B", raising=False)
    return open_page(server, "compare")


def lane_box(at, n: int):
    """The column of lane n (0-based): the container keyed cmp-lane-<n>."""
    def walk(node):
        for el in getattr(node, "children", {}).values():
            if getattr(el, "key", None) == f"cmp-lane-{n}":
                return el
            found = walk(el)
            if found is not None:
                return found
        return None
    box = walk(at.main)
    assert box is not None, f"no column for lane {n}"
    return box


def add_lane(at, endpoint: str):
    at.button(key="cmp_add_lane").click().run()
    lane_id = at.session_state["cmp_lane_ids"][-1]
    at.selectbox(key=f"cmp_lane_ep_{lane_id}").set_value(endpoint).run()
    return lane_id


def add_endpoint(at, name: str, url: str, key: str = "", model: str = "m"):
    at.text_input(key="cmp_new_name").set_value(name)
    at.text_input(key="cmp_new_url").set_value(url)
    at.text_input(key="cmp_new_key").set_value(key)
    at.text_input(key="cmp_new_model").set_value(model)
    at.button(key="cmp_add_endpoint").click().run()
    assert not at.session_state["cmp_add_problem"]


def counted(srv):
    return [r for r in srv.requests() if r.body.get("max_tokens") != 1]   # not the warm-ups


def test_a_third_lane_on_another_server_is_run_and_recorded_together(page, server, other, tmp_path):
    from streamchat.store import Store

    other.queue(Script(tokens=1), Script(ttft=0.4, tokens=20, rate=600))   # warm-up, then C: slower
    add_lane(page, "env:b")
    page.radio(key="cmp_mode").set_value("race").run()
    page.button(key="cmp_run").click().run()
    assert not page.exception
    # Lanes A and B on the sidebar's server (streamed and not), C on endpoint b with its model.
    assert sorted(r.stream for r in counted(server)) == [False, True]
    (c,) = counted(other)
    assert c.stream and c.body["model"] == "model-b"
    runs = Store(tmp_path / "data").runs(source="compare")
    assert len(runs) == 3
    assert len({r["compare_id"] for r in runs}) == 1 and runs[0]["compare_id"]
    assert sorted(r["lane"] for r in runs) == ["a", "b", "c"]
    # One row per lane in the summary, one line per lane on the timeline; a winner is named.
    table = page.table[0].value
    assert [lane.split(" · ")[0] for lane in table["Lane"]] == ["A", "B", "C"]
    assert page.success and "A showed text" in page.success[0].value and "sooner than" in page.success[0].value
    assert any("sent within" in c.value for c in page.caption)


def test_a_lane_on_a_closed_port_fails_in_its_own_column_and_the_others_finish(page, server):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    add_endpoint(page, "dead", dead, model="nothing-here")
    add_lane(page, "added:dead")
    page.button(key="cmp_run").click().run()
    assert not page.exception
    errors = [e.value for e in lane_box(page, 2).error]
    assert errors and "127.0.0.1" in errors[0], errors
    assert not lane_box(page, 0).error and not lane_box(page, 1).error
    assert [w.value for w in page.warning if "lane C failed" in w.value], [w.value for w in page.warning]
    assert sorted(r.stream for r in counted(server)) == [False, True]   # A and B ran
    assert all(r.completed for r in counted(server))
    assert "Traceback" not in " ".join(e.value for e in page.error)


def test_a_key_typed_for_one_lane_goes_to_its_server_only(page, server, other):
    third = ScriptedServer(FAST).start()
    try:
        secret = "sk-lane-a-only-7f3e"
        add_endpoint(page, "keyed", third.base_url, key=secret, model="model-k")
        assert page.text_input(key="cmp_new_key").value == ""   # never shown again
        first = page.session_state["cmp_lane_ids"][0]
        page.selectbox(key=f"cmp_lane_ep_{first}").set_value("added:keyed").run()
        second = page.session_state["cmp_lane_ids"][1]
        page.selectbox(key=f"cmp_lane_ep_{second}").set_value("env:b").run()
        page.radio(key="cmp_mode").set_value("race").run()
        page.button(key="cmp_run").click().run()
        assert not page.exception
        assert third.requests() and other.requests()
        assert {r.headers["authorization"] for r in third.requests()} == {f"Bearer {secret}"}
        for srv in (other, server):   # lane B's server (and the sidebar's) never get it
            assert all(secret not in r.headers.get("authorization", "") for r in srv.requests())
        assert {r.headers["authorization"] for r in other.requests()} == {"Bearer none"}
        # Nowhere on the page either.
        shown = [getattr(el, "value", "") for el in page.main.children.values()]
        assert not any(secret in str(v) for v in shown)
    finally:
        third.stop()
