"""PostgreSQL: what operators read (events, the outbox, dead letters, the audit trail) and the writes they make.

Each list returns one page and the count of every row that matches, for "N of M"; rows become
records as on SQLite (bridge/store/records.py). Writes that bring messages back (retry_dead)
lock their lanes first, as every change to a keyed message does (bridge/store/postgres/outbox.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.store import records
from bridge.store.base import (
    ActivityBucket,
    AuditEntry,
    AuditFilter,
    ConsoleAction,
    DeadFilter,
    DeadLetter,
    DestinationStats,
    EventDetail,
    EventFilter,
    EventSummary,
    Page,
    Unmapped,
)
from bridge.store.postgres.connection import Conn
from bridge.store.postgres.outbox import destination_states, lock_lanes, refresh_lanes

MARK = "%s"


async def count(conn: Conn, sql: str, params: Sequence[Any]) -> int:
    """SELECT count(*) FROM `sql`."""
    cur = await conn.execute(f"SELECT count(*) AS n FROM {sql}", params)
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


# -- events -------------------------------------------------------------------


async def holds_events(conn: Conn) -> bool:
    cur = await conn.execute("SELECT EXISTS (SELECT 1 FROM events) AS held")
    row = await cur.fetchone()
    return bool(row and row["held"])


async def unmapped(conn: Conn) -> Unmapped:
    cur = await conn.execute("SELECT count(*) AS n FROM events WHERE status = 'received'")
    row = await cur.fetchone()
    cur = await conn.execute("SELECT received_at FROM events WHERE status = 'received' ORDER BY id LIMIT 1")
    oldest = await cur.fetchone()
    return Unmapped(count=int(row["n"]) if row else 0, oldest_received_at=oldest["received_at"] if oldest else None)


async def list_events(conn: Conn, where: EventFilter, limit: int, offset: int) -> Page[EventSummary]:
    clause, params = records.event_where(where, mark=MARK)
    cur = await conn.execute(
        f"SELECT {records.SUMMARY_COLUMNS}, (SELECT json_object_agg(state, n) FROM"
        "   (SELECT state, count(*) AS n FROM messages WHERE event_id = e.id GROUP BY state) AS s) AS states"
        f" FROM events AS e WHERE {clause} ORDER BY e.id DESC LIMIT %s OFFSET %s",
        (*params, limit, offset))
    items = [records.event_summary(r, r["states"] or {}) for r in await cur.fetchall()]
    return Page(items, await count(conn, f"events AS e WHERE {clause}", params), limit, offset)


async def event_detail(conn: Conn, event_id: int) -> EventDetail | None:
    cur = await conn.execute(f"SELECT {records.DETAIL_COLUMNS} FROM events WHERE id = %s", (event_id,))
    row = await cur.fetchone()
    if row is None:
        return None
    cur = await conn.execute(f"SELECT {records.TRAIL_COLUMNS} FROM attempts AS a JOIN messages AS m"
                             " ON m.id = a.message_id WHERE m.event_id = %s ORDER BY a.id", (event_id,))
    trail = records.trails(list(await cur.fetchall()))
    cur = await conn.execute(f"SELECT {records.MESSAGE_DETAIL_COLUMNS} FROM messages WHERE event_id = %s ORDER BY id",
                             (event_id,))
    return records.event_detail(row, [records.message_detail(m, trail.get(m["id"], []))
                                      for m in await cur.fetchall()])


# -- the outbox ---------------------------------------------------------------


async def outbox_stats(conn: Conn, now: float, destinations: Sequence[str]) -> dict[str, DestinationStats]:
    cur = await conn.execute("SELECT destination, state, count(*) AS n FROM messages GROUP BY destination, state")
    counts = await cur.fetchall()
    return records.outbox_stats(now, destinations, counts, await oldest_pending(conn),
                                (await destination_states(conn)).values())


async def open_counts(conn: Conn) -> dict[tuple[str, str], int]:
    # One state a part, each read off its partial index: `state IN (...)` of all four matches none of
    # them, and the planner reads the whole table (0.5 s with 1,000,000 delivered messages).
    parts = " UNION ALL ".join(f"SELECT destination, '{state}' AS state, count(*) AS n FROM messages"
                               f" WHERE state = '{state}' GROUP BY destination"
                               for state in ("pending", "inflight", "submitted", "dead"))
    cur = await conn.execute(parts)
    return {(r["destination"], r["state"]): r["n"] for r in await cur.fetchall()}


async def oldest_pending(conn: Conn) -> dict[str, float]:
    cur = await conn.execute("SELECT destination, min(created_at) AS oldest FROM messages WHERE state = 'pending'"
                             " GROUP BY destination")
    return {r["destination"]: r["oldest"] for r in await cur.fetchall()}


# -- dead letters -------------------------------------------------------------


async def list_dead(conn: Conn, where: DeadFilter, limit: int, offset: int) -> Page[DeadLetter]:
    clause, params = records.dead_where(where, mark=MARK)
    cur = await conn.execute(f"SELECT {records.DEAD_COLUMNS} FROM messages WHERE {clause}"
                             " ORDER BY updated_at DESC, id DESC LIMIT %s OFFSET %s", (*params, limit, offset))
    items = [records.dead_letter(r) for r in await cur.fetchall()]
    return Page(items, await count(conn, f"messages WHERE {clause}", params), limit, offset)


async def retry_dead(conn: Conn, where: DeadFilter, now: float) -> int:
    """Dead letters back to pending, due now, with a fresh retry budget (created_at restarts: the
    retry policy measures the maximum age from it)."""
    clause, params = records.dead_where(where, mark=MARK)
    cur = await conn.execute(f"SELECT DISTINCT destination, ordering_key FROM messages WHERE {clause}"
                             " AND ordering_key <> ''", params)
    lanes = sorted((r["destination"], r["ordering_key"]) for r in await cur.fetchall())
    await lock_lanes(conn, lanes, create=True)
    cur = await conn.execute(
        "UPDATE messages SET state = 'pending', attempts = 0, next_at = %s, created_at = %s, updated_at = %s,"
        f" lease_until = NULL WHERE {clause}", (now, now, now, *params))
    await refresh_lanes(conn, lanes)
    return cur.rowcount


# -- the audit trail ----------------------------------------------------------


async def audit(conn: Conn, where: AuditFilter, limit: int, offset: int) -> Page[AuditEntry]:
    clause, params = records.audit_where(where, mark=MARK)
    joined = f"{records.AUDIT_JOIN} WHERE {clause}"
    cur = await conn.execute(f"SELECT {records.AUDIT_COLUMNS} FROM {joined} ORDER BY a.at DESC, a.id DESC"
                             " LIMIT %s OFFSET %s", (*params, limit, offset))
    items = [records.audit_entry(r) for r in await cur.fetchall()]
    return Page(items, await count(conn, joined, params), limit, offset)


# -- the console --------------------------------------------------------------


async def activity(conn: Conn, since: float, until: float, bucket_seconds: float) -> list[ActivityBucket]:
    """Events received per source, messages delivered and dead per destination, per bucket."""
    params = {"since": since, "until": until, "bucket": bucket_seconds}
    cur = await conn.execute(
        """
        SELECT 'received' AS what, floor((received_at - %(since)s) / %(bucket)s)::int AS b, source AS name,
               count(*) AS n
          FROM events WHERE received_at >= %(since)s AND received_at < %(until)s GROUP BY 2, 3
        UNION ALL
        SELECT 'delivered', floor((updated_at - %(since)s) / %(bucket)s)::int, destination, count(*)
          FROM messages WHERE state = 'delivered' AND updated_at >= %(since)s AND updated_at < %(until)s
          GROUP BY 2, 3
        UNION ALL
        SELECT 'dead', floor((updated_at - %(since)s) / %(bucket)s)::int, destination, count(*)
          FROM messages WHERE state = 'dead' AND updated_at >= %(since)s AND updated_at < %(until)s GROUP BY 2, 3
        """, params)
    rows = [(r["what"], int(r["b"]), r["name"], int(r["n"])) for r in await cur.fetchall()]
    return records.activity(since, until, bucket_seconds, rows)


async def record_action(conn: Conn, at: float, actor: str, role: str, action: str, target: str,
                        detail: str) -> None:
    await conn.execute("INSERT INTO console_actions (at, actor, role, action, target, detail)"
                       " VALUES (%s, %s, %s, %s, %s, %s)", (at, actor, role, action, target, detail))


async def list_actions(conn: Conn, limit: int, offset: int) -> Page[ConsoleAction]:
    cur = await conn.execute("SELECT id, at, actor, role, action, target, detail FROM console_actions"
                             " ORDER BY id DESC LIMIT %s OFFSET %s", (limit, offset))
    rows = list(await cur.fetchall())
    return Page([records.console_action(r) for r in rows], await count(conn, "console_actions", ()), limit, offset)
