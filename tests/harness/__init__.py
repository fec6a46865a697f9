"""What the tests (and the bench, bench/) drive the app with.

- scripted_server: the scripted OpenAI-compatible server, in process (ScriptedServer) or in a
  child process (scripted_server_process -> ScriptedServerProcess), one control API.
- browser: `streamlit run`, headless Chromium and the in-page probes (TextWatch, WebSocketMeter).
- processes: child processes in their own process group, killed as a group.
- bounds: how long a test waits for "promptly".
"""
