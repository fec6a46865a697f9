"""The store's two backends behind one small connection API, so the store's SQL and the migrations
are written once.

- SQLite (the default): one file in STREAMCHAT_DATA_DIR. One short-lived connection per operation
  (safe from any thread: Streamlit script threads come and go with each re-run), cheap (~0.2 ms a
  write) because one idle "keeper" connection stays open: when the last connection to a WAL
  database closes, SQLite checkpoints and deletes the WAL with fsyncs (~5 ms every operation).
  WAL lets readers and the single writer proceed together; every write is a small
  `BEGIN IMMEDIATE` transaction, retried with backoff while another process holds the lock.
  A damaged file is moved aside and a fresh one started.
- PostgreSQL (STREAMCHAT_DATABASE_URL=postgresql://…): psycopg 3 with a connection pool, for
  several app replicas on one database. Reads run in autocommit; every write is a transaction
  that first takes one advisory lock, so writes are serialised as on SQLite (a read-then-write
  such as "the next seq" never races) and migrations run once when replicas start together.

What differs is here and nowhere else: placeholders (`?` everywhere; `%s` on PostgreSQL), the id
of an inserted row, column types in DDL, the column list of a table, the schema version
(PRAGMA user_version / a one-row `schema_version` table), insertion order, and the errors (both
raise StoreError and its subclasses; messages never hold the database password).
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import redact

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

DB_NAME = "streamchat.db"
BUSY_TIMEOUT_S = 5.0  # SQLite's own wait for a lock, per attempt
WRITE_PATIENCE_S = 30.0  # how long a write keeps trying, with backoff, before DatabaseBusy
POSTGRES_SCHEMES = ("postgresql", "postgres")
POOL_MIN, POOL_MAX = 1, 10
CONNECT_TIMEOUT_S = 10.0
# pg_advisory_xact_lock key of every write transaction (migrations included): "stch" in ASCII.
WRITE_LOCK = 0x73746368


# ---- errors: the same for both backends ------------------------------------------------------
class StoreError(Exception):
    """The store could not do it (either backend). The message is safe to show: no password."""


class StoreUnavailable(StoreError):
    """An operational problem that may pass: locked, busy, disk full, read-only, server gone."""


class DatabaseBusy(StoreUnavailable):
    """Another writer kept the database locked for longer than the store waits."""


StoreBusy = DatabaseBusy


class CorruptDatabase(StoreError):
    """The SQLite file is damaged (the store moves it aside and starts a fresh one)."""


# ---- one connection API ----------------------------------------------------------------------
class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection:
    """A connection of either backend. Rows index by position and by name (`dict(row)` works);
    SQL uses `?` placeholders."""

    dialect = ""
    insertion_order = "rowid"  # an expression that orders a table's rows oldest first

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        raise NotImplementedError

    def insert(self, sql: str, params: Sequence[Any]) -> int:
        """Run an INSERT into a table with an `id` key; the new row's id."""
        raise NotImplementedError

    def ddl(self, sql: str) -> None:
        """CREATE / ALTER with SQLite's type names (INTEGER PRIMARY KEY, INTEGER, REAL, BLOB)."""
        self.execute(sql)

    def columns(self, table: str) -> set[str]:
        raise NotImplementedError

    def add_column(self, table: str, column: str, kind: str) -> None:
        """ALTER TABLE … ADD COLUMN unless the table has it (a database rewound to an older
        schema version keeps its columns)."""
        if column not in self.columns(table):
            self.ddl(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def schema_version(self) -> int:
        raise NotImplementedError

    def set_schema_version(self, version: int) -> None:
        raise NotImplementedError


class SQLiteConnection(Connection):
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection):
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self.raw.execute(sql, params)

    def insert(self, sql: str, params: Sequence[Any]) -> int:
        new_id = self.raw.execute(sql, params).lastrowid
        assert new_id is not None  # (an INSERT sets it)
        return new_id

    def columns(self, table: str) -> set[str]:
        return {row[1] for row in self.raw.execute(f"PRAGMA table_info({table})")}

    def schema_version(self) -> int:
        version: int = self.raw.execute("PRAGMA user_version").fetchone()[0]
        return version

    def set_schema_version(self, version: int) -> None:
        self.raw.execute(f"PRAGMA user_version = {int(version)}")


