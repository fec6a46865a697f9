"""A reply that follows you across app replicas: its progress over PostgreSQL LISTEN/NOTIFY.

Several replicas of the app share one PostgreSQL database. A reply streams in the replica that
started it (the owner: its Runner holds the HTTP connection); a browser session on another
replica follows it live and can stop it. Without PostgreSQL (SQLite, one process) nothing is
shared: `get_bus(None)` is the in-process `LiveBus`, which publishes nothing and follows nothing.

One `PgBus` per process, two connections, two threads:

- **Publishing** (thread `streamchat-live-pub`): every reply started here is watched; what it
  gained since the last notification goes out at most every PUBLISH_EVERY_S (FIRST_TEXT_EVERY_S
  until its first words, which therefore go out at once), on channel `streamchat_live`, as JSON
  `{"m": message id, "replica": id, "seq": n, "at": offset, "text": delta, "rat": offset,
  "reasoning": delta, "state": …, "t": seconds since the request was sent, "tok": token chunks…}`.
  Offsets are into the message's whole text (as the store keeps it): `text = text[:at] + delta`,
  which also carries an answer taken back into the thinking (a late `</think>`). A delta over
  PAYLOAD_BUDGET bytes (NOTIFY takes 8000) is split over consecutive events; only the last of a
  group has `state`, and a follower shows a group only once it has all of it. The generation is
  only read, never waited on: publishing cannot slow it.
- **Listening** (thread `streamchat-live-listen`): one LISTEN connection dispatches to every
  follower in the process; `streamchat_stop` (payload: a message id) stops a reply owned here;
  `streamchat_sync` (a message id) makes the owner send a snapshot, "*" a heartbeat at once.
- **Heartbeat**: a replica with replies in progress sends `{"replica": id, "beat": [ids]}` every
  HEARTBEAT_S. A follower whose owner has not been heard for OWNER_TIMEOUT_S, or whose owner's
  beat no longer lists the message, ends as interrupted with the text saved in the store.

A follower (`FollowedGeneration`) starts from the text saved in the store (the owner flushes it
twice a second), asks the owner for a snapshot, and from that snapshot on applies events in
`seq` order: nothing doubled, nothing lost; a gap in `seq` asks for a snapshot again.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .generation import (
    FAILED,
    STREAMING,
    TERMINAL_STATES,
    THINKING,
    WAITING_FIRST_TOKEN,
    ErrorInfo,
    Generation,
    GenerationRequest,
)
from .kinds import ErrorKind, GenerationState
from .singleton import ProcessWide

log = logging.getLogger(__name__)

CHANNEL = "streamchat_live"
STOP_CHANNEL = "streamchat_stop"
SYNC_CHANNEL = "streamchat_sync"
PUBLISH_EVERY_S = 0.05  # a reply's notifications: at most this often (20 a second)…
FIRST_TEXT_EVERY_S = 0.01  # …but its first words (and its start) are looked for this often
HEARTBEAT_S = 1.0
OWNER_TIMEOUT_S = 3.0  # a follower's owner not heard for this long is gone
ROLL_CALL_WAIT_S = 0.3  # a new bus waits this long (once) for the other replicas' heartbeats
LISTEN_WAKE_S = 0.25  # the listener looks at its followers' owners at least this often
PAYLOAD_BUDGET = 7000  # bytes of one NOTIFY payload (PostgreSQL's limit is 8000)
META_BUDGET = 1200  # room kept in each payload for the fields other than the text
INTERRUPTED = "The app replica writing this reply stopped before it finished; the text it saved last is kept."


class Publishable(Protocol):
    """What the owner publishes (a replies.ActiveReply)."""

    @property
    def message_id(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def reasoning(self) -> str: ...
    @property
    def generation(self) -> Generation: ...
    @property
    def saved(self) -> threading.Event: ...


# The saved message (Store.get_message: its content, reasoning and state), None when it is gone.
Loader = Callable[[], "Mapping[str, Any] | None"]


class LiveBus:
    """One process, nothing shared (SQLite mode): nothing is published, nothing followed."""

    def publish(self, reply: Publishable) -> None:
        """Let the other replicas follow `reply` (started in this process)."""

    def is_live(self, message_id: str) -> bool:
        """Whether another replica is writing `message_id` now."""
        return False

    def follow(self, message_id: str, load: Loader) -> FollowedGeneration | None:
        """The reply another replica is writing into `message_id`, followed from here."""
        return None

    def close(self) -> None:
        pass


# ---- the follower -----------------------------------------------------------------------------
class FollowedGeneration(Generation):
    """A generation running in another replica, seen from here: `text` and `reasoning` are the
    message's whole texts (a continued reply's earlier text included), the time stamps are the
    owner's mapped onto this process's clock (request sent = when the owner sent it, as far as
    the notification's transit allows), the token times spread over each notification's span."""

    is_followed = True

    def __init__(self, message_id: str, bus: PgBus, load: Loader, saved: Mapping[str, Any]) -> None:
        super().__init__(GenerationRequest(()))
        self.message_id = message_id
        self.bus = bus
        self.load = load
        self.owner: str | None = None  # the replica writing it
        self.saved = threading.Event()  # the owner saved the final reply (or gave it up)
        self.interrupted = False
        self.t_joined = time.perf_counter()
        self.t_sent = self.t_joined  # until the owner's first notification says better
        self.text, self.reasoning = saved["content"] or "", saved.get("reasoning") or ""
        self.state = STREAMING if self.text else THINKING if self.reasoning else WAITING_FIRST_TOKEN
        self.events = 0  # notifications applied (figures for tests and the bench)
        self._lock = threading.Lock()
        self._synced = False
        self._joining = False  # taking a snapshot in (it may be split over several events)
        self._seq = 0
        self._work = ["", ""]  # (text, reasoning) being assembled from a split group
        self._base: float | None = None  # the owner's request-sent moment on this clock

    def stop(self) -> None:
        """Ask the owner to stop: its listener stops the generation, which closes the HTTP
        connection; this one ends when the owner says it stopped."""
        if self.is_finished or self.t_stop_requested is not None:
            return
        self.t_stop_requested = time.perf_counter()
        self.bus.send_stop(self.message_id)

    # ---- fed by the bus's listener ---------------------------------------------------------
    def receive(self, ev: dict[str, Any], now: float) -> None:
        with self._lock:
            if self.is_finished:
                if ev.get("saved"):
                    self.saved.set()
                return
            if ev.get("saved"):  # it ended before this follower caught up: as it was saved
                self._end_as_saved()
                return
            seq = int(ev["seq"])
            if not self._synced:
                if ev.get("snap") != 1:  # wait for the start of a snapshot
                    return
                self._synced, self._work, self._joining = True, ["", ""], True
            elif seq != self._seq + 1:  # a notification was lost: start over from a snapshot
                self._synced = False
                self.bus.send_sync(self.message_id)
                return
            elif ev.get("snap") and not self._joining:  # for another follower: we have it all
                self._seq = seq
                return
            self._seq = seq
            self.owner = str(ev["replica"])
            if "at" in ev:
                self._work[0] = self._work[0][: int(ev["at"])] + str(ev.get("text", ""))
            if "rat" in ev:
                self._work[1] = self._work[1][: int(ev["rat"])] + str(ev.get("reasoning", ""))
            if "state" in ev:  # the last event of its group: show it all
                self._joining = False
                self._show(ev, now)

    def _show(self, ev: dict[str, Any], now: float) -> None:
        self.events += 1
        text, reasoning = self._work
        if not text.startswith(self.text):  # shown text was taken back: the renderer starts over
            self.answer_restarts += 1
        if ev.get("t") is not None:
            if self._base is None:
                self._base = now - float(ev["t"])
                self.t_sent = self._base
            owner_now = self._base + float(ev["t"])
            for name in ("first_token", "first_content", "first_reasoning"):
                rel = ev.get(name)
                if rel is not None:
                    setattr(self, f"t_{name}", self._base + float(rel))
            _spread(self.token_times, int(ev.get("tok", 0)), self.t_first_token, owner_now)
            _spread(self.content_times, int(ev.get("ctok", 0)), self.t_first_content, owner_now)
            _spread(self.reasoning_times, int(ev.get("rtok", 0)), self.t_first_reasoning, owner_now)
            if self.token_times:
                self.t_last_token = self.token_times[-1]
            if self.content_times:
                self.t_last_content = self.content_times[-1]
            if self.reasoning_times:
                self.t_last_reasoning = self.reasoning_times[-1]
        self.reasoning = reasoning  # thinking first: moved answer text is never in neither
        self.text = text
        self.bytes_received = int(ev.get("bytes", self.bytes_received))
        state = GenerationState(ev["state"])
        if state not in TERMINAL_STATES:
            self.state = state
            return
        self.finish_reason = ev.get("finish")
        self.usage = ev.get("usage")
        error = ev.get("error")
        info = ErrorInfo(ErrorKind(error[0]), str(error[1])) if error else None
        end = self._base + float(ev["end"]) if self._base is not None and "end" in ev else now
        self._end(state, end, info)

    def interrupt(self) -> None:
        """The owner is gone, or no longer writes this message: end as the store has it (a
        message still saved as streaming: interrupted, with the text the owner saved last)."""
        with self._lock:
            self._end_as_saved()

    def _end_as_saved(self) -> None:
        if self.is_finished:
            self.saved.set()
            return
        try:
            saved = self.load()
        except Exception:
            log.exception("could not read the saved text of %s", self.message_id)
            saved = None
        state: GenerationState = FAILED
        error: ErrorInfo | None = ErrorInfo(ErrorKind.DROPPED, INTERRUPTED)
        if saved is not None:
            self.reasoning = saved.get("reasoning") or ""
            self.text = saved["content"] or ""
            if saved["state"] in TERMINAL_STATES:  # it ended and was saved meanwhile
                state = GenerationState(saved["state"])
                error = ErrorInfo(ErrorKind.UNEXPECTED, saved["error"]) if saved.get("error") else None
        self.interrupted = error is not None and error.message == INTERRUPTED
        self._end(state, time.perf_counter(), error)
        self.saved.set()

    def _end(self, state: GenerationState, t_end: float, error: ErrorInfo | None) -> None:
        self.error, self.t_end, self.state = error, t_end, state
        self._finished.set()
        for fn in self._done_callbacks:
            try:
                fn(self)
            except Exception:
                log.exception("done callback failed")


def _spread(times: list[float], count: int, first: float | None, until: float) -> None:
    """Add stamps to `times` up to `count`, evenly from the last known one (or `first`) to
    `until`: the owner's chunks arrived somewhere in that span."""
    missing = count - len(times)
    if missing <= 0:
        return
    start = times[-1] if times else (first if first is not None else until)
    step = (until - start) / missing if times else (until - start) / max(missing - 1, 1)
    base = start + step if times else start
    times.extend(base + i * step for i in range(missing))


# ---- the owner's side ---------------------------------------------------------------------------
@dataclass
class _Outgoing:
    reply: Publishable
    seq: int = 0
    text: str = ""
    reasoning: str = ""
    meta: tuple[Any, ...] = ()
    sync: bool = True  # send a snapshot next (the first notification is one)
    ended: bool = False  # the terminal state is out
    last: float = 0.0  # when it was last published (perf_counter)


@dataclass
class _Replica:
    heard: float  # perf_counter of its last notification
    live: set[str] = field(default_factory=set)  # messages it is writing
    beat: set[str] = field(default_factory=set)  # a heartbeat split over several notifications


def _common_prefix(a: str, b: str) -> int:
    if b.startswith(a):
        return len(a)
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _json_len(s: str) -> int:
    return len(json.dumps(s, ensure_ascii=False).encode())


def split_text(s: str, budget: int) -> Iterator[str]:
    """Consecutive pieces of `s`, each at most `budget` bytes as a JSON string."""
    i = 0
    while i < len(s):
        n = min(len(s) - i, budget)
        while n > 1 and _json_len(s[i : i + n]) > budget:
            n = max(1, n * budget // (_json_len(s[i : i + n]) + 1))
        yield s[i : i + n]
        i += n


def _rel(t: float | None, t0: float | None) -> float | None:
    return None if t is None or t0 is None else round(t - t0, 6)


class PgBus(LiveBus):
    """The bus over PostgreSQL; see the module's docstring."""

    def __init__(self, url: str, replica: str | None = None) -> None:
        import psycopg

        self._psycopg = psycopg
        self.url = url
        self.replica = replica or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.notifies_sent = 0  # figures: notifications this replica sent
        self.stops_received: dict[str, float] = {}  # message id -> perf_counter of the stop
        self._lock = threading.Lock()
        self._outgoing: dict[str, _Outgoing] = {}
        self._followers: dict[str, FollowedGeneration] = {}
        self._replicas: dict[str, _Replica] = {}
        self._beat_now = True
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._listening = threading.Event()
        self._send_lock = threading.Lock()
        self._send_conn: Any = None
        self._t_roll_call: float | None = None
        self._listener = threading.Thread(target=self._listen, name="streamchat-live-listen", daemon=True)
        self._publisher = threading.Thread(target=self._publish, name="streamchat-live-pub", daemon=True)
        self._listener.start()
        self._publisher.start()
        self._listening.wait(10)

    # ---- the API ----------------------------------------------------------------------------
    def publish(self, reply: Publishable) -> None:
        with self._lock:
            self._outgoing[reply.message_id] = _Outgoing(reply)
        reply.generation.add_done_callback(lambda _: self._wake.set())
        self._wake.set()

    def is_live(self, message_id: str) -> bool:
        return self._owner_of(message_id) is not None

    def follow(self, message_id: str, load: Loader) -> FollowedGeneration | None:
        with self._lock:
            f = self._followers.get(message_id)
        if f is not None and not f.is_finished:
            return f
        owner = self._owner_of(message_id)
        if owner is None:
            return None
        saved = load()
        if saved is None:
            return None
        f = FollowedGeneration(message_id, self, load, saved)
        f.owner = owner
        with self._lock:
            self._followers[message_id] = f
        self.send_sync(message_id)
        return f

    def send_stop(self, message_id: str) -> None:
        self._send([(STOP_CHANNEL, message_id)])

    def send_sync(self, message_id: str) -> None:
        self._send([(SYNC_CHANNEL, message_id)])

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        for thread in (self._publisher, self._listener):
            if thread is not threading.current_thread():
                thread.join(5)
        with self._send_lock:
            if self._send_conn is not None:
                self._send_conn.close()
                self._send_conn = None

    # ---- who writes what ----------------------------------------------------------------------
    def _owner_of(self, message_id: str) -> str | None:
        if self._t_roll_call is not None:  # the first time: the other replicas answer the roll call
            left = self._t_roll_call + ROLL_CALL_WAIT_S - time.perf_counter()
            if left > 0:
                self._closed.wait(left)
        now = time.perf_counter()
        with self._lock:
            for name, r in self._replicas.items():
                if message_id in r.live and now - r.heard < OWNER_TIMEOUT_S:
                    return name
        return None

    # ---- sending --------------------------------------------------------------------------------
    def _connect(self) -> Any:
        return self._psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=5,
            application_name=f"streamchat-live {self.replica}"[:63],
        )

    def _send(self, notes: list[tuple[str, str]]) -> bool:
        """NOTIFY each (channel, payload), in order, on the process's sending connection."""
        if not notes:
            return True
        with self._send_lock:
            for attempt in range(2):
                try:
                    if self._send_conn is None or self._send_conn.closed:
                        self._send_conn = self._connect()
                    with self._send_conn.cursor() as cur:
                        if len(notes) == 1:
                            cur.execute("SELECT pg_notify(%s, %s)", notes[0])
                        else:
                            cur.executemany("SELECT pg_notify(%s, %s)", notes)
                    self.notifies_sent += len(notes)
                    return True
                except self._psycopg.Error as exc:
                    if self._send_conn is not None:
                        self._send_conn.close()
                    self._send_conn = None
                    if attempt:
                        log.warning("live bus: could not notify (%s)", exc)
        return False

    def _publish(self) -> None:
        next_beat = 0.0
        while not self._closed.is_set():
            self._wake.clear()  # before looking: a wake-up from now on is not lost
            now = time.perf_counter()
            wait = HEARTBEAT_S
            notes: list[tuple[str, str]] = []
            with self._lock:
                outgoing = list(self._outgoing.values())
            for out in outgoing:
                g = out.reply.generation
                every = FIRST_TEXT_EVERY_S if not (out.text or out.reasoning) else PUBLISH_EVERY_S
                due = out.last + every
                if out.sync or now >= due or (g.is_finished and not out.ended):
                    notes += self._events(out, now)
                    due = now + every
                if out.ended and out.reply.saved.is_set():
                    out.seq += 1
                    notes.append((CHANNEL, self._payload(out, saved=True)))
                    with self._lock:
                        self._outgoing.pop(out.reply.message_id, None)
                    continue
                wait = min(wait, max(due - now, 0.001))
            if now >= next_beat or self._beat_now:
                self._beat_now = False
                with self._lock:
                    live = list(self._outgoing)
                if live:
                    notes += self._beats(live)
                next_beat = now + HEARTBEAT_S
            try:
                self._send(notes)
            except Exception:
                log.exception("live bus: publishing failed")
            self._wake.wait(wait)

    def _payload(self, out: _Outgoing, **fields: Any) -> str:
        return json.dumps(
            {"m": out.reply.message_id, "replica": self.replica, "seq": out.seq, **fields},
            ensure_ascii=False,
            separators=(",", ":"),
        )

    def _beats(self, live: list[str]) -> list[tuple[str, str]]:
        """This replica's heartbeat: the messages it is writing (over several notifications
        when they are many: `more` on all but the last)."""
        per = max(1, (PAYLOAD_BUDGET - 200) // 40)
        parts = [live[i : i + per] for i in range(0, len(live), per)] or [[]]
        return [
            (
                CHANNEL,
                json.dumps(
                    {"replica": self.replica, "beat": part, **({"more": 1} if i < len(parts) - 1 else {})},
                    separators=(",", ":"),
                ),
            )
            for i, part in enumerate(parts)
        ]

    def _events(self, out: _Outgoing, now: float) -> list[tuple[str, str]]:
        """What the reply gained since its last notification (a snapshot when asked for)."""
        reply, g = out.reply, out.reply.generation
        state = g.state  # read first: once it is terminal, the texts are final
        # The answer before the thinking, as the flusher reads them (see replies.flush_partial).
        text, reasoning = reply.text, reply.reasoning
        t0 = g.t_sent
        meta: dict[str, Any] = {
            "state": str(state),
            "t": _rel(time.perf_counter(), t0),
            "first_token": _rel(g.t_first_token, t0),
            "first_content": _rel(g.t_first_content, t0),
            "first_reasoning": _rel(g.t_first_reasoning, t0),
            "tok": g.token_chunk_count,
            "ctok": g.content_chunk_count,
            "rtok": g.reasoning_chunk_count,
            "bytes": g.bytes_received,
        }
        if state in TERMINAL_STATES:
            meta.update(
                end=_rel(g.t_end, t0),
                finish=g.finish_reason,
                usage=g.usage,
                error=[str(g.error.kind), g.error.message] if g.error else None,
            )
        meta = {k: v for k, v in meta.items() if v is not None}
        notes: list[tuple[str, str]] = []
        at = _common_prefix(out.text, text)
        rat = _common_prefix(out.reasoning, reasoning)
        changed = at < max(len(out.text), len(text)) or rat < max(len(out.reasoning), len(reasoning))
        key = (state, g.token_chunk_count)
        if out.seq == 0 or changed or key != out.meta:
            notes += self._group(out, at, text[at:], rat, reasoning[rat:], meta, snap=False)
        if out.sync:
            out.sync = False
            notes += self._group(out, 0, text, 0, reasoning, meta, snap=True)
        out.text, out.reasoning, out.meta, out.last = text, reasoning, key, now
        out.ended = state in TERMINAL_STATES
        return notes

    def _group(
        self,
        out: _Outgoing,
        at: int,
        text: str,
        rat: int,
        reasoning: str,
        meta: dict[str, Any],
        *,
        snap: bool,
    ) -> list[tuple[str, str]]:
        """Events that together carry one change: text pieces, then reasoning pieces; the last
        one carries `meta` (the state: a follower shows the group when it has it)."""
        budget = PAYLOAD_BUDGET - META_BUDGET
        pieces: list[dict[str, Any]] = []
        for piece in split_text(text, budget):
            pieces.append({"at": at, "text": piece})
            at += len(piece)
        if not text and (snap or at < len(out.text)):
            pieces.append({"at": at})  # an empty snapshot, or text taken back
        for piece in split_text(reasoning, budget):
            pieces.append({"rat": rat, "reasoning": piece})
            rat += len(piece)
        if not reasoning and (snap or rat < len(out.reasoning)):
            pieces.append({"rat": rat})
        if not pieces:
            pieces.append({})
        pieces[-1].update(meta)
        notes: list[tuple[str, str]] = []
        for i, fields in enumerate(pieces):
            out.seq += 1
            if snap:
                fields["snap"] = 1 if i == 0 else 2
            notes.append((CHANNEL, self._payload(out, **fields)))
        return notes

    # ---- listening ------------------------------------------------------------------------------
    def _listen(self) -> None:
        while not self._closed.is_set():
            try:
                with self._connect() as conn:
                    for channel in (CHANNEL, STOP_CHANNEL, SYNC_CHANNEL):
                        conn.execute(f"LISTEN {channel}")
                    self._after_connect()
                    while not self._closed.is_set():
                        for n in conn.notifies(timeout=LISTEN_WAKE_S):
                            self._dispatch(n.channel, n.payload)
                        self._check_owners()
            except self._psycopg.Error as exc:
                log.warning("live bus: listening failed (%s); trying again", exc)
                self._closed.wait(1.0)
            except Exception:
                log.exception("live bus: listener failed; trying again")
                self._closed.wait(1.0)

    def _after_connect(self) -> None:
        """Listening (again): ask every replica for a heartbeat, and every follower for a
        snapshot (notifications sent while not listening are lost)."""
        with self._lock:
            followers = list(self._followers.values())
        for f in followers:
            f._synced = False
        self._t_roll_call = time.perf_counter()
        self._send([(SYNC_CHANNEL, "*")] + [(SYNC_CHANNEL, f.message_id) for f in followers])
        self._listening.set()

    def _dispatch(self, channel: str, payload: str) -> None:
        now = time.perf_counter()
        if channel == STOP_CHANNEL:
            with self._lock:
                out = self._outgoing.get(payload)
            if out is not None:
                if len(self.stops_received) > 1000:
                    self.stops_received.clear()
                self.stops_received[payload] = now
                out.reply.generation.stop()
            return
        if channel == SYNC_CHANNEL:
            with self._lock:
                if payload == "*":
                    self._beat_now = True
                elif (out := self._outgoing.get(payload)) is not None:
                    out.sync = True
                else:
                    return
            self._wake.set()
            return
        ev = json.loads(payload)
        replica = str(ev.get("replica"))
        if replica == self.replica:
            return
        follower: FollowedGeneration | None = None
        gone: list[FollowedGeneration] = []
        with self._lock:
            r = self._replicas.setdefault(replica, _Replica(now))
            r.heard = now
            if "beat" in ev:
                r.beat.update(ev["beat"])
                if ev.get("more"):
                    return
                r.live, r.beat = r.beat, set()
                gone = [
                    f
                    for mid, f in self._followers.items()
                    if f.owner == replica and mid not in r.live and not f.saved.is_set()
                ]
            else:
                mid = str(ev["m"])
                if ev.get("saved"):
                    r.live.discard(mid)
                else:
                    r.live.add(mid)
                follower = self._followers.get(mid)
        if follower is not None:
            follower.receive(ev, now)
        for f in gone:  # its owner no longer writes it: it ended, or it was lost
            f.interrupt()

    def _check_owners(self) -> None:
        now = time.perf_counter()
        with self._lock:
            for mid, f in list(self._followers.items()):
                if f.saved.is_set():
                    del self._followers[mid]
            followers = list(self._followers.values())
            heard = {name: r.heard for name, r in self._replicas.items()}
            for name, t in heard.items():
                if now - t > 10 * OWNER_TIMEOUT_S:
                    del self._replicas[name]
        for f in followers:
            last = heard.get(f.owner, f.t_joined) if f.owner else f.t_joined
            if now - max(last, f.t_joined) > OWNER_TIMEOUT_S:
                f.interrupt()


# ---- one per process -----------------------------------------------------------------------------
_LOCAL = LiveBus()
_bus: ProcessWide[LiveBus] = ProcessWide(close=lambda bus: bus.close())


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgres://", "postgresql://"))


def get_bus(database_url: str | None) -> LiveBus:
    """The process's bus for the database at `database_url`: over PostgreSQL one `PgBus` per
    process (made on first use; `current()` then returns it), else the in-process no-op."""
    if database_url is None or not is_postgres_url(database_url):
        return _LOCAL
    url = database_url
    return _bus.get(lambda: PgBus(url), fits=lambda bus: isinstance(bus, PgBus) and bus.url == url)


def current() -> LiveBus:
    """The bus `get_bus` made for this process, else the in-process no-op (SQLite mode)."""
    return _bus.peek() or _LOCAL
