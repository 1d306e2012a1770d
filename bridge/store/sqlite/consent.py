"""SQLite: consent decisions judged in the transaction that queues their messages (bridge/consent.py).

The writer runs one transaction at a time, so the records read here cannot change before they are written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import structlog

from bridge.consent import ConsentDecision, ConsentRecord, judge, remember
from bridge.model import Outgoing

log = structlog.get_logger("bridge.consent")

COLUMNS = "contact, channel, source, subscribed, said_event, decided_at, decided_event, updated_at"


def _record(row: sqlite3.Row) -> ConsentRecord:
    return ConsentRecord(row["contact"], row["channel"], row["source"], bool(row["subscribed"]), row["said_event"],
                         row["decided_at"], row["decided_event"], row["updated_at"])


def records(conn: sqlite3.Connection, contact: str, channel: str | None = None) -> list[ConsentRecord]:
    sql = f"SELECT {COLUMNS} FROM consent WHERE contact = ?"
    params: tuple[str, ...] = (contact,)
    if channel is not None:
        sql, params = sql + " AND channel = ?", (contact, channel)
    return [_record(row) for row in conn.execute(sql + " ORDER BY channel, source", params)]


def _write(conn: sqlite3.Connection, r: ConsentRecord) -> None:
    conn.execute(
        f"INSERT INTO consent ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (contact, channel, source) DO UPDATE SET subscribed = excluded.subscribed,"
        " said_event = excluded.said_event, decided_at = excluded.decided_at,"
        " decided_event = excluded.decided_event, updated_at = excluded.updated_at",
        (r.contact, r.channel, r.source, int(r.subscribed), r.said_event, r.decided_at, r.decided_event,
         r.updated_at))


def sift(conn: sqlite3.Connection, event_id: int, messages: Sequence[tuple[Outgoing, str]], now: float,
         write: bool = True) -> list[tuple[Outgoing, str]]:
    """The messages of event `event_id` to queue: every one that carries no consent decision, and those
    whose decision is newer than any known. The records are updated unless `write` is False (a dry run)."""
    kept = []
    for msg, key in messages:
        said: ConsentDecision | None = msg.decision
        if said is None:
            kept.append((msg, key))
            continue
        known = records(conn, said.contact, said.channel)
        verdict = judge(said, known, event_id)
        if write:
            own = next((r for r in known if r.source == said.source), None)
            _write(conn, remember(said, verdict, own, event_id, now))
        if verdict.send:
            kept.append((msg, key))
        else:
            log.info("consent.not_sent", event_id=event_id, destination=msg.destination, kind=msg.kind,
                     rule=msg.rule, channel=said.channel, reason=verdict.reason)
    return kept