_PG_TYPES = (
    (re.compile(r"\bINTEGER PRIMARY KEY\b"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),  # PostgreSQL's REAL is 4 bytes
    (re.compile(r"\bBLOB\b"), "BYTEA"),
)


@functools.lru_cache(maxsize=512)
def postgres_sql(sql: str) -> str:
    """`?` placeholders as psycopg's `%s` (a literal `%` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def postgres_ddl(sql: str) -> str:
    for pattern, replacement in _PG_TYPES:
        sql = pattern.sub(replacement, sql)
    return sql


class Row(tuple[Any, ...]):
    """A PostgreSQL row as sqlite3.Row behaves: by position, by name, and `dict(row)`."""

    _names: tuple[str, ...]
    _index: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self._index[key])
        return super().__getitem__(key)

    def keys(self) -> tuple[str, ...]:
        return self._names


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    names = tuple(c.name for c in cursor.description or ())
    index = {n: i for i, n in enumerate(names)}

    def make(values: Sequence[Any]) -> Row:
        row = Row(values)
        row._names, row._index = names, index
        return row

    return make


class PostgresConnection(Connection):
    dialect = "postgresql"
    insertion_order = "created_at"  # (no rowid; every table that is listed has created_at)

    def __init__(self, conn: psycopg.Connection[Any]):
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self.raw.execute(postgres_sql(sql), params)

    def insert(self, sql: str, params: Sequence[Any]) -> int:
        new_id: int = self.execute(sql + " RETURNING id", params).fetchone()[0]
        return new_id

    def ddl(self, sql: str) -> None:
        self.execute(postgres_ddl(sql))

    def columns(self, table: str) -> set[str]:
        rows = self.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ?",
            (table,),
        )
        return {r[0] for r in rows}

    def schema_version(self) -> int:
        row = self.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row else 0

    def set_schema_version(self, version: int) -> None:
        self.execute("UPDATE schema_version SET version = ?", (int(version),))


# ---- the backends ----------------------------------------------------------------------------
class Database:
    """Where the store keeps its data: connections, schema version, errors."""

    kind = ""
    path: Path | None = None  # the SQLite file
    recovered_from: Path | None = None  # where a corrupt SQLite file was moved to
    write_patience = WRITE_PATIENCE_S
    lock_waits = 0  # times a write found the database locked (for tests and logs)

    def connect(self, write: bool = False) -> AbstractContextManager[Connection]:
        """A connection for one operation; `write`: in one write transaction (committed at the
        end, rolled back on an error), writers one at a time."""
        raise NotImplementedError

    def migrate(self, apply: Callable[[Connection], None]) -> None:
        """Check the database and run `apply` (the pending migrations) in one write transaction."""
        raise NotImplementedError

    def describe(self) -> str:
        """Where the data is, for messages (never a password)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def _make_private(data_dir: Path, db_path: Path) -> None:
    """Chats are private: the folder 0700, the database 0600 (SQLite gives its -wal and -shm files
    the database file's mode). Tightened also when an older version created them open."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(db_path, os.O_CREAT | os.O_RDWR, 0o600))
    for path, mode in ((data_dir, 0o700), (db_path, 0o600)):
        if path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
            path.chmod(mode)


def _is_corruption(err: sqlite3.DatabaseError) -> bool:
    # OperationalError ("database is locked", disk I/O, ...) is not corruption: never move the file.
    if isinstance(err, sqlite3.OperationalError):
        return False
    code = getattr(err, "sqlite_errorcode", None)
    return code is None or (code & 0xFF) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


@contextmanager
def _sqlite_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as err:
        raise StoreUnavailable(str(err)) from err
    except sqlite3.DatabaseError as err:
        raise (CorruptDatabase if _is_corruption(err) else StoreError)(str(err)) from err
    except sqlite3.Error as err:
        raise StoreError(str(err)) from err


class SQLiteDatabase(Database):
    kind = "sqlite"

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        self.path = self.db_file = self.data_dir / DB_NAME
        _make_private(self.data_dir, self.db_file)
        self._keeper: sqlite3.Connection | None = None

    def describe(self) -> str:
        return f"the data folder `{self.data_dir}`"

    def close(self) -> None:
        if self._keeper is not None:
            self._keeper.close()

    @contextmanager
    def connect(self, write: bool = False) -> Iterator[Connection]:
        with _sqlite_errors():
            conn = sqlite3.connect(self.db_file, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            try:
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA synchronous = NORMAL")
                if write:
                    self._begin_write(conn)
                yield SQLiteConnection(conn)
                if write:
                    conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise
            finally:
                conn.close()

    def _begin_write(self, conn: sqlite3.Connection) -> None:
        """Take the write lock (IMMEDIATE: up front, so no read-then-upgrade deadlock). Another
        process may hold it for longer than SQLite's busy timeout (a backup, a long query):
        keep trying with backoff for `write_patience` seconds before giving up with
        DatabaseBusy, so nothing is lost to a short lock."""
        deadline = time.monotonic() + self.write_patience
        pause = 0.05
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) and "busy" not in str(err):
                    raise
                self.lock_waits += 1
                if time.monotonic() + pause > deadline:
                    raise DatabaseBusy(f"the database stayed locked for {self.write_patience:g} s") from None
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    def migrate(self, apply: Callable[[Connection], None]) -> None:
        try:
            self._check_and_migrate(apply)
        except CorruptDatabase:
            self.recovered_from = self._move_aside()
            _make_private(self.data_dir, self.db_file)
            self._check_and_migrate(apply)
        if self._keeper is None:
            with _sqlite_errors():
                self._keeper = sqlite3.connect(self.db_file, check_same_thread=False)
                self._keeper.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()

    def _check_and_migrate(self, apply: Callable[[Connection], None]) -> None:
        with self.connect() as conn:
            problems = [r[0] for r in conn.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise CorruptDatabase("; ".join(problems[:3]))
            conn.execute("PRAGMA journal_mode = WAL")
        with self.connect(write=True) as conn:
            # Inside the write transaction, so two processes never apply a migration twice.
            apply(conn)

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.db_file.with_name(f"{DB_NAME}.corrupt-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.db_file.with_name(f"{DB_NAME}.corrupt-{stamp}-{n}")
        self.db_file.replace(target)
        # A stale WAL would be replayed into the fresh database: move it (and the index) too.
        for suffix in ("-wal", "-shm"):
            side = self.db_file.with_name(DB_NAME + suffix)
            if side.exists():
                side.replace(target.with_name(target.name + suffix))
        return target


def is_postgres_url(url: str | None) -> bool:
    scheme, sep, _ = str(url or "").partition("://")
    return bool(sep) and scheme.strip().lower() in POSTGRES_SCHEMES


def describe_postgres_url(url: str) -> str:
    """host:port/database of a PostgreSQL URL: no user, no password, no options."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
    except Exception:
        return "PostgreSQL (STREAMCHAT_DATABASE_URL)"
    host, port, name = info.get("host") or "localhost", info.get("port"), info.get("dbname") or ""
    return f"PostgreSQL at {host}{f':{port}' if port else ''}/{name}"


class PostgresDatabase(Database):
    kind = "postgresql"

    def __init__(self, url: str, *, min_size: int = POOL_MIN, max_size: int = POOL_MAX):
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
        from psycopg_pool import ConnectionPool

        self._psycopg = psycopg
        self._where = describe_postgres_url(url)
        try:
            password = conninfo_to_dict(url).get("password")
        except (psycopg.Error, ValueError) as err:
            raise StoreError(
                f"STREAMCHAT_DATABASE_URL is not a valid PostgreSQL URL ({self._redact(err)})"
            ) from None
        self._secrets = (str(password),) if password else ()
        self.pool: ConnectionPool[Any] = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={
                "autocommit": True,
                "row_factory": _row_factory,
                "connect_timeout": int(CONNECT_TIMEOUT_S),
            },
            check=ConnectionPool.check_connection,
            open=False,
            name="streamchat",
        )
        with self._errors():
            # One plain connection first: a wrong host, password or database name fails at once
            # with the server's reason (the pool would retry until its timeout, then say only that).
            psycopg.connect(url, connect_timeout=int(CONNECT_TIMEOUT_S)).close()
            self.pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)

    def describe(self) -> str:
        return self._where

    def close(self) -> None:
        self.pool.close()

    def _redact(self, err: BaseException) -> str:
        return redact(" ".join(str(err).split()), getattr(self, "_secrets", ()), limit=500)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        from psycopg import errors as pg_errors
        from psycopg_pool import PoolTimeout

        try:
            yield
        except pg_errors.LockNotAvailable:
            self.lock_waits += 1
            raise DatabaseBusy(f"the database stayed locked for {self.write_patience:g} s") from None
        except PoolTimeout as err:
            raise StoreUnavailable(f"no connection to {self._where}: {self._redact(err)}") from None
        except self._psycopg.OperationalError as err:
            raise StoreUnavailable(self._redact(err)) from None
        except self._psycopg.Error as err:
            raise StoreError(self._redact(err)) from None

    @contextmanager
    def connect(self, write: bool = False) -> Iterator[Connection]:
        with self._errors(), self.pool.connection(timeout=self.write_patience) as raw:
            if not write:
                yield PostgresConnection(raw)
                return
            with raw.transaction():
                conn = PostgresConnection(raw)
                conn.execute(
                    "SELECT set_config('lock_timeout', ?, true)", (f"{int(self.write_patience * 1000)}ms",)
                )
                conn.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
                yield conn

    def migrate(self, apply: Callable[[Connection], None]) -> None:
        with self.connect(write=True) as conn:  # under the write lock: replicas starting together
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            if conn.execute("SELECT 1 FROM schema_version").fetchone() is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            apply(conn)


def open_database(data_dir: str | Path, database_url: str | None = None) -> Database:
    """PostgreSQL when `database_url` is set, else the SQLite file in `data_dir`."""
    if database_url:
        if not is_postgres_url(database_url):
            raise StoreError("STREAMCHAT_DATABASE_URL must be a postgresql:// URL")
        return PostgresDatabase(database_url)
    return SQLiteDatabase(data_dir)
