"""Demo defaults per provider: generation parameters, example prompts, the model's display name.

PROVISIONAL values (being tuned against the embedded model for issue 9 item 4).
"""
from __future__ import annotations

from .config import LOCAL, REMOTE
from .generation import GenerationParams

REMOTE_PARAMS = GenerationParams(temperature=0.7, max_tokens=512)
LOCAL_PARAMS = GenerationParams(temperature=0.7, max_tokens=512)

EXAMPLE_PROMPTS: tuple[str, ...] = (
    "Count to 100 with commas, no line breaks.",
    "Explain streaming vs non-streaming LLM replies in three short paragraphs.",
    "Write a Python function that reverses a string, with a docstring.",
    "List five tips for giving a good demo.",
)
COMPARE_PROMPT = "Count to 100 with commas, no line breaks."


def default_params(provider: str) -> GenerationParams:
    return LOCAL_PARAMS if provider == LOCAL else REMOTE_PARAMS
