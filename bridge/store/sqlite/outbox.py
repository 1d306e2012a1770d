"""SQLite: mapping's reads and writes, and the outbox's claims, leases and completions.

Each write is a job for the store's writer (one transaction with the others of its group).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Sequence

from bridge.model import Decision, Event, Mapped, Message, Outcome
from bridge.store.sqlite import copies, resources
from bridge.store.sqlite.consent import sift
from bridge.store.sqlite.rows import (
    EVENT_COLUMNS,
    MESSAGE_COLUMNS,
    event_from_row,
    insert_message,
    message_from_row,
    save_lookup,
)

HOLDING_SCAN = 1_000  # submitted messages claim_batch looks at for one that holds back its key


def waiting_events(conn: sqlite3.Connection, limit: int, after: int = 0) -> list[Event]:
    rows = conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE status = 'received' AND id > ? ORDER BY id LIMIT ?", (after, limit)
    ).fetchall()
    return [event_from_row(r) for r in rows]


def newest_event_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])


def save_mappings(conn: sqlite3.Connection, mapped: Sequence[Mapped], now: float) -> int:
    return sum(save_mapping(conn, m, now) for m in mapped)


def save_mapping(conn: sqlite3.Connection, m: Mapped, now: float) -> int:
    # Only the first mapper to get here wins: a second process mapping the same
    # event finds its status changed and queues nothing.
    cur = conn.execute(
        "UPDATE events SET status = ?, rules = ?, errors = ?, mapped_at = ? WHERE id = ? AND status = 'received'",
        (m.status, json.dumps(m.rules), json.dumps(m.errors) if m.errors else None, now, m.event_id),
    )
    if cur.rowcount == 0:
        return 0
    save_lookup(conn, m)
    resources.keep(conn, m)
    copies.forget(conn, m.forget_copies)  # an erasure's, or the prints an echo used up
    messages = sift(conn, m.event_id, m.messages, now)  # consent only when newer than any known
    for msg, key in messages:
        insert_message(conn, m.event_id, msg, key, now)
    return len(messages)



def claim(conn: sqlite3.Connection, destination: str, limit: int, lease_until: float, now: float) -> list[Message]:
    token = uuid.uuid4().hex
    # Per-key order: a message is due only when no earlier message with the
    # same ordering key is still open (pending, in flight, or in a batch the
    # destination is still processing), so a failing message holds back its
    # own key and nothing else.
    rows = conn.execute(
        f"""
        UPDATE messages SET state = 'inflight', lease_until = :lease, claim = :claim, attempts = attempts + 1,
            updated_at = :now
        WHERE id IN (
            SELECT m.id FROM messages AS m
            WHERE m.destination = :dest AND m.state = 'pending' AND m.next_at <= :now
              AND (m.ordering_key = '' OR NOT EXISTS (
                    SELECT 1 FROM messages AS p
                    WHERE p.destination = m.destination AND p.ordering_key = m.ordering_key
                      AND p.state IN ('pending', 'inflight', 'submitted') AND p.id < m.id))
            ORDER BY m.id LIMIT :limit)
        RETURNING {MESSAGE_COLUMNS}
        """,
        {"dest": destination, "lease": lease_until, "now": now, "limit": limit, "claim": token},
    ).fetchall()
    return sorted((message_from_row(r) for r in rows), key=lambda m: m.id)


def release_expired(conn: sqlite3.Connection, now: float) -> int:
    return conn.execute(
        "UPDATE messages SET state = 'pending', next_at = :now, lease_until = NULL, claim = NULL, updated_at = :now"
        " WHERE state = 'inflight' AND lease_until < :now",
        {"now": now},
    ).rowcount


def release(conn: sqlite3.Connection, messages: Sequence[Message], now: float) -> int:
    count = 0
    for m in messages:
        count += conn.execute(
            "UPDATE messages SET state = 'pending', attempts = MAX(attempts - 1, 0), next_at = ?, lease_until = NULL,"
            " claim = NULL, updated_at = ? WHERE id = ? AND state = 'inflight' AND claim = ?",
            (now, now, m.id, m.claim),
        ).rowcount
    return count


def claim_batch(conn: sqlite3.Connection, destination: str, due_before: float, lease_until: float,
                 holding_due_before: float | None = None) -> tuple[str, list[Message]] | None:
    # One batch at a time: its messages keep their 'submitted' state (a lost
    # claim must never send them again); next_at doubles as the claim's lease.
    # A later message of a submitted message's key waits for it (claim), so such a
    # batch is worth checking sooner. Its later messages are all still pending: the
    # check reads messages_open_by_key, whose states it names. Only the longest-due
    # HOLDING_SCAN submitted messages are looked at: this runs in the writer, between
    # webhook commits (10,000 submitted messages took ~6 ms; 1,000 take under 1 ms).
    holding = holding_due_before if holding_due_before is not None else due_before
    row = conn.execute(
        """
        WITH due AS (
            SELECT id, batch_ref, ordering_key, next_at FROM messages
            WHERE destination = :dest AND state = 'submitted' AND next_at <= MAX(:due, :holding)
            ORDER BY next_at LIMIT :scan)
        SELECT s.batch_ref FROM due AS s
        WHERE s.next_at <= :due OR (s.ordering_key != '' AND EXISTS (
                SELECT 1 FROM messages AS p
                WHERE p.destination = :dest AND p.ordering_key = s.ordering_key
                  AND p.state IN ('pending', 'inflight', 'submitted') AND p.id > s.id))
        ORDER BY s.next_at LIMIT 1
        """,
        {"dest": destination, "due": due_before, "holding": holding, "scan": HOLDING_SCAN},
    ).fetchone()
    if row is None:
        return None
    rows = conn.execute(
        f"UPDATE messages SET next_at = ?, claim = ? WHERE batch_ref = ? AND state = 'submitted'"
        f" RETURNING {MESSAGE_COLUMNS}",
        (lease_until, uuid.uuid4().hex, row[0]),
    ).fetchall()
    return row[0], sorted((message_from_row(r) for r in rows), key=lambda m: m.id)


def extend(conn: sqlite3.Connection, messages: Sequence[Message], lease_until: float) -> int:
    count = 0
    for m in messages:
        count += conn.execute(
            "UPDATE messages SET lease_until = ? WHERE id = ? AND state = 'inflight' AND claim = ?",
            (lease_until, m.id, m.claim),
        ).rowcount
    return count


def complete(conn: sqlite3.Connection, results: Sequence[tuple[Message, Outcome, Decision]], now: float) -> None:
    for msg, outcome, decision in results:
        if outcome.kind == "deferred":  # nothing was sent: no attempt to account for
            conn.execute(
                "UPDATE messages SET state = 'pending', next_at = ?, lease_until = NULL, claim = NULL, updated_at = ?,"
                " attempts = MAX(attempts - 1, 0) WHERE id = ? AND state = 'inflight' AND claim = ?",
                (decision.next_at, now, msg.id, msg.claim),
            )
            continue
        conn.execute(
            "INSERT INTO attempts (message_id, at, outcome, status, detail) VALUES (?, ?, ?, ?, ?)",
            (msg.id, now, outcome.kind, outcome.status, outcome.detail[:500]),
        )
        # The claim token guards against a late answer for a message whose lease
        # ran out and which another worker claimed again: only the current
        # holder's answer moves it on (the late one is still in the audit trail).
        submitted = decision.state == "submitted"
        conn.execute(
            "UPDATE messages SET state = ?, next_at = ?, lease_until = NULL, claim = NULL, updated_at = ?,"
            " last_status = ?, last_detail = ?, attempts = attempts - ?, batch_ref = COALESCE(?, batch_ref),"
            " submitted_at = CASE WHEN ? THEN COALESCE(submitted_at, ?) END"
            " WHERE id = ? AND state IN ('inflight', 'submitted') AND claim = ?",
            (decision.state, decision.next_at, now, outcome.status, outcome.detail[:500],
             1 if decision.refund_attempt else 0, outcome.ref, submitted, now,
             msg.id, msg.claim),
        )


