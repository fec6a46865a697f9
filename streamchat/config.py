"""Configuration from the environment and an optional `.env` file (see docs/ARCHITECTURE.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dotenv import dotenv_values

from .database import is_postgres_url
from .kinds import Provider

if TYPE_CHECKING:
    from .lanes import NamedEndpoint

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"

LOCAL = Provider.LOCAL
REMOTE = Provider.REMOTE


@dataclass(frozen=True)
class Settings:
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    model: str | None = None
    local_model_path: str | None = None
    data_dir: Path = Path("data")
    # STREAMCHAT_DATABASE_URL: PostgreSQL instead of the SQLite file in data_dir. May hold a
    # password: never shown, logged or put in a message (repr=False; the store redacts errors).
    database_url: str | None = field(default=None, repr=False)
    # STREAMCHAT_ENDPOINTS, each with its key from STREAMCHAT_KEY_<NAME> (streamchat.lanes)
    endpoints: tuple[NamedEndpoint, ...] = field(default=(), repr=False)
    problems: tuple[str, ...] = ()  # what was wrong with the configuration, for the user

    @property
    def default_provider(self) -> str:
        return provider_for(self.base_url, self.api_key)

    @property
    def remote_base_url(self) -> str:
        return self.base_url or OPENAI_DEFAULT_BASE_URL


def provider_for(base_url: str | None, api_key: str | None) -> str:
    """Where replies come from, for the app and the CLI alike: a base URL or a key means a remote
    endpoint (a key alone: OpenAI itself); nothing at all, the embedded model."""
    return REMOTE if (base_url or api_key) else LOCAL


def load_settings(
    env_file: str | os.PathLike[str] | None = ".env", environ: Mapping[str, str] | None = None
) -> Settings:
    """Real environment variables win over the `.env` file, as python-dotenv does by default."""
    values: dict[str, str] = {}
    problems: list[str] = []
    if env_file and Path(env_file).is_file():
        try:
            values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        except UnicodeDecodeError as exc:
            problems.append(
                f"`{env_file}` is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
                f"position {exc.start}), so it was ignored: save it as UTF-8."
            )
    values.update(os.environ if environ is None else environ)

    def get(name: str) -> str | None:
        value = (values.get(name) or "").strip()
        return value or None

    from .lanes import parse_endpoints

    endpoints, endpoint_problems = parse_endpoints(get("STREAMCHAT_ENDPOINTS"), values)
    problems.extend(endpoint_problems)
    database_url = get("STREAMCHAT_DATABASE_URL")
    if database_url and not is_postgres_url(database_url):
        problems.append(
            "STREAMCHAT_DATABASE_URL must start with postgresql:// (it was ignored): "
            "the conversations are kept in STREAMCHAT_DATA_DIR."
        )
        database_url = None
    return Settings(
        base_url=(get("OPENAI_BASE_URL") or "").rstrip("/") or None,
        api_key=get("OPENAI_API_KEY"),
        model=get("OPENAI_MODEL"),
        local_model_path=get("LOCAL_MODEL_PATH"),
        data_dir=Path(get("STREAMCHAT_DATA_DIR") or "data"),
        database_url=database_url,
        endpoints=tuple(endpoints),
        problems=tuple(problems),
    )
