"""What app.py sets up each run and the pages read: settings, store, runner, sidebar slots."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from streamchat import live_bus
from streamchat.config import Settings
from streamchat.runner import Runner, get_runner
from streamchat.store import Store, store_at

from .conversations import ConversationList
from .metrics_panel import MetricsPanel
from .settings_form import ChatOptions


@dataclass
class PageContext:
    settings: Settings
    store: Store
    runner: Runner
    options: ChatOptions
    metrics_slot: object  # where the live metrics panel goes (sidebar, or on top in presenter view)
    presenter: bool
    conversations: ConversationList  # drawn by the shell, or by the chat page after a send
    seen_slot: object  # under the metrics: the browser-measured visible TTFT (components.visible_ttft)

    def metrics_panel(self) -> MetricsPanel:
        return MetricsPanel(self.metrics_slot, wide=self.presenter)


@st.cache_resource(show_spinner=False)
def shared_store(data_dir: str, database_url: str | None = None) -> Store:
    """One store per process and data dir (or database), shared by all sessions; on PostgreSQL
    also the process's live bus (replies followed and stopped across replicas)."""
    store = store_at(data_dir, database_url)
    live_bus.get_bus(database_url)
    return store


def store_options(settings: Settings) -> dict[str, str]:
    """shared_store's arguments after the data dir: the database URL, when there is one (a
    cached resource is keyed by the arguments as given, so the default stays unnamed)."""
    return {"database_url": settings.database_url} if settings.database_url else {}


def shared_runner() -> Runner:
    return get_runner()


def set_context(ctx: PageContext) -> None:
    st.session_state["_page_context"] = ctx


def context() -> PageContext:
    return st.session_state["_page_context"]
