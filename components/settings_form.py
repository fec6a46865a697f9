"""Sidebar settings: provider, model, generation parameters, timeouts, Stream toggle."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import streamlit as st

from streamchat import presets, stop_rules
from streamchat.config import LOCAL, REMOTE, Settings
from streamchat.generation import GenerationParams, Timeouts
from streamchat.providers import (
    ProviderError,
    RemoteConfig,
    list_models,
    local_endpoint,
    model_choices,
    validate_base_url,
)
from streamchat.runner import EndpointSource
from streamchat.store import safe_base_url

PROVIDER_LABELS = {LOCAL: "Embedded model (offline)", REMOTE: "OpenAI-compatible endpoint"}


@dataclass(frozen=True)
class ChatOptions:
    provider: str
    endpoint: EndpointSource | None  # None: not usable, see `problem`
    problem: str | None
    model_label: str
    stream: bool
    system_prompt: str
    params: GenerationParams
    timeouts: Timeouts
    stop_rules: tuple = ()
    hide_matches: bool = False
    allow_images: bool = False  # load images in replies (off: shown as links, nothing fetched)


@st.cache_data(ttl=60, show_spinner=False)
def _models(base_url: str, api_key: str | None) -> tuple[list[str], str | None]:
    try:
        return list_models(base_url, api_key), None
    except ProviderError as exc:
        return [], str(exc)


def settings_form(settings: Settings, container) -> ChatOptions:
    state = st.session_state
    with container:
        # Only the chat uses these two; the shell hides this container on the other pages.
        with st.container(key="sidebar-chat-only"):
            stream = st.toggle(
                "Stream",
                value=True,
                key="opt_stream",
                help="On: tokens appear as they are generated. Off: the whole reply "
                "arrives at once after a live waiting timer.",
            )
            with st.expander("Stop rules", expanded=False):
                rules, hide = stop_rules_fields(bool(stream))
        with st.expander("Settings", expanded=False):
            provider = st.radio(
                "Provider",
                [LOCAL, REMOTE],
                format_func=PROVIDER_LABELS.get,
                index=0 if settings.default_provider == LOCAL else 1,
                key="opt_provider",
            )
            endpoint, problem, model_label = _provider_fields(settings, provider)
            system_prompt = st.text_area(
                "System prompt", value="You are a helpful assistant.", key="opt_system", max_chars=20_000
            )
            preset = presets.default_params(provider)
            _apply_preset_on_provider_change(provider, preset)
            temperature = st.slider(
                "Temperature",
                0.0,
                2.0,
                step=0.05,
                key="opt_temperature",
                help=_preset_help(provider, "temperature"),
            )
            max_tokens = st.number_input(
                "Max tokens",
                min_value=1,
                max_value=131_072,
                step=64,
                key="opt_max_tokens",
                help=_preset_help(provider, "max_tokens"),
            )
            repeat_penalty = None
            if provider == LOCAL:
                repeat_penalty = st.slider(
                    "Repetition penalty",
                    1.0,
                    2.0,
                    step=0.05,
                    key="opt_repeat_penalty",
                    help="llama.cpp's repeat_penalty: above 1 the small model is less likely to "
                    "repeat itself (1 = off). The embedded model also uses a DRY penalty "
                    "against repeated phrases. Not sent to other endpoints.",
                )
            seed = st.number_input(
                "Seed (empty: random)", min_value=0, max_value=2**31 - 1, value=None, step=1, key="opt_seed"
            )
            allow_images = st.checkbox(
                "Load images in replies",
                key="opt_allow_images",
                help="Off: an image in a reply is shown as a link, so the model cannot make your "
                "browser call out to a server (a tracking pixel).",
            )
        with st.expander("Advanced: timeouts", expanded=False):
            connect = st.number_input("Connect timeout (s)", 0.5, 120.0, 10.0, 0.5, key="opt_t_connect")
            first = st.number_input(
                "First-token timeout (s)",
                1.0,
                3600.0,
                120.0,
                5.0,
                key="opt_t_first",
                help="How long to wait for the first token (prefill) before "
                "giving up. Non-stream replies get the whole-reply bound.",
            )
            idle = st.number_input("Idle timeout between chunks (s)", 0.5, 600.0, 30.0, 1.0, key="opt_t_idle")
    state.setdefault("opt_stream", True)
    params = dataclasses.replace(
        preset,
        temperature=float(temperature),
        max_tokens=int(max_tokens),
        seed=int(seed) if seed is not None else None,
    )
    if repeat_penalty is not None:
        params = dataclasses.replace(params, repeat_penalty=float(repeat_penalty))
    return ChatOptions(
        provider=provider,
        endpoint=endpoint,
        problem=problem,
        model_label=model_label,
        stream=bool(stream),
        system_prompt=system_prompt or "",
        params=params,
        timeouts=Timeouts(connect=float(connect), first_token=float(first), idle=float(idle)),
        stop_rules=rules,
        hide_matches=hide,
        allow_images=bool(allow_images),
    )


_PRESET_FOR = "_opt_preset_for"  # the provider whose defaults the fields below were set from
_PRESET_FIELDS = {
    "opt_temperature": ("temperature", 0.7),
    "opt_max_tokens": ("max_tokens", 512),
    "opt_repeat_penalty": ("repeat_penalty", 1.0),
}


def _apply_preset_on_provider_change(provider: str, preset: GenerationParams) -> None:
    """Temperature, max tokens and repetition penalty start at the chosen provider's defaults
    (the embedded 135M model needs other ones than a large remote model). A value the user set
    stays until the provider changes; switching provider loads that provider's defaults."""
    state = st.session_state
    switched = state.get(_PRESET_FOR) != provider
    for key, (name, fallback) in _PRESET_FIELDS.items():
        if switched or key not in state:
            value = getattr(preset, name)
            state[key] = fallback if value is None else value
    state[_PRESET_FOR] = provider


