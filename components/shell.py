"""The part of every run that is the same on every page: settings, store, sidebar slots."""

from __future__ import annotations

import logging
from collections.abc import Callable

import streamlit as st

from streamchat.config import load_settings
from streamchat.store import StoreError

from .context import PageContext, set_context, shared_runner, shared_store, store_options
from .conversations import ConversationList, busy_conversations
from .identity import remember_identity
from .settings_form import settings_form

CHAT_PAGE = "chat"
log = logging.getLogger(__name__)

# Presenter view: the live metrics stay pinned under the app's header while the chat scrolls
# beneath them (they used to scroll out of view exactly while a reply streamed).
PRESENTER_CSS = """<style>
.st-key-sidebar-settings, .st-key-sidebar-conversations { display: none; }
[data-testid="stLayoutWrapper"]:has(> .st-key-presenter-metrics) {
  position: sticky; top: 0; z-index: 100; padding-top: 0.5rem;
  background: var(--st-background-color, #fff);
  border-bottom: 3px solid rgba(49, 51, 63, 0.25);
}
.st-key-presenter-metrics { gap: 0.25rem; }
.st-key-presenter-metrics [data-testid="stMetricValue"],
.st-key-presenter-metrics [data-testid="stMetricValue"] p { font-size: 3rem; line-height: 1.1; }
.st-key-presenter-metrics [data-testid="stMetricLabel"] p { font-size: 1.3rem; }
.st-key-presenter-metrics [data-testid="stCaptionContainer"] { font-size: 1.15rem; }
@media (max-height: 800px) {   /* a 720p projector: the numbers, not the sparkline */
  .st-key-presenter-metrics [data-testid="stMetricChart"] { display: none; }
}
[data-testid="stChatMessage"] [data-testid="stMarkdownContainer"] p { font-size: 1.25rem; }
</style>"""
# On every page: the slots that only carry style rules take no room (this also has the browser
# load st.html's code with the page, not as a grey skeleton when a reply starts).
BASE_CSS = (
    "<style>.st-key-stale-guard, .st-key-conv-marks, .st-key-chat-history-drawn { display: none; }</style>"
)
# The Stream toggle and the stop rules only act on the chat.
CHAT_ONLY_CSS = "<style>.st-key-sidebar-chat-only { display: none; }</style>"


def render_shell(page: str = CHAT_PAGE) -> PageContext:
    """`page`: the page about to run. Every page but the chat gets the conversation list drawn
    here; the chat draws it after taking a new message, so a new chat is listed at once."""
    settings = load_settings()
    for problem in settings.problems:
        st.warning(problem, icon="⚠️")
    try:
        store = shared_store(str(settings.data_dir), **store_options(settings))
    except (OSError, StoreError) as exc:  # missing rights, read-only folder or disk, server gone
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if settings.database_url:  # (the URL itself may hold a password: never shown)
            st.error(
                f"Cannot use the database ({reason}). Check STREAMCHAT_DATABASE_URL, or unset it "
                "to keep the conversations in STREAMCHAT_DATA_DIR."
            )
        else:
            st.error(
                f"Cannot use the data folder `{settings.data_dir}` ({reason}). "
                "Set STREAMCHAT_DATA_DIR to a folder this user can write to."
            )
        st.stop()
    if store.recovered_from and not st.session_state.get("_told_recovered"):
        st.session_state._told_recovered = True
        st.warning(
            f"The conversation database was damaged and has been moved aside to "
            f"`{store.recovered_from.name}`; a fresh one was started."
        )
    st.html(BASE_CSS)
    presenter = st.sidebar.toggle(
        "Presenter view",
        key="presenter",
        help="For demos on a projector: hides the settings and pins the live metrics, large, above the chat.",
    )
    if presenter:
        st.html(PRESENTER_CSS)
        metrics_slot = st.container(key="presenter-metrics")
    else:
        metrics_slot = st.sidebar.container()
    # Its place must not move between runs: the probe's report re-runs it as a fragment.
    seen_slot = (st if presenter else st.sidebar).container(key="visible-ttft-slot")
    if page != CHAT_PAGE:
        st.html(CHAT_ONLY_CSS)
    # Hidden by CSS, not skipped, in presenter view: widgets that are not rendered lose their state.
    options = settings_form(settings, st.sidebar.container(key="sidebar-settings"))
    if options.endpoint is not None:  # set up the client (and the embedded model) before Enter
        endpoint = options.endpoint
        shared_runner().warm(
            endpoint,
            connect_timeout=options.timeouts.connect,
            key=endpoint if not callable(endpoint) else (options.provider, options.model_label),
        )
    conversations = ConversationList(store, st.sidebar.container(key="sidebar-conversations"))
    remember_identity(st.sidebar)
    ctx = PageContext(
        settings, store, shared_runner(), options, metrics_slot, presenter, conversations, seen_slot
    )
    set_context(ctx)
    if page != CHAT_PAGE:
        conversations.draw()
        follow_background_replies()
    return ctx


def run_guarded(run_app: Callable[[], object]) -> None:
    """A database that breaks while the app runs (a damaged file, a full disk, a lock that
    outlasts the store's patience) gets a message, not a traceback."""
    try:
        run_app()
    except StoreError as exc:
        log.exception("database error")
        remedy = (
            "check that the PostgreSQL server of STREAMCHAT_DATABASE_URL is running and reachable"
            if load_settings().database_url
            else "restart the app (a damaged database is then moved aside and a fresh one "
            "started), or free the disk / close the program holding it"
        )
        st.error(
            f"The conversation database cannot be used right now ({exc}). "
            f"Nothing new can be saved: {remedy}.",
            icon="🗄️",
        )


def follow_background_replies() -> None:
    """While a reply of this session streams in a chat that is not on screen, look twice a
    second whether it ended, and redraw the page once when it did, so its ▶ mark does not go
    stale. (Called when no reply is shown live, so every busy chat is a background one.)"""
    if busy_conversations():
        with st.sidebar:
            _watch_busy()


@st.fragment(run_every=0.5)
def _watch_busy() -> None:
    if not busy_conversations():
        st.rerun(scope="app")
