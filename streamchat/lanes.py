"""Lanes of a comparison: where each one's requests go (endpoint, model), streamed or not, and
its own sampling limits; the named endpoints of `STREAMCHAT_ENDPOINTS`; `--lane` specs.

A lane's key (STREAMCHAT_KEY_<NAME>, or OPENAI_API_KEY for the configured endpoint only) goes
with that lane's Endpoint and nowhere else: the runner keeps one client per (base URL, key).
No Streamlit here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .config import OPENAI_DEFAULT_BASE_URL
from .generation import Endpoint
from .kinds import Mode
from .runner import EndpointSource

MIN_LANES, MAX_LANES = 2, 4
LOCAL_NAMES = ("local", "embedded")  # a lane (or endpoint) name that means the embedded model
# Okabe–Ito: orange, blue, bluish green, vermillion; told apart with every common colour-vision
# deficiency and on a washed-out projector. Lane n gets colour n everywhere it is drawn.
LANE_COLORS = ("#E69F00", "#0072B2", "#009E73", "#D55E00")
LANE_LETTERS = "ABCD"


class LaneSpecError(ValueError):
    """A lane or endpoint description that cannot be used, with a message naming which and why."""


@dataclass(frozen=True)
class NamedEndpoint:
    """One entry of STREAMCHAT_ENDPOINTS (or one added in the UI): name=base_url[|model]."""

    name: str
    base_url: str
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Lane:
    """One lane: `key` names it in summaries, widget keys and recordings ("stream" and
    "non-stream" for the default pair); `name` is what the person reads."""

    key: str
    name: str
    endpoint: EndpointSource
    stream: bool = True
    temperature: float | None = None
    max_tokens: int | None = None
    model: str | None = None  # for display and the JSON (the endpoint may be a callable)
    base_url: str | None = None

    @property
    def mode(self) -> Mode:
        return Mode.STREAM if self.stream else Mode.NON_STREAM

    def describe(self) -> str:
        """ "A · llama-3-8b · streaming": what the lane runs, in one line."""
        parts = [self.name]
        if self.model and self.model not in self.name:
            parts.append(self.model)
        parts.append("streaming" if self.stream else "non-streaming")
        return " · ".join(parts)


def default_lanes(
    endpoint: EndpointSource, model: str | None = None, base_url: str | None = None
) -> list[Lane]:
    """Today's comparison: the same endpoint, streamed and not."""
    return [
        Lane(Mode.STREAM, "Streaming", endpoint, True, model=model, base_url=base_url),
        Lane(Mode.NON_STREAM, "Non-streaming", endpoint, False, model=model, base_url=base_url),
    ]


def is_default_pair(lanes: Sequence[Lane]) -> bool:
    """The stream-vs-non-stream comparison: lanes "stream" and "non-stream" that differ only in
    streaming (its verdict and summary keys are the default pair's)."""
    if len(lanes) != 2:
        return False
    a, b = lanes
    return (
        (a.key, b.key) == (Mode.STREAM, Mode.NON_STREAM)
        and a.stream != b.stream
        and a.endpoint == b.endpoint
        and a.model == b.model
        and (a.temperature, a.max_tokens) == (b.temperature, b.max_tokens)
    )


def key_for(name: str) -> str:
    """A lane's key from its name: lowercase letters, digits and '-' ("Llama 8B" → "llama-8b")."""
    return re.sub(r"[^a-z0-9]+", "-", name.strip().lower()).strip("-") or "lane"


def key_variable(name: str) -> str:
    """The environment variable holding endpoint `name`'s API key: STREAMCHAT_KEY_<NAME>."""
    return "STREAMCHAT_KEY_" + re.sub(r"[^A-Za-z0-9]+", "_", name.strip()).strip("_").upper()


