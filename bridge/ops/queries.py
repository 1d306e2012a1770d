"""The operator's SQL: read queries for events, the outbox and dead letters, and the few writes
operators make (retry dead letters, pause a destination).

Reads take a connection (a reader: WAL lets them run beside the writer).
Writes are functions of a connection too, but callers hand them to the
store's writer (`store.write_sync(fn, *args)` / `await store.awrite(fn, *args)`) so they are
committed like every other write.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Sequence

from bridge.sources.shape import MAX_DEPTH, nests_deeper_than
from bridge.store.sqlite import set_paused, unpack_body

MESSAGE_STATES = ("pending", "inflight", "submitted", "delivered", "dead")
EVENT_STATUSES = ("received", "invalid_json", "mapped", "partial", "mapping_error", "no_rule", "ignored")
OPEN_STATES = ("pending", "inflight")


@dataclass(frozen=True)
class EventFilter:
    source: str | None = None
    topic: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None

    def where(self, alias: str = "e") -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("source", self.source), ("topic", self.topic), ("status", self.status)):
            if value is not None:
                clauses.append(f"{alias}.{column} = ?")
                params.append(value)
        if self.since is not None:
            clauses.append(f"{alias}.received_at >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append(f"{alias}.received_at < ?")
            params.append(self.until)
        return (" AND ".join(clauses) or "1"), params


def _json_list(text: str | None) -> list[Any]:
    return list(json.loads(text)) if text else []


# -- events -------------------------------------------------------------------


def list_events(conn: sqlite3.Connection, where: EventFilter, limit: int = 50) -> list[dict[str, Any]]:
    """Newest first, with how many of each event's messages are in each state."""
    clause, params = where.where()
    rows = conn.execute(
        f"""
        SELECT e.id, e.source, e.topic, e.dedupe_key, e.received_at, e.status, e.rules, e.errors,
               e.duplicates, e.body IS NULL AS pruned,
               (SELECT json_group_object(state, n) FROM
                   (SELECT state, count(*) AS n FROM messages WHERE event_id = e.id GROUP BY state)) AS states
        FROM events AS e WHERE {clause} ORDER BY e.id DESC LIMIT ?
        """,
        (*params, limit),
    ).fetchall()
    return [
        {
            "id": r["id"],
            "source": r["source"],
            "topic": r["topic"],
            "dedupe_key": r["dedupe_key"],
            "received_at": r["received_at"],
            "status": r["status"],
            "rules": _json_list(r["rules"]),
            "errors": _json_list(r["errors"]),
            "duplicates": r["duplicates"],
            "body_pruned": bool(r["pruned"]),
            "messages": json.loads(r["states"]) if r["states"] else {},
        }
        for r in rows
    ]


