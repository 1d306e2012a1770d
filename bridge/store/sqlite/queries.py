"""SQLite: what operators read (events, the outbox, dead letters, the audit trail) and the writes they make.

Reads take a reader connection (WAL lets them run beside the writer); writes are
jobs for the store's writer. Each list returns one page and the count of every
row that matches, for "N of M".
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Sequence

from bridge.store.base import (
    MESSAGE_STATES,
    AttemptEntry,
    AuditEntry,
    AuditFilter,
    DeadFilter,
    DeadLetter,
    DestinationState,
    DestinationStats,
    EventDetail,
    EventFilter,
    EventSummary,
    MessageDetail,
    Page,
)
from bridge.store.sqlite.rows import unpack_body


def json_list(text: str | None) -> list[Any]:
    return list(json.loads(text)) if text else []


def areas(text: str | None) -> list[str]:
    return [a for a in (text or "").split(",") if a]


def event_where(where: EventFilter, table: str = "e") -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("source", where.source), ("topic", where.topic), ("status", where.status)):
        if value is not None:
            clauses.append(f"{table}.{column} = ?")
            params.append(value)
    if where.since is not None:
        clauses.append(f"{table}.received_at >= ?")
        params.append(where.since)
    if where.until is not None:
        clauses.append(f"{table}.received_at < ?")
        params.append(where.until)
    return (" AND ".join(clauses) or "1"), params


def dead_where(where: DeadFilter) -> tuple[str, list[Any]]:
    clauses = ["state = 'dead'"]
    params: list[Any] = []
    if where.ids:
        clauses.append(f"id IN ({', '.join('?' * len(where.ids))})")
        params.extend(where.ids)
    if where.destination is not None:
        clauses.append("destination = ?")
        params.append(where.destination)
    if where.since is not None:
        clauses.append("updated_at >= ?")  # when it died
        params.append(where.since)
    return " AND ".join(clauses), params


def _count(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {sql}", params).fetchone()[0])


# -- events -------------------------------------------------------------------


def holds_events(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM events)").fetchone()[0])


def list_events(conn: sqlite3.Connection, where: EventFilter, limit: int, offset: int = 0) -> Page[EventSummary]:
    """Newest first, with how many of each event's messages are in each state."""
    clause, params = event_where(where)
    rows = conn.execute(
        f"""
        SELECT e.id, e.source, e.topic, e.dedupe_key, e.received_at, e.status, e.rules, e.errors,
               e.duplicates, e.body IS NULL AS pruned,
               (SELECT json_group_object(state, n) FROM
                   (SELECT state, count(*) AS n FROM messages WHERE event_id = e.id GROUP BY state)) AS states
        FROM events AS e WHERE {clause} ORDER BY e.id DESC LIMIT ? OFFSET ?
        """,
        (*params, limit, offset),
    ).fetchall()
    items: list[EventSummary] = [
        {
            "id": r["id"],
            "source": r["source"],
            "topic": r["topic"],
            "dedupe_key": r["dedupe_key"],
            "received_at": r["received_at"],
            "status": r["status"],
            "rules": json_list(r["rules"]),
            "errors": json_list(r["errors"]),
            "duplicates": r["duplicates"],
            "body_pruned": bool(r["pruned"]),
            "messages": json.loads(r["states"]) if r["states"] else {},
        }
        for r in rows
    ]
    return Page(items, _count(conn, f"events AS e WHERE {clause}", params), limit, offset)


