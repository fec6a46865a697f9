"""Export as a page: one self-contained HTML file that replays a conversation (or a Compare run)
at its recorded pace, with its figures, for sending by mail.

No network at all: the CSS and the script are inline, nothing is loaded (a Content-Security-Policy
of default-src 'none' says so to the browser too, and lets only this page's own script run, by
its hash). Model output is text, never markup: the data goes in a `<script type="application/json">`
block with `<`, `>` and `&` written as \\u003c, \\u003e, \\u0026 (it cannot end the block), and the
script puts it on the page with textContent only.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from typing import Any

from . import metrics as metrics_mod
from .recording import NO_RECORDING, Recording
from .replay import when_label

CSS = """
:root { color-scheme: light dark; --fg: #1f2328; --muted: #656d76; --bg: #fff; --card: #f6f8fa;
  --line: #d0d7de; --accent: #E69F00; --blue: #0072B2; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #9198a1; --bg: #0d1117;
  --card: #161b22; --line: #30363d; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); }
main { max-width: 1100px; margin: 0 auto; padding: 24px 16px 64px; }
h1 { font-size: 1.5rem; margin: 0 0 4px; }
.sub { color: var(--muted); font-size: .9rem; margin-bottom: 20px; }
.msg { border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; margin: 12px 0;
  background: var(--card); }
.msg.user { background: transparent; }
.role { font-weight: 600; font-size: .85rem; color: var(--muted); margin-bottom: 4px; }
.body, .thinking { white-space: pre-wrap; overflow-wrap: anywhere; }
.thinking { color: var(--muted); border-left: 3px solid var(--line); padding-left: 10px;
  margin-bottom: 8px; font-size: .92rem; }
.thinking:empty, .body:empty { display: none; }
.mark { display: inline-block; font-size: .8rem; color: var(--accent); font-weight: 600; }
.controls { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; margin-top: 8px; }
button, select { font: inherit; font-size: .9rem; padding: 3px 10px; border-radius: 6px;
  border: 1px solid var(--line); background: var(--bg); color: var(--fg); cursor: pointer; }
button.play { border-color: var(--accent); }
.panel { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 8px; margin-top: 10px; }
.fig { border: 1px solid var(--line); border-radius: 8px; padding: 6px 8px; }
.fig .k { font-size: .75rem; color: var(--muted); }
.fig .v { font-size: 1.15rem; font-variant-numeric: tabular-nums; }
.details, .summary, .status { font-size: .8rem; color: var(--muted); margin-top: 6px; }
.sides { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 12px; }
.sides.n3 { grid-template-columns: repeat(3, minmax(0, 1fr)); }
.sides.n4 { grid-template-columns: repeat(4, minmax(0, 1fr)); }
.norec { font-size: .8rem; color: var(--muted); }
.cursor::after { content: " \\25CC"; color: var(--muted); }
"""

# The page's one script: builds the page from the data block with textContent only.
SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("replay-data").textContent);
  var app = document.getElementById("app");
  var SPEEDS = [["1\u00d7", 1], ["2\u00d7", 2], ["5\u00d7", 5], ["instant", Infinity]];
  var log = window.replayLog = [];   // what was played when (for tests and the curious)
  var current = null;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmtS(s) {
    if (s === null || s === undefined) return "\u2014";
    if (s < 0.9995) return Math.round(s * 1000) + " ms";
    if (s < 9.995) return s.toFixed(2) + " s";
    if (s < 99.95) return s.toFixed(1) + " s";
    return Math.round(s) + " s";
  }

  function Panel(parent) {
    var box = el("div");
    this.status = el("div", "status", "");
    var grid = el("div", "panel");
    this.v = {};
    var self = this;
    [["ttft", "TTFT"], ["tps", "Decode tok/s"], ["tokens", "Output tokens"], ["e2e", "E2E"]].forEach(
      function (kv) {
        var f = el("div", "fig");
        f.appendChild(el("div", "k", kv[1]));
        self.v[kv[0]] = f.appendChild(el("div", "v", "\u2014"));
        grid.appendChild(f);
      });
    this.details = el("div", "details", "");
    box.appendChild(this.status); box.appendChild(grid); box.appendChild(this.details);
    parent.appendChild(box);
  }
  Panel.prototype.set = function (k, text) { this.v[k].textContent = text; };
  Panel.prototype.final = function (rec) {
    var f = rec.figures;
    this.set("ttft", f.ttft); this.set("tps", f.tps); this.set("tokens", f.tokens); this.set("e2e", f.e2e);
    this.details.textContent = f.details;
  };

  function Player(rec, body, thinking, panel) {
    this.rec = rec; this.body = body; this.thinking = thinking; this.panel = panel;
    this.timer = null; this.clock = null; this.i = 0;
  }
  Player.prototype.start = function (speed, t0) {
    var rec = this.rec;
    this.speed = speed; this.t0 = t0; this.i = 0; this.tokens = 0;
    this.body.textContent = rec.prefix || ""; this.thinking.textContent = rec.reasoning_prefix || "";
    this.body.classList.add("cursor");
    ["ttft", "tps", "tokens", "e2e"].forEach(function (k) { this.panel.set(k, "\u2014"); }, this);
    this.panel.details.textContent = "";
    this.panel.status.textContent = "\u25b6 replaying at " + label(speed);
    this.entry = {label: rec.label, speed: speed, start: t0, first: null, last: null, end: null, chunks: 0};
    log.push(this.entry);
    var self = this;
    this.clock = setInterval(function () {
      var secs = (performance.now() - self.t0) / 1000 * (isFinite(self.speed) ? self.speed : 1);
      if (self.tokens === 0) {
        self.panel.status.textContent = "\u23f3 waiting for first token\u2026 " + secs.toFixed(1) + " s";
      }
      else self.panel.set("e2e", secs.toFixed(1) + " s\u2026");
    }, 100);
    this.tick();
  };
  Player.prototype.due = function (i) {
    return this.t0 + (isFinite(this.speed) ? this.rec.t[i] * 1000 / this.speed : 0);
  };
  Player.prototype.tick = function () {
    var rec = this.rec, n = rec.t.length, now = performance.now();
    var body = "", thought = "";
    while (this.i < n && this.due(this.i) <= now) {
      var i = this.i++;
      body += rec.c[i]; thought += rec.r ? rec.r[i] : "";
      if (rec.k[i]) {
        this.tokens++;
        if (this.entry.first === null) {
          this.entry.first = now;
          this.panel.set("ttft", rec.figures.ttft);
          this.panel.status.textContent = "\u25b6 replaying at " + label(this.speed);
        }
        this.entry.last = now;
      }
      this.entry.chunks++;
    }
    if (thought) this.thinking.appendChild(document.createTextNode(thought));
    if (body) this.body.appendChild(document.createTextNode(body));
    if (this.tokens) this.panel.set("tokens", String(this.tokens));
    if (this.i >= n) {
      var self = this, endDue = this.t0 + (isFinite(this.speed) ? rec.end * 1000 / this.speed : 0);
      this.timer = setTimeout(function () { self.finish(); }, Math.max(0, endDue - performance.now()));
      return;
    }
    var me = this;
    this.timer = setTimeout(function () { me.tick(); }, Math.max(0, this.due(this.i) - performance.now()));
  };
  Player.prototype.finish = function () {
    this.halt();
    this.body.textContent = (this.rec.prefix || "") + this.rec.text;
    this.thinking.textContent = (this.rec.reasoning_prefix || "") + this.rec.reasoning;
    this.panel.final(this.rec);
    this.panel.status.textContent = this.rec.figures.state;
    this.entry.end = performance.now();
  };
  Player.prototype.stop = function () {
    if (this.timer === null && this.clock === null) return;
    this.halt();
    this.panel.status.textContent = "\u23f9 replay stopped";
    this.entry.end = performance.now(); this.entry.stopped = true;
  };
  Player.prototype.halt = function () {
    clearTimeout(this.timer); clearInterval(this.clock); this.timer = this.clock = null;
    this.body.classList.remove("cursor");
  };

  function label(speed) { return isFinite(speed) ? speed + "\u00d7" : "instant"; }

  function controls(parent, players, mark) {
    var row = el("div", "controls");
    row.appendChild(el("span", "mark", mark));
    var play = row.appendChild(el("button", "play", "\u25b6 Replay"));
    var sel = row.appendChild(el("select"));
    SPEEDS.forEach(function (s, i) {
      var o = el("option", null, s[0]); o.value = String(i); sel.appendChild(o);
    });
    var stop = row.appendChild(el("button", "stop", "\u23f9 Stop"));
    play.addEventListener("click", function () {
      if (current) current.forEach(function (p) { p.stop(); });
      current = players;
      var t0 = performance.now(), speed = SPEEDS[Number(sel.value)][1];
      players.forEach(function (p) { p.start(speed, t0); });
    });
    stop.addEventListener("click", function () { players.forEach(function (p) { p.stop(); }); });
    parent.appendChild(row);
  }

  function message(parent, m) {
    var box = el("div", "msg " + m.role);
    box.appendChild(el("div", "role", m.heading || m.role));
    var thinking = box.appendChild(el("div", "thinking", m.reasoning || ""));
    var body = box.appendChild(el("div", "body", m.content || ""));
    if (m.summary) box.appendChild(el("div", "summary", m.summary));
    if (m.rec) {
      var panel = new Panel(box);
      panel.final(m.rec);
      panel.status.textContent = m.rec.figures.state;
      controls(box, [new Player(m.rec, body, thinking, panel)], m.rec.label);
    } else if (m.role === "assistant") {
      box.appendChild(el("div", "norec", data.no_recording));
    }
    parent.appendChild(box);
    return box;
  }

  document.title = data.title;
  app.appendChild(el("h1", null, data.title));
  app.appendChild(el("div", "sub", data.subtitle));
  if (data.kind === "compare") {
    if (data.prompt) message(app, {role: "user", heading: "Prompt", content: data.prompt});
    var sides = app.appendChild(el("div", "sides n" + data.sides.length)), players = [];
    data.sides.forEach(function (m) {
      var box = el("div", "msg assistant");
      box.appendChild(el("div", "role", m.heading));
      var thinking = box.appendChild(el("div", "thinking", m.reasoning || ""));
      var body = box.appendChild(el("div", "body", m.content));
      var panel = new Panel(box);
      panel.final(m.rec); panel.status.textContent = m.rec.figures.state;
      players.push(new Player(m.rec, body, thinking, panel));
      sides.appendChild(box);
    });
    controls(app, players, data.mark);
  } else {
    data.messages.forEach(function (m) { message(app, m); });
  }
})();
"""

_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def json_for_script(value: Any) -> str:
    """JSON that can sit inside a <script> block: no `<`, `>` or `&` (so no `</script>`, no
    `<!--`), escaped as JSON string escapes, which JSON.parse reads back unchanged."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escaped in _JSON_ESCAPES.items():
        text = text.replace(char, escaped)
    return text


def _shown(entry: dict[str, Any] | None, text: str) -> str:
    source = (entry or {}).get("source")
    return f"~{text}" if source in metrics_mod.ESTIMATE_SOURCES else text


def _value(figures: dict[str, Any], key: str) -> Any:
    return (figures.get(key) or {}).get("value")


def figures(rec: Recording) -> dict[str, str]:
    """The panel's figures as text, from the recorded final figures."""
    f = rec.metrics

    def seconds(key: str) -> str:
        v = _value(f, key)
        return "—" if v is None else metrics_mod.format_seconds(v)

    tps = _value(f, "decode_tps")
    tokens = _value(f, "output_tokens")
    details = []
    if _value(f, "thinking_s") is not None:
        details.append(f"time to answer {seconds('time_to_answer')} · thought {seconds('thinking_s')}")
    details.append(f"ITL p50 {seconds('itl_p50')} · p95 {seconds('itl_p95')} · max {seconds('itl_max')}")
    details.append(f"TTFB {seconds('ttfb')}")
    if _value(f, "bytes") is not None:
        details.append(f"{_value(f, 'bytes') / 1024:.1f} KB · {f.get('chunks', len(rec.chunks))} chunks")
    state = {"done": "✓ done", "stopped": "⏹ stopped", "failed": "⚠️ error"}.get(rec.state, rec.state)
    if rec.error:
        state += f": {rec.error}"
    return {
        "ttft": seconds("ttft"),
        "tps": "—" if tps is None else _shown(f.get("decode_tps"), f"{tps:.1f}"),
        "tokens": "—" if tokens is None else _shown(f.get("output_tokens"), str(tokens)),
        "e2e": seconds("e2e"),
        "details": " · ".join(details),
        "state": state,
    }


def _rec_data(rec: Recording) -> dict[str, Any]:
    out: dict[str, Any] = {
        "t": [round(c.t, 6) for c in rec.chunks],
        "c": [c.text for c in rec.chunks],
        "k": [1 if c.token else 0 for c in rec.chunks],
        "end": rec.end if math.isfinite(rec.end) else 0.0,
        "text": rec.text,
        "reasoning": rec.reasoning,
        "prefix": rec.prefix,
        "reasoning_prefix": rec.reasoning_prefix,
        "label": f"replay of {when_label(rec.created_at)}, {rec.model}",
        "figures": figures(rec),
    }
    if any(c.reasoning for c in rec.chunks):
        out["r"] = [c.reasoning for c in rec.chunks]
    return out


_HEADINGS = {"user": "You", "assistant": "Assistant", "system": "System"}
_DEFAULT_PAIR_SIDES = {None, "stream", "non-stream"}


def _page(title: str, data: dict[str, Any]) -> str:
    script_hash = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
    csp = (
        "default-src 'none'; "
        f"script-src 'sha256-{script_hash}'; style-src 'unsafe-inline'; "
        "img-src 'none'; connect-src 'none'; font-src 'none'; media-src 'none'; "
        "frame-src 'none'; base-uri 'none'; form-action 'none'"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n"
        f"<style>{CSS}</style>\n"
        '</head><body><main id="app"></main>\n'
        f'<script type="application/json" id="replay-data">{json_for_script(data)}</script>\n'
        f"<script>{SCRIPT}</script>\n"
        "</body></html>\n"
    )


def conversation_page(
    conversation: dict[str, Any], messages: list[dict[str, Any]], recordings: dict[str, Recording]
) -> str:
    """The conversation's messages (a branch, root first, as Store.conversation_path gives them),
    each recorded reply with ▶ Replay; `recordings` by message id."""
    title = str(conversation.get("title") or "Conversation")
    items = []
    for m in messages:
        item: dict[str, Any] = {
            "role": m.get("role", ""),
            "heading": _HEADINGS.get(m.get("role", ""), m.get("role", "")),
            "content": m.get("content") or "",
            "reasoning": m.get("reasoning") or "",
            "summary": m.get("summary") or "",
        }
        rec = recordings.get(m.get("id", ""))
        if rec is not None:
            item["rec"] = _rec_data(rec)
        items.append(item)
    data = {
        "kind": "conversation",
        "title": title,
        "subtitle": "StreamChat conversation · ▶ Replay plays a reply at its recorded pace.",
        "no_recording": NO_RECORDING,
        "messages": items,
    }
    return _page(title, data)


def compare_page(recordings: list[Recording], title: str | None = None) -> str:
    """A Compare run: its sides (2–4 lanes) side by side, one ▶ for all, at their original
    timing."""
    if not recordings:
        raise ValueError("nothing to export: no recording")
    first = recordings[0]
    default_pair = {rec.side for rec in recordings} <= _DEFAULT_PAIR_SIDES
    title = title or ("Streaming vs non-streaming" if default_pair else f"{len(recordings)} lanes compared")
    data = {
        "kind": "compare",
        "title": title,
        "subtitle": "StreamChat Compare run · ▶ Replay plays every side from the same moment, "
        "at their recorded timing.",
        "no_recording": NO_RECORDING,
        "prompt": first.prompt,
        "mark": f"replay of {when_label(first.created_at)}, {first.model}",
        "sides": [
            {
                "heading": rec.heading,
                "content": rec.prefix + rec.text,
                "reasoning": rec.reasoning_prefix + rec.reasoning,
                "rec": _rec_data(rec),
            }
            for rec in recordings
        ],
    }
    return _page(title, data)


def recording_page(rec: Recording, title: str = "StreamChat reply") -> str:
    """One recorded reply with its prompt (a chat reply or one side of a run)."""
    messages = [{"id": "", "role": "user", "content": rec.prompt}] if rec.prompt else []
    messages.append(
        {"id": "reply", "role": "assistant", "content": rec.prefix + rec.text, "reasoning": rec.reasoning}
    )
    return conversation_page({"title": title}, messages, {"reply": rec})


def conversation_page_from_store(store: Any, conversation_id: str) -> str:
    """The page for a saved conversation's current branch, with every recorded reply."""
    from .replay import load

    messages = store.conversation_path(conversation_id)
    recordings = {
        mid: rec
        for mid in store.recorded_messages(conversation_id)
        if (rec := load(store, message_id=mid)) is not None
    }
    return conversation_page(store.get_conversation(conversation_id) or {}, messages, recordings)
