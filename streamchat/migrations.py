"""The store's schema migrations, in order, and how they are applied: one list for SQLite and
PostgreSQL (streamchat.database: `?` placeholders, SQLite's type names in `conn.ddl`).

The schema version (SQLite's `PRAGMA user_version`, PostgreSQL's one-row `schema_version` table)
is the number of migrations applied. `apply_pending` runs inside the store's write transaction
(SQLite's `BEGIN IMMEDIATE`, PostgreSQL's advisory write lock; see Database.migrate), so two
processes opening the same database never apply one twice, and a failure rolls back the migration
and its version together. To change the schema, add a function at the end of MIGRATIONS; never
edit or reorder one that has shipped. Make it idempotent where a column may already exist (a
database rewound to an older version keeps its columns): `conn.add_column`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from .database import Connection

Migration = Callable[[Connection], None]


def _m001_initial(conn: Connection) -> None:
    conn.ddl("""CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL)""")
    conn.execute("CREATE INDEX conversations_updated ON conversations(updated_at)")
    conn.ddl("""CREATE TABLE messages (
        id TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        parent_id TEXT REFERENCES messages(id) ON DELETE SET NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        state TEXT NOT NULL,
        error TEXT,
        summary TEXT,
        metrics_json TEXT,
        created_at TEXT NOT NULL,
        seq INTEGER NOT NULL)""")
    conn.execute("CREATE INDEX messages_conversation_seq ON messages(conversation_id, seq)")
    conn.execute("CREATE INDEX messages_parent ON messages(parent_id)")
    # No foreign keys: a run is history and outlives the conversation it came from.
    conn.ddl("""CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        created_at TEXT NOT NULL,
        source TEXT NOT NULL,
        conversation_id TEXT,
        message_id TEXT,
        provider TEXT,
        base_url TEXT,
        model TEXT,
        mode TEXT,
        state TEXT,
        ttft_s REAL, ttfb_s REAL, e2e_s REAL, decode_tps REAL, tpot_s REAL,
        itl_p50_s REAL, itl_p95_s REAL,
        output_tokens INTEGER,
        output_tokens_source TEXT,
        bytes INTEGER,
        chunks INTEGER,
        error_kind TEXT,
        error TEXT,
        extra_json TEXT)""")


def _m002_conversation_owner(conn: Connection) -> None:
    # Which browser session a conversation belongs to: sessions never list each other's chats.
    conn.ddl("ALTER TABLE conversations ADD COLUMN owner TEXT")
    conn.execute("CREATE INDEX conversations_owner ON conversations(owner, updated_at)")


def _m003_message_tree(conn: Connection) -> None:
    # Messages form a tree (regenerate and edit add siblings); a conversation shows the path from
    # the root to its current leaf. Earlier flat conversations become a single chain.
    conn.ddl("ALTER TABLE conversations ADD COLUMN leaf_id TEXT")
    conn.execute("""UPDATE messages SET parent_id = (
        SELECT p.id FROM messages p WHERE p.conversation_id = messages.conversation_id
        AND p.seq < messages.seq ORDER BY p.seq DESC LIMIT 1) WHERE parent_id IS NULL""")
    conn.execute("""UPDATE conversations SET leaf_id = (
        SELECT m.id FROM messages m WHERE m.conversation_id = conversations.id
        ORDER BY m.seq DESC LIMIT 1)""")


# Words the code before migration 004 wrote into runs (column values, extra_json keys and values).
_RUN_WORDS = frozenset(
    """
    chat compare cli local remote stream non-stream pending waiting_first_token streaming done
    stopped failed setup first_token_timeout stalled dropped empty_reply malformed timeout
    unreachable auth model_not_found rate_limited context_length bad_request server_error
    client_error unexpected measured server estimated exact approximate
    itl_max_s finish_reason model_reported usage server_timings status retry_after params
    temperature max_tokens seed top_p stop length tool_calls content_filter function_call
    prompt_tokens completion_tokens total_tokens prompt_tokens_details completion_tokens_details
    reasoning_tokens cached_tokens audio_tokens accepted_prediction_tokens rejected_prediction_tokens
    prompt_n prompt_ms prompt_per_token_ms prompt_per_second predicted_n predicted_ms
    predicted_per_token_ms predicted_per_second cache_n draft_n draft_n_accepted""".split()
)
_RUN_TEXT_COLUMNS = (
    "source",
    "conversation_id",
    "message_id",
    "provider",
    "base_url",
    "model",
    "mode",
    "state",
    "output_tokens_source",
    "error_kind",
    "extra_json",
)
_JSON_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _replaced(corrupted: str, name: str) -> str | None:
    """The s for which name.replace(s, "***") == corrupted, if there is one."""
    parts = corrupted.split("***")
    n, extra = len(parts) - 1, len(name) - sum(map(len, parts))
    if n == 0 or extra <= 0 or extra % n:
        return None
    s = name[len(parts[0]) : len(parts[0]) + extra // n]
    return s if name.replace(s, "***") == corrupted else None


def _m004_repair_short_key_redaction(conn: Connection) -> None:
    # Earlier code replaced the API key in every text field of a run, so a placeholder key like
    # "x" turned "max_tokens" into "ma***_tokens". Work out, per run, the one string that explains
    # every corrupted known word (or id) and put it back wherever "***" stands. Runs where no single
    # string does stay as they are, and so does the error text (there "***" may hide a real key).
    # Messages were never touched by that code. (SQLite only: a PostgreSQL store never had it.)
    if conn.dialect != "sqlite":
        return
    for run_id, *values in conn.execute(
        f"SELECT id, {', '.join(_RUN_TEXT_COLUMNS)} FROM runs WHERE "
        + " OR ".join(f"instr({c}, '***')" for c in _RUN_TEXT_COLUMNS)
    ).fetchall():
        row = dict(zip(_RUN_TEXT_COLUMNS, values, strict=True))
        words = [(c, v) for c, v in row.items() if v and c != "extra_json"]
        words += [("extra_json", w) for w in _JSON_STRING.findall(row["extra_json"] or "")]
        keys = None
        for column, word in words:
            if "***" not in word:
                continue
            if column in ("conversation_id", "message_id"):  # ids are hex: "***" is a GLOB "*"
                table = "conversations" if column == "conversation_id" else "messages"
                names: Iterable[str] = [
                    r[0] for r in conn.execute(f"SELECT id FROM {table} WHERE id GLOB ?", (word,))
                ]
            else:
                names = _RUN_WORDS
            fits = {s for name in names if (s := _replaced(word, name))}
            if fits:
                keys = fits if keys is None else keys & fits
        if keys is None or len(keys) != 1:
            continue
        key = keys.pop()
        fixed = {c: v.replace("***", key) for c, v in row.items() if v and "***" in v}
        conn.execute(
            f"UPDATE runs SET {', '.join(f'{c} = ?' for c in fixed)} WHERE id = ?", (*fixed.values(), run_id)
        )


def _m005_run_owner(conn: Connection) -> None:
    # Whose request a run was, so a shared install shows each identity its own runs (their
    # error texts can quote prompts). Chat runs take their conversation's owner.
    conn.add_column("runs", "owner", "TEXT")
    conn.execute("""UPDATE runs SET owner = (SELECT c.owner FROM conversations c
                    WHERE c.id = runs.conversation_id) WHERE conversation_id IS NOT NULL""")
    conn.execute("CREATE INDEX IF NOT EXISTS runs_owner ON runs(owner, id)")


def _m006_reasoning(conn: Connection) -> None:
    # Reasoning models: a reply's thinking is kept with the message (shown, exported, never sent
    # back to the model), and runs get time to answer, thinking time and thinking tokens.
    # Older runs keep NULL there: they were measured without telling thinking apart.
    # (Idempotent, like 005: a database rewound to an older user_version keeps its columns.)
    conn.add_column("messages", "reasoning", "TEXT")
    for column, kind in (
        ("time_to_answer_s", "REAL"),
        ("thinking_s", "REAL"),
        ("reasoning_tokens", "INTEGER"),
    ):
        conn.add_column("runs", column, kind)


def _m007_visible_ttft(conn: Connection) -> None:
    # The time from the user's Enter/click to the first answer text painted, measured in their
    # browser and reported after the reply (NULL where no browser measured it: CLI, reloads).
    conn.add_column("runs", "visible_ttft_s", "REAL")


def _m008_recordings(conn: Connection) -> None:
    # A reply's recording (streamchat.recording: every chunk with its time, the settings and the
    # final figures, zlib-packed JSON) to replay it at its recorded pace. Its own table, so loading
    # a conversation does not read them; keyed by the reply's message (gone with its
    # conversation) and by its run. A Compare run has no message; `group_id` ties the runs of one
    # comparison together for a side-by-side replay.
    conn.ddl("""CREATE TABLE IF NOT EXISTS recordings (
        id INTEGER PRIMARY KEY,
        message_id TEXT REFERENCES messages(id) ON DELETE CASCADE,
        run_id INTEGER,
        group_id TEXT,
        owner TEXT,
        created_at TEXT NOT NULL,
        data BLOB NOT NULL)""")
    conn.execute("CREATE INDEX IF NOT EXISTS recordings_message ON recordings(message_id)")
    conn.execute("CREATE INDEX IF NOT EXISTS recordings_run ON recordings(run_id)")
    conn.execute("CREATE INDEX IF NOT EXISTS recordings_group ON recordings(group_id)")


def _m009_shares(conn: Connection) -> None:
    # Read-only share links: an unguessable token (secrets.token_urlsafe(24), 192 bits) that
    # shows one conversation or one Compare run (its comparison) to whoever has the link.
    # Revoked links stay, so a revoked token can say so instead of "unknown".
    conn.ddl("""CREATE TABLE IF NOT EXISTS shares (
        token TEXT PRIMARY KEY,
        owner TEXT,
        conversation_id TEXT,
        run_id INTEGER,
        created_at TEXT NOT NULL,
        revoked_at TEXT)""")
    conn.execute("CREATE INDEX IF NOT EXISTS shares_owner ON shares(owner, created_at)")


def _m010_compare_lanes(conn: Connection) -> None:
    # The runs of one comparison share its compare_id; `lane` is the lane's key ("stream",
    # "non-stream" for the default pair; the lane's name otherwise).
    for column in ("compare_id", "lane"):
        conn.add_column("runs", column, "TEXT")
    conn.execute("CREATE INDEX IF NOT EXISTS runs_compare ON runs(compare_id)")


# The registry, in order: migration N is MIGRATIONS[N - 1]. Append only.
MIGRATIONS: list[Migration] = [
    _m001_initial,
    _m002_conversation_owner,
    _m003_message_tree,
    _m004_repair_short_key_redaction,
    _m005_run_owner,
    _m006_reasoning,
    _m007_visible_ttft,
    _m008_recordings,
    _m009_shares,
    _m010_compare_lanes,
]


def apply_pending(conn: Connection) -> None:
    """Apply the migrations `conn`'s database has not had yet; call inside a write transaction."""
    version = conn.schema_version()
    for number, migrate in enumerate(MIGRATIONS[version:], start=version + 1):
        migrate(conn)
        conn.set_schema_version(number)