def _preset_help(provider: str, name: str) -> str:
    value = getattr(presets.default_params(provider), name)
    which = "the embedded model" if provider == LOCAL else "remote endpoints"
    extra = {
        "max_tokens": " A reply that reaches it is cut off.",
        "temperature": " Lower is more predictable.",
    }[name]
    return f"Default for {which}: {value}.{extra}"


def stop_rules_fields(stream: bool) -> tuple[tuple, bool]:
    """Rules checked on the partial reply as it streams; a hit stops it like the Stop button.

    Each rule is built on its own: an invalid one is reported and skipped, the others stay
    active (a bad regular expression must not switch off a max-time rule)."""
    st.caption(
        "Checked on the reply while it streams; the first rule that matches stops it "
        "(the server stops too). " + ("" if stream else "**Needs Stream on.**")
    )
    phrases = st.text_area(
        "Words or phrases (comma or newline separated)", key="rule_phrases", height=68, max_chars=5000
    )
    phrases_thinking = _watch_thinking("rule_phrases_thinking")
    pattern = st.text_input(
        "Regular expression",
        key="rule_regex",
        max_chars=500,
        help="Python syntax; ^ and $ match at line starts and ends.",
    )
    pattern_thinking = _watch_thinking("rule_regex_thinking")
    max_time = st.number_input("Max time (s, 0 = off)", 0.0, 3600.0, 0.0, 1.0, key="rule_max_time")
    max_tokens = st.number_input("Max tokens streamed (0 = off)", 0, 100_000, 0, 10, key="rule_max_tokens")
    tokens_thinking = _watch_thinking("rule_max_tokens_thinking", "count thinking tokens too")
    hide = st.checkbox("Hide the matched part", key="rule_hide")
    builders = (
        (
            "Words or phrases",
            lambda: stop_rules.parse_phrases(phrases or "", watch_thinking=phrases_thinking),
        ),
        (
            "Regular expression",
            lambda: (
                stop_rules.make_regex_rule(pattern, watch_thinking=pattern_thinking)
                if (pattern or "").strip()
                else None
            ),
        ),
        ("Max time", lambda: stop_rules.make_limit_rule(stop_rules.MAX_TIME, max_time) if max_time else None),
        (
            "Max tokens streamed",
            lambda: (
                stop_rules.make_limit_rule(
                    stop_rules.MAX_TOKENS, int(max_tokens), watch_thinking=tokens_thinking
                )
                if max_tokens
                else None
            ),
        ),
    )
    rules = []
    for label, build in builders:
        try:
            rule = build()
        except stop_rules.RuleError as exc:
            st.error(f"**{label}** rule skipped: {str(exc).rstrip('.')}. The other rules stay active.")
            continue
        if rule is not None:
            rules.append(rule)
    if rules and stream:
        st.caption("Active: " + "; ".join(r.describe() for r in rules))
    return (tuple(rules) if stream else ()), bool(hide)


def _watch_thinking(key: str, label: str = "watch the thinking too") -> bool:
    """Rules look at the answer; for a thinking model this one may look at its thinking too."""
    return bool(
        st.checkbox(
            label,
            key=key,
            help="For models that think before they answer: "
            "the rule also applies to the thinking, which stops the reply the same "
            "way.",
        )
    )


def _provider_fields(settings: Settings, provider: str) -> tuple[EndpointSource | None, str | None, str]:
    if provider == LOCAL:
        path = settings.local_model_path
        st.caption(presets.local_model_caption(path))
        return (lambda: local_endpoint(path)), None, presets.local_model_label(path)

    # The field never shows the configured URL's user:password (it stays in use as long as the
    # field is left as it is): the page, its websocket and widget ids would carry it.
    configured, shown = settings.remote_base_url, safe_base_url(settings.remote_base_url)
    base_url = st.text_input("Base URL", value=shown, key="opt_base_url") or ""
    if base_url == shown:
        base_url = configured
    typed_key = st.text_input(
        "API key",
        type="password",
        key="opt_api_key",
        placeholder="using OPENAI_API_KEY" if settings.api_key else "none",
        help="Kept in memory for this session only; never stored or logged.",
    )
    api_key = typed_key or settings.api_key
    try:
        base_url = validate_base_url(base_url)
    except ProviderError as exc:
        st.error(str(exc))
        return None, str(exc), "—"
    models, error = _models(base_url, api_key)
    models, chosen = model_choices(settings.model, models)
    if error:
        st.warning(error)
    place = safe_base_url(base_url)
    if models:
        default = models.index(chosen) if chosen in models else 0
        model = st.selectbox("Model", models, index=default, key=f"opt_model:{place}")
    else:
        model = st.text_input("Model", value=settings.model or "", key=f"opt_model_text:{place}")
    if not model:  # say why there is no model to choose, when the endpoint said
        return (
            None,
            (
                f"{error} Then choose a model in the sidebar settings."
                if error
                else "Choose a model in the sidebar settings."
            ),
            "—",
        )
    return RemoteConfig(base_url, api_key, model).endpoint(), None, model