def check_lanes(lanes: Iterable[Lane]) -> list[Lane]:
    """Return the lanes as a list, or raise LaneSpecError (count, unique names and keys)."""
    lanes = list(lanes)
    if not MIN_LANES <= len(lanes) <= MAX_LANES:
        raise LaneSpecError(f"a comparison has {MIN_LANES} to {MAX_LANES} lanes, not {len(lanes)}.")
    for attr in ("key", "name"):
        seen: set[str] = set()
        for lane in lanes:
            value = getattr(lane, attr).lower()
            if value in seen:
                raise LaneSpecError(f"two lanes are called '{getattr(lane, attr)}': give each its own name.")
            seen.add(value)
    return lanes


# ---- STREAMCHAT_ENDPOINTS ------------------------------------------------------------------
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


def is_valid_name(name: str) -> bool:
    """An endpoint name as STREAMCHAT_ENDPOINTS takes it (also for one added in the UI)."""
    return bool(_NAME.match(name)) and name.lower() not in LOCAL_NAMES


def parse_endpoints(text: str | None, environ: Mapping[str, str]) -> tuple[list[NamedEndpoint], list[str]]:
    """STREAMCHAT_ENDPOINTS ("a=http://host:8000/v1|llama-3-8b, b=https://…", separated by
    commas, semicolons or new lines) → (endpoints, problems). A bad entry is left out and
    named in `problems`; keys come from STREAMCHAT_KEY_<NAME> in `environ`."""
    from .providers import ProviderError, validate_base_url

    endpoints: list[NamedEndpoint] = []
    problems: list[str] = []
    for n, entry in enumerate(e.strip() for e in re.split(r"[,;\n]", text or "")):
        if not entry:
            continue
        where = f"STREAMCHAT_ENDPOINTS entry {n + 1}"
        name, sep, rest = entry.partition("=")
        name = name.strip()
        if not sep or not _NAME.match(name):
            problems.append(f"{where} is not name=base_url[|model]: it was ignored.")
            continue
        url, _, model = rest.partition("|")
        try:
            base_url = validate_base_url(url)
        except ProviderError as exc:
            problems.append(f"{where} ({name}): {exc}")
            continue
        if any(e.name.lower() == name.lower() for e in endpoints) or name.lower() in LOCAL_NAMES:
            problems.append(f"{where}: the name '{name}' is taken; it was ignored.")
            continue
        key = (environ.get(key_variable(name)) or "").strip() or None
        endpoints.append(NamedEndpoint(name, base_url, model.strip() or None, key))
    return endpoints, problems


# ---- --lane specs -------------------------------------------------------------------------
SPEC_FIELDS = ("name", "endpoint", "base_url", "model", "stream", "temperature", "max_tokens")
_ON = {
    "on": True,
    "true": True,
    "yes": True,
    "1": True,
    "off": False,
    "false": False,
    "no": False,
    "0": False,
}


@dataclass(frozen=True)
class LaneSpec:
    """A lane as described on the command line, its endpoint not yet started or checked."""

    name: str
    local: bool
    base_url: str | None
    model: str | None
    api_key: str | None = field(default=None, repr=False)
    stream: bool = True
    temperature: float | None = None
    max_tokens: int | None = None


