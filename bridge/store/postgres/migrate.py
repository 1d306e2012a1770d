"""PostgreSQL's side of the migration runner (bridge/store/migrations): its files, its lock, its version table.

The run holds a session advisory lock on its own connection (scale-out.md 6.7): a second
process starting at the same moment waits for it, then finds the versions recorded and skips
them. Each migration runs in one transaction with its record in schema_migrations.
"""

from __future__ import annotations

import time

import psycopg

from bridge.errors import MigrationError
from bridge.store.base import MigrationStatus
from bridge.store.migrations import VERSION_TABLE, Migration, migrations, pending, status
from bridge.store.postgres.connection import Conn, connect, first_line

BACKEND = "postgres"
MIGRATE_LOCK = 0x62726964_67650002  # pg_advisory_lock key of `bridge migrate`


async def applied_versions(conn: Conn) -> set[str]:
    async with conn.transaction():
        await conn.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version text PRIMARY KEY,"
                           " name text NOT NULL, applied_at double precision NOT NULL)")
    cur = await conn.execute(f"SELECT version FROM {VERSION_TABLE}")
    return {r["version"] for r in await cur.fetchall()}


async def apply(conn: Conn, migration: Migration) -> None:
    async with conn.transaction():
        await conn.execute(migration.sql.encode())  # bytes: a script of several statements, no parameters
        await conn.execute(f"INSERT INTO {VERSION_TABLE} (version, name, applied_at) VALUES (%s, %s, %s)",
                           (migration.version, migration.name, time.time()))


async def migrate(url: str, available: list[Migration] | None = None) -> MigrationStatus:
    """Apply what the database lacks, in order, under the advisory lock. It is new (`created`) when no
    version was recorded: of two processes starting at once, the one that took the lock first."""
    todo = available if available is not None else migrations(BACKEND)
    conn = await connect(url, autocommit=True)
    try:
        await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
        applied = await applied_versions(conn)
        done = pending(applied, todo)
        for migration in done:
            try:
                await apply(conn, migration)
            except psycopg.Error as exc:
                raise MigrationError(f"migration {migration.name} failed: {first_line(exc, url)}") from None
        return status(done, applied | {m.version for m in todo}, created=not applied and bool(done))
    except psycopg.Error as exc:
        raise MigrationError(f"cannot migrate: {first_line(exc, url)}") from None
    finally:
        await conn.close()  # ends the session: its advisory lock goes with it


async def created_at(conn: Conn) -> float | None:
    """When the schema was made: its first migration's `applied_at`."""
    cur = await conn.execute(f"SELECT min(applied_at) AS at FROM {VERSION_TABLE}")
    row = await cur.fetchone()
    return float(row["at"]) if row and row["at"] is not None else None


async def missing(conn: Conn) -> list[Migration]:
    """The migrations the database lacks (for a store opened without migrating)."""
    cur = await conn.execute("SELECT to_regclass(%s) AS t", (VERSION_TABLE,))
    row = await cur.fetchone()
    applied: set[str] = set()
    if row and row["t"] is not None:
        cur = await conn.execute(f"SELECT version FROM {VERSION_TABLE}")
        applied = {r["version"] for r in await cur.fetchall()}
    return pending(applied, migrations(BACKEND))
