"""The store: conversations, their messages, and one row per request ("runs"), with recordings
and share links; in SQLite (the default: a file in STREAMCHAT_DATA_DIR) or PostgreSQL
(STREAMCHAT_DATABASE_URL). Its SQL is written once for both; what differs (connections, locks,
placeholders, types, errors) is in streamchat.database.

One short-lived connection per operation (from a pool on PostgreSQL): safe from any thread
(Streamlit script threads come and go with each re-run, so per-thread connections would leak).
Every write is one small transaction, one writer at a time, so a writer waits at most for another
small write. Errors are StoreError (StoreUnavailable: locked, busy, disk full, server gone).

API keys are never stored: endpoints are kept as base_url only (without user:password).
"""

from __future__ import annotations

import json
import secrets
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from . import migrations
from .database import DB_NAME as DB_NAME
from .database import Connection, Database, SQLiteDatabase, open_database
from .database import CorruptDatabase as CorruptDatabase
from .database import DatabaseBusy as DatabaseBusy
from .database import StoreBusy as StoreBusy
from .database import StoreError as StoreError
from .database import StoreUnavailable as StoreUnavailable
from .kinds import MessageState, RunSource
from .messages import Message
from .records import run_fields_from_generation as run_fields_from_generation  # for existing callers
from .records import safe_base_url as safe_base_url  # for existing callers
from .records import to_json
from .text import clean_text

if TYPE_CHECKING:
    from .config import Settings

DEFAULT_TITLE = "New chat"
TITLE_LENGTH = 60

ROLES = ("system", "user", "assistant")
MESSAGE_STATES = tuple(state.value for state in MessageState)
RUN_COLUMNS = (
    "created_at",
    "source",
    "conversation_id",
    "message_id",
    "provider",
    "base_url",
    "model",
    "mode",
    "state",
    "ttft_s",
    "ttfb_s",
    "e2e_s",
    "decode_tps",
    "tpot_s",
    "itl_p50_s",
    "itl_p95_s",
    "output_tokens",
    "output_tokens_source",
    "bytes",
    "chunks",
    "error_kind",
    "error",
    "extra_json",
    "owner",
    "time_to_answer_s",
    "thinking_s",
    "reasoning_tokens",
    "visible_ttft_s",
    "compare_id",
    "lane",
)


SHARE_TOKEN_BYTES = 24  # secrets.token_urlsafe(24): 192 bits, 32 characters


class ShareStatus(StrEnum):
    OK = "ok"
    UNKNOWN = "unknown"  # no such token (mistyped, or never made)
    REVOKED = "revoked"  # the owner revoked it
    GONE = "gone"  # what it showed was deleted


@dataclass(frozen=True)
class ShareLookup:
    status: ShareStatus
    share: dict[str, Any] | None = None  # the shares row (token, owner, conversation_id, run_id, …)

    @property
    def ok(self) -> bool:
        return self.status == ShareStatus.OK


APPEND = object()  # add_message: make the new message a child of the conversation's current leaf


# ---- helpers ---------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _clean(value: Any) -> Any:
    return clean_text(value) if isinstance(value, str) else value


def _message_row(row: Any) -> Message:
    d = dict(row)
    raw = d.pop("metrics_json")
    d["metrics"] = json.loads(raw) if raw else None
    return cast(Message, d)


def _run_row(row: Any) -> dict[str, Any]:
    d = dict(row)
    raw = d.pop("extra_json")
    try:
        d["extra"] = json.loads(raw) if raw else None
    except ValueError:  # one damaged old row must not break the Runs page
        d["extra"] = None
    return d


def title_from(content: str) -> str:
    line = " ".join(content.split())
    if len(line) <= TITLE_LENGTH:
        return line
    return line[: TITLE_LENGTH - 1].rstrip() + "…"


