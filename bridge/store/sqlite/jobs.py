"""SQLite: the console's replay jobs (bridge.console.jobs): started, their progress and end, read back."""

from __future__ import annotations

import sqlite3

from bridge.store import records
from bridge.store.base import ConsoleJob, Page
from bridge.store.records import JOB_COLUMNS


def start_job(conn: sqlite3.Connection, actor: str, what: str, instance: str, now: float) -> int:
    cur = conn.execute("INSERT INTO console_jobs (actor, what, instance, started_at, heartbeat_at)"
                       " VALUES (?, ?, ?, ?, ?)", (actor, what, instance, now, now))
    return int(cur.lastrowid or 0)


def job_progress(conn: sqlite3.Connection, job_id: int, done: int, total: int, now: float) -> None:
    conn.execute("UPDATE console_jobs SET done = ?, total = ?, heartbeat_at = ? WHERE id = ?",
                 (done, total, now, job_id))


def finish_job(conn: sqlite3.Connection, job_id: int, done: int, total: int, now: float, summary: str | None,
               error: str | None) -> None:
    conn.execute("UPDATE console_jobs SET done = ?, total = ?, heartbeat_at = ?, finished_at = ?, summary = ?,"
                 " error = ? WHERE id = ?", (done, total, now, now, summary, error, job_id))


def job(conn: sqlite3.Connection, job_id: int) -> ConsoleJob | None:
    row = conn.execute(f"SELECT {JOB_COLUMNS} FROM console_jobs WHERE id = ?", (job_id,)).fetchone()
    return None if row is None else records.console_job(row)


def list_jobs(conn: sqlite3.Connection, limit: int, offset: int) -> Page[ConsoleJob]:
    rows = conn.execute(f"SELECT {JOB_COLUMNS} FROM console_jobs ORDER BY id DESC LIMIT ? OFFSET ?",
                        (limit, offset)).fetchall()
    total = int(conn.execute("SELECT count(*) FROM console_jobs").fetchone()[0])
    return Page([records.console_job(r) for r in rows], total, limit, offset)


def prune_jobs(conn: sqlite3.Connection, keep: int, stale_before: float) -> int:
    return conn.execute(
        "DELETE FROM console_jobs WHERE id < coalesce((SELECT min(id) FROM (SELECT id FROM console_jobs"
        " ORDER BY id DESC LIMIT ?)), (SELECT max(id) + 1 FROM console_jobs))"
        " AND (finished_at IS NOT NULL OR heartbeat_at < ?)",
        (keep, stale_before)).rowcount
