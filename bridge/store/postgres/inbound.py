"""Inbound events on PostgreSQL: ingest with dedupe, the events waiting to be mapped, and saving mappings.

Mapping order. Several web instances insert events at once, and an id is taken when a row is
inserted, not when it commits: event 7 may commit after event 8. A mapper that read 8 and moved
its cursor past it would map 7 after 9, 10, ... (events received after 7 was acknowledged), and
their messages would go out of order. So every ingest (the insert of a group of webhooks,
bridge/store/postgres/groups.py) holds a shared advisory lock until it commits, and the mapper
takes that lock exclusively for a moment to read the id sequence: every id up to that value is
then committed or gone for good, and only those are read. Ingest waits at most that moment.

Saving a mapping locks the lanes of its messages first, sorted (see outbox.py): two mappers
saving messages of one key commit one after the other, so within a lane id order is commit order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bridge.model import Event, IngestResult, Mapped, Outgoing
from bridge.store.postgres import consent, copies, resources
from bridge.store.postgres.connection import NO_FLUSH, Conn
from bridge.store.postgres.outbox import lock_lanes, refresh_lanes
from bridge.store.postgres.text import storable
from bridge.store.postgres.wakeups import MESSAGES_CHANNEL
from bridge.store.sqlite.ingest import EventRow
from bridge.store.sqlite.rows import EVENT_COLUMNS, event_from_row, pack_body, record_text

EVENT_ORDER_LOCK = 0x62726964_67650001  # pg_advisory lock key: ingest shared, the mapper's horizon exclusive


async def ingest_group(conn: Conn, rows: Sequence[EventRow]) -> list[IngestResult]:
    """Store the events of a group (bridge/store/postgres/groups.py): each row's result, in order.

    One statement on the common path, in the group's transaction: new events inserted under the shared
    lock, their ids in the order given; a key seen twice in the group is a duplicate of its first
    occurrence; each resend adds one to its stored event's count. A key whose event another ingest
    committed while the statement ran is in neither part of it (its snapshot is older than that
    commit): it is counted by a statement of its own, and stored again if pruned meanwhile."""
    keys = [(storable(row[0]), storable(row[2])) for row in rows]
    firsts: dict[tuple[str, str], int] = {}  # key -> index of its first occurrence
    seen: dict[tuple[str, str], int] = {}  # key -> its occurrences in the group
    for index, key in enumerate(keys):
        firsts.setdefault(key, index)
        seen[key] = seen.get(key, 0) + 1
    inserted: dict[tuple[str, str], int] = {}
    ids: dict[tuple[str, str], int] = {}
    pending = list(firsts)
    while pending:
        new, counted = await store_events(conn, [rows[firsts[key]] for key in pending],
                                          [seen[key] - 1 for key in pending])
        inserted.update(new)
        ids.update(new)
        ids.update(counted)
        late = [key for key in pending if key not in ids]
        ids.update(await count_duplicates(conn, late, [seen[key] for key in late]))
        pending = [key for key in late if key not in ids]
    news = {firsts[key] for key in inserted}
    return [IngestResult(ids[key], duplicate=index not in news) for index, key in enumerate(keys)]


Ids = dict[tuple[str, str], int]  # (source, dedupe key) -> event id


async def store_events(conn: Conn, rows: Sequence[EventRow], repeats: Sequence[int]) -> tuple[Ids, Ids]:
    """Insert each row (no key twice) with its repeats as its duplicates, and count the repeats and
    the row itself as resends of an event stored before: (ids inserted, ids counted)."""
    columns: list[list[Any]] = [[], [], [], [], [], [], [], []]
    for source, topic, dedupe_key, received_at, headers, body, status in rows:
        stored, codec = pack_body(body)
        for column, value in zip(columns, (storable(source), storable(topic), storable(dedupe_key), received_at,
                                           storable(headers), stored, codec, status), strict=True):
            column.append(value)
    cur = await conn.execute(
        "WITH incoming AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[], %s::text[],"
        " %s::bytea[], %s::text[], %s::text[], %s::int[]) WITH ORDINALITY"
        " AS e(source, topic, dedupe_key, received_at, headers, body, body_codec, status, repeats, n)),"
        " inserted AS (INSERT INTO events (source, topic, dedupe_key, received_at, headers, body, body_codec, status,"
        " duplicates) SELECT source, topic, dedupe_key, received_at, headers, body, body_codec, status, repeats"
        " FROM (SELECT pg_advisory_xact_lock_shared(%s)) AS in_order, incoming ORDER BY n"
        " ON CONFLICT (source, dedupe_key) DO NOTHING RETURNING id, source, dedupe_key),"
        " counted AS (UPDATE events AS e SET duplicates = e.duplicates + i.repeats + 1 FROM incoming AS i"
        " WHERE e.source = i.source AND e.dedupe_key = i.dedupe_key RETURNING e.id, e.source, e.dedupe_key)"
        " SELECT id, source, dedupe_key, true AS new FROM inserted"
        " UNION ALL SELECT id, source, dedupe_key, false FROM counted",
        (*columns, list(repeats), EVENT_ORDER_LOCK))
    new: Ids = {}
    counted: Ids = {}
    for r in await cur.fetchall():
        (new if r["new"] else counted)[(r["source"], r["dedupe_key"])] = int(r["id"])
    return new, counted


async def count_duplicates(conn: Conn, keys: Sequence[tuple[str, str]], counts: Sequence[int]) -> Ids:
    """Add each count to its stored event's resends: the id of each (source, dedupe key) found."""
    if not keys:
        return {}
    cur = await conn.execute(
        "UPDATE events AS e SET duplicates = e.duplicates + d.n"
        " FROM unnest(%s::text[], %s::text[], %s::int[]) AS d(source, dedupe_key, n)"
        " WHERE e.source = d.source AND e.dedupe_key = d.dedupe_key RETURNING e.id, e.source, e.dedupe_key",
        ([k[0] for k in keys], [k[1] for k in keys], list(counts)))
    return {(r["source"], r["dedupe_key"]): int(r["id"]) for r in await cur.fetchall()}


