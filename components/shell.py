"""The part of every run that is the same on every page: settings, store, sidebar slots."""
from __future__ import annotations

import streamlit as st

from streamchat.config import load_settings

from .context import PageContext, set_context, shared_runner, shared_store
from .conversations import conversations_sidebar
from .settings_form import settings_form


def render_shell() -> PageContext:
    settings = load_settings()
    store = shared_store(str(settings.data_dir))
    if store.recovered_from and not st.session_state.get("_told_recovered"):
        st.session_state._told_recovered = True
        st.warning(f"The conversation database was damaged and has been moved aside to "
                   f"`{store.recovered_from.name}`; a fresh one was started.")
    metrics_slot = st.sidebar.container()
    options = settings_form(settings, st.sidebar.container())
    busy = {cid for cid, reply in st.session_state.get("active_replies", {}).items()
            if not reply.generation.is_finished}
    conversations_sidebar(store, st.sidebar.container(), busy)
    ctx = PageContext(settings, store, shared_runner(), options, metrics_slot)
    set_context(ctx)
    return ctx
