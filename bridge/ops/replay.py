"""Replay: run stored events again through the current rules.

Used after a rule was wrong. Each message a replayed event makes carries the
same idempotency key as the first time (source, dedupe key, rule, index), so
the outbox knows what was already done with it:

- delivered, or still open (pending, in flight): not queued again, unless forced;
- dead: the dead letter is brought back as pending with the new record;
- never seen (a rule that did not match before): queued.

Events are read and mapped in batches; each batch's writes (event status,
messages) are one job on the store's writer, where the idempotency check runs,
so a worker mapping the same event at the same time cannot make a duplicate.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

from bridge.mapping import RuleSet
from bridge.model import Event
from bridge.ops.queries import EventFilter
from bridge.settings import Settings
from bridge.store.sqlite import EVENT_COLUMNS, Mapped, SQLiteStore, event_from_row, insert_message, record_text

BATCH = 200
Progress = Callable[[int, int], None]


@dataclass
class ReplaySummary:
    events: int = 0
    queued: int = 0  # new messages, and dead letters brought back
    requeued_dead: int = 0  # of which dead letters
    skipped_delivered: int = 0
    skipped_open: int = 0
    events_with_errors: int = 0
    dry_run: bool = False

    def add(self, other: ReplaySummary) -> None:
        for name in ("events", "queued", "requeued_dead", "skipped_delivered", "skipped_open", "events_with_errors"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_current_rules(settings: Settings) -> RuleSet:
    """The rules as they are on disk now (raises RulesError when they do not load)."""
    from bridge.mapping import load_rules
    from bridge.mapping.areas import allowed_from_settings

    # The deployment's areas apply to replays too: a replay never sends what a live event could not.
    rules: RuleSet = load_rules(settings.mappings_dir, allowed_areas=allowed_from_settings(settings))
    return rules


def _replayable(where: EventFilter) -> tuple[str, list[Any]]:
    clause, params = where.where("events")
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
    conn: sqlite3.Connection, mapped: Sequence[Mapped], now: float, *, force: bool, dry_run: bool
) -> ReplaySummary:
    """Record each event's new mapping and queue what is not already done. With `dry_run`, only count."""
    summary = ReplaySummary(events=len(mapped), dry_run=dry_run)
    for m in mapped:
        if m.errors:
            summary.events_with_errors += 1
        if not dry_run:
            conn.execute(
                "UPDATE events SET status = ?, rules = ?, errors = ?, mapped_at = ? WHERE id = ?",
                (m.status, json.dumps(m.rules), json.dumps(m.errors) if m.errors else None, now, m.event_id),
            )
        for msg, key in m.messages:
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


def replay(
    store: SQLiteStore,
    rules: RuleSet,
    where: EventFilter,
    now: float,
    *,
    force: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ReplaySummary:
    """Replay every stored event matching `where`, oldest first, in batches (blocking: run it in a thread
    from async code)."""
    from bridge.mapping.process import complete, map_events

    reader = store.reader()
    total = count_replayable(reader, where)
    summary = ReplaySummary(dry_run=dry_run)
    after = 0
    if progress is not None:
        progress(0, total)
    while True:
        events = replayable_events(reader, where, after, BATCH)
        if not events:
            break
        mapped = map_events(rules, events)
        # A batch ends at an event over its mapping budget: the events after it are read again.
        after = events[-1].id if complete(events, mapped) else mapped[-1].event_id
        if dry_run:
            part = apply_mappings(reader, mapped, now, force=force, dry_run=True)
        else:
            part = store.write_sync(functools.partial(apply_mappings, mapped=mapped, now=now, force=force, dry_run=False))
        summary.add(part)
        if progress is not None:
            progress(min(summary.events, total), total)
    return summary
