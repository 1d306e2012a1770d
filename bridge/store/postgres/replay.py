"""PostgreSQL: what a replay reads (stored events again) and writes (their new mappings, idempotently).

A replay's write is one transaction that locks the lanes it touches, then the events' rows: a
worker mapping the same event waits for it (or it for the worker) and then sees what was queued,
so no message is queued twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bridge.model import Event, Mapped
from bridge.store.base import OPEN_STATES, EventFilter, ReplaySummary
from bridge.store.postgres import consent, copies, resources
from bridge.store.postgres.connection import Conn
from bridge.store.postgres.inbound import insert_messages, message_params, save_lookup
from bridge.store.postgres.outbox import lock_lanes, refresh_lanes
from bridge.store.postgres.queries import MARK, count
from bridge.store.postgres.text import storable
from bridge.store.records import event_where
from bridge.store.sqlite.rows import EVENT_COLUMNS, event_from_row, record_text


def _replayable(where: EventFilter) -> tuple[str, list[Any]]:
    clause, params = event_where(where, "events", MARK)
    # A pruned body cannot be mapped; an invalid body never could.
    return f"{clause} AND events.body IS NOT NULL AND events.status <> 'invalid_json'", params


async def count_replayable(conn: Conn, where: EventFilter) -> int:
    clause, params = _replayable(where)
    return await count(conn, f"events WHERE {clause}", params)


async def replayable_events(conn: Conn, where: EventFilter, after_id: int, limit: int) -> list[Event]:
    clause, params = _replayable(where)
    cur = await conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE {clause} AND events.id > %s ORDER BY events.id LIMIT %s",
        (*params, after_id, limit))
    return [event_from_row(r) for r in await cur.fetchall()]


async def apply_mappings(conn: Conn, mapped: Sequence[Mapped], now: float, force: bool,
                         dry_run: bool) -> ReplaySummary:
    """Record each event's new mapping and queue what is not already done. With `dry_run`, only count."""
    summary = ReplaySummary(events=len(mapped), dry_run=dry_run)
    event_ids = sorted({m.event_id for m in mapped})
    lanes: list[tuple[str, str]] = []
    await consent.lock(conn, mapped)  # before the lanes: the global lock order (bridge/store/postgres/consent.py)
    if not dry_run:
        cur = await conn.execute("SELECT DISTINCT destination, ordering_key FROM messages"
                                 " WHERE event_id = ANY(%s) AND ordering_key <> ''", (event_ids,))
        lanes = sorted({(r["destination"], r["ordering_key"]) for r in await cur.fetchall()}
                       | {(storable(msg.destination), storable(msg.key)) for m in mapped for msg, _ in m.messages
                          if msg.key})
        await lock_lanes(conn, lanes, create=True)
        await conn.execute("SELECT id FROM events WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (event_ids,))
    for m in mapped:
        if m.errors:
            summary.events_with_errors += 1
        if not dry_run:
            await conn.execute("UPDATE events SET status = %s, rules = %s, errors = %s, mapped_at = %s WHERE id = %s",
                               (m.status, json.dumps(m.rules), json.dumps(m.errors) if m.errors else None, now,
                                m.event_id))
            await save_lookup(conn, [m])  # events mapped before lookups existed become searchable
            await copies.forget(conn, [m])  # a replayed erasure forgets again
        # A replayed consent decision goes only while no newer one is known (bridge/consent.py).
        for msg, key in await consent.sift(conn, m.event_id, m.messages, now, write=not dry_run):
            # The key is made from the event's source and dedupe key: its messages are this event's.
            cur = await conn.execute("SELECT id, state, destination FROM messages WHERE event_id = %s"
                                     " AND idempotency_key = %s ORDER BY id DESC", (m.event_id, key))
            rows = await cur.fetchall()
            states = {r["state"] for r in rows}
            open_now = bool(states & set(OPEN_STATES))
            if not force and "delivered" in states:
                summary.skipped_delivered += 1
                continue
            if not force and open_now:
                summary.skipped_open += 1
                continue
            dead = next((r["id"] for r in rows if r["state"] == "dead" and r["destination"] == msg.destination), None)
            summary.queued += 1
            if dead is not None and not open_now:
                summary.requeued_dead += 1
                if not dry_run:  # in place, so the letter leaves the dead list and keeps its attempts trail
                    await conn.execute(
                        "UPDATE messages SET kind = %s, action = %s, rule = %s, ordering_key = %s, record = %s,"
                        " state = 'pending', attempts = 0, next_at = %s, created_at = %s, updated_at = %s,"
                        " lease_until = NULL WHERE id = %s AND state = 'dead'",
                        (msg.kind, msg.action, msg.rule, storable(msg.key), record_text(msg.record), now, now, now,
                         dead))
            elif not dry_run:
                await insert_messages(conn, [message_params(m.event_id, msg, key)], now)
    if not dry_run:
        await resources.keep(conn, mapped)
    await refresh_lanes(conn, lanes)
    return summary
