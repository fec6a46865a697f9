"""StreamChat entry point: the shared sidebar (live metrics, settings, conversations) and pages."""
import logging

import streamlit as st

from components.shell import render_shell, run_guarded

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per request is noise

st.set_page_config(page_title="StreamChat", page_icon="💬", layout="wide")
PAGES = {"chat": st.Page("pages/chat.py", title="Chat", icon="💬", default=True),
         "compare": st.Page("pages/compare.py", title="Compare", icon="⚖️"),
         "runs": st.Page("pages/runs.py", title="Runs", icon="📋")}
if st.query_params.get("share"):
    # A read-only share link: that page alone, without the shell (no settings, no other chats).
    shared = st.navigation([st.Page("pages/shared.py", title="Shared", icon="🔗")], position="hidden")
    run_guarded(shared.run)
else:
    navigation = st.navigation(list(PAGES.values()))
    page_name = next(name for name, page in PAGES.items() if page.url_path == navigation.url_path)
    run_guarded(lambda: (render_shell(page_name), navigation.run()))
