"""Property test of chunk handling: random SSE streams, cut into random byte pieces, through the
real Runner (openai's AsyncOpenAI over httpx2) from the scripted server in raw mode on 127.0.0.1.

Each example hands the server the exact byte pieces to send (one HTTP chunk each, so the client
sees the same boundaries: inside multi-byte UTF-8 characters, inside "\\n\\n", anywhere).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from streamchat.generation import DONE, FAILED, Endpoint, GenerationRequest, Timeouts
from streamchat.text import clean_text
from tests.harness.scripted_server import Script, ScriptedServer

USER = ({"role": "user", "content": "hi"},)
TIMEOUTS = Timeouts(connect=5.0, first_token=15.0, idle=15.0)
WAIT_S = 20.0   # generous: the machine is shared; a healthy example takes milliseconds


# ---------------------------------------------------------------- the server

@pytest.fixture(scope="module")
def piece_server():
    """The scripted server; each example queues Script(raw_pieces=...): its exact byte pieces as
    a chunked text/event-stream body, one HTTP chunk per piece."""
    with ScriptedServer(Script(status=500)) as srv:   # a request without a queued script: 500
        yield srv


def serve(srv: ScriptedServer, pieces: list[bytes]) -> None:
    srv.queue(Script(raw_pieces=pieces))


# ---------------------------------------------------------------- the streams

@dataclass
class Stream:
    events: list[str] = field(default_factory=list)  # SSE lines (without the blank-line ending)
    text: str = ""            # what the runner must collect (content of choice 0 before any error)
    finished: bool = False    # a finish_reason reached the runner
    malformed: bool = False   # a `data:` line that is not JSON comes before the stream's end
    body: bytes = b""


OPTIONAL_TOP = ("id", "object", "created", "model")
EXTRA_FIELDS = st.dictionaries(
    st.sampled_from(["system_fingerprint", "service_tier", "obfuscation", "x_vendor", "timings",
                     "logprobs", "prompt_filter_results"]),
    st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2),
              st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)),
    max_size=2)
CONTENT = (st.text(max_size=12)
           | st.text(st.characters(min_codepoint=0x80), min_size=1, max_size=6)   # multi-byte UTF-8
           | st.sampled_from(["\n\n", "\r\n", "data: [DONE]\n\n", "é", "😀", "語", "\u2028", "\x00",
                              "\\", '"']))
FINISH = st.sampled_from(["stop", "length", "content_filter", "tool_calls"])


@st.composite
def chunk_event(draw):
    """One event: (kind, payload dict or raw data string)."""
    kind = draw(st.sampled_from(["role", "content", "content", "content", "content", "empty",
                                 "usage", "finish", "content_finish", "other_choice", "comment"]))
    if kind == "comment" and draw(st.booleans()):
        kind = "not_json"   # rarer than the rest: one bad line ends the stream
    if kind == "comment":
        return kind, draw(st.sampled_from([": keep-alive", ": ping " + "x" * 3]))
    if kind == "not_json":
        return kind, draw(st.sampled_from(["{not json", "{\"choices\": [", "nope", "[DONE"]))
    top = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    for name in OPTIONAL_TOP:
        if draw(st.booleans()) and draw(st.booleans()):   # each dropped in ~1 of 4
            del top[name]
    choice: dict = {"index": 0}
    if draw(st.integers(0, 3)) == 0:
        del choice["index"]
    delta: dict = {}
    if kind == "role":
        delta = {"role": "assistant"}
        if draw(st.booleans()):
            delta["content"] = ""
    elif kind in ("content", "content_finish", "other_choice"):
        delta = {"content": draw(CONTENT)}
        if draw(st.integers(0, 4)) == 0:
            delta["role"] = "assistant"
    elif kind == "empty" and draw(st.booleans()):
        delta = {"content": None} if draw(st.booleans()) else {"content": ""}
    if kind in ("finish", "content_finish"):
        choice["finish_reason"] = draw(FINISH)
    elif draw(st.booleans()):
        choice["finish_reason"] = None      # present but null, as OpenAI sends it
    if kind == "other_choice":
        choice["index"] = 1                 # n > 1: the runner shows choice 0 only
        if draw(st.booleans()):
            choice["finish_reason"] = draw(FINISH)
    if kind != "empty" or draw(st.integers(0, 3)) > 0:
        choice["delta"] = delta             # an empty chunk may even lack `delta`
    payload = dict(top)
    if kind == "usage":
        payload["choices"] = []
        if draw(st.integers(0, 4)) == 0:
            del payload["choices"]
        payload["usage"] = {"prompt_tokens": draw(st.integers(0, 50)),
                            "completion_tokens": draw(st.integers(0, 50)),
                            "total_tokens": draw(st.integers(0, 100))}
    else:
        payload["choices"] = [choice]
    payload.update(draw(EXTRA_FIELDS))
    return kind, payload


@st.composite
def streams(draw) -> Stream:
    s = Stream()
    ensure_ascii = draw(st.integers(0, 3)) == 0
    line_end = draw(st.sampled_from(["\n", "\n", "\n", "\r\n"]))
    for kind, payload in draw(st.lists(chunk_event(), max_size=14)):
        if kind == "comment":
            s.events.append(payload)
            continue
        if kind == "not_json":
            s.events.append("data: " + payload)
            s.malformed = True
            continue
        s.events.append("data: " + json.dumps(payload, ensure_ascii=ensure_ascii))
        if s.malformed:
            continue   # the runner fails at the first bad line; later chunks never count
        for choice in payload.get("choices", []):
            if choice.get("index", 0) != 0:
                continue
            # as the runner keeps it: NULs dropped, lone surrogates replaced (clean_text)
            s.text += clean_text((choice.get("delta") or {}).get("content") or "")
            if choice.get("finish_reason"):
                s.finished = True
    if draw(st.booleans()):   # the usual ending: finish_reason, then the usage-only chunk
        s.events.append('data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}')
        s.finished = s.finished or not s.malformed
        if draw(st.booleans()):
            s.events.append('data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,'
                            '"total_tokens":3}}')
    if draw(st.booleans()):
        s.events.append("data: [DONE]")
    if draw(st.integers(0, 5)) == 0:   # a chunk after [DONE] (ignored) or as the last event
        after_done = bool(s.events) and s.events[-1] == "data: [DONE]"
        s.events.append("data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": "AFTER"}}]}))
        if not after_done and not s.malformed:
            s.text += "AFTER"
    s.body = "".join(e + line_end + line_end for e in s.events).encode()
    return s


@st.composite
def cut(draw, body: bytes) -> list[bytes]:
    """Random byte pieces, with cuts inside multi-byte UTF-8 characters and inside line endings
    and "\\n\\n" on purpose; sometimes one byte each (every boundary is cut)."""
    if not body:
        return [b""]
    if len(body) <= 600 and draw(st.integers(0, 4)) == 0:
        return [body[i:i + 1] for i in range(len(body))]
    tricky = [i for i in range(1, len(body))
              if 0x80 <= body[i] < 0xC0 or body[i - 1:i + 1] in (b"\n\n", b"\r\n", b"\n\r")]
    points = set(draw(st.lists(st.integers(1, max(1, len(body) - 1)), max_size=20)))
    if tricky:
        points |= set(draw(st.lists(st.sampled_from(tricky), max_size=10)))
    bounds = [0, *sorted(points), len(body)]
    return [body[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


@st.composite
def cut_streams(draw):
    s = draw(streams())
    return s, draw(cut(s.body))


def _cuts(pieces: list[bytes]):
    """Where the pieces were cut (for hypothesis statistics: --hypothesis-show-statistics)."""
    offset, body = 0, b"".join(pieces)
    for piece in pieces[:-1]:
        offset += len(piece)
        if 0x80 <= body[offset] < 0xC0:
            yield "inside a UTF-8 character"
        if body[offset - 1:offset + 1] in (b"\n\n", b"\r\n", b"\n\r"):
            yield "inside a line ending or event separator"


# ---------------------------------------------------------------- the property

@settings(max_examples=int(os.environ.get("PROP_EXAMPLES", 100)), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(case=cut_streams())
def test_any_chunk_sequence_in_any_byte_pieces_ends_cleanly(runner, piece_server, case):
    s, pieces = case
    assert b"".join(pieces) == s.body
    for where in set(_cuts(pieces)):
        event(f"cut {where}")
    serve(piece_server, pieces)
    endpoint = Endpoint("remote", piece_server.base_url, "m", "sk-property-test-key")
    g = runner.start(GenerationRequest(USER, timeouts=TIMEOUTS), endpoint)   # never raises
    assert g.wait(WAIT_S), f"generation still {g.state} after {WAIT_S}s"
    assert g.state in (DONE, FAILED), g.state
    if g.state == FAILED:
        assert g.error is not None and g.error.message.strip()
        assert "Traceback" not in g.error.message
        assert "sk-property-test-key" not in g.error.message
    else:
        assert g.error is None

    event(f"outcome: {g.state} {g.error.kind if g.error else ''}")
    if s.malformed:
        assert g.state == FAILED and g.error.kind == "malformed", (g.error, s.events)
        assert g.text == s.text, (s.events, pieces)   # what came before the bad line
    else:
        # Well-formed: exactly the content deltas of choice 0, in order, byte for byte.
        assert g.text == s.text, (s.events, [p for p in pieces])
        expected = DONE if (s.finished and s.text) else FAILED
        assert g.state == expected, (g.state, g.error, s.events)
        if g.state == FAILED:
            assert g.error.kind == ("empty_reply" if s.finished else "dropped"), g.error


def test_piece_server_splits_reach_the_client_as_sent(runner, piece_server):
    """Sanity check of the harness: a reply cut inside a 4-byte character and inside "\\n\\n"."""
    body = ('data: {"choices":[{"index":0,"delta":{"content":"a😀b"}}]}\n\n'
            'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
            'data: [DONE]\n\n').encode()
    emoji = body.index("😀".encode())
    blank = body.index(b"\n\n")
    pieces = [body[:emoji + 1], body[emoji + 1:emoji + 3], body[emoji + 3:blank + 1], body[blank + 1:]]
    serve(piece_server, pieces)
    g = runner.start(GenerationRequest(USER, timeouts=TIMEOUTS),
                     Endpoint("remote", piece_server.base_url, "m", "k"))
    assert g.wait(WAIT_S)
    assert (g.state, g.text, g.finish_reason) == (DONE, "a😀b", "stop")


WRONG_SHAPES = ["null", "5", '"text"', "[]", '{"choices": [7]}', '{"choices": [{"index": 0, "delta": "x"}]}',
                '{"choices": [{"index": 0, "delta": {"content": 5}}]}']


def _run_with_bad_chunk(runner, piece_server, line: str):
    body = ('data: {"choices":[{"index":0,"delta":{"content":"kept"}}]}\n\n'
            f"data: {line}\n\n"
            'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
    serve(piece_server, [body.encode()])
    g = runner.start(GenerationRequest(USER, timeouts=TIMEOUTS),
                     Endpoint("remote", piece_server.base_url, "m", "k"))
    assert g.wait(WAIT_S)
    return g


@pytest.mark.parametrize("line", WRONG_SHAPES)
def test_json_of_the_wrong_shape_fails_cleanly_and_keeps_the_text(runner, piece_server, line):
    g = _run_with_bad_chunk(runner, piece_server, line)
    assert g.state == FAILED and g.text == "kept"
    assert g.error.message.strip() and "Traceback" not in g.error.message


# Valid JSON of the wrong shape (null, a number, a string delta…) is a malformed chunk too.
@pytest.mark.parametrize("line", WRONG_SHAPES)
def test_json_of_the_wrong_shape_is_reported_as_a_malformed_chunk(runner, piece_server, line):
    g = _run_with_bad_chunk(runner, piece_server, line)
    assert g.error.kind == "malformed", g.error
