"""The outbox on PostgreSQL: claims, leases, completions, submitted batches, pauses.

Per-key order across workers uses one row per ordering lane, (destination, ordering key)
(docs: scale-out.md, design B). The lock order is global: lanes, sorted (COLLATE "C"), then
messages. Every transaction that changes a keyed message's state locks its lane first and sets
the lane's `ready_at` from the lane's head (its oldest open message) before committing, so:

- a claimer locks ready lanes with SKIP LOCKED (claimers never wait for each other), then reads
  their heads in a new statement, which sees every committed change to them: never a stale head,
  and a lane parked (ready_at NULL) only on what is really there;
- the head is never skipped: a lane whose head is in flight, submitted or backing off offers nothing.

Unordered messages (ordering key '') have no lane: they are claimed directly with SKIP LOCKED.
A claim token fences completions, as in SQLite: a late answer after the lease ran out changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from bridge.model import BudgetSlot, Decision, Message, Outcome
from bridge.store.base import OPEN_STATES, DestinationState
from bridge.store.postgres.connection import NO_FLUSH, Conn
from bridge.store.postgres.text import storable
from bridge.store.sqlite.rows import MESSAGE_COLUMNS, message_from_row

OPEN = "(" + ", ".join(f"'{state}'" for state in OPEN_STATES) + ")"  # SQL: states that hold back their key
HOLDING_SCAN = 1_000  # submitted messages claim_batch looks at for one that holds back its key
PROBE_NAME = "~probe"


def _keys(messages: Iterable[Message]) -> list[tuple[str, str]]:
    return sorted({(m.destination, m.key) for m in messages if m.key})


def _unnest(pairs: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(column) for column in zip(*pairs)] if pairs else [[] for _ in range(width)]


async def lock_lanes(conn: Conn, lanes: Sequence[tuple[str, str]], *, create: bool = False) -> None:
    """Lock these lanes (creating missing ones when `create`), in the global order; waits for holders."""
    if not lanes:
        return
    destinations, keys = _unnest(lanes, 2)
    if create:  # DO UPDATE ... WHERE false changes nothing but locks an existing row
        await conn.execute(
            "INSERT INTO lanes (destination, ordering_key) SELECT d, k FROM unnest(%s::text[], %s::text[]) AS t(d, k)"
            ' ORDER BY d COLLATE "C", k COLLATE "C"'
            " ON CONFLICT (destination, ordering_key) DO UPDATE SET ready_at = lanes.ready_at WHERE false",
            (destinations, keys))
    else:
        await conn.execute(
            "SELECT 1 FROM lanes WHERE (destination, ordering_key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
            ' ORDER BY destination COLLATE "C", ordering_key COLLATE "C" FOR UPDATE',
            (destinations, keys))


async def refresh_lanes(conn: Conn, lanes: Sequence[tuple[str, str]]) -> None:
    """Set each lane's ready_at from its head, as this transaction sees it (the lanes are locked)."""
    if not lanes:
        return
    destinations, keys = _unnest(lanes, 2)
    await conn.execute(
        "UPDATE lanes AS l SET ready_at = ("
        "   SELECT CASE WHEN m.state = 'pending' THEN m.next_at END FROM messages AS m"
        f"  WHERE m.destination = l.destination AND m.ordering_key = l.ordering_key AND m.state IN {OPEN}"
        "   ORDER BY m.id LIMIT 1)"
        " FROM unnest(%s::text[], %s::text[]) AS t(d, k) WHERE l.destination = t.d AND l.ordering_key = t.k",
        (destinations, keys))


async def claim(conn: Conn, destination: str, limit: int, lease_until: float, now: float) -> list[Message]:
    cur = await conn.execute(
        "SELECT ordering_key FROM lanes WHERE destination = %s AND ready_at <= %s ORDER BY ready_at LIMIT %s"
        " FOR UPDATE SKIP LOCKED", (destination, now, limit))
    keys = [r["ordering_key"] for r in await cur.fetchall()]
    due: list[int] = []
    if keys:
        cur = await conn.execute(
            "SELECT h.id, h.state, h.next_at FROM unnest(%s::text[]) AS k(key) CROSS JOIN LATERAL ("
            "  SELECT id, state, next_at FROM messages"
            f" WHERE destination = %s AND ordering_key = k.key AND state IN {OPEN} ORDER BY id LIMIT 1) AS h",
            (keys, destination))
        due = [int(r["id"]) for r in await cur.fetchall() if r["state"] == "pending" and r["next_at"] <= now]
    cur = await conn.execute(
        "SELECT id FROM messages WHERE destination = %s AND ordering_key = '' AND state = 'pending' AND next_at <= %s"
        " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED", (destination, now, limit))
    due += [int(r["id"]) for r in await cur.fetchall()]
    chosen = sorted(due)[:limit]
    messages: list[Message] = []
    if chosen:
        cur = await conn.execute(
            "UPDATE messages SET state = 'inflight', lease_until = %s, claim = %s, attempts = attempts + 1,"
            f" updated_at = %s WHERE id = ANY(%s) AND state = 'pending' RETURNING {MESSAGE_COLUMNS}",
            (lease_until, uuid.uuid4().hex, now, chosen))
        messages = sorted((message_from_row(r) for r in await cur.fetchall()), key=lambda m: m.id)
    await refresh_lanes(conn, [(destination, k) for k in keys])
    return messages


