"""SQLite's side of the migration runner (bridge/store/migrations): its files, its lock, its version table.

Each migration runs in one `BEGIN IMMEDIATE` transaction, which takes SQLite's write
lock: a second process starting at the same moment waits for it (busy_timeout), then
finds the version recorded and skips it. The statements run one by one inside that
transaction (`executescript` would commit first).

A database made before numbered migrations has the tables but no version: 0001
(all `IF NOT EXISTS`) records it, after `adopt` has given the oldest of them the
columns added and the indexes replaced since they were created.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable

from bridge.errors import MigrationError
from bridge.store.base import MigrationStatus
from bridge.store.migrations import VERSION_TABLE, Migration, migrations, pending, status

BACKEND = "sqlite"


def applied_versions(conn: sqlite3.Connection) -> set[str]:
    conn.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version TEXT PRIMARY KEY, name TEXT NOT NULL,"
                 " applied_at REAL NOT NULL)")
    return {row[0] for row in conn.execute(f"SELECT version FROM {VERSION_TABLE}")}


def statements(sql: str) -> list[str]:
    """The statements of a script, each complete (comments and triggers kept whole)."""
    found, buffer = [], ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                found.append(buffer)
            buffer = ""
    rest = [line for line in buffer.splitlines() if line.strip() and not line.strip().startswith("--")]
    if rest:
        raise MigrationError(f"a migration ends with an incomplete statement: {rest[0].strip()[:80]!r}")
    return found


# Columns added, and indexes replaced, before numbered migrations: 0001 has them for new databases.
ADDED_COLUMNS = (("messages", "submitted_at", "REAL"), ("events", "body_codec", "TEXT"))
REPLACED_INDEXES = ("messages_open_key", "messages_idem")


def adopt(conn: sqlite3.Connection) -> None:
    """Bring a database made before numbered migrations to the shape 0001 records (in 0001's transaction)."""
    for table, column, declaration in ADDED_COLUMNS:
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if columns and column not in columns:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
    for index in REPLACED_INDEXES:
        conn.execute(f"DROP INDEX IF EXISTS {index}")


def apply(conn: sqlite3.Connection, migration: Migration,
          prepare: Callable[[sqlite3.Connection], None] | None = None) -> bool:
    """Run `migration` (after `prepare`) and record it, in one transaction under the write lock, unless it is
    recorded by now."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise MigrationError(f"cannot lock the database to migrate: {exc}") from exc
    try:
        if conn.execute(f"SELECT 1 FROM {VERSION_TABLE} WHERE version = ?", (migration.version,)).fetchone():
            conn.execute("ROLLBACK")
            return False  # another process applied it while this one waited for the lock
        if prepare is not None:
            prepare(conn)
        for statement in statements(migration.sql):
            conn.execute(statement)
        conn.execute(f"INSERT INTO {VERSION_TABLE} (version, name, applied_at) VALUES (?, ?, ?)",
                     (migration.version, migration.name, time.time()))
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise MigrationError(f"migration {migration.name} failed: {exc}") from exc
    return True


def migrate(conn: sqlite3.Connection, available: list[Migration] | None = None) -> MigrationStatus:
    """Apply what the database lacks, in order. It is new (`created`) when it had no table but the version
    table and this call applied the first migration (of two processes making one file at once, the one
    that did; a database from before numbered migrations has tables, and is adopted)."""
    todo = available if available is not None else migrations(BACKEND)
    try:
        empty = not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name <> ?",
                                 (VERSION_TABLE,)).fetchone()
        applied = applied_versions(conn)
    except sqlite3.Error as exc:
        raise MigrationError(f"cannot read the schema version: {exc}") from exc
    done = [m for m in pending(applied, todo) if apply(conn, m, adopt if m.version == "0001" else None)]
    created = empty and bool(done) and done[0] == todo[0]
    return status(done, applied | {m.version for m in todo}, created=created)


def created_at(conn: sqlite3.Connection) -> float | None:
    """When the schema was made: its first migration's `applied_at` (for a database from before numbered
    migrations, when it was adopted)."""
    row = conn.execute(f"SELECT min(applied_at) FROM {VERSION_TABLE}").fetchone()
    return float(row[0]) if row[0] is not None else None


def missing(conn: sqlite3.Connection) -> list[Migration]:
    """The migrations the database lacks (for a store opened without migrating)."""
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        applied = (set() if VERSION_TABLE not in tables
                   else {row[0] for row in conn.execute(f"SELECT version FROM {VERSION_TABLE}")})
    except sqlite3.Error as exc:
        raise MigrationError(f"cannot read the schema version: {exc}") from exc
    return pending(applied, migrations(BACKEND))