def event_detail(conn: sqlite3.Connection, event_id: int) -> EventDetail | None:
    """One event with its headers, payload and every message with its attempts trail."""
    row = conn.execute(
        "SELECT id, source, topic, dedupe_key, received_at, headers, body, body_codec, status, rules, errors, mapped_at,"
        " duplicates FROM events WHERE id = ?",
        (event_id,),
    ).fetchone()
    if row is None:
        return None
    payload: Any = None
    if row["body"] is not None:
        body = unpack_body(row["body"], row["body_codec"])
        try:
            payload = json.loads(body)
        except ValueError:  # invalid_json events: show the text as received
            payload = body.decode("utf-8", "replace")
    messages = conn.execute(
        "SELECT id, destination, kind, action, rule, ordering_key, idempotency_key, record, areas, state, attempts,"
        " next_at, created_at, updated_at, last_status, last_detail FROM messages WHERE event_id = ? ORDER BY id",
        (event_id,),
    ).fetchall()
    trail: dict[int, list[AttemptEntry]] = {}
    for a in conn.execute(
        "SELECT a.message_id, a.at, a.outcome, a.status, a.detail FROM attempts AS a"
        " JOIN messages AS m ON m.id = a.message_id WHERE m.event_id = ? ORDER BY a.id",
        (event_id,),
    ):
        trail.setdefault(a["message_id"], []).append(
            {"at": a["at"], "outcome": a["outcome"], "status": a["status"], "detail": a["detail"] or ""}
        )
    details: list[MessageDetail] = [
        {
            "id": m["id"],
            "destination": m["destination"],
            "kind": m["kind"],
            "action": m["action"],
            "rule": m["rule"],
            "ordering_key": m["ordering_key"],
            "idempotency_key": m["idempotency_key"],
            "areas": areas(m["areas"]),
            "state": m["state"],
            "attempts": m["attempts"],
            "next_at": m["next_at"],
            "created_at": m["created_at"],
            "updated_at": m["updated_at"],
            "last_status": m["last_status"],
            "last_detail": m["last_detail"],
            "record": json.loads(m["record"]),
            "trail": trail.get(m["id"], []),
        }
        for m in messages
    ]
    return {
        "id": row["id"],
        "source": row["source"],
        "topic": row["topic"],
        "dedupe_key": row["dedupe_key"],
        "received_at": row["received_at"],
        "mapped_at": row["mapped_at"],
        "status": row["status"],
        "rules": json_list(row["rules"]),
        "errors": json_list(row["errors"]),
        "duplicates": row["duplicates"],
        "headers": json.loads(row["headers"]),
        "body_pruned": row["body"] is None,
        "payload": payload,
        "messages": details,
    }


# -- the outbox ---------------------------------------------------------------


def outbox_stats(conn: sqlite3.Connection, now: float, destinations: Sequence[str] = ()) -> dict[str, DestinationStats]:
    """Per destination: messages in each state, the oldest pending message's age, pause state.

    `destinations` (the configured ones) appear even with an empty outbox.
    """
    stats: dict[str, DestinationStats] = {}

    def entry(name: str) -> DestinationStats:
        return stats.setdefault(name, {
            "counts": dict.fromkeys(MESSAGE_STATES, 0),
            "oldest_pending_age_seconds": None,
            "paused": False,
            "pause_reason": None,
            "paused_at": None,
        })

    for name in destinations:
        entry(name)
    for r in conn.execute("SELECT destination, state, count(*) AS n FROM messages GROUP BY destination, state"):
        entry(r["destination"])["counts"][r["state"]] = r["n"]
    for destination, oldest in oldest_pending(conn).items():
        entry(destination)["oldest_pending_age_seconds"] = max(now - oldest, 0.0)
    for state in destination_states(conn).values():
        e = entry(state["name"])
        e["paused"] = state["paused"]
        e["pause_reason"] = state["reason"] if state["paused"] else None
        e["paused_at"] = state["changed_at"] if state["paused"] else None
    return dict(sorted(stats.items()))


