"""Images in replies are links unless the user allows them (issue 10 item 16), AppTest."""
from tests.harness.scripted_server import Script, ScriptedServer

REPLY = "Look: ![pixel](http://tracker.example/p.png) done"


def assistant_markdown(at) -> str:
    return " ".join(m.value for c in at.chat_message if c.name == "assistant" for m in c.markdown)


def test_images_are_links_by_default_and_load_when_allowed(open_page):
    with ScriptedServer(Script(text=REPLY)) as srv:
        at = open_page(srv)
        at.chat_input[0].set_value("picture").run()
        assert not at.exception
        assert "![pixel](" not in assistant_markdown(at) and "🖼 pixel" in assistant_markdown(at)
        at.checkbox(key="opt_allow_images").check().run()
        assert "![pixel](http://tracker.example/p.png)" in assistant_markdown(at)
