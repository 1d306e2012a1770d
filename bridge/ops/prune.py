"""Retention: delivered messages, inbound bodies and dedupe keys do not stay for ever.

- Delivered messages (with their attempts) older than `delivered_days`.
- Inbound bodies older than `bodies_days` are set to NULL (the event row
  stays, its body no longer), except for events that still have open or dead
  messages, or are still waiting to be mapped: those may need a replay.
- Event rows (whose unique key is the dedupe guard) once older than the
  dedupe window, their body already pruned and no message left; never
  sooner, or a provider's resend would be taken as new.

Deletes run in small chunks, each its own job on the store's writer: that
thread also commits webhooks, and one long delete would hold their answers.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import structlog

from bridge.settings import Settings
from bridge.store.sqlite import SQLiteStore

log = structlog.get_logger("bridge.ops.prune")

DAY = 86400.0
CHUNK = 1000
DEFAULT_DAYS = 30.0


@dataclass
class PruneResult:
    messages: int = 0
    attempts: int = 0
    bodies: int = 0
    dedupe_keys: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_DELIVERED = "SELECT id FROM messages WHERE state = 'delivered' AND updated_at < :before"
_BODIES = (
    "SELECT id FROM events WHERE received_at < :before AND body IS NOT NULL AND status != 'received'"
    " AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.event_id = events.id"
    "                 AND messages.state IN ('pending', 'inflight', 'submitted', 'dead'))"
)
_DEDUPE = (
    "SELECT id FROM events WHERE received_at < :before AND body IS NULL"
    " AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.event_id = events.id)"
)


# What a run would delete in the end: the events whose body is gone or goes in this run, and
# whose messages are all delivered ones this run deletes (a dry run cannot delete step by step).
_DEDUPE_AFTER_RUN = (
    "SELECT id FROM events WHERE received_at < :before"
    " AND (body IS NULL OR (received_at < :bodies_before AND status != 'received'))"
    " AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.event_id = events.id"
    "                 AND NOT (messages.state = 'delivered' AND messages.updated_at < :delivered_before))"
)


def _delete_delivered(conn: sqlite3.Connection, before: float) -> tuple[int, int]:
    ids = [r[0] for r in conn.execute(f"{_DELIVERED} LIMIT {CHUNK}", {"before": before})]
    if not ids:
        return 0, 0
    marks = ", ".join("?" * len(ids))
    attempts = conn.execute(f"DELETE FROM attempts WHERE message_id IN ({marks})", ids).rowcount
    messages = conn.execute(f"DELETE FROM messages WHERE id IN ({marks}) AND state = 'delivered'", ids).rowcount
    return messages, attempts


def _null_bodies(conn: sqlite3.Connection, before: float) -> int:
    return conn.execute(
        f"UPDATE events SET body = NULL, body_codec = NULL WHERE id IN ({_BODIES} LIMIT {CHUNK})", {"before": before}
    ).rowcount


def _delete_dedupe(conn: sqlite3.Connection, before: float) -> int:
    return conn.execute(
        f"DELETE FROM events WHERE id IN ({_DEDUPE} LIMIT {CHUNK})", {"before": before}
    ).rowcount


def _count(conn: sqlite3.Connection, select: str, before: float, **more: float) -> int:
    return int(conn.execute(f"SELECT count(*) FROM ({select})", {"before": before, **more}).fetchone()[0])


def prune(
    target: SQLiteStore | sqlite3.Connection,
    now: float,
    *,
    dedupe_days: float,
    delivered_days: float = DEFAULT_DAYS,
    bodies_days: float = DEFAULT_DAYS,
    min_dedupe_days: float = 0.0,
    dry_run: bool = False,
    stop: Callable[[], bool] = lambda: False,
) -> PruneResult:
    """Apply retention as of `now`. `target` is the store (writes go through its writer) or a connection.

    `dedupe_days` is raised to `min_dedupe_days` (pass `settings.dedupe_days`) so a
    caller cannot shorten the dedupe window. Blocking: from async code use `aprune`.
    `stop` is asked before each chunk: a worker shutting down must not queue
    writes on a store that is closing.
    """
    delivered_before = now - max(delivered_days, 0.0) * DAY
    bodies_before = now - max(bodies_days, 0.0) * DAY
    dedupe_before = now - max(dedupe_days, min_dedupe_days, 0.0) * DAY
    result = PruneResult(dry_run=dry_run)
    if isinstance(target, sqlite3.Connection):
        conn = target

        def write(fn: Callable[..., Any], *args: Any) -> Any:
            return fn(conn, *args)

        read = conn
    else:
        write = target.write_sync
        read = target.reader()

    if dry_run:
        result.messages = _count(read, _DELIVERED, delivered_before)
        result.attempts = _count(read, f"SELECT a.id FROM attempts AS a WHERE a.message_id IN ({_DELIVERED})",
                                 delivered_before)
        result.bodies = _count(read, _BODIES, bodies_before)
        result.dedupe_keys = _count(read, _DEDUPE_AFTER_RUN, dedupe_before, bodies_before=bodies_before,
                                    delivered_before=delivered_before)
        return result

    while not stop():
        messages, attempts = write(_delete_delivered, delivered_before)
        result.messages += messages
        result.attempts += attempts
        if messages == 0:
            break
    while not stop() and (bodies := write(_null_bodies, bodies_before)) > 0:
        result.bodies += bodies
    while not stop() and (keys := write(_delete_dedupe, dedupe_before)) > 0:
        result.dedupe_keys += keys
    return result


def prune_with_settings(
    target: SQLiteStore | sqlite3.Connection, settings: Settings, now: float, **days: Any
) -> PruneResult:
    return prune(target, now, dedupe_days=settings.dedupe_days, min_dedupe_days=settings.dedupe_days, **days)


async def aprune(store: SQLiteStore, settings: Settings, now: float, **days: Any) -> PruneResult:
    return await asyncio.to_thread(prune_with_settings, store, settings, now, **days)


async def prune_daily(
    store: SQLiteStore,
    settings: Settings,
    stopping: asyncio.Event,
    clock: Callable[[], float] = time.time,
    every: float = DAY,
    first_after: float = 60.0,
) -> None:
    """The worker's retention task: once soon after start, then once a day, until `stopping` is set."""
    delay = first_after
    while not stopping.is_set():
        try:
            await asyncio.wait_for(stopping.wait(), delay)
            return
        except asyncio.TimeoutError:
            pass
        try:
            result = await aprune(store, settings, clock(), stop=stopping.is_set)
            log.info("retention.pruned", **result.as_dict())
        except Exception:  # retention must never take the worker down; try again tomorrow
            log.exception("retention.failed")
        delay = every
