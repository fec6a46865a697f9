"""Demo defaults: generation parameters per provider, example prompts, the model's name for people.

The embedded model is SmolLM2-135M-Instruct (Q4_1) on one or two CPU threads. With llama.cpp's
server defaults (no repetition penalty) and the old example prompts it looped: a poem repeating
"A canvas of wonders," for 500 tokens, "1234567890123…" for "count to 100" at temperature 0,
a story retelling its first paragraph until the token cap. The values below were chosen by
running the real server on a dozen prompts × several seeds and reading the replies (issue 9
item 4); the numbers behind them are in the module's tests and the commit message.

- `repeat_penalty` 1.1 over the last 128 tokens plus DRY (`dry_multiplier` 0.8, llama.cpp's
  default base 1.75 / allowed length 2): DRY alone still looped at temperature 0; a stronger
  plain penalty (1.15-1.3) broke code (it avoids repeating identifiers) and made replies longer.
- temperature 0.5: 0.7 wandered off topic more, 0.3 looped more often on long replies.
- max tokens 400: every example reply ends on its own well below it (40-260 tokens); the
  Compare prompt's reply is about 360 tokens at temperature 0; a runaway reply stops after
  ~10 s on one CPU thread instead of ~12-25 s at 512.

Remote endpoints keep the previous defaults and get no llama.cpp-only field (OpenAI answers 400
to fields it does not know; the runner sends them only to the embedded server).
"""

from __future__ import annotations

import os
from pathlib import Path

from .config import LOCAL
from .generation import GenerationParams

REMOTE_PARAMS = GenerationParams(temperature=0.7, max_tokens=512)
LOCAL_PARAMS = GenerationParams(
    temperature=0.5,
    max_tokens=400,
    repeat_penalty=1.1,
    repeat_last_n=128,
    dry_multiplier=0.8,
)

# Four prompts a 135M model answers well, each showing something different while it streams:
# verse line by line, a Markdown list, a short factual answer (fast to finish), a code block.
EXAMPLE_PROMPTS: tuple[str, ...] = (
    "Write a short poem about the ocean.",
    "Give me three tips for staying focused while studying.",
    "What is photosynthesis? Explain in a few sentences.",
    "Write a Python function that checks if a number is even.",
)

# A reply of a few hundred tokens (about 360 with the embedded defaults at temperature 0), so
# streaming visibly shows text long before a non-streamed reply arrives; it does not loop.
COMPARE_PROMPT = "Tell me a short story about a robot who learns to paint."

BUNDLED_MODEL_LABEL = "SmolLM2-135M-Instruct (Q4_1)"


def default_params(provider: str) -> GenerationParams:
    """The generation defaults for a provider ("local" = the embedded llama.cpp server)."""
    return LOCAL_PARAMS if provider == LOCAL else REMOTE_PARAMS


def local_model_label(model_path: str | os.PathLike[str] | None = None) -> str:
    """The embedded model's name as people should read it: "SmolLM2-135M-Instruct (Q4_1),
    embedded", or the GGUF file's name when LOCAL_MODEL_PATH names another model."""
    from .local_server import BUNDLED_FILE

    if not model_path or Path(model_path).name == Path(BUNDLED_FILE).name:
        return f"{BUNDLED_MODEL_LABEL}, embedded"
    return f"{Path(model_path).stem}, embedded"


def local_threads() -> int:
    """CPU threads the embedded server runs with (local_server decides: cores - 1, at least 1)."""
    from .local_server import default_threads

    return default_threads()


def local_model_caption(model_path: str | os.PathLike[str] | None = None) -> str:
    """One line for the settings: what runs where, with the real thread count."""
    threads = local_threads()
    model = f"model `{model_path}`" if model_path else BUNDLED_MODEL_LABEL
    return (
        f"llama.cpp server (xllamacpp) on 127.0.0.1, {model}, "
        f"{threads} CPU thread{'' if threads == 1 else 's'}"
    )
