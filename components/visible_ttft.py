"""Visible TTFT: the time from the user's Enter or click to the first answer text painted, measured
in their browser, the number a person feels.

A small component (components v2, no iframe) watches the page with a MutationObserver. It arms
on the actions that start a reply (Enter in the chat input, its send arrow, the example prompts,
Retry / Regenerate / Continue / Send edited, Compare's Run) and stops the clock when the reply's
body first shows text that was not there when it armed (the previous reply's body may still be
on screen, and the new one may reuse its node). It reports once per reply, when the page draws
the probe again at the end of the run that streamed the reply, so the report never interrupts a
reply; it lives in a fragment, so the report re-runs only the fragment, which saves the figure
and shows it. The measurement stays in the module's closure: nothing on the page can read it.

The clock is the DOM change (the paint follows within a frame); an outside observer timing the
same page with its own MutationObserver agrees within a few milliseconds (`make bench`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from streamchat import metrics

CHAT_ARMS = (
    ".st-key-chat_input",
    '[class*="st-key-example-"]',
    ".st-key-retry-last",
    ".st-key-continue-last",
    '[class*="st-key-edit-send-"]',
    ".st-key-send-unsent",
)
CHAT_BODY = ".st-key-live-reply"
COMPARE_ARMS = (".st-key-cmp_run",)
COMPARE_BODY = '[class*="st-key-cmp-live-stream"]'
SOURCE = "measured in your browser"

_JS = r"""
const probe = {armedAt: null, before: null, seenMs: null, reportedFor: null,
               body: null, arms: [], observer: null, component: null};

function now() { return performance.now(); }

function arm() {
  if (!probe.body) return;
  probe.armedAt = now();
  probe.seenMs = null;
  probe.before = new Map();
  for (const el of document.querySelectorAll(probe.body)) probe.before.set(el, el.textContent);
}

function fresh(el) {
  if (el.closest('[data-stale="true"]')) return false;
  const text = el.textContent;
  return text.trim() !== "" && probe.before.get(el) !== text;
}

function look() {
  if (probe.armedAt === null || probe.seenMs !== null) return;
  for (const el of document.querySelectorAll(probe.body)) {
    if (fresh(el)) { probe.seenMs = now() - probe.armedAt; return; }
  }
}

function armsFrom(target) {
  return target && target.closest && probe.arms.some((sel) => target.closest(sel));
}

function install() {
  if (probe.observer) return;
  document.addEventListener("keydown", (e) => {
    const box = e.target;
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && box && box.tagName === "TEXTAREA"
        && armsFrom(box) && box.value.trim() !== "") arm();
  }, true);
  document.addEventListener("click", (e) => {
    const button = e.target && e.target.closest && e.target.closest("button");
    if (button && !button.disabled && armsFrom(button)) arm();
  }, true);
  probe.observer = new MutationObserver(look);
  probe.observer.observe(document.body, {childList: true, subtree: true, characterData: true});
}

export default function (component) {
  const data = component.data || {};
  probe.body = data.body || null;
  probe.arms = data.arms || [];
  install();
  const target = data.target;
  if (target && probe.seenMs !== null && probe.reportedFor !== target) {
    probe.reportedFor = target;
    const seconds = probe.seenMs / 1000;
    probe.armedAt = null;
    probe.seenMs = null;
    component.setTriggerValue("seen", {target: target, seconds: seconds});
  }
}
"""
# Sent with every run that draws the probe: without its indentation.
_probe = st.components.v2.component(
    "streamchat_visible_ttft", js="\n".join(line.strip() for line in _JS.splitlines() if line.strip())
)


@dataclass(frozen=True)
class Seen:
    target: str
    seconds: float


def line(visible_s: float, server_s: float | None, what: str = "the first words") -> str:
    """ "you saw the first words after 412 ms (server 100 ms · network+app 312 ms)", sourced."""
    text = f"👁 You saw {what} after **{metrics.format_seconds(visible_s)}**"
    if server_s is not None and server_s <= visible_s:
        text += (
            f" (server {metrics.format_seconds(server_s)} · network+app "
            f"{metrics.format_seconds(visible_s - server_s)})"
        )
    return f"{text} · {SOURCE}"


def server_seconds(figures: dict) -> float | None:
    """The server's side of it from a message's saved figures: the time to the first answer token
    (the same as TTFT unless the model thought first)."""
    for name in ("time_to_answer", "ttft"):
        value = (figures.get(name) or {}).get("value")
        if value is not None:
            return value
    return None


def saved_line(figures: dict) -> str | None:
    seen = (figures.get("visible_ttft") or {}).get("value")
    return None if seen is None else line(seen, server_seconds(figures))


def footer_part(figures: dict) -> str | None:
    """In a saved reply's summary line (one line: the reply does not move when it is redrawn)."""
    seen = (figures.get("visible_ttft") or {}).get("value")
    return None if seen is None else f"👁 seen after {metrics.format_seconds(seen)}"


def probe(slot, *, page: str, target: str | None, on_seen: Callable[[Seen], str | None]) -> None:
    """Draw the probe (at the end of a run) into `slot`, a container whose place does not move
    between runs; `target` names the reply a measurement belongs to (None: nothing to measure).
    `on_seen` keeps a report and returns the line to show, or None to ignore it."""
    with slot:
        _probe_fragment(page, target, on_seen)


@st.fragment
def _probe_fragment(page: str, target: str | None, on_seen: Callable[[Seen], str | None]) -> None:
    state = st.session_state
    key = f"visible-ttft-{page}"
    shown_key = f"visible_ttft_line_{page}"
    reported = _reported(key)
    if reported is None:
        # Not in the fragment run of a report: the probe is on the page (and is the one to report).
        arms, body = (COMPARE_ARMS, COMPARE_BODY) if page == "compare" else (CHAT_ARMS, CHAT_BODY)
        result = _probe(
            data={"target": target, "arms": list(arms), "body": body},
            key=key,
            height=0,
            on_seen_change=lambda: None,
        )
        reported = result.seen if result is not None else None
    # In the fragment run of a report the probe is not drawn again (it would re-send its code;
    # its watch on the page lives on, and the next run draws it again).
    if isinstance(reported, dict) and reported.get("target") == target and target is not None:
        try:
            seen = Seen(str(reported["target"]), float(reported["seconds"]))
        except (KeyError, TypeError, ValueError):
            seen = None
        if seen is not None and 0 <= seen.seconds < 3600:
            text = on_seen(seen)
            if text:
                state[shown_key] = (target, text)
    shown = state.get(shown_key)
    if shown and shown[0] == target:
        st.caption(shown[1])


def _reported(key: str) -> object | None:
    """The probe's report, when this run is the one it caused (a trigger lasts one run)."""
    try:
        return (st.session_state.get(key) or {}).get("seen")
    except Exception:  # no state for the probe in this run: it reports through its result
        return None
