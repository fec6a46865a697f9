"""Issue 12: "request sent" is when the request reaches the connection; the client's own set-up
(the SDK building the request, connecting) is its own figure, not part of TTFT; warm() opens the
connection before the first request."""
from __future__ import annotations

import time

import pytest

from streamchat import metrics
from streamchat.generation import DONE, Endpoint, GenerationRequest
from streamchat.runner import Runner
from tests.harness.bounds import follows
from tests.harness.scripted_server import Script, ScriptedServer

REQUEST = GenerationRequest(({"role": "user", "content": "hi"},))


@pytest.fixture
def fresh_runner():
    r = Runner()          # a cold client, as in a freshly started app
    yield r
    r.shutdown()


def test_request_sent_is_stamped_at_the_connection_and_set_up_is_its_own_figure(fresh_runner):
    with ScriptedServer(Script(ttft=0.3, tokens=20, rate=100)) as srv:
        g = fresh_runner.start(REQUEST, Endpoint("remote", srv.base_url, "scripted"))
        assert g.wait(10) and g.state == DONE
        record = srv.requests()[-1]
    assert g.t_request_start < g.t_sent <= record.t_received + 0.05
    m = metrics.compute(g)
    assert m.setup.value == pytest.approx(g.t_sent - g.t_request_start)
    assert m.setup.value > 0
    # TTFT is measured from the connection: what the server did, plus the loopback, nothing else
    # (no set-up: that is before t_sent).
    assert follows(m.ttft.value, record.t_first_content_sent - g.t_sent)


def test_warm_builds_the_client_before_the_first_request(fresh_runner):
    with ScriptedServer(Script(tokens=3, rate=0)) as srv:
        endpoint = Endpoint("remote", srv.base_url, "scripted")
        fresh_runner.warm(endpoint, key=endpoint)
        deadline = time.monotonic() + 10
        while not fresh_runner._clients:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        fresh_runner.warm(endpoint, key=endpoint)        # once per key
        assert len(fresh_runner._clients) == 1
        g = fresh_runner.start(REQUEST, endpoint)
        assert g.wait(10) and g.state == DONE
        assert len(srv.requests()) == 1                    # warming sent no chat request
