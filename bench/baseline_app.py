"""The plain baseline for `make bench`: Streamlit's own chat tutorial app.

Session-state history, `st.chat_input`, `st.chat_message` and `st.write_stream` over a sync
`openai.OpenAI` stream, configured from the same environment variables as the app. The live reply
sits in `st.container(key="live-reply")` so the bench measures both apps the same way. Its Stop
button is what a naive app does: a click only reruns the script; the openai stream is never closed.
`?history=N` starts it with N earlier messages (bench/history.py), as the bench seeds StreamChat.
"""
import os

import streamlit as st
from history import history_messages  # streamlit run puts this file's folder (bench/) on sys.path
from openai import OpenAI

st.title("Baseline chat")
client = OpenAI(base_url=os.environ.get("OPENAI_BASE_URL"), api_key=os.environ.get("OPENAI_API_KEY", "sk-none"))
model = os.environ.get("OPENAI_MODEL", "scripted")

if "messages" not in st.session_state:
    # ?history=N opens it with the same N earlier messages the bench gives StreamChat.
    st.session_state.messages = history_messages(int(st.query_params.get("history", 0)))

for message in st.session_state.messages:
    with st.chat_message(message["role"]):
        st.markdown(message["content"])

if prompt := st.chat_input("Message"):
    st.session_state.messages.append({"role": "user", "content": prompt})
    with st.chat_message("user"):
        st.markdown(prompt)
    stop_slot = st.empty()
    stop_slot.button("Stop")
    with st.chat_message("assistant"), st.container(key="live-reply"):
        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": m["role"], "content": m["content"]} for m in st.session_state.messages],
            stream=True,
        )
        reply = st.write_stream(stream)
    stop_slot.empty()
    st.session_state.messages.append({"role": "assistant", "content": reply})
