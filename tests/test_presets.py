"""Demo presets (issue 9 item 4): per-provider defaults, and llama.cpp-only sampling fields sent
to the embedded server only (OpenAI answers 400 to fields it does not know)."""
import dataclasses

import pytest

from streamchat import local_server, presets
from streamchat.config import LOCAL, REMOTE
from streamchat.generation import (
    DONE,
    LLAMA_CPP_FIELDS,
    Endpoint,
    Generation,
    GenerationParams,
    GenerationRequest,
)
from tests.harness.scripted_server import Script, ScriptedServer

USER = ({"role": "user", "content": "hi"},)


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(Script(tokens=3, rate=0)) as srv:
        yield srv


def kwargs_for(runner, params: GenerationParams, provider: str) -> dict:
    endpoint = Endpoint(provider, "http://127.0.0.1:9/v1", "m", "key")
    return runner._request_kwargs(Generation(GenerationRequest(USER, params=params)), endpoint)


def test_embedded_defaults_fight_repetition_and_remote_defaults_are_unchanged():
    local = presets.default_params(LOCAL)
    assert local.repeat_penalty and local.repeat_penalty > 1.0
    assert local.dry_multiplier and local.dry_multiplier > 0
    assert local.repeat_last_n and local.repeat_last_n >= 64
    assert 0 < local.temperature <= 0.7 and 128 <= local.max_tokens <= 512
    remote = presets.default_params(REMOTE)
    assert remote == GenerationParams(temperature=0.7, max_tokens=512)
    assert all(getattr(remote, name) is None for name in LLAMA_CPP_FIELDS)


def test_example_and_compare_prompts_are_new_and_distinct():
    assert len(presets.EXAMPLE_PROMPTS) == 4 and len(set(presets.EXAMPLE_PROMPTS)) == 4
    assert all(p.strip() for p in presets.EXAMPLE_PROMPTS) and presets.COMPARE_PROMPT.strip()
    # The prompts that made the 135M model loop in front of an audience are gone.
    assert not any("Count to 100" in p for p in (*presets.EXAMPLE_PROMPTS, presets.COMPARE_PROMPT))


def test_llama_cpp_fields_go_in_extra_body_only_for_the_embedded_server(runner):
    params = dataclasses.replace(presets.default_params(LOCAL), frequency_penalty=0.2, top_k=40,
                                 min_p=0.05, seed=7)
    local = kwargs_for(runner, params, LOCAL)
    assert local["extra_body"] == {"repeat_penalty": params.repeat_penalty,
                                   "repeat_last_n": params.repeat_last_n,
                                   "dry_multiplier": params.dry_multiplier,
                                   "top_k": 40, "min_p": 0.05}
    assert local["temperature"] == params.temperature and local["max_tokens"] == params.max_tokens
    assert local["frequency_penalty"] == 0.2 and local["seed"] == 7   # OpenAI fields: top level
    assert not set(LLAMA_CPP_FIELDS) & set(local)

    remote = kwargs_for(runner, params, REMOTE)
    assert "extra_body" not in remote and not set(LLAMA_CPP_FIELDS) & set(remote)
    assert remote["frequency_penalty"] == 0.2 and remote["temperature"] == params.temperature


def test_unset_fields_are_not_sent(runner):
    kwargs = kwargs_for(runner, GenerationParams(), LOCAL)
    assert set(kwargs) == {"model", "messages"}


@pytest.mark.parametrize("provider, expect_llama", [(REMOTE, False), (LOCAL, True)])
def test_request_body_on_the_wire(runner, server, provider, expect_llama):
    """Through the real openai client: extra_body is merged into the JSON body."""
    server.reset()
    params = dataclasses.replace(presets.default_params(LOCAL), seed=1)
    g = runner.start(GenerationRequest(USER, params=params),
                     Endpoint(provider, server.base_url, "scripted", "key"))
    assert g.wait(10) and g.state == DONE, g.error
    body = server.requests()[-1].body
    assert body["temperature"] == params.temperature and body["max_tokens"] == params.max_tokens
    sent = {name: body[name] for name in LLAMA_CPP_FIELDS if name in body}
    if expect_llama:
        assert sent == {"repeat_penalty": params.repeat_penalty,
                        "repeat_last_n": params.repeat_last_n,
                        "dry_multiplier": params.dry_multiplier}
    else:
        assert sent == {}


@pytest.mark.parametrize("threads, text", [(1, "1 CPU thread"), (3, "3 CPU threads")])
def test_caption_states_the_thread_count_the_server_really_uses(monkeypatch, threads, text):
    monkeypatch.setattr(local_server, "default_threads", lambda: threads)
    caption = presets.local_model_caption()
    assert caption.endswith(text) and "SmolLM2-135M-Instruct" in caption


def test_thread_count_is_the_one_the_embedded_server_runs_with():
    server = local_server.LocalServer("/nonexistent/model.gguf")   # not started
    assert presets.local_threads() == server.threads == local_server.default_threads()


def test_model_label_names_the_model():
    assert presets.local_model_label().startswith("SmolLM2-135M-Instruct")
    assert presets.local_model_label("/models/qwen2.5-0.5b-q4.gguf").startswith("qwen2.5-0.5b-q4")