async def release_expired(conn: Conn, now: float) -> int:
    """In-flight messages whose lease ran out back to pending; a lane another transaction holds waits
    for the next round."""
    cur = await conn.execute(
        "SELECT DISTINCT destination, ordering_key FROM messages"
        " WHERE state = 'inflight' AND lease_until < %s AND ordering_key <> ''", (now,))
    candidates = [(r["destination"], r["ordering_key"]) for r in await cur.fetchall()]
    lanes: list[tuple[str, str]] = []
    if candidates:
        cur = await conn.execute(
            "SELECT destination, ordering_key FROM lanes"
            " WHERE (destination, ordering_key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
            ' ORDER BY destination COLLATE "C", ordering_key COLLATE "C" FOR UPDATE SKIP LOCKED',
            _unnest(candidates, 2))
        lanes = [(r["destination"], r["ordering_key"]) for r in await cur.fetchall()]
    destinations, keys = _unnest(lanes, 2)
    cur = await conn.execute(
        "UPDATE messages SET state = 'pending', next_at = %s, lease_until = NULL, claim = NULL, updated_at = %s"
        " WHERE state = 'inflight' AND lease_until < %s AND (ordering_key = ''"
        "   OR (destination, ordering_key) IN (SELECT * FROM unnest(%s::text[], %s::text[])))",
        (now, now, now, destinations, keys))
    await refresh_lanes(conn, lanes)
    return cur.rowcount


async def release(conn: Conn, messages: Sequence[Message], now: float) -> int:
    """Give back claims unsent: pending, due now, the attempt not counted."""
    await lock_lanes(conn, _keys(messages))
    cur = await conn.execute(
        "UPDATE messages AS m SET state = 'pending', attempts = GREATEST(m.attempts - 1, 0), next_at = %s,"
        " lease_until = NULL, claim = NULL, updated_at = %s FROM unnest(%s::bigint[], %s::text[]) AS r(id, claim)"
        " WHERE m.id = r.id AND m.state = 'inflight' AND m.claim = r.claim",
        (now, now, [m.id for m in messages], [m.claim for m in messages]))
    await refresh_lanes(conn, _keys(messages))
    return cur.rowcount


async def extend(conn: Conn, messages: Sequence[Message], lease_until: float) -> int:
    # SKIP LOCKED: a message another transaction holds (its lease ran out and it is being
    # released) is not waited for; waiting could deadlock with that transaction.
    cur = await conn.execute(
        "UPDATE messages SET lease_until = %s WHERE id IN ("
        "  SELECT m.id FROM messages AS m JOIN unnest(%s::bigint[], %s::text[]) AS r(id, claim)"
        "  ON m.id = r.id AND m.claim = r.claim WHERE m.state = 'inflight' FOR UPDATE OF m SKIP LOCKED)",
        (lease_until, [m.id for m in messages], [m.claim for m in messages]))
    return cur.rowcount


