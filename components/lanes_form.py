"""Compare's lane editor: 2–4 lanes, each an endpoint (the sidebar's model, the embedded model,
OPENAI_BASE_URL, STREAMCHAT_ENDPOINTS, or one added here), a model, stream on/off and its own
temperature / max tokens. Untouched it is today's pair: the sidebar's model, streamed and not.

A key typed here stays in this session's state only (never shown again, logged or stored) and
goes with its own endpoint only: each lane gets an Endpoint of its own.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import streamlit as st

from streamchat import lanes as lanes_mod
from streamchat.config import LOCAL, REMOTE, Settings
from streamchat.generation import Endpoint
from streamchat.lanes import LANE_COLORS, LANE_LETTERS, MAX_LANES, MIN_LANES, Lane, NamedEndpoint
from streamchat.presets import local_model_label
from streamchat.providers import ProviderError, local_endpoint, validate_base_url
from streamchat.runner import EndpointSource
from streamchat.store import safe_base_url

from .settings_form import ChatOptions

SIDEBAR, EMBEDDED, CONFIGURED = "sidebar", "embedded", "configured"
IDS, NEXT_ID, ADDED = "cmp_lane_ids", "cmp_lane_next", "cmp_added_endpoints"
EDITOR = "cmp-lanes"  # the editor's expander (its open state)
# Characters of the model in a column header, by the number of columns: four must read at 1280 px.
SHORT_MODEL = {2: 40, 3: 24, 4: 16}


@dataclass(frozen=True)
class Choice:
    """An endpoint a lane can use."""

    label: str
    endpoint: EndpointSource | None  # None: resolved with the lane's model (a remote endpoint)
    model: str  # the default model ("" when there is none)
    base_url: str | None = None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    fixed_model: bool = False  # the endpoint says its model itself (the embedded one)
    problem: str | None = None


@dataclass(frozen=True)
class LanesChoice:
    lanes: list[Lane]
    problem: str | None = None


@functools.lru_cache(maxsize=4)
def _embedded(path: str | None) -> EndpointSource:
    """One callable per model path, so lanes on the embedded model share one warm-up."""
    return functools.partial(local_endpoint, path)


def endpoint_choices(settings: Settings, options: ChatOptions) -> dict[str, Choice]:
    """Choice id → Choice, in the order offered."""
    sidebar = options.endpoint
    choices = {
        SIDEBAR: Choice(
            f"Sidebar model ({options.model_label})",
            sidebar,
            sidebar.model if isinstance(sidebar, Endpoint) else options.model_label,
            sidebar.base_url if isinstance(sidebar, Endpoint) else None,
            fixed_model=not isinstance(sidebar, Endpoint),
            problem=options.problem if sidebar is None else None,
        )
    }
    label = local_model_label(settings.local_model_path)
    embedded = sidebar if options.provider == LOCAL and sidebar is not None else None
    choices[EMBEDDED] = Choice(
        f"Embedded model ({label})", embedded or _embedded(settings.local_model_path), label, fixed_model=True
    )
    if settings.base_url:
        choices[CONFIGURED] = Choice(
            f"OPENAI_BASE_URL ({safe_base_url(settings.base_url)})",
            None,
            settings.model or "",
            settings.base_url,
            settings.api_key,
        )
    for prefix, named in [("env:", e) for e in settings.endpoints] + [
        ("added:", e) for e in st.session_state.get(ADDED, [])
    ]:
        choices[prefix + named.name] = Choice(
            f"{named.name} ({safe_base_url(named.base_url)})",
            None,
            named.model or "",
            named.base_url,
            named.api_key,
        )
    return choices


def short_model(model: str | None, limit: int) -> str:
    model = model or "?"
    return model if len(model) <= limit else model[: limit - 1] + "…"


def header(lane: Lane, lanes: int, default_pair: bool) -> str:
    """A column's short title: "Streaming" for the default pair, else "A · model-a · stream"
    (the model cut short for three or four columns)."""
    if default_pair:
        return lane.name
    model = short_model(lane.model, SHORT_MODEL.get(lanes, 16))
    return f"{lane.name} · {model} · {'stream' if lane.stream else 'no stream'}"


def _ids() -> list[int]:
    state = st.session_state
    if IDS not in state:
        state[IDS] = [0, 1]
        state[NEXT_ID] = 2
    ids: list[int] = state[IDS]
    return ids


def _add_lane() -> None:
    ids = _ids()
    if len(ids) < MAX_LANES:
        st.session_state[IDS] = [*ids, st.session_state[NEXT_ID]]
        st.session_state[NEXT_ID] += 1
        st.session_state[EDITOR] = True


def _remove_lane(lane_id: int) -> None:
    ids = _ids()
    if len(ids) > MIN_LANES:
        st.session_state[IDS] = [i for i in ids if i != lane_id]


def _add_endpoint(taken: list[str]) -> None:
    """The "Add endpoint" button: keep the endpoint (its key in this session only) and clear the
    key field, so the key is never shown again."""
    state = st.session_state
    name = (state.get("cmp_new_name") or "").strip()
    url = state.get("cmp_new_url") or ""
    key = (state.get("cmp_new_key") or "").strip() or None
    model = (state.get("cmp_new_model") or "").strip() or None
    state["cmp_new_key"] = ""
    state["cmp_add_problem"] = None
    if not lanes_mod.is_valid_name(name) and name.lower() not in lanes_mod.LOCAL_NAMES:
        state["cmp_add_problem"] = "Give the endpoint a short name (letters, digits, - _ .)."
        return
    if name.lower() in (t.lower() for t in taken) or name.lower() in lanes_mod.LOCAL_NAMES:
        state["cmp_add_problem"] = f"There is already an endpoint called '{name}'."
        return
    try:
        base_url = validate_base_url(url)
    except ProviderError as exc:
        state["cmp_add_problem"] = str(exc)
        return
    state[ADDED] = [*state.get(ADDED, []), NamedEndpoint(name, base_url, model, key)]
    state["cmp_new_name"] = state["cmp_new_url"] = state["cmp_new_model"] = ""


def lanes_form(settings: Settings, options: ChatOptions, *, disabled: bool) -> LanesChoice:
    """Draw the editor (in an expander) and return the lanes it describes."""
    choices = endpoint_choices(settings, options)
    ids = _ids()
    rows = []
    summary = "Lanes: " + (
        "streaming vs non-streaming (change them, or add up to four)"
        if len(ids) == 2
        else f"{len(ids)} racing"
    )
    # Keyed: it stays as the person left it when its label changes; it opens when a lane is
    # added and closes when a comparison starts (the race is what to look at then).
    with st.expander(summary, key=EDITOR, on_change="rerun"):
        for position, lane_id in enumerate(ids):
            rows.append(
                _lane_row(position, lane_id, choices, disabled=disabled, removable=len(ids) > MIN_LANES)
            )
        st.button(
            "Add lane",
            key="cmp_add_lane",
            on_click=_add_lane,
            disabled=disabled or len(ids) >= MAX_LANES,
        )
        st.caption(
            f"Up to {MAX_LANES} lanes. Temperature empty: 0 with a fixed seed, the same in every "
            "lane. Max tokens empty: the sidebar's. The embedded model names its model itself."
        )
        _endpoint_fields(choices, disabled=disabled)
    return _lanes(rows, choices, options)


def _lane_row(position: int, lane_id: int, choices: dict[str, Choice], *, disabled: bool, removable: bool):
    state = st.session_state
    letter = LANE_LETTERS[position]
    cols = st.columns([0.3, 2.3, 1.7, 1.4, 1.05, 1.15, 1.25], vertical_alignment="bottom")
    cols[0].markdown(
        f"<span style='color:{LANE_COLORS[position]};font-size:1.6rem'>■</span> **{letter}**",
        unsafe_allow_html=True,
    )
    ep_key = f"cmp_lane_ep_{lane_id}"
    if state.get(ep_key) not in choices:
        state[ep_key] = SIDEBAR
    choice_id = cols[1].selectbox(
        f"Endpoint {letter}",
        list(choices),
        key=ep_key,
        format_func=lambda c: choices[c].label,
        disabled=disabled,
    )
    choice = choices[choice_id]
    model = cols[2].text_input(
        f"Model {letter}",
        value=choice.model,
        key=f"cmp_lane_model_{lane_id}:{choice_id}",
        disabled=disabled or choice.fixed_model,
    )
    stream = cols[3].toggle(
        f"Stream {letter}", value=lane_id != 1, key=f"cmp_lane_stream_{lane_id}", disabled=disabled
    )
    # Empty (None) unless the lane sets its own: the comparison's own then apply.
    temperature, max_tokens = (
        col.number_input(
            f"{label} {letter}",
            low,
            high,
            value=None,
            step=step,
            key=f"{key}_{lane_id}",
            disabled=disabled,
            placeholder=empty,
        )
        for col, label, low, high, step, key, empty in (
            (cols[4], "Temp.", 0.0, 2.0, 0.1, "cmp_lane_temp", "0 (fixed)"),
            (cols[5], "Max tok.", 1, 131_072, 64, "cmp_lane_max", "sidebar"),
        )
    )
    cols[6].button(
        "Remove",
        key=f"cmp_lane_remove_{lane_id}",
        on_click=_remove_lane,
        args=(lane_id,),
        disabled=disabled or not removable,
    )
    return choice_id, (model or "").strip(), bool(stream), temperature, max_tokens


def _endpoint_fields(choices: dict[str, Choice], *, disabled: bool) -> None:
    st.markdown("**Add an endpoint** (OpenAI-compatible)")
    cols = st.columns([1.1, 2.4, 1.6, 1.6, 1.5], vertical_alignment="bottom")
    cols[0].text_input("Name", key="cmp_new_name", max_chars=40, disabled=disabled)
    cols[1].text_input(
        "Base URL",
        key="cmp_new_url",
        placeholder="http://127.0.0.1:8000/v1",
        max_chars=500,
        disabled=disabled,
    )
    cols[2].text_input(
        "API key",
        key="cmp_new_key",
        type="password",
        disabled=disabled,
        help="Kept in memory for this session only and sent only to this endpoint; never shown "
        "again, stored or logged.",
    )
    cols[3].text_input("Model (optional)", key="cmp_new_model", max_chars=200, disabled=disabled)
    taken = [c.split(":", 1)[1] for c in choices if ":" in c]
    cols[4].button(
        "Add endpoint", key="cmp_add_endpoint", on_click=_add_endpoint, args=(taken,), disabled=disabled
    )
    problem = st.session_state.get("cmp_add_problem")
    if problem:
        st.error(problem)


def _lanes(rows, choices: dict[str, Choice], options: ChatOptions) -> LanesChoice:
    """Today's pair when the editor is untouched, else lettered lanes A–D."""
    untouched = (
        len(rows) == 2
        and all(
            r[0] == SIDEBAR and r[1] == choices[SIDEBAR].model and r[3] is None and r[4] is None for r in rows
        )
        and (rows[0][2], rows[1][2]) == (True, False)
    )
    sidebar = choices[SIDEBAR]
    if untouched:
        if sidebar.endpoint is None:
            return LanesChoice([], sidebar.problem or "Choose a model in the sidebar settings.")
        return LanesChoice(
            lanes_mod.default_lanes(sidebar.endpoint, model=options.model_label, base_url=sidebar.base_url)
        )
    out = []
    for position, (choice_id, model, stream, temperature, max_tokens) in enumerate(rows):
        letter = LANE_LETTERS[position]
        choice = choices[choice_id]
        endpoint = choice.endpoint
        if choice.problem or (choice_id == SIDEBAR and endpoint is None):
            return LanesChoice([], f"Lane {letter}: {choice.problem or 'the sidebar has no model'}")
        if not choice.fixed_model and not model:
            return LanesChoice([], f"Lane {letter}: type a model.")
        if isinstance(endpoint, Endpoint):
            endpoint = dataclasses.replace(endpoint, model=model) if model != endpoint.model else endpoint
        elif endpoint is None:  # a remote endpoint: its own key, and no other lane's
            assert choice.base_url is not None
            endpoint = Endpoint(REMOTE, choice.base_url, model, choice.api_key or "")
        out.append(
            Lane(
                letter.lower(),
                letter,
                endpoint,
                stream,
                None if temperature is None else float(temperature),
                None if max_tokens is None else int(max_tokens),
                model=model or choice.model,
                base_url=choice.base_url,
            )
        )
    return LanesChoice(out)


def close_editor() -> None:
    """When a comparison starts: fold the editor away, so the lanes' columns are in view."""
    st.session_state[EDITOR] = False
