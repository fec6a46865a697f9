"""StreamChat entry point: the shared sidebar (live metrics, settings, conversations) and pages."""
import logging

import streamlit as st

from components.shell import render_shell

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per request is noise

st.set_page_config(page_title="StreamChat", page_icon="💬", layout="wide")
navigation = st.navigation([
    st.Page("pages/chat.py", title="Chat", icon="💬", default=True),
    st.Page("pages/compare.py", title="Compare", icon="⚖️"),
    st.Page("pages/runs.py", title="Runs", icon="📋"),
])
render_shell()
navigation.run()