async def claim_batch(conn: Conn, destination: str, due_before: float, lease_until: float,
                      holding_due_before: float | None) -> tuple[str, list[Message]] | None:
    holding = holding_due_before if holding_due_before is not None else due_before
    cur = await conn.execute(
        "WITH due AS ("
        "  SELECT id, batch_ref, claim, ordering_key, next_at FROM messages"
        "  WHERE destination = %(dest)s AND state = 'submitted' AND next_at <= GREATEST(%(due)s, %(holding)s)"
        "  ORDER BY next_at LIMIT %(scan)s)"
        " SELECT s.batch_ref, s.claim FROM due AS s"
        " WHERE s.next_at <= %(due)s OR (s.ordering_key <> '' AND EXISTS ("
        "   SELECT 1 FROM messages AS p WHERE p.destination = %(dest)s AND p.ordering_key = s.ordering_key"
        f"  AND p.state IN {OPEN} AND p.id > s.id))"
        " ORDER BY s.next_at LIMIT 1",
        {"dest": destination, "due": due_before, "holding": holding, "scan": HOLDING_SCAN})
    row = await cur.fetchone()
    if row is None:
        return None
    # Another worker may take the same batch meanwhile: only the claim seen here is replaced.
    cur = await conn.execute(
        "UPDATE messages SET next_at = %s, claim = %s WHERE batch_ref = %s AND state = 'submitted'"
        f" AND claim IS NOT DISTINCT FROM %s RETURNING {MESSAGE_COLUMNS}",
        (lease_until, uuid.uuid4().hex, row["batch_ref"], row["claim"]))
    messages = sorted((message_from_row(r) for r in await cur.fetchall()), key=lambda m: m.id)
    return (row["batch_ref"], messages) if messages else None


async def complete(conn: Conn, results: Sequence[tuple[Message, Outcome, Decision]], now: float) -> None:
    lanes = _keys(m for m, _, _ in results)
    await lock_lanes(conn, lanes)
    deferred = [(m.id, m.claim, d.next_at) for m, o, d in results if o.kind == "deferred"]
    if deferred:  # nothing was sent: no attempt to account for
        await conn.execute(
            "UPDATE messages AS m SET state = 'pending', next_at = r.next_at, lease_until = NULL, claim = NULL,"
            " updated_at = %s, attempts = GREATEST(m.attempts - 1, 0)"
            " FROM unnest(%s::bigint[], %s::text[], %s::float8[]) AS r(id, claim, next_at)"
            " WHERE m.id = r.id AND m.state = 'inflight' AND m.claim = r.claim",
            (now, *_unnest(deferred, 3)))
    done = [(m, o, d) for m, o, d in results if o.kind != "deferred"]
    if done:
        details = [storable(o.detail[:500]) for _, o, _ in done]
        await conn.execute(
            "INSERT INTO attempts (message_id, at, outcome, status, detail)"
            " SELECT id, %s, outcome, status, detail FROM unnest(%s::bigint[], %s::text[], %s::int[], %s::text[])"
            " WITH ORDINALITY AS a(id, outcome, status, detail, n) ORDER BY n",
            (now, [m.id for m, _, _ in done], [o.kind for _, o, _ in done], [o.status for _, o, _ in done], details))
        # The claim token fences a late answer for a message claimed again by another worker:
        # only the current holder's answer moves it on (the late one stays in the audit trail).
        await conn.execute(
            "UPDATE messages AS m SET state = r.state, next_at = r.next_at, lease_until = NULL, claim = NULL,"
            " updated_at = %s, last_status = r.status, last_detail = r.detail, attempts = m.attempts - r.refund,"
            " batch_ref = COALESCE(r.batch_ref, m.batch_ref),"
            " submitted_at = CASE WHEN r.state = 'submitted' THEN COALESCE(m.submitted_at, %s) END"
            " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::float8[], %s::int[], %s::text[], %s::int[],"
            "   %s::text[]) AS r(id, claim, state, next_at, status, detail, refund, batch_ref)"
            " WHERE m.id = r.id AND m.state IN ('inflight', 'submitted') AND m.claim = r.claim",
            (now, now, [m.id for m, _, _ in done], [m.claim for m, _, _ in done], [d.state for _, _, d in done],
             [d.next_at for _, _, d in done], [o.status for _, o, _ in done], details,
             [1 if d.refund_attempt else 0 for _, _, d in done],
             [o.ref for _, o, _ in done]))
    await refresh_lanes(conn, lanes)


async def set_paused(conn: Conn, name: str, paused: bool, reason: str, key_fingerprint: str | None,
                     now: float) -> None:
    await conn.execute(
        "INSERT INTO destination_state (name, paused, reason, changed_at, key_fingerprint) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, reason = excluded.reason,"
        " changed_at = excluded.changed_at, key_fingerprint = excluded.key_fingerprint",
        (name, paused, storable(reason), now, key_fingerprint))


async def destination_states(conn: Conn) -> dict[str, DestinationState]:
    cur = await conn.execute("SELECT name, paused, reason, changed_at, key_fingerprint FROM destination_state"
                             " WHERE name <> %s", (PROBE_NAME,))
    return {r["name"]: DestinationState(name=r["name"], paused=bool(r["paused"]), reason=r["reason"],
                                        changed_at=r["changed_at"], key_fingerprint=r["key_fingerprint"])
            for r in await cur.fetchall()}


