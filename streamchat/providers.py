"""Where replies come from: the embedded model or any OpenAI-compatible endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

import openai

from . import errors
from .config import LOCAL, REMOTE
from .generation import Endpoint


class ProviderError(errors.UserFacingError):
    """A configuration or connection problem, with a message fit for the user."""


def validate_base_url(url: str) -> str:
    """Return the normalised URL or raise ProviderError saying what is wrong with it."""
    url = (url or "").strip().rstrip("/")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ProviderError(
            f"'{errors.redact(url, limit=100)}' is not a valid base URL: use something like "
            "http://127.0.0.1:8000/v1 or https://api.openai.com/v1."
        )
    return url


def local_endpoint(model_path: str | None = None) -> Endpoint:
    """Start (or restart after a crash) the embedded server; may take seconds the first time."""
    from .local_server import get_shared_server  # heavy import only when used

    server = get_shared_server(model_path)
    server.ensure_running()
    return Endpoint(LOCAL, server.base_url, server.model_name, server.api_key)


@dataclass(frozen=True)
class RemoteConfig:
    base_url: str
    api_key: str | None
    model: str | None

    def endpoint(self, model: str | None = None) -> Endpoint:
        chosen = model or self.model
        if not chosen:
            raise ProviderError("No model chosen: pick one in the sidebar or set OPENAI_MODEL.")
        return Endpoint(REMOTE, validate_base_url(self.base_url), chosen, self.api_key or "")


def model_choices(wanted: str | None, listed: list[str]) -> tuple[list[str], str | None]:
    """The models to offer and the one chosen, for the app and the CLI alike: the wanted one
    (OPENAI_MODEL, --model), first in the list even when the endpoint does not list it; else the
    first the endpoint lists; None when there is nothing to choose."""
    choices = [wanted, *listed] if wanted and wanted not in listed else list(listed)
    return choices, wanted or (choices[0] if choices else None)


def list_models(base_url: str, api_key: str | None, timeout: float = 5.0) -> list[str]:
    """Model ids from the endpoint's /v1/models, sorted; raises ProviderError with a clear message."""
    base_url = validate_base_url(base_url)
    client = openai.OpenAI(base_url=base_url, api_key=api_key or "none", max_retries=0, timeout=timeout)
    try:
        return sorted(m.id for m in client.models.list())
    except Exception as exc:
        info = errors.classify(exc, base_url=base_url, secrets=(api_key or "",))
        raise ProviderError(info.message) from None
    finally:
        client.close()
