"""The part of every run that is the same on every page: settings, store, sidebar slots."""
from __future__ import annotations

import streamlit as st

from streamchat.config import load_settings

from .context import PageContext, set_context, shared_runner, shared_store
from .conversations import conversations_sidebar
from .settings_form import settings_form


PRESENTER_CSS = """<style>
.st-key-sidebar-settings, .st-key-sidebar-conversations { display: none; }
.st-key-presenter-metrics [data-testid="stMetricValue"] p { font-size: 3.5rem; line-height: 1.2; }
.st-key-presenter-metrics [data-testid="stMetricLabel"] p { font-size: 1.4rem; }
.st-key-presenter-metrics [data-testid="stCaptionContainer"] { font-size: 1.2rem; }
</style>"""


def render_shell() -> PageContext:
    settings = load_settings()
    try:
        store = shared_store(str(settings.data_dir))
    except OSError as exc:
        st.error(f"Cannot use the data folder `{settings.data_dir}` ({exc.strerror or exc}). "
                 "Set STREAMCHAT_DATA_DIR to a folder this user can write to.")
        st.stop()
    if store.recovered_from and not st.session_state.get("_told_recovered"):
        st.session_state._told_recovered = True
        st.warning(f"The conversation database was damaged and has been moved aside to "
                   f"`{store.recovered_from.name}`; a fresh one was started.")
    presenter = st.sidebar.toggle("Presenter view", key="presenter",
                                  help="For demos on a projector: hides the settings and shows the "
                                       "live metrics large above the chat.")
    if presenter:
        st.html(PRESENTER_CSS)
        metrics_slot = st.container(key="presenter-metrics")
    else:
        metrics_slot = st.sidebar.container()
    # Hidden by CSS, not skipped, in presenter view: widgets that are not rendered lose their state.
    options = settings_form(settings, st.sidebar.container(key="sidebar-settings"))
    busy = {cid for cid, reply in st.session_state.get("active_replies", {}).items()
            if not reply.generation.is_finished}
    conversations_sidebar(store, st.sidebar.container(key="sidebar-conversations"), busy)
    ctx = PageContext(settings, store, shared_runner(), options, metrics_slot, presenter)
    set_context(ctx)
    return ctx
