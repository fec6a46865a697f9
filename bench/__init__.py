"""`make bench` (`python -m bench`): what a person sees, StreamChat against Streamlit's chat tutorial.

- apps.py: the two apps side by side (TTFT and lag as painted, Stop, websocket bytes, …)
- load.py: the load and soak scenarios (`python -m bench.load`), run after apps.py
- baseline_app.py, history.py: the tutorial app and the history both apps are opened with
- report.py: the table printer and the scenario guard both scripts use

It drives the app with the test harness (tests/harness/: scripted server, Chromium, probes).
"""