def event_detail(conn: sqlite3.Connection, event_id: int) -> dict[str, Any] | None:
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
            # JSON nested deeper than ingest takes now (stored earlier) is shown as text, as every tool can.
            payload = body.decode("utf-8", "replace") if nests_deeper_than(MAX_DEPTH, body) else json.loads(body)
        except (ValueError, RecursionError):  # invalid_json events: show the text as received
            payload = body.decode("utf-8", "replace")
    messages = conn.execute(
        "SELECT id, destination, kind, action, rule, ordering_key, idempotency_key, record, areas, state, attempts,"
        " next_at, created_at, updated_at, last_status, last_detail FROM messages WHERE event_id = ? ORDER BY id",
        (event_id,),
    ).fetchall()
    trail: dict[int, list[dict[str, Any]]] = {}
    for a in conn.execute(
        "SELECT a.message_id, a.at, a.outcome, a.status, a.detail FROM attempts AS a"
        " JOIN messages AS m ON m.id = a.message_id WHERE m.event_id = ? ORDER BY a.id",
        (event_id,),
    ):
        trail.setdefault(a["message_id"], []).append(
            {"at": a["at"], "outcome": a["outcome"], "status": a["status"], "detail": a["detail"] or ""}
        )
    return {
        "id": row["id"],
        "source": row["source"],
        "topic": row["topic"],
        "dedupe_key": row["dedupe_key"],
        "received_at": row["received_at"],
        "mapped_at": row["mapped_at"],
        "status": row["status"],
        "rules": _json_list(row["rules"]),
        "errors": _json_list(row["errors"]),
        "duplicates": row["duplicates"],
        "headers": json.loads(row["headers"]),
        "body_pruned": row["body"] is None,
        "payload": payload,
        "messages": [
            {
                "id": m["id"],
                "destination": m["destination"],
                "kind": m["kind"],
                "action": m["action"],
                "rule": m["rule"],
                "ordering_key": m["ordering_key"],
                "idempotency_key": m["idempotency_key"],
                "areas": [a for a in (m["areas"] or "").split(",") if a],
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
        ],
    }


# -- the outbox ---------------------------------------------------------------


def outbox_stats(conn: sqlite3.Connection, now: float, destinations: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Per destination: messages in each state, the oldest pending message's age, pause state.

    `destinations` (the configured ones) appear even with an empty outbox.
    """
    stats: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
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
    for r in conn.execute(
        "SELECT destination, min(created_at) AS oldest FROM messages WHERE state = 'pending' GROUP BY destination"
    ):
        entry(r["destination"])["oldest_pending_age_seconds"] = max(now - r["oldest"], 0.0)
    for r in conn.execute("SELECT name, paused, reason, changed_at FROM destination_state"):
        e = entry(r["name"])
        e["paused"] = bool(r["paused"])
        e["pause_reason"] = r["reason"] if r["paused"] else None
        e["paused_at"] = r["changed_at"] if r["paused"] else None
    return dict(sorted(stats.items()))


def open_counts(conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
    """(destination, state) -> count for pending, inflight and dead: each read off a partial index,
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


def paused_destinations(conn: sqlite3.Connection) -> dict[str, str]:
    return {r[0]: r[1] or "paused" for r in conn.execute("SELECT name, reason FROM destination_state WHERE paused = 1")}


# -- dead letters -------------------------------------------------------------


@dataclass(frozen=True)
class DeadFilter:
    ids: tuple[int, ...] = ()
    destination: str | None = None
    since: float | None = None

    @property
    def empty(self) -> bool:
        return not self.ids and self.destination is None and self.since is None

    def where(self) -> tuple[str, list[Any]]:
        clauses = ["state = 'dead'"]
        params: list[Any] = []
        if self.ids:
            clauses.append(f"id IN ({', '.join('?' * len(self.ids))})")
            params.extend(self.ids)
        if self.destination is not None:
            clauses.append("destination = ?")
            params.append(self.destination)
        if self.since is not None:
            clauses.append("updated_at >= ?")  # when it died
            params.append(self.since)
        return " AND ".join(clauses), params


def list_dead(conn: sqlite3.Connection, where: DeadFilter, limit: int = 100) -> list[dict[str, Any]]:
    clause, params = where.where()
    rows = conn.execute(
        f"SELECT id, event_id, destination, kind, rule, idempotency_key, attempts, created_at, updated_at,"
        f" last_status, last_detail FROM messages WHERE {clause} ORDER BY updated_at DESC, id DESC LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [
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


def retry_dead(conn: sqlite3.Connection, where: DeadFilter, now: float) -> int:
    """Dead letters back to pending, due now, with a fresh retry budget.

    `created_at` restarts too: the retry policy measures its maximum age from
    it, and a letter that died of old age would otherwise die again at its
    first 429 (a bulk retry invites them). The history stays in the attempts
    trail and on the event.
    """
    clause, params = where.where()
    return conn.execute(
        f"UPDATE messages SET state = 'pending', attempts = 0, next_at = ?, created_at = ?, updated_at = ?,"
        f" lease_until = NULL WHERE {clause}",
        (now, now, now, *params),
    ).rowcount


# -- destinations -------------------------------------------------------------


def pause_destination(conn: sqlite3.Connection, name: str, paused: bool, reason: str, now: float) -> None:
    """A write job: pause or resume `name`. No key fingerprint: an operator's pause holds until resumed."""
    set_paused(conn, name, paused, reason, None, now)


def audit(conn: sqlite3.Connection, *, destination: str | None, area: str | None, since: float | None,
          limit: int = 500) -> list[dict[str, Any]]:
    """Every outbound call that changed something (or was refused), newest first, with what it wrote.

    One row per attempt, joined to its message, its event and the rule that produced it; `area`
    filters on the areas the message writes (events, contacts, consent, orders, carts, products,
    deletions).
    """
    clauses: list[str] = ["a.outcome IN ('delivered', 'submitted', 'dead')"]
    params: list[Any] = []
    if destination:
        clauses.append("m.destination = ?")
        params.append(destination)
    if area:
        clauses.append("(',' || m.areas || ',') LIKE ?")
        params.append(f"%,{area},%")
    if since is not None:
        clauses.append("a.at >= ?")
        params.append(since)
    rows = conn.execute(
        "SELECT a.at, a.outcome, a.status, a.detail, m.id AS message_id, m.event_id, m.destination, m.kind,"
        " m.action, m.rule, m.areas, m.record, e.source, e.topic"
        " FROM attempts AS a JOIN messages AS m ON m.id = a.message_id JOIN events AS e ON e.id = m.event_id"
        f" WHERE {' AND '.join(clauses)} ORDER BY a.at DESC, a.id DESC LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [dict(r) | {"areas": [x for x in r["areas"].split(",") if x], "record": json.loads(r["record"])}
            for r in rows]
