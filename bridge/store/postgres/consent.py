"""PostgreSQL: consent decisions judged in the transaction that queues their messages (bridge/consent.py).

Two workers may save decisions about one contact at once: the transaction first takes a transaction
advisory lock per (contact, channel) it judges, in number order and before any lane (outbox.py), so
the second waits, then reads what the first wrote. Its messages are inserted after the first's commit,
so within a contact's lane the messages keep the order of the decisions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import structlog

from bridge.consent import CHANNELS, ConsentDecision, ConsentRecord, judge, lock_key, remember
from bridge.model import Mapped, Outgoing
from bridge.store.postgres.connection import Conn

log = structlog.get_logger("bridge.consent")

COLUMNS = "contact, channel, source, subscribed, said_event, decided_at, decided_event, updated_at"


def _record(row: Any) -> ConsentRecord:
    return ConsentRecord(row["contact"], row["channel"], row["source"], bool(row["subscribed"]),
                         int(row["said_event"]), row["decided_at"],
                         None if row["decided_event"] is None else int(row["decided_event"]), row["updated_at"])


async def records(conn: Conn, contact: str, channel: str | None = None) -> list[ConsentRecord]:
    sql = f"SELECT {COLUMNS} FROM consent WHERE contact = %s"
    params: tuple[str, ...] = (contact,)
    if channel is not None:
        sql, params = sql + " AND channel = %s", (contact, channel)
    cur = await conn.execute(sql + ' ORDER BY channel COLLATE "C", source COLLATE "C"', params)
    return [_record(row) for row in await cur.fetchall()]


async def lock(conn: Conn, mapped: Iterable[Mapped]) -> None:
    """Take the locks of every (contact, channel) these mappings judge or erase, in one global order."""
    mapped = list(mapped)
    keys = sorted({lock_key(msg.decision.contact, msg.decision.channel)
                   for m in mapped for msg, _ in m.messages if msg.decision is not None}
                  | {lock_key(contact, channel) for m in mapped for contact in m.forget_copies.contacts
                     for channel in CHANNELS})  # an erasure deletes every channel's records
    if keys:
        await conn.execute("SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT k FROM unnest(%s::bigint[]) AS u(k)"
                           " ORDER BY k) AS ordered", (keys,))


async def _write(conn: Conn, r: ConsentRecord) -> None:
    await conn.execute(
        f"INSERT INTO consent ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (contact, channel, source) DO UPDATE SET subscribed = excluded.subscribed,"
        " said_event = excluded.said_event, decided_at = excluded.decided_at,"
        " decided_event = excluded.decided_event, updated_at = excluded.updated_at",
        (r.contact, r.channel, r.source, r.subscribed, r.said_event, r.decided_at, r.decided_event, r.updated_at))


async def sift(conn: Conn, event_id: int, messages: Sequence[tuple[Outgoing, str]], now: float,
               write: bool = True) -> list[tuple[Outgoing, str]]:
    """The messages of event `event_id` to queue: every one that carries no consent decision, and those
    whose decision is newer than any known. The records are updated unless `write` is False (a dry run).
    The caller holds the locks (`lock`)."""
    kept = []
    for msg, key in messages:
        said: ConsentDecision | None = msg.decision
        if said is None:
            kept.append((msg, key))
            continue
        known = await records(conn, said.contact, said.channel)
        verdict = judge(said, known, event_id)
        if write:
            own = next((r for r in known if r.source == said.source), None)
            await _write(conn, remember(said, verdict, own, event_id, now))
        if verdict.send:
            kept.append((msg, key))
        else:
            log.info("consent.not_sent", event_id=event_id, destination=msg.destination, kind=msg.kind,
                     rule=msg.rule, channel=said.channel, reason=verdict.reason)
    return kept
