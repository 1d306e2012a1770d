"""SQLite: what a replay reads (stored events again) and writes (their new mappings, idempotently).

The idempotency check runs in the writer's transaction, so a worker mapping the same
event at the same time cannot make a duplicate.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from bridge.model import Event, Mapped
from bridge.store.base import EventFilter, ReplaySummary
from bridge.store.records import event_where
from bridge.store.sqlite import copies, resources
from bridge.store.sqlite.consent import sift
from bridge.store.sqlite.rows import EVENT_COLUMNS, event_from_row, insert_message, record_text, save_lookup


def _replayable(where: EventFilter) -> tuple[str, list[Any]]:
    clause, params = event_where(where, "events")
    # A pruned body cannot be mapped; an invalid body never could.
    return f"{clause} AND events.body IS NOT NULL AND events.status != 'invalid_json'", params


def count_replayable(conn: sqlite3.Connection, where: EventFilter) -> int:
    clause, params = _replayable(where)
    return int(conn.execute(f"SELECT count(*) FROM events WHERE {clause}", params).fetchone()[0])


def replayable_events(conn: sqlite3.Connection, where: EventFilter, after_id: int, limit: int) -> list[Event]:
    clause, params = _replayable(where)
    rows = conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE {clause} AND events.id > ? ORDER BY events.id LIMIT ?",
        (*params, after_id, limit),
    ).fetchall()
    return [event_from_row(r) for r in rows]


def apply_mappings(
    conn: sqlite3.Connection, mapped: Sequence[Mapped], now: float, force: bool, dry_run: bool
) -> ReplaySummary:
    """Record each event's new mapping and queue what is not already done. With `dry_run`, only count
    (then any connection will do: it writes nothing)."""
    summary = ReplaySummary(events=len(mapped), dry_run=dry_run)
    for m in mapped:
        if m.errors:
            summary.events_with_errors += 1
        if not dry_run:
            conn.execute(
                "UPDATE events SET status = ?, rules = ?, errors = ?, mapped_at = ? WHERE id = ?",
                (m.status, json.dumps(m.rules), json.dumps(m.errors) if m.errors else None, now, m.event_id),
            )
            save_lookup(conn, m)  # events mapped before lookups existed become searchable
            resources.keep(conn, m)
            copies.forget(conn, m.forget_copies)  # a replayed erasure forgets again
        # A replayed consent decision goes only while no newer one is known (bridge/consent.py).
        for msg, key in sift(conn, m.event_id, m.messages, now, write=not dry_run):
            # The key is made from the event's source and dedupe key: its messages are this event's.
            rows = conn.execute(
                "SELECT id, state, destination FROM messages WHERE event_id = ? AND idempotency_key = ?"
                " ORDER BY id DESC", (m.event_id, key),
            ).fetchall()
            states = {r["state"] for r in rows}
            if not force and "delivered" in states:
                summary.skipped_delivered += 1
                continue
            if not force and states & {"pending", "inflight", "submitted"}:
                summary.skipped_open += 1
                continue
            dead = next((r["id"] for r in rows if r["state"] == "dead" and r["destination"] == msg.destination), None)
            summary.queued += 1
            if dead is not None and not states & {"pending", "inflight", "submitted"}:
                summary.requeued_dead += 1
                if not dry_run:
                    # In place, so the letter leaves the dead list and keeps its attempts trail.
                    conn.execute(
                        "UPDATE messages SET kind = ?, action = ?, rule = ?, ordering_key = ?, record = ?,"
                        " state = 'pending', attempts = 0, next_at = ?, created_at = ?, updated_at = ?,"
                        " lease_until = NULL WHERE id = ? AND state = 'dead'",
                        (msg.kind, msg.action, msg.rule, msg.key, record_text(msg.record),
                         now, now, now, dead),
                    )
            elif not dry_run:
                insert_message(conn, m.event_id, msg, key, now)
    return summary