async def probe(conn: Conn, now: float) -> None:
    """A write that adds and removes a row: the database takes commits."""
    await conn.execute("INSERT INTO destination_state (name, changed_at) VALUES (%s, %s)"
                       " ON CONFLICT (name) DO UPDATE SET changed_at = excluded.changed_at", (PROBE_NAME, now))
    await conn.execute("DELETE FROM destination_state WHERE name = %s", (PROBE_NAME,))


# The schedule's statements commit without waiting for the disk (connection.NO_FLUSH): a flush puts
# 1-15 ms of varying delay between a reserved slot and its request (bench/NOTES.md), and a schedule
# lost in a crash costs at most a few milliseconds of spacing.
_NOW = f"(SELECT extract(epoch FROM clock_timestamp()) AS now) AS t, {NO_FLUSH}"


# The next slot: the schedule's, or later where a worker holds its number back (rate_holds).
_NEXT = ("GREATEST(b.next_at, (SELECT h.not_before FROM rate_holds AS h"
         " WHERE h.destination = b.destination AND h.number = b.taken + 1))")


async def take_budget(conn: Conn, destination: str, per_second: float, max_wait: float | None) -> BudgetSlot:
    """Reserve the destination's next request slot on the schedule every worker shares (the database's
    clock): the seconds until it (0 when it is now), the slot and its number. A slot further away than
    `max_wait` is not reserved; its wait is returned all the same."""
    cur = await conn.execute(
        "INSERT INTO rate_buckets AS b (destination, tokens, refreshed_at, next_at, taken)"
        f" SELECT %(d)s, 0, t.now, t.now + 1.0 / %(rate)s, 1 FROM {_NOW}"
        " ON CONFLICT (destination) DO UPDATE"
        f" SET next_at = GREATEST({_NEXT}, excluded.refreshed_at) + 1.0 / %(rate)s,"
        " refreshed_at = excluded.refreshed_at, taken = b.taken + 1"
        f" WHERE %(max)s::float8 IS NULL OR {_NEXT} - excluded.refreshed_at <= %(max)s::float8"
        " RETURNING b.next_at - 1.0 / %(rate)s AS at, b.refreshed_at AS now, b.taken",
        {"d": destination, "rate": per_second, "max": max_wait})
    row = await cur.fetchone()
    if row is not None:
        return BudgetSlot(max(float(row["at"]) - float(row["now"]), 0.0), float(row["at"]), int(row["taken"]))
    cur = await conn.execute(f"SELECT {_NEXT} AS at, b.taken + 1 AS number,"
                             " extract(epoch FROM clock_timestamp()) AS now FROM rate_buckets AS b"
                             " WHERE b.destination = %s", (destination,))
    row = await cur.fetchone()
    if row is None:
        return BudgetSlot(0.0, None)
    return BudgetSlot(max(float(row["at"]) - float(row["now"]), 0.0), float(row["at"]), int(row["number"]))


async def block_budget(conn: Conn, destination: str, seconds: float) -> None:
    """No slot of the destination's schedule before `seconds` from now (unless it is already later)."""
    await conn.execute(
        "INSERT INTO rate_buckets AS b (destination, tokens, refreshed_at, next_at)"
        f" SELECT %(d)s, 0, t.now, t.now + %(wait)s FROM {_NOW}"
        " ON CONFLICT (destination) DO UPDATE SET next_at = GREATEST(b.next_at, excluded.next_at)",
        {"d": destination, "wait": seconds})


async def hold_budget(conn: Conn, destination: str, number: int, not_before: float) -> None:
    """The destination's slot numbered `number` no earlier than `not_before` (the database's clock; the
    later of two holds of one number), unless that slot is reserved already. Holds of slots reserved
    since go."""
    await conn.execute(
        "WITH gone AS (DELETE FROM rate_holds WHERE destination = %(d)s"
        "   AND number <= (SELECT taken FROM rate_buckets WHERE destination = %(d)s))"
        " INSERT INTO rate_holds AS h (destination, number, not_before)"
        f" SELECT %(d)s, %(n)s, %(at)s FROM rate_buckets AS b, {NO_FLUSH} WHERE b.destination = %(d)s AND b.taken < %(n)s"
        " ON CONFLICT (destination, number) DO UPDATE SET not_before = GREATEST(h.not_before, excluded.not_before)",
        {"d": destination, "n": number, "at": not_before})
