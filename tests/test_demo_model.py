"""The demo prompts against the real embedded model (SmolLM2-135M on the CPU), issue 9 item 4.

With llama.cpp's defaults (no repetition penalty) and the old prompts the model looped in front
of the audience: "1234567890123…" for the Compare prompt, a poem repeating one line for 500
tokens, a story retelling its first paragraph. Here every example prompt, with the embedded
defaults of `streamchat.presets`, must end on its own (mostly) and never loop. Deterministic:
a fixed seed, greedy (temperature 0, the hardest case for loops, and what Compare uses) and the
preset temperature; replies are capped at 200 tokens to keep the test short.
"""
import collections
import dataclasses
import zlib

import pytest

from streamchat import presets
from streamchat.compare import params_for_comparison
from streamchat.config import LOCAL
from streamchat.generation import DONE, GenerationRequest

pytestmark = pytest.mark.timeout(300)
SYSTEM = {"role": "system", "content": "You are a helpful assistant."}   # the app's default
CAP = 200
MAX_4GRAM_REPEATS = 4       # a sane 200-token reply repeats a 4-word sequence 1-3 times
MIN_COMPRESSION = 0.3       # zlib size / text size: prose ~0.5-0.7, "1234567890123…" 0.04


@pytest.fixture(scope="module")
def endpoint(local_endpoint):
    return local_endpoint


def looping(text: str) -> str | None:
    """Why `text` reads as a loop, or None."""
    words = text.split()
    grams = collections.Counter(zip(words, words[1:], words[2:], words[3:]))
    if grams:
        gram, n = grams.most_common(1)[0]
        if n > MAX_4GRAM_REPEATS:
            return f"{' '.join(gram)!r} {n} times"
    data = text.encode()
    if len(data) >= 80 and len(zlib.compress(data, 9)) / len(data) < MIN_COMPRESSION:
        return f"compresses to {len(zlib.compress(data, 9)) / len(data):.2f} of its size"
    return None


def ask(runner, endpoint, prompt, params):
    request = GenerationRequest(({**SYSTEM}, {"role": "user", "content": prompt}), params=params)
    g = runner.start(request, endpoint)
    assert g.wait(120) and g.state == DONE, (prompt, g.state, g.error)
    return g


@pytest.mark.parametrize("temperature", [0.0, presets.default_params(LOCAL).temperature])
def test_example_prompts_end_on_their_own_and_do_not_loop(runner, endpoint, temperature):
    params = dataclasses.replace(presets.default_params(LOCAL), temperature=temperature, seed=1,
                                 max_tokens=CAP)
    replies = [ask(runner, endpoint, prompt, params) for prompt in presets.EXAMPLE_PROMPTS]
    loops = {g.request.messages[-1]["content"]: (why, g.text[:300]) for g in replies
             if (why := looping(g.text))}
    assert not loops
    ended = [g.finish_reason == "stop" and g.usage["completion_tokens"] < CAP for g in replies]
    assert sum(ended) >= len(replies) - 1, [(g.finish_reason, g.usage) for g in replies]


def test_compare_prompt_gives_a_long_reply_that_does_not_loop(runner, endpoint):
    # As the Compare page asks: the chat's parameters, temperature 0 and a fixed seed.
    params = params_for_comparison(dataclasses.replace(
        presets.default_params(LOCAL), temperature=None, seed=None, max_tokens=CAP))
    g = ask(runner, endpoint, presets.COMPARE_PROMPT, params)
    assert looping(g.text) is None, (looping(g.text), g.text[:300])
    # Long enough that streaming shows text well before a non-streamed reply arrives.
    assert g.usage["completion_tokens"] >= 150, g.text
