"""One reply, one set of figures (issue 9 item 8): the sidebar panel, the footer line under the
reply and its Runs row agree — also when the server sent no usage and the connection dropped
mid-stream (tokens counted locally, marked "~"), and for a continued reply (labelled).

The app runs as AppTest (the whole chat page) and, for the dropped connection, in Chromium.
"""
import re

import pytest

from streamchat.store import Store
from streamchat.tokens import count_text_tokens
from tests.harness.browser import send_prompt, wait_for_text, wait_idle
from tests.harness.scripted_server import Script, ScriptedServer

DROPPED = dict(tokens=400, rate=100, token_text="w{i} ", drop_after=60, send_usage=False)


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(Script(tokens=3, rate=0)) as srv:
        yield srv


@pytest.fixture
def app(server, open_page):
    server.reset()
    return open_page(server)


def footer(at) -> str:
    """The one-line figures under the last reply."""
    lines = [c.value for m in at.chat_message if m.name == "assistant" for c in m.caption
             if "tokens" in c.value]
    assert lines, "no figures line under the reply"
    return lines[-1]


def panel(at) -> dict:
    return {m.label: m.value for m in at.sidebar.metric}


def assert_one_set_of_figures(shown: dict, line: str, run: dict) -> None:
    """Sidebar values, footer line and Runs row: the same numbers, "~" on the estimated ones."""
    mark = "~" if run["output_tokens_source"] in ("approximate", "estimated") else ""
    assert shown["Output tokens"] == f"{mark}{run['output_tokens']}"
    assert f"{mark}{run['output_tokens']} tokens" in line
    assert shown["Decode tok/s"] == f"{mark}{run['decode_tps']:.1f}"
    assert f"{mark}{run['decode_tps']:.1f} tok/s" in line


def test_dropped_connection_without_usage_shows_one_set_of_figures(app, server, tmp_path):
    server.queue(Script(**DROPPED))
    app.chat_input[0].set_value("drop me").run()
    assert not app.exception
    run = Store(tmp_path / "data").runs()[0]
    assert run["state"] == "failed" and run["error_kind"]
    text = "".join(f"w{i} " for i in range(60))
    counted = count_text_tokens(text, "scripted")
    assert counted.n != 60     # the chunk estimate (what the sidebar used to show) is wrong here
    assert (run["output_tokens"], run["output_tokens_source"]) == (counted.n, "approximate")
    assert_one_set_of_figures(panel(app), footer(app), run)
    app.run()                  # a later run shows the last reply's figures again: the same ones
    assert_one_set_of_figures(panel(app), footer(app), run)


def test_a_continued_reply_says_its_figures_cover_the_continuation(app, server, tmp_path):
    server.queue(Script(tokens=40, rate=400, token_text="c{i} ", finish_reason="length",
                        send_usage=False))
    app.chat_input[0].set_value("a long one").run()
    server.queue(Script(tokens=25, rate=400, token_text="d{i} ", send_usage=False))
    next(b for b in app.button if b.label == "▶ Continue").click().run()
    assert not app.exception
    assert server.requests()[-1].body["messages"][-1]["role"] == "assistant"
    store = Store(tmp_path / "data")
    first, second = sorted(store.runs(), key=lambda r: r["id"])
    counted = count_text_tokens("".join(f"d{i} " for i in range(25)), "scripted")
    assert second["output_tokens"] == counted.n          # the continuation's own tokens
    assert second["extra"]["continuation"] is True and not first["extra"].get("continuation")
    line = footer(app)
    assert line.startswith("continuation: ")
    assert_one_set_of_figures(panel(app), line, second)
    assert any("continuation only" in md.value for md in app.sidebar.markdown)
    conv = store.list_conversations()[0]
    reply = store.conversation_messages(conv["id"])[-1]
    assert reply["content"].startswith("c0 c1") and "d24" in reply["content"]
    assert reply["summary"] == line and reply["metrics"]["continuation"] is True


# ---- the same in a real browser ----------------------------------------------------------------

def sidebar_metric(page, label: str) -> str:
    metric = page.locator('[data-testid="stSidebar"] [data-testid="stMetric"]').filter(
        has_text=label).first
    return metric.locator('[data-testid="stMetricValue"]').inner_text().strip()


@pytest.mark.timeout(180)
def test_in_the_browser_sidebar_footer_and_runs_row_agree_after_a_drop(stack, page, data_dir):
    srv = stack[0]
    srv.queue(DROPPED)
    send_prompt(page, "drop me in the browser")
    wait_for_text(page, "w59", timeout=20)
    page.wait_for_function(   # the figures line under the reply
        """() => [...document.querySelectorAll('[data-testid="stChatMessage"] '
                  + '[data-testid="stCaptionContainer"]')].some(c => /\\d tokens/.test(c.innerText))""",
        timeout=20000)
    wait_idle(page)
    run = Store(data_dir).runs()[0]
    assert run["state"] == "failed" and run["output_tokens_source"] == "approximate"
    captions = page.locator('[data-testid="stChatMessage"] [data-testid="stCaptionContainer"]')
    line = next(t for t in reversed(captions.all_inner_texts()) if re.search(r"\d tokens", t))
    shown = {label: sidebar_metric(page, label) for label in ("Output tokens", "Decode tok/s")}
    assert_one_set_of_figures(shown, line, run)
