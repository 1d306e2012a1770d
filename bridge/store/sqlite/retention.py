"""SQLite: the statements of retention (bridge/ops/prune.py decides when and how much).

Each delete is one chunk, one job for the store's writer: that writer also commits
webhooks, and one long delete would hold their answers.
"""

from __future__ import annotations

import sqlite3

from bridge.store.base import PruneCutoffs, PruneResult
from bridge.store.sqlite import resources

_DELIVERED = "SELECT id FROM messages WHERE state = 'delivered' AND updated_at < :before"
_BODIES = (
    "SELECT id FROM events WHERE received_at < :before AND body IS NOT NULL AND status NOT IN ('received', 'waiting')"
    " AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.event_id = events.id"
    "                 AND messages.state IN ('pending', 'inflight', 'submitted', 'dead'))"
)
_SENT_PRINTS = "SELECT key FROM sent_prints WHERE sent_at < :before"
_DEDUPE = (
    "SELECT id FROM events WHERE received_at < :before AND body IS NULL"
    " AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.event_id = events.id)"
)
# What a run would delete in the end: the events whose body is gone or goes in this run, and
# whose messages are all delivered ones this run deletes (a dry run cannot delete step by step).
_DEDUPE_AFTER_RUN = (
    "SELECT id FROM events WHERE received_at < :before"
    " AND (body IS NULL OR (received_at < :bodies_before AND status NOT IN ('received', 'waiting')))"
    " AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.event_id = events.id"
    "                 AND NOT (messages.state = 'delivered' AND messages.updated_at < :delivered_before))"
)


def delete_delivered(conn: sqlite3.Connection, before: float, limit: int) -> tuple[int, int]:
    ids = [r[0] for r in conn.execute(f"{_DELIVERED} LIMIT :limit", {"before": before, "limit": limit})]
    if not ids:
        return 0, 0
    marks = ", ".join("?" * len(ids))
    attempts = conn.execute(f"DELETE FROM attempts WHERE message_id IN ({marks})", ids).rowcount
    messages = conn.execute(f"DELETE FROM messages WHERE id IN ({marks}) AND state = 'delivered'", ids).rowcount
    return messages, attempts


def null_bodies(conn: sqlite3.Connection, before: float, limit: int) -> int:
    return conn.execute(
        f"UPDATE events SET body = NULL, body_codec = NULL WHERE id IN ({_BODIES} LIMIT :limit)",
        {"before": before, "limit": limit},
    ).rowcount


def delete_dedupe(conn: sqlite3.Connection, before: float, limit: int) -> int:
    ids = [(r[0],) for r in conn.execute(f"{_DEDUPE} LIMIT :limit", {"before": before, "limit": limit})]
    conn.executemany("DELETE FROM event_lookup WHERE event_id = ?", ids)
    return conn.executemany("DELETE FROM events WHERE id = ?", ids).rowcount


def delete_sent_prints(conn: sqlite3.Connection, before: float, limit: int) -> int:
    return conn.execute(f"DELETE FROM sent_prints WHERE key IN ({_SENT_PRINTS} LIMIT :limit)",
                        {"before": before, "limit": limit}).rowcount


def _count(conn: sqlite3.Connection, select: str, **params: float) -> int:
    return int(conn.execute(f"SELECT count(*) FROM ({select})", params).fetchone()[0])


def preview(conn: sqlite3.Connection, cutoffs: PruneCutoffs) -> PruneResult:
    """What a whole run with these cutoffs would remove."""
    return PruneResult(
        messages=_count(conn, _DELIVERED, before=cutoffs.delivered_before),
        attempts=_count(conn, f"SELECT a.id FROM attempts AS a WHERE a.message_id IN ({_DELIVERED})",
                        before=cutoffs.delivered_before),
        bodies=_count(conn, _BODIES, before=cutoffs.bodies_before),
        dedupe_keys=_count(conn, _DEDUPE_AFTER_RUN, before=cutoffs.dedupe_before,
                           bodies_before=cutoffs.bodies_before, delivered_before=cutoffs.delivered_before),
        resources=resources.count_prunable(conn, cutoffs.resources_before),
        sent_prints=_count(conn, _SENT_PRINTS, before=cutoffs.sent_prints_before),
        dry_run=True,
    )