def open_counts(conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
    """(destination, state) -> count for pending, inflight, submitted and dead: each read off a partial index,
    cheap enough for every metrics scrape (delivered rows are counted by the delivery counter instead)."""
    counts: dict[tuple[str, str], int] = {}
    for state in ("pending", "inflight", "submitted", "dead"):
        for r in conn.execute(
            "SELECT destination, count(*) FROM messages WHERE state = ? GROUP BY destination", (state,)
        ):
            counts[(r[0], state)] = r[1]
    return counts


def oldest_pending(conn: sqlite3.Connection) -> dict[str, float]:
    return {
        r[0]: r[1]
        for r in conn.execute(
            "SELECT destination, min(created_at) FROM messages WHERE state = 'pending' GROUP BY destination"
        )
    }


# -- destinations -------------------------------------------------------------


def set_paused(conn: sqlite3.Connection, name: str, paused: bool, reason: str, key_fingerprint: str | None,
               now: float) -> None:
    conn.execute(
        "INSERT INTO destination_state (name, paused, reason, changed_at, key_fingerprint) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, reason = excluded.reason,"
        " changed_at = excluded.changed_at, key_fingerprint = excluded.key_fingerprint",
        (name, int(paused), reason, now, key_fingerprint),
    )


def destination_states(conn: sqlite3.Connection) -> dict[str, DestinationState]:
    rows = conn.execute("SELECT name, paused, reason, changed_at, key_fingerprint FROM destination_state").fetchall()
    return {
        r["name"]: {"name": r["name"], "paused": bool(r["paused"]), "reason": r["reason"],
                    "changed_at": r["changed_at"], "key_fingerprint": r["key_fingerprint"]}
        for r in rows
    }


PROBE_NAME = "__readyz__"


def probe(conn: sqlite3.Connection, now: float) -> None:
    """A write job that adds and removes a row: the writer can commit."""
    conn.execute("INSERT OR REPLACE INTO destination_state (name, paused, changed_at) VALUES (?, 0, ?)",
                 (PROBE_NAME, now))
    conn.execute("DELETE FROM destination_state WHERE name = ?", (PROBE_NAME,))


# -- dead letters -------------------------------------------------------------


def list_dead(conn: sqlite3.Connection, where: DeadFilter, limit: int, offset: int = 0) -> Page[DeadLetter]:
    clause, params = dead_where(where)
    rows = conn.execute(
        f"SELECT id, event_id, destination, kind, rule, idempotency_key, attempts, created_at, updated_at,"
        f" last_status, last_detail FROM messages WHERE {clause} ORDER BY updated_at DESC, id DESC LIMIT ? OFFSET ?",
        (*params, limit, offset),
    ).fetchall()
    items: list[DeadLetter] = [
        {
            "id": r["id"],
            "event_id": r["event_id"],
            "destination": r["destination"],
            "kind": r["kind"],
            "rule": r["rule"],
            "idempotency_key": r["idempotency_key"],
            "attempts": r["attempts"],
            "created_at": r["created_at"],
            "died_at": r["updated_at"],
            "last_status": r["last_status"],
            "last_detail": r["last_detail"] or "",
        }
        for r in rows
    ]
    return Page(items, _count(conn, f"messages WHERE {clause}", params), limit, offset)


def retry_dead(conn: sqlite3.Connection, where: DeadFilter, now: float) -> int:
    """A write job: dead letters back to pending, due now, with a fresh retry budget.

    `created_at` restarts too: the retry policy measures its maximum age from
    it, and a letter that died of old age would otherwise die again at its
    first 429 (a bulk retry invites them). The history stays in the attempts
    trail and on the event.
    """
    clause, params = dead_where(where)
    return conn.execute(
        f"UPDATE messages SET state = 'pending', attempts = 0, next_at = ?, created_at = ?, updated_at = ?,"
        f" lease_until = NULL WHERE {clause}",
        (now, now, now, *params),
    ).rowcount


# -- the audit trail ----------------------------------------------------------


def audit(conn: sqlite3.Connection, where: AuditFilter, limit: int, offset: int = 0) -> Page[AuditEntry]:
    """Every outbound call that changed something (or was refused), newest first, with what it wrote.

    One row per attempt, joined to its message, its event and the rule that produced it; `area`
    filters on the areas the message writes.
    """
    clauses: list[str] = ["a.outcome IN ('delivered', 'submitted', 'dead')"]
    params: list[Any] = []
    if where.destination:
        clauses.append("m.destination = ?")
        params.append(where.destination)
    if where.area:
        clauses.append("(',' || m.areas || ',') LIKE ?")
        params.append(f"%,{where.area},%")
    if where.since is not None:
        clauses.append("a.at >= ?")
        params.append(where.since)
    joined = ("attempts AS a JOIN messages AS m ON m.id = a.message_id JOIN events AS e ON e.id = m.event_id"
              f" WHERE {' AND '.join(clauses)}")
    rows = conn.execute(
        "SELECT a.at, a.outcome, a.status, a.detail, m.id AS message_id, m.event_id, m.destination, m.kind,"
        f" m.action, m.rule, m.areas, m.record, e.source, e.topic FROM {joined}"
        " ORDER BY a.at DESC, a.id DESC LIMIT ? OFFSET ?",
        (*params, limit, offset),
    ).fetchall()
    items: list[AuditEntry] = [
        {
            "at": r["at"], "outcome": r["outcome"], "status": r["status"], "detail": r["detail"],
            "message_id": r["message_id"], "event_id": r["event_id"], "destination": r["destination"],
            "kind": r["kind"], "action": r["action"], "rule": r["rule"], "areas": areas(r["areas"]),
            "record": json.loads(r["record"]), "source": r["source"], "topic": r["topic"],
        }
        for r in rows
    ]
    return Page(items, _count(conn, joined, params), limit, offset)