def parse_lane_spec(
    text: str,
    number: int,
    endpoints: Iterable[NamedEndpoint],
    *,
    configured_base_url: str | None = None,
    configured_key: str | None = None,
    configured_model: str | None = None,
) -> LaneSpec:
    """'name=a,base_url=http://…/v1,model=m,stream=on[,temperature=0.7][,max_tokens=200]', or
    a STREAMCHAT_ENDPOINTS name ('a', 'name=a,stream=off', 'name=a2,endpoint=a'), or 'local'.

    The key: the named endpoint's (STREAMCHAT_KEY_<NAME>); for a written base URL, that of the
    endpoint of the lane's name if the URL is its own, else OPENAI_API_KEY only when the URL is
    the configured one.
    Raises LaneSpecError saying which lane and what is wrong."""
    from .providers import ProviderError, validate_base_url

    by_name = {e.name.lower(): e for e in endpoints}
    fields: dict[str, str] = {}
    pieces = [p.strip() for p in text.split(",") if p.strip()]
    if len(pieces) == 1 and "=" not in pieces[0]:
        pieces = [f"name={pieces[0]}"]
    for piece in pieces:
        k, sep, v = piece.partition("=")
        k = k.strip().lower().replace("-", "_")
        if not sep or k not in SPEC_FIELDS:
            raise LaneSpecError(
                f"lane {number}: '{piece[:40]}' is not one of {', '.join(f + '=' for f in SPEC_FIELDS)}."
            )
        if k in fields:
            raise LaneSpecError(f"lane {number}: {k} is given twice.")
        fields[k] = v.strip()
    name = fields.get("name") or fields.get("endpoint") or f"lane {number}"
    where = f"lane {number} ({name})"

    stream = True
    if "stream" in fields:
        if fields["stream"].lower() not in _ON:
            raise LaneSpecError(f"{where}: stream must be on or off, not '{fields['stream'][:20]}'.")
        stream = _ON[fields["stream"].lower()]
    temperature = _number(fields, "temperature", where, float, 0.0, 2.0)
    max_tokens = _number(fields, "max_tokens", where, int, 1, 1_000_000)
    max_tokens = None if max_tokens is None else int(max_tokens)

    ref = fields.get("endpoint") or ("" if "base_url" in fields else name)
    named = by_name.get(ref.lower()) if ref else None
    local = not named and ref.lower() in LOCAL_NAMES
    if "base_url" in fields:
        if "endpoint" in fields:
            raise LaneSpecError(f"{where}: give endpoint= or base_url=, not both.")
        try:
            base_url: str | None = validate_base_url(fields["base_url"])
        except ProviderError as exc:
            raise LaneSpecError(f"{where}: {exc}") from None
        # A key goes only to the URL it was given for: the endpoint of the lane's name when the
        # URL is that endpoint's own, OPENAI_API_KEY when it is the configured one; else none.
        own = by_name.get(name.lower())
        configured = (configured_base_url or OPENAI_DEFAULT_BASE_URL).rstrip("/")
        if own is not None and own.base_url == base_url:
            api_key = own.api_key
        else:
            api_key = configured_key if base_url == configured else None
        model = fields.get("model") or (configured_model if base_url == configured else None)
    elif named is not None:
        base_url, api_key, model = named.base_url, named.api_key, fields.get("model") or named.model
    elif local:
        base_url, api_key, model = None, None, None
    else:
        known = ", ".join(sorted(e.name for e in by_name.values())) or "none set"
        raise LaneSpecError(
            f"{where}: unknown endpoint name '{ref}' (STREAMCHAT_ENDPOINTS: {known}; 'local' is the "
            "embedded model); or give base_url= and model=."
        )
    if not local and not model:
        raise LaneSpecError(
            f"{where}: no model: add model=… (or name=base_url|model in STREAMCHAT_ENDPOINTS)."
        )
    return LaneSpec(name, local, base_url, model, api_key, stream, temperature, max_tokens)


def _number(
    fields: dict[str, str], key: str, where: str, kind: type, low: float, high: float
) -> float | None:
    if key not in fields:
        return None
    try:
        value = kind(fields[key])
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise LaneSpecError(
            f"{where}: {key} must be a number from {low:g} to {high:g}, not '{fields[key][:20]}'."
        )
    return value  # type: ignore[no-any-return]


def lane_from_spec(spec: LaneSpec, local_endpoint: EndpointSource | None = None) -> Lane:
    """A Lane for a parsed spec; `local_endpoint` serves lanes on the embedded model."""
    from .kinds import Provider

    if spec.local:
        if local_endpoint is None:
            raise LaneSpecError(f"lane {spec.name}: the embedded model is not available here.")
        endpoint: EndpointSource = local_endpoint
    else:
        assert spec.base_url is not None and spec.model is not None  # (parse_lane_spec checks)
        endpoint = Endpoint(Provider.REMOTE, spec.base_url, spec.model, spec.api_key or "")
    return Lane(
        key_for(spec.name),
        spec.name,
        endpoint,
        spec.stream,
        spec.temperature,
        spec.max_tokens,
        model=spec.model,
        base_url=spec.base_url,
    )
