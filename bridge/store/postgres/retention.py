"""PostgreSQL: the statements of retention (bridge/ops/prune.py decides when and how much), one chunk each.

Lanes are small but one is made for every ordering key ever seen: deleting delivered messages
also deletes up to as many idle lanes, each locked (SKIP LOCKED) and found empty by a statement
that runs after the lock, so a lane a producer is filling is never removed.
"""

from __future__ import annotations

from typing import Any

from bridge.store.base import PruneCutoffs, PruneResult
from bridge.store.postgres import resources
from bridge.store.postgres.connection import Conn
from bridge.store.postgres.outbox import OPEN

_DELIVERED = "SELECT id FROM messages WHERE state = 'delivered' AND updated_at < %(before)s"
_BODIES = (
    "SELECT id FROM events WHERE received_at < %(before)s AND body IS NOT NULL AND status NOT IN ('received', 'waiting')"
    " AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.event_id = events.id"
    "                 AND messages.state IN ('pending', 'inflight', 'submitted', 'dead'))"
)
_SENT_PRINTS = "SELECT key FROM sent_prints WHERE sent_at < %(before)s"
_DEDUPE = (
    "SELECT id FROM events WHERE received_at < %(before)s AND body IS NULL"
    " AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.event_id = events.id)"
)
# What a run would delete in the end: the events whose body is gone or goes in this run, and
# whose messages are all delivered ones this run deletes (a dry run cannot delete step by step).
_DEDUPE_AFTER_RUN = (
    "SELECT id FROM events WHERE received_at < %(before)s"
    " AND (body IS NULL OR (received_at < %(bodies_before)s AND status NOT IN ('received', 'waiting')))"
    " AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.event_id = events.id"
    "                 AND NOT (messages.state = 'delivered' AND messages.updated_at < %(delivered_before)s))"
)


async def delete_delivered(conn: Conn, before: float, limit: int) -> tuple[int, int]:
    cur = await conn.execute(f"{_DELIVERED} ORDER BY id LIMIT %(limit)s", {"before": before, "limit": limit})
    ids = [r["id"] for r in await cur.fetchall()]
    if not ids:
        return 0, 0
    attempts = await conn.execute("DELETE FROM attempts WHERE message_id = ANY(%s)", (ids,))
    messages = await conn.execute("DELETE FROM messages WHERE id = ANY(%s) AND state = 'delivered'", (ids,))
    await delete_idle_lanes(conn, limit)
    return messages.rowcount, attempts.rowcount


async def delete_idle_lanes(conn: Conn, limit: int) -> int:
    cur = await conn.execute("SELECT destination, ordering_key FROM lanes WHERE ready_at IS NULL LIMIT %s"
                             " FOR UPDATE SKIP LOCKED", (limit,))
    lanes = [(r["destination"], r["ordering_key"]) for r in await cur.fetchall()]
    if not lanes:
        return 0
    cur = await conn.execute(
        "DELETE FROM lanes AS l WHERE (l.destination, l.ordering_key) IN"
        " (SELECT * FROM unnest(%s::text[], %s::text[])) AND NOT EXISTS (SELECT 1 FROM messages AS m"
        f" WHERE m.destination = l.destination AND m.ordering_key = l.ordering_key AND m.state IN {OPEN})",
        ([d for d, _ in lanes], [k for _, k in lanes]))
    return cur.rowcount


async def null_bodies(conn: Conn, before: float, limit: int) -> int:
    cur = await conn.execute(f"UPDATE events SET body = NULL, body_codec = NULL WHERE id IN ({_BODIES} LIMIT %(limit)s)",
                             {"before": before, "limit": limit})
    return cur.rowcount


async def delete_dedupe(conn: Conn, before: float, limit: int) -> int:
    cur = await conn.execute(f"DELETE FROM events WHERE id IN ({_DEDUPE} LIMIT %(limit)s) RETURNING id",
                             {"before": before, "limit": limit})
    ids = [int(r["id"]) for r in await cur.fetchall()]
    await conn.execute("DELETE FROM event_lookup WHERE event_id = ANY(%s)", (ids,))
    return len(ids)


async def delete_sent_prints(conn: Conn, before: float, limit: int) -> int:
    # SKIP LOCKED: a print a delivery is rewriting is left for the next run
    cur = await conn.execute(f"DELETE FROM sent_prints WHERE key IN ({_SENT_PRINTS} LIMIT %(limit)s"
                             " FOR UPDATE SKIP LOCKED) AND sent_at < %(before)s", {"before": before, "limit": limit})
    return cur.rowcount


async def _count(conn: Conn, select: str, **params: Any) -> int:
    cur = await conn.execute(f"SELECT count(*) AS n FROM ({select}) AS s", params)
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def preview(conn: Conn, cutoffs: PruneCutoffs) -> PruneResult:
    """What a whole run with these cutoffs would remove."""
    return PruneResult(
        messages=await _count(conn, _DELIVERED, before=cutoffs.delivered_before),
        attempts=await _count(conn, f"SELECT a.id FROM attempts AS a WHERE a.message_id IN ({_DELIVERED})",
                              before=cutoffs.delivered_before),
        bodies=await _count(conn, _BODIES, before=cutoffs.bodies_before),
        dedupe_keys=await _count(conn, _DEDUPE_AFTER_RUN, before=cutoffs.dedupe_before,
                                 bodies_before=cutoffs.bodies_before, delivered_before=cutoffs.delivered_before),
        resources=await resources.count_prunable(conn, cutoffs.resources_before),
        sent_prints=await _count(conn, _SENT_PRINTS, before=cutoffs.sent_prints_before),
        dry_run=True,
    )
