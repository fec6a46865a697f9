"""StreamChat — minimal chat on the generation runner (the full chat page comes next)."""
import time

import streamlit as st

from streamchat import metrics
from streamchat.config import LOCAL, load_settings
from streamchat.generation import GenerationRequest
from streamchat.providers import ProviderError, RemoteConfig, local_endpoint
from streamchat.runner import get_runner

FRAME_S = 1 / 15

st.set_page_config(page_title="StreamChat", page_icon="💬")
settings = load_settings()
state = st.session_state
state.setdefault("messages", [])
state.setdefault("generation", None)


def endpoint_source():
    if settings.default_provider == LOCAL:
        return lambda: local_endpoint(settings.local_model_path)
    return RemoteConfig(settings.remote_base_url, settings.api_key, settings.model).endpoint()


def finish(generation) -> None:
    state.messages.append({"role": "assistant", "content": generation.text,
                           "state": generation.state,
                           "error": generation.error.message if generation.error else None,
                           "summary": metrics.summary_line(metrics.compute(generation))})
    state.generation = None


stream = st.sidebar.toggle("Stream", value=True)
for message in state.messages:
    with st.chat_message(message["role"]):
        st.markdown(message["content"], unsafe_allow_html=False)
        if message.get("error"):
            st.error(message["error"])
        if message.get("summary"):
            st.caption(f"{message['summary']} · {message.get('state', '')}")

generation = state.generation
if prompt := st.chat_input("Message", disabled=generation is not None):
    state.messages.append({"role": "user", "content": prompt})
    with st.chat_message("user"):
        st.markdown(prompt)
    history = tuple({"role": m["role"], "content": m["content"]} for m in state.messages)
    try:
        generation = get_runner().start(GenerationRequest(history, stream=stream), endpoint_source())
        state.generation = generation
    except ProviderError as exc:
        st.error(str(exc))

if generation is not None:
    if st.button("Stop"):
        generation.stop()
        generation.wait(2)
    with st.chat_message("assistant"):
        body, status = st.empty(), st.empty()
        while not generation.is_finished:
            body.markdown(generation.text + " ▌")
            status.caption(f"{generation.status_label} · {metrics.compute(generation).elapsed:.1f} s")
            time.sleep(FRAME_S)
    finish(generation)
    st.rerun()