# ---- the store -------------------------------------------------------------------------------
class Store:
    """Conversations, messages, runs, recordings and share links, in SQLite (`Store(data_dir)`,
    the default) or PostgreSQL (`Store(database=PostgresDatabase(url))`; see `open_store`)."""

    def __init__(self, data_dir: str | Path | None = None, *, database: Database | None = None):
        if database is None:
            if data_dir is None:
                raise ValueError("give a data_dir (SQLite) or a database")
            database = SQLiteDatabase(data_dir)
        self.db = database
        self._open()

    @property
    def data_dir(self) -> Path | None:
        """The SQLite store's folder (None on PostgreSQL)."""
        return getattr(self.db, "data_dir", None)

    @property
    def path(self) -> Path | None:
        """The SQLite file (None on PostgreSQL)."""
        return self.db.path

    @property
    def recovered_from(self) -> Path | None:
        """Where a corrupt SQLite file was moved to when this store opened."""
        return self.db.recovered_from

    @property
    def write_patience(self) -> float:
        """How long a write waits for another writer's lock before DatabaseBusy."""
        return self.db.write_patience

    @write_patience.setter
    def write_patience(self, seconds: float) -> None:
        self.db.write_patience = seconds

    @property
    def lock_waits(self) -> int:
        return self.db.lock_waits

    def describe(self) -> str:
        """Where the data is, for messages (never a password)."""
        return self.db.describe()

    def close(self) -> None:
        self.db.close()

    def _connect(self, write: bool = False) -> AbstractContextManager[Connection]:
        return self.db.connect(write)

    def _open(self) -> None:
        self.db.migrate(migrations.apply_pending)

    @property
    def schema_version(self) -> int:
        with self._connect() as conn:
            return conn.schema_version()

    # ---- conversations ----
    def create_conversation(self, title: str = DEFAULT_TITLE, owner: str | None = None) -> str:
        cid, now = uuid.uuid4().hex, _now()
        with self._connect(write=True) as conn:
            conn.execute(
                "INSERT INTO conversations (id, title, created_at, updated_at, owner) VALUES (?, ?, ?, ?, ?)",
                (cid, clean_text(title), now, now, owner),
            )
        return cid

    def list_conversations(self, owner: str | None = None) -> list[dict[str, Any]]:
        """Newest first; only `owner`'s when given."""
        where, args = ("WHERE owner = ?", (owner,)) if owner is not None else ("", ())
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT * FROM conversations {where} ORDER BY updated_at DESC, {conn.insertion_order} DESC",
                args,
            )
            return [dict(r) for r in rows]

    def get_conversation(self, conversation_id: str) -> dict[str, Any] | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
            return dict(row) if row else None

    def rename_conversation(self, conversation_id: str, title: str) -> None:
        with self._connect(write=True) as conn:
            conn.execute(
                "UPDATE conversations SET title = ?, updated_at = ? WHERE id = ?",
                (clean_text(title), _now(), conversation_id),
            )

    def delete_conversation(self, conversation_id: str) -> None:
        with self._connect(write=True) as conn:
            conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def conversation_messages(self, conversation_id: str) -> list[Message]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM messages WHERE conversation_id = ? ORDER BY seq", (conversation_id,)
            )
            return [_message_row(r) for r in rows]

    def conversation_path(self, conversation_id: str, up_to: str | None = None) -> list[Message]:
        """The messages of the current branch (or of the branch ending at message `up_to`), root
        first. Each has `siblings` (ids of the versions at its place, oldest first) and `version`
        (its 1-based index among them)."""
        messages = self.conversation_messages(conversation_id)
        conv = self.get_conversation(conversation_id)
        if not messages or conv is None:
            return []
        by_id = {m["id"]: m for m in messages}
        if up_to is not None and up_to not in by_id:
            return []
        children: dict[str | None, list[str]] = {}
        for m in messages:
            children.setdefault(m["parent_id"], []).append(m["id"])
        node: Message | None = by_id.get(str(up_to or conv.get("leaf_id") or "")) or messages[-1]
        path: list[Message] = []
        while node is not None:
            siblings = children[node["parent_id"]]
            path.append({**node, "siblings": siblings, "version": siblings.index(node["id"]) + 1})
            node = by_id.get(node["parent_id"] or "")
        return path[::-1]

    def switch_branch(self, conversation_id: str, message_id: str) -> None:
        """Show the branch through `message_id`: the leaf becomes its newest descendant."""
        messages = self.conversation_messages(conversation_id)
        newest_child: dict[str, str] = {}
        for m in messages:  # ordered by seq, so the last child seen is the newest
            if m["parent_id"] is not None:
                newest_child[m["parent_id"]] = m["id"]
        leaf = message_id
        while leaf in newest_child:
            leaf = newest_child[leaf]
        with self._connect(write=True) as conn:
            conn.execute(
                "UPDATE conversations SET leaf_id = ?, updated_at = ? WHERE id = ?",
                (leaf, _now(), conversation_id),
            )

    # ---- messages ----
    def add_message(
        self,
        conversation_id: str,
        role: str,
        content: str,
        *,
        state: str = MessageState.DONE,
        error: str | None = None,
        summary: str | None = None,
        metrics: Any = None,
        parent_id: Any = APPEND,
        reasoning: str | None = None,
    ) -> str:
        """Add a message and make it the conversation's current leaf. By default it continues the
        current branch; an explicit `parent_id` starts a sibling branch (regenerate, edit).
        `reasoning`: an assistant reply's thinking (kept and shown, never sent to the model)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        if state not in MESSAGE_STATES:
            raise ValueError(f"state must be one of {MESSAGE_STATES}, not {state!r}")
        mid, now, content = uuid.uuid4().hex, _now(), clean_text(content)
        with self._connect(write=True) as conn:
            conv = conn.execute(
                "SELECT title, leaf_id FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
            if conv is None:
                raise KeyError(f"no conversation {conversation_id!r}")
            if parent_id is APPEND:
                parent_id = conv["leaf_id"]
                if role == "user" and parent_id is not None:
                    # Turns alternate: a message sent while the last one still has no reply
                    # (another tab sent it a moment ago) becomes another version of it.
                    leaf = conn.execute(
                        "SELECT role, parent_id FROM messages WHERE id = ?", (parent_id,)
                    ).fetchone()
                    if leaf is not None and leaf["role"] == "user":
                        parent_id = leaf["parent_id"]
            seq = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conversation_id = ?", (conversation_id,)
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO messages (id, conversation_id, parent_id, role, content, state, error,"
                " summary, metrics_json, created_at, seq, reasoning)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    mid,
                    conversation_id,
                    parent_id,
                    role,
                    content,
                    state,
                    _clean(error),
                    _clean(summary),
                    to_json(metrics),
                    now,
                    seq,
                    _clean(reasoning) or None,
                ),
            )
            title = conv["title"]
            if role == "user" and title == DEFAULT_TITLE and title_from(content):
                title = title_from(content)
            conn.execute(
                "UPDATE conversations SET title = ?, updated_at = ?, leaf_id = ? WHERE id = ?",
                (title, now, mid, conversation_id),
            )
        return mid

    def update_message(
        self,
        message_id: str,
        *,
        content: str | None = None,
        state: str | None = None,
        error: str | None = None,
        summary: str | None = None,
        metrics: Any = None,
        reasoning: str | None = None,
    ) -> None:
        """Set the given fields; None leaves a field as it is."""
        if state is not None and state not in MESSAGE_STATES:
            raise ValueError(f"state must be one of {MESSAGE_STATES}, not {state!r}")
        changes = {
            "content": _clean(content),
            "state": state,
            "error": _clean(error),
            "summary": _clean(summary),
            "metrics_json": to_json(metrics),
            "reasoning": _clean(reasoning),
        }
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return
        assignments = ", ".join(f"{k} = ?" for k in changes)
        with self._connect(write=True) as conn:
            row = conn.execute(
                f"UPDATE messages SET {assignments} WHERE id = ? RETURNING conversation_id",
                (*changes.values(), message_id),
            ).fetchone()
            if row is not None:
                conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (_now(), row[0]))

    def get_message(self, message_id: str) -> Message | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
            return _message_row(row) if row else None

    def record_visible_ttft(self, message_id: str, seconds: float) -> bool:
        """Keep a browser-measured visible TTFT with a reply (its metrics) and its newest run.
        False when the reply has it already (a measurement is reported once) or is gone."""
        with self._connect(write=True) as conn:
            row = conn.execute("SELECT metrics_json FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                return False
            figures = json.loads(row[0]) if row[0] else {}
            if figures.get("visible_ttft") is not None:
                return False
            figures["visible_ttft"] = {"value": seconds, "source": "browser"}
            conn.execute("UPDATE messages SET metrics_json = ? WHERE id = ?", (to_json(figures), message_id))
            conn.execute(
                """UPDATE runs SET visible_ttft_s = ? WHERE id =
                            (SELECT MAX(id) FROM runs WHERE message_id = ?)""",
                (seconds, message_id),
            )
            return True

    def record_run_visible_ttft(self, run_id: int, seconds: float) -> bool:
        """The same for a run with no message (a Compare run): once, False if it has one."""
        with self._connect(write=True) as conn:
            return (
                conn.execute(
                    "UPDATE runs SET visible_ttft_s = ? WHERE id = ? AND visible_ttft_s IS NULL",
                    (seconds, run_id),
                ).rowcount
                == 1
            )

    # ---- runs ----
    def record_run(self, **fields: Any) -> int:
        """Insert one run row. Keys are RUN_COLUMNS; `extra` (any JSON-able value) may stand for
        extra_json."""
        if "extra" in fields:
            fields["extra_json"] = fields.pop("extra")
        if not isinstance(fields.get("extra_json"), (str, type(None))):
            fields["extra_json"] = to_json(fields["extra_json"])
        unknown = set(fields) - set(RUN_COLUMNS)
        if unknown:
            raise ValueError(f"unknown run fields: {sorted(unknown)}")
        fields.setdefault("created_at", _now())
        fields.setdefault("source", RunSource.CHAT)
        fields["base_url"] = safe_base_url(fields.get("base_url"))
        with self._connect(write=True) as conn:
            if "owner" not in fields and fields.get("conversation_id"):
                row = conn.execute(
                    "SELECT owner FROM conversations WHERE id = ?", (fields["conversation_id"],)
                ).fetchone()
                fields["owner"] = row["owner"] if row else None
            names = list(fields)
            return conn.insert(
                f"INSERT INTO runs ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
                [_clean(fields[n]) for n in names],
            )

    def runs(self, limit: int | None = None, **filters: Any) -> list[dict[str, Any]]:
        """Runs newest first; filters are column=value equality tests, e.g. runs(source="compare")."""
        unknown = set(filters) - set(RUN_COLUMNS) - {"id"}
        if unknown:
            raise ValueError(f"unknown run fields: {sorted(unknown)}")
        where = " AND ".join(f"{k} IS NULL" if v is None else f"{k} = ?" for k, v in filters.items())
        sql = f"SELECT * FROM runs WHERE {where or '1 = 1'} ORDER BY id DESC"
        params = [v for v in filters.values() if v is not None]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._connect() as conn:
            return [_run_row(r) for r in conn.execute(sql, params)]

    # ---- recordings (streamchat.recording) ----
    def save_recording(
        self,
        data: bytes,
        *,
        message_id: str | None = None,
        run_id: int | None = None,
        group_id: str | None = None,
        owner: str | None = None,
    ) -> int:
        """Keep a packed recording (streamchat.recording.encode) with a reply's message and/or a
        run. A message keeps only its newest recording (a Continue records again)."""
        if message_id is None and run_id is None:
            raise ValueError("a recording belongs to a message or a run")
        with self._connect(write=True) as conn:
            if owner is None and run_id is not None:
                row = conn.execute("SELECT owner FROM runs WHERE id = ?", (run_id,)).fetchone()
                owner = row["owner"] if row else None
            return conn.insert(
                "INSERT INTO recordings (message_id, run_id, group_id, owner, created_at, data)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (message_id, run_id, group_id, owner, _now(), bytes(data)),
            )

    def recording_data(self, *, message_id: str | None = None, run_id: int | None = None) -> bytes | None:
        """The newest packed recording of a message (or of a run); None: no recording."""
        column, key = ("message_id", message_id) if message_id is not None else ("run_id", run_id)
        if key is None:
            raise ValueError("give a message_id or a run_id")
        with self._connect() as conn:
            row = conn.execute(
                f"SELECT data FROM recordings WHERE {column} = ? ORDER BY id DESC LIMIT 1", (key,)
            ).fetchone()
            return bytes(row[0]) if row else None

    def recorded_messages(self, conversation_id: str) -> set[str]:
        """Ids of the conversation's messages that have a recording (they get ▶ Replay)."""
        with self._connect() as conn:
            rows = conn.execute(
                """SELECT DISTINCT r.message_id FROM recordings r JOIN messages m ON m.id = r.message_id
                   WHERE m.conversation_id = ?""",
                (conversation_id,),
            )
            return {r[0] for r in rows}

    def recorded_runs(self, run_ids: list[int] | None = None) -> set[int]:
        """Which of `run_ids` (all runs when None) have a recording."""
        with self._connect() as conn:
            if run_ids is None:
                rows = conn.execute("SELECT DISTINCT run_id FROM recordings WHERE run_id IS NOT NULL")
            else:
                ids = [int(i) for i in run_ids][:10_000]
                if not ids:
                    return set()
                rows = conn.execute(
                    f"SELECT DISTINCT run_id FROM recordings WHERE run_id IN ({', '.join('?' for _ in ids)})",
                    ids,
                )
            return {r[0] for r in rows}

    def recording_group(self, run_id: int) -> list[int]:
        """The runs recorded with `run_id` in one comparison (itself included), oldest first."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT group_id FROM recordings WHERE run_id = ? ORDER BY id DESC LIMIT 1", (run_id,)
            ).fetchone()
            if row is None or row[0] is None:
                return [run_id] if row is not None else []
            rows = conn.execute(
                "SELECT run_id FROM recordings WHERE group_id = ? AND run_id IS NOT NULL ORDER BY run_id",
                (row[0],),
            )
            return [r[0] for r in rows]

    # ---- read-only share links ----
    def create_share(
        self, owner: str | None, *, conversation_id: str | None = None, run_id: int | None = None
    ) -> str:
        """A new link token for one conversation or one Compare run of `owner`'s. Raises
        PermissionError when it is not theirs (an owner of None: single-user mode, anything)."""
        if (conversation_id is None) == (run_id is None):
            raise ValueError("share either a conversation or a run")
        token = secrets.token_urlsafe(SHARE_TOKEN_BYTES)
        with self._connect(write=True) as conn:
            if conversation_id is not None:
                row = conn.execute(
                    "SELECT owner FROM conversations WHERE id = ?", (conversation_id,)
                ).fetchone()
            else:
                row = conn.execute("SELECT owner FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise KeyError("nothing to share: it does not exist")
            if owner is not None and row["owner"] != owner:
                raise PermissionError("only its owner can share it")
            conn.execute(
                "INSERT INTO shares (token, owner, conversation_id, run_id, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (token, owner, conversation_id, run_id, _now()),
            )
        return token

    def list_shares(self, owner: str | None, *, include_revoked: bool = True) -> list[dict[str, Any]]:
        """`owner`'s links, newest first (owner None: the links made in single-user mode)."""
        where = "owner IS NULL" if owner is None else "owner = ?"
        if not include_revoked:
            where += " AND revoked_at IS NULL"
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT * FROM shares WHERE {where} ORDER BY created_at DESC, {conn.insertion_order} DESC",
                () if owner is None else (owner,),
            )
            return [dict(r) for r in rows]

    def revoke_share(self, token: str, owner: str | None) -> bool:
        """Revoke `owner`'s link; False when there is no such link of theirs (or it was revoked)."""
        where = "owner IS NULL" if owner is None else "owner = ?"
        with self._connect(write=True) as conn:
            cur = conn.execute(
                f"UPDATE shares SET revoked_at = ? WHERE token = ? AND {where} AND revoked_at IS NULL",
                (_now(), token) if owner is None else (_now(), token, owner),
            )
            return cur.rowcount == 1

    def resolve_share(self, token: str | None) -> ShareLookup:
        """What a link shows: OK with its row, or why not (unknown, revoked, gone)."""
        if not token or not isinstance(token, str) or len(token) > 100:
            return ShareLookup(ShareStatus.UNKNOWN)
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM shares WHERE token = ?", (token,)).fetchone()
            if row is None:
                return ShareLookup(ShareStatus.UNKNOWN)
            share = dict(row)
            if share["revoked_at"] is not None:
                return ShareLookup(ShareStatus.REVOKED, share)
            if share["conversation_id"] is not None:
                target = conn.execute(
                    "SELECT 1 FROM conversations WHERE id = ?", (share["conversation_id"],)
                ).fetchone()
            else:
                target = conn.execute("SELECT 1 FROM runs WHERE id = ?", (share["run_id"],)).fetchone()
            return ShareLookup(ShareStatus.OK if target else ShareStatus.GONE, share)


def open_store(settings: Settings) -> Store:
    """The app's store: PostgreSQL when STREAMCHAT_DATABASE_URL is set, else SQLite in
    STREAMCHAT_DATA_DIR."""
    return store_at(settings.data_dir, settings.database_url)


def store_at(data_dir: str | Path, database_url: str | None = None) -> Store:
    return Store(database=open_database(data_dir, database_url))
