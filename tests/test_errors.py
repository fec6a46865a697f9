import httpx2
import openai

from streamchat import errors


def connection_error():
    return openai.APIConnectionError(request=httpx2.Request("POST", "http://127.0.0.1:9/v1"))


def test_secrets_are_redacted_from_messages():
    assert errors.redact("bad key sk-abcdef123456 and Bearer xyz", ("mine-secret",)) == \
        "bad key *** and ***"
    assert errors.redact("echo mine-secret!", ("mine-secret",)) == "echo ***!"


def test_unreachable_names_the_url_and_the_next_step():
    info = errors.classify(connection_error(), base_url="http://127.0.0.1:9/v1")
    assert info.kind == "unreachable"
    assert "http://127.0.0.1:9/v1" in info.message and "base URL" in info.message


def test_a_crashed_embedded_server_says_it_restarts_on_retry():
    info = errors.classify(connection_error(), embedded=True, had_content=True)
    assert info.kind == "dropped"
    assert "partial reply is kept" in info.message and "press Retry" in info.message


def test_user_facing_errors_are_shown_as_written():
    info = errors.classify(errors.UserFacingError("Local model file not found: /x.gguf."))
    assert (info.kind, info.message) == ("setup", "Local model file not found: /x.gguf.")
