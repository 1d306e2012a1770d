"""PostgreSQL: what operators read (events, the outbox, dead letters, the audit trail) and the writes they make.

Each list returns one page and the count of every row that matches, for "N of M". Writes that
bring messages back (retry_dead) lock their lanes first, as every change to a keyed message does
(bridge/store/postgres/outbox.py).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from bridge.store.base import (
    MESSAGE_STATES,
    AttemptEntry,
    AuditEntry,
    AuditFilter,
    DeadFilter,
    DeadLetter,
    DestinationStats,
    EventDetail,
    EventFilter,
    EventSummary,
    MessageDetail,
    Page,
)
from bridge.store.postgres.connection import Conn
from bridge.store.postgres.outbox import destination_states, lock_lanes, refresh_lanes
from bridge.store.sqlite.queries import areas, json_list
from bridge.store.sqlite.rows import unpack_body


def event_where(where: EventFilter, table: str = "e") -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("source", where.source), ("topic", where.topic), ("status", where.status)):
        if value is not None:
            clauses.append(f"{table}.{column} = %s")
            params.append(value)
    if where.since is not None:
        clauses.append(f"{table}.received_at >= %s")
        params.append(where.since)
    if where.until is not None:
        clauses.append(f"{table}.received_at < %s")
        params.append(where.until)
    return (" AND ".join(clauses) or "true"), params


def dead_where(where: DeadFilter) -> tuple[str, list[Any]]:
    clauses = ["state = 'dead'"]
    params: list[Any] = []
    if where.ids:
        clauses.append("id = ANY(%s)")
        params.append(list(where.ids))
    if where.destination is not None:
        clauses.append("destination = %s")
        params.append(where.destination)
    if where.since is not None:
        clauses.append("updated_at >= %s")  # when it died
        params.append(where.since)
    return " AND ".join(clauses), params


async def _count(conn: Conn, sql: str, params: Sequence[Any]) -> int:
    cur = await conn.execute(f"SELECT count(*) AS n FROM {sql}", params)
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


# -- events -------------------------------------------------------------------


async def holds_events(conn: Conn) -> bool:
    cur = await conn.execute("SELECT EXISTS (SELECT 1 FROM events) AS held")
    row = await cur.fetchone()
    return bool(row and row["held"])


async def list_events(conn: Conn, where: EventFilter, limit: int, offset: int) -> Page[EventSummary]:
    clause, params = event_where(where)
    cur = await conn.execute(
        "SELECT e.id, e.source, e.topic, e.dedupe_key, e.received_at, e.status, e.rules, e.errors, e.duplicates,"
        " e.body IS NULL AS pruned, (SELECT json_object_agg(state, n) FROM"
        "   (SELECT state, count(*) AS n FROM messages WHERE event_id = e.id GROUP BY state) AS s) AS states"
        f" FROM events AS e WHERE {clause} ORDER BY e.id DESC LIMIT %s OFFSET %s",
        (*params, limit, offset))
    items: list[EventSummary] = [
        {"id": r["id"], "source": r["source"], "topic": r["topic"], "dedupe_key": r["dedupe_key"],
         "received_at": r["received_at"], "status": r["status"], "rules": json_list(r["rules"]),
         "errors": json_list(r["errors"]), "duplicates": r["duplicates"], "body_pruned": bool(r["pruned"]),
         "messages": dict(r["states"] or {})}
        for r in await cur.fetchall()
    ]
    return Page(items, await _count(conn, f"events AS e WHERE {clause}", params), limit, offset)


async def event_detail(conn: Conn, event_id: int) -> EventDetail | None:
    cur = await conn.execute(
        "SELECT id, source, topic, dedupe_key, received_at, headers, body, body_codec, status, rules, errors, mapped_at,"
        " duplicates FROM events WHERE id = %s", (event_id,))
    row = await cur.fetchone()
    if row is None:
        return None
    payload: Any = None
    if row["body"] is not None:
        body = unpack_body(row["body"], row["body_codec"])
        try:
            payload = json.loads(body)
        except ValueError:  # invalid_json events: show the text as received
            payload = body.decode("utf-8", "replace")
    trail: dict[int, list[AttemptEntry]] = {}
    cur = await conn.execute(
        "SELECT a.message_id, a.at, a.outcome, a.status, a.detail FROM attempts AS a"
        " JOIN messages AS m ON m.id = a.message_id WHERE m.event_id = %s ORDER BY a.id", (event_id,))
    for a in await cur.fetchall():
        trail.setdefault(a["message_id"], []).append(
            {"at": a["at"], "outcome": a["outcome"], "status": a["status"], "detail": a["detail"] or ""})
    cur = await conn.execute(
        "SELECT id, destination, kind, action, rule, ordering_key, idempotency_key, record, areas, state, attempts,"
        " next_at, created_at, updated_at, last_status, last_detail FROM messages WHERE event_id = %s ORDER BY id",
        (event_id,))
    messages: list[MessageDetail] = [
        {"id": m["id"], "destination": m["destination"], "kind": m["kind"], "action": m["action"], "rule": m["rule"],
         "ordering_key": m["ordering_key"], "idempotency_key": m["idempotency_key"], "areas": areas(m["areas"]),
         "state": m["state"], "attempts": m["attempts"], "next_at": m["next_at"], "created_at": m["created_at"],
         "updated_at": m["updated_at"], "last_status": m["last_status"], "last_detail": m["last_detail"],
         "record": json.loads(m["record"]), "trail": trail.get(m["id"], [])}
        for m in await cur.fetchall()
    ]
    return {"id": row["id"], "source": row["source"], "topic": row["topic"], "dedupe_key": row["dedupe_key"],
            "received_at": row["received_at"], "mapped_at": row["mapped_at"], "status": row["status"],
            "rules": json_list(row["rules"]), "errors": json_list(row["errors"]), "duplicates": row["duplicates"],
            "headers": json.loads(row["headers"]), "body_pruned": row["body"] is None, "payload": payload,
            "messages": messages}


# -- the outbox ---------------------------------------------------------------


async def outbox_stats(conn: Conn, now: float, destinations: Sequence[str]) -> dict[str, DestinationStats]:
    stats: dict[str, DestinationStats] = {}

    def entry(name: str) -> DestinationStats:
        return stats.setdefault(name, {"counts": dict.fromkeys(MESSAGE_STATES, 0), "oldest_pending_age_seconds": None,
                                       "paused": False, "pause_reason": None, "paused_at": None})

    for name in destinations:
        entry(name)
    cur = await conn.execute("SELECT destination, state, count(*) AS n FROM messages GROUP BY destination, state")
    for r in await cur.fetchall():
        entry(r["destination"])["counts"][r["state"]] = r["n"]
    for destination, oldest in (await oldest_pending(conn)).items():
        entry(destination)["oldest_pending_age_seconds"] = max(now - oldest, 0.0)
    for state in (await destination_states(conn)).values():
        e = entry(state["name"])
        e["paused"] = state["paused"]
        e["pause_reason"] = state["reason"] if state["paused"] else None
        e["paused_at"] = state["changed_at"] if state["paused"] else None
    return dict(sorted(stats.items()))


async def open_counts(conn: Conn) -> dict[tuple[str, str], int]:
    cur = await conn.execute("SELECT destination, state, count(*) AS n FROM messages"
                             " WHERE state IN ('pending', 'inflight', 'submitted', 'dead') GROUP BY destination, state")
    return {(r["destination"], r["state"]): r["n"] for r in await cur.fetchall()}


async def oldest_pending(conn: Conn) -> dict[str, float]:
    cur = await conn.execute("SELECT destination, min(created_at) AS oldest FROM messages WHERE state = 'pending'"
                             " GROUP BY destination")
    return {r["destination"]: r["oldest"] for r in await cur.fetchall()}


# -- dead letters -------------------------------------------------------------


async def list_dead(conn: Conn, where: DeadFilter, limit: int, offset: int) -> Page[DeadLetter]:
    clause, params = dead_where(where)
    cur = await conn.execute(
        "SELECT id, event_id, destination, kind, rule, idempotency_key, attempts, created_at, updated_at, last_status,"
        f" last_detail FROM messages WHERE {clause} ORDER BY updated_at DESC, id DESC LIMIT %s OFFSET %s",
        (*params, limit, offset))
    items: list[DeadLetter] = [
        {"id": r["id"], "event_id": r["event_id"], "destination": r["destination"], "kind": r["kind"],
         "rule": r["rule"], "idempotency_key": r["idempotency_key"], "attempts": r["attempts"],
         "created_at": r["created_at"], "died_at": r["updated_at"], "last_status": r["last_status"],
         "last_detail": r["last_detail"] or ""}
        for r in await cur.fetchall()
    ]
    return Page(items, await _count(conn, f"messages WHERE {clause}", params), limit, offset)


async def retry_dead(conn: Conn, where: DeadFilter, now: float) -> int:
    """Dead letters back to pending, due now, with a fresh retry budget (created_at restarts: the
    retry policy measures the maximum age from it)."""
    clause, params = dead_where(where)
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
    clauses: list[str] = ["a.outcome IN ('delivered', 'submitted', 'dead')"]
    params: list[Any] = []
    if where.destination:
        clauses.append("m.destination = %s")
        params.append(where.destination)
    if where.area:
        clauses.append("(',' || m.areas || ',') LIKE %s")
        params.append(f"%,{where.area},%")
    if where.since is not None:
        clauses.append("a.at >= %s")
        params.append(where.since)
    joined = ("attempts AS a JOIN messages AS m ON m.id = a.message_id JOIN events AS e ON e.id = m.event_id"
              f" WHERE {' AND '.join(clauses)}")
    cur = await conn.execute(
        "SELECT a.at, a.outcome, a.status, a.detail, m.id AS message_id, m.event_id, m.destination, m.kind,"
        f" m.action, m.rule, m.areas, m.record, e.source, e.topic FROM {joined}"
        " ORDER BY a.at DESC, a.id DESC LIMIT %s OFFSET %s", (*params, limit, offset))
    items: list[AuditEntry] = [
        {"at": r["at"], "outcome": r["outcome"], "status": r["status"], "detail": r["detail"],
         "message_id": r["message_id"], "event_id": r["event_id"], "destination": r["destination"],
         "kind": r["kind"], "action": r["action"], "rule": r["rule"], "areas": areas(r["areas"]),
         "record": json.loads(r["record"]), "source": r["source"], "topic": r["topic"]}
        for r in await cur.fetchall()
    ]
    return Page(items, await _count(conn, joined, params), limit, offset)