async def mapping_horizon(conn: Conn) -> int:
    """The highest event id below which no ingest is still running: every event up to it is final."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (EVENT_ORDER_LOCK,))
    cur = await conn.execute("SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END AS id"
                             " FROM events_id_seq")
    row = await cur.fetchone()
    return int(row["id"]) if row else 0


async def mapping_turn(conn: Conn, holder: str, until: float, now: float) -> bool:
    """Take the mapping turn for `holder` until `until` when it is free or ran out, or renew the holder's."""
    cur = await conn.execute(
        f"INSERT INTO mapping_turn AS m (id, holder, until) SELECT 1, %(holder)s, %(until)s FROM {NO_FLUSH}"
        " ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, until = excluded.until"
        " WHERE m.holder = excluded.holder OR m.until < %(now)s RETURNING 1",
        {"holder": holder, "until": until, "now": now})
    return await cur.fetchone() is not None


async def waiting_events(conn: Conn, limit: int, after: int, horizon: int) -> list[Event]:
    cur = await conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE status = 'received' AND id > %s AND id <= %s ORDER BY id LIMIT %s",
        (after, horizon, limit))
    return [event_from_row(r) for r in await cur.fetchall()]


async def newest_event_id(conn: Conn) -> int:
    cur = await conn.execute("SELECT coalesce(max(id), 0) AS newest FROM events")
    row = await cur.fetchone()
    return int(row["newest"]) if row is not None else 0


async def save_mappings(conn: Conn, mapped: Sequence[Mapped], now: float, notify: bool) -> int:
    """Record each event's mapping and queue its messages, unless another mapper did first."""
    mapped = sorted(mapped, key=lambda m: m.event_id)
    await consent.lock(conn, mapped)  # before the lanes: the global lock order (bridge/store/postgres/consent.py)
    lanes = sorted({(storable(msg.destination), storable(msg.key)) for m in mapped for msg, _ in m.messages if msg.key})
    await lock_lanes(conn, lanes, create=True)
    cur = await conn.execute("SELECT id FROM events WHERE id = ANY(%s) AND status = 'received' ORDER BY id FOR UPDATE",
                             ([m.event_id for m in mapped],))
    won = {int(r["id"]) for r in await cur.fetchall()}
    mine = [m for m in mapped if m.event_id in won]
    if not mine:
        return 0
    await conn.execute(
        "UPDATE events AS e SET status = u.status, rules = u.rules, errors = u.errors, mapped_at = %s"
        " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) AS u(id, status, rules, errors)"
        " WHERE e.id = u.id",
        (now, [m.event_id for m in mine], [m.status for m in mine], [json.dumps(m.rules) for m in mine],
         [json.dumps(m.errors) if m.errors else None for m in mine]))
    await save_lookup(conn, mine)
    await resources.keep(conn, mine)
    await copies.forget(conn, mine)  # an erasure's, or the prints an echo used up
    rows = [message_params(m.event_id, msg, key) for m in mine
            for msg, key in await consent.sift(conn, m.event_id, m.messages, now)]
    if rows:
        await insert_messages(conn, rows, now)
        await refresh_lanes(conn, lanes)
        if notify:
            await conn.execute("SELECT pg_notify(%s, '')", (MESSAGES_CHANNEL,))
    return len(rows)


async def insert_messages(conn: Conn, rows: Sequence[tuple[Any, ...]], now: float) -> None:
    """Queue messages (each from message_params), pending and due now, their ids in the order given.
    Their lanes are locked by the caller."""
    columns: list[list[Any]] = [list(c) for c in zip(*rows)]
    await conn.execute(
        "INSERT INTO messages (event_id, destination, kind, action, rule, ordering_key, idempotency_key, record,"
        " areas, state, attempts, next_at, created_at, updated_at)"
        " SELECT event_id, destination, kind, action, rule, ordering_key, idempotency_key, record, areas,"
        " 'pending', 0, %s, %s, %s FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[],"
        " %s::text[], %s::text[], %s::text[], %s::text[]) WITH ORDINALITY"
        " AS m(event_id, destination, kind, action, rule, ordering_key, idempotency_key, record, areas, n)"
        " ORDER BY n",
        (now, now, now, *columns))


def message_params(event_id: int, msg: Outgoing, idempotency_key: str) -> tuple[Any, ...]:
    return (event_id, storable(msg.destination), storable(msg.kind), storable(msg.action), storable(msg.rule),
            storable(msg.key), storable(idempotency_key), record_text(msg.record), ",".join(msg.areas))


async def save_lookup(conn: Conn, mapped: Sequence[Mapped]) -> None:
    """The fingerprints events are found by (their e-mails and order numbers)."""
    pairs = [(f, m.event_id) for m in mapped for f in m.search_keys]
    if pairs:
        await conn.execute("INSERT INTO event_lookup (fingerprint, event_id) SELECT * FROM unnest(%s::text[], %s::bigint[])"
                           " ON CONFLICT DO NOTHING", ([p[0] for p in pairs], [p[1] for p in pairs]))
