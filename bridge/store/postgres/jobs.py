"""PostgreSQL: the console's replay jobs (bridge.console.jobs): started, their progress and end, read back."""

from __future__ import annotations

from bridge.store import records
from bridge.store.base import ConsoleJob, Page
from bridge.store.postgres.connection import Conn
from bridge.store.postgres.queries import count
from bridge.store.postgres.text import storable
from bridge.store.records import JOB_COLUMNS


async def start_job(conn: Conn, actor: str, what: str, instance: str, now: float) -> int:
    cur = await conn.execute("INSERT INTO console_jobs (actor, what, instance, started_at, heartbeat_at)"
                             " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                             (storable(actor), storable(what), storable(instance), now, now))
    row = await cur.fetchone()
    assert row is not None
    return int(row["id"])


async def job_progress(conn: Conn, job_id: int, done: int, total: int, now: float) -> None:
    await conn.execute("UPDATE console_jobs SET done = %s, total = %s, heartbeat_at = %s WHERE id = %s",
                       (done, total, now, job_id))


async def finish_job(conn: Conn, job_id: int, done: int, total: int, now: float, summary: str | None,
                     error: str | None) -> None:
    await conn.execute("UPDATE console_jobs SET done = %s, total = %s, heartbeat_at = %s, finished_at = %s,"
                       " summary = %s, error = %s WHERE id = %s",
                       (done, total, now, now, summary, None if error is None else storable(error), job_id))


async def job(conn: Conn, job_id: int) -> ConsoleJob | None:
    cur = await conn.execute(f"SELECT {JOB_COLUMNS} FROM console_jobs WHERE id = %s", (job_id,))
    row = await cur.fetchone()
    return None if row is None else records.console_job(row)


async def list_jobs(conn: Conn, limit: int, offset: int) -> Page[ConsoleJob]:
    cur = await conn.execute(f"SELECT {JOB_COLUMNS} FROM console_jobs ORDER BY id DESC LIMIT %s OFFSET %s",
                             (limit, offset))
    rows = await cur.fetchall()
    return Page([records.console_job(r) for r in rows], await count(conn, "console_jobs", ()), limit, offset)


async def prune_jobs(conn: Conn, keep: int, stale_before: float) -> int:
    cur = await conn.execute(
        "DELETE FROM console_jobs WHERE id < coalesce((SELECT min(id) FROM (SELECT id FROM console_jobs"
        " ORDER BY id DESC LIMIT %s) AS newest), (SELECT max(id) + 1 FROM console_jobs))"
        " AND (finished_at IS NOT NULL OR heartbeat_at < %s)",
        (keep, stale_before))
    return cur.rowcount
