"""StreamChat entry point: shared sidebar (live metrics, settings, conversations) and pages."""
import logging

import streamlit as st

from components.context import PageContext, set_context, shared_runner, shared_store
from components.conversations import conversations_sidebar
from components.settings_form import settings_form
from streamchat.config import load_settings

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per request is noise

st.set_page_config(page_title="StreamChat", page_icon="💬", layout="wide")

settings = load_settings()
store = shared_store(str(settings.data_dir))
if store.recovered_from and not st.session_state.get("_told_recovered"):
    st.session_state._told_recovered = True
    st.warning(f"The conversation database was damaged and has been moved aside to "
               f"`{store.recovered_from.name}`; a fresh one was started.")

navigation = st.navigation([
    st.Page("pages/chat.py", title="Chat", icon="💬", default=True),
])
metrics_slot = st.sidebar.container()
options = settings_form(settings, st.sidebar.container())
busy = {cid for cid, reply in st.session_state.get("active_replies", {}).items()
        if not reply.generation.is_finished}
conversations_sidebar(store, st.sidebar.container(), busy)
set_context(PageContext(settings, store, shared_runner(), options, metrics_slot))
navigation.run()
