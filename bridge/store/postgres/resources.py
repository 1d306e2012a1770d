"""PostgreSQL: resources kept for lookups (a Shopify order, for the refunds that name it later).

A resource is kept as the body of the latest event that carried it whole, copied from its events
row in the same transaction as that event's mapping. Two workers saving events of one resource at
once both upsert the row; the later event (by id) wins whichever commits last.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.model import Mapped
from bridge.store.postgres.connection import Conn
from bridge.store.postgres.text import storable
from bridge.store.sqlite.rows import unpack_body

_PRUNABLE = "SELECT source, kind, ref FROM resources WHERE seen_at < %(before)s"


async def keep(conn: Conn, mapped: Sequence[Mapped]) -> None:
    """Each mapped event's body becomes its resource's latest state, unless a later event's is kept; the
    resources an event asks to erase are deleted."""
    erased = sorted((storable(kind), storable(ref), m.event_id) for m in mapped for kind, ref in m.forget_resources)
    if erased:
        kinds, refs, ids = (list(column) for column in zip(*erased))
        await conn.execute(
            "DELETE FROM resources AS r USING unnest(%s::text[], %s::text[], %s::bigint[]) AS f(kind, ref, event_id)"
            " JOIN events AS e ON e.id = f.event_id WHERE r.source = e.source AND r.kind = f.kind AND r.ref = f.ref",
            (kinds, refs, ids))
    rows = sorted(((storable(m.resource[0]), storable(m.resource[1]), m.event_id) for m in mapped
                   if m.resource is not None), key=lambda row: (row[0], row[1], row[2]))
    if not rows:
        return
    kinds, refs, ids = (list(column) for column in zip(*rows))
    await conn.execute(
        "INSERT INTO resources (source, kind, ref, event_id, seen_at, body, body_codec)"
        # one row per resource in one statement (ON CONFLICT cannot touch a row twice): the latest event's,
        # in the order of the resources' keys
        " SELECT DISTINCT ON (e.source, r.kind, r.ref) e.source, r.kind, r.ref, e.id, e.received_at, e.body,"
        " e.body_codec FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS r(kind, ref, event_id)"
        " JOIN events AS e ON e.id = r.event_id AND e.body IS NOT NULL"
        " ORDER BY e.source, r.kind, r.ref, e.id DESC"
        " ON CONFLICT (source, kind, ref) DO UPDATE SET event_id = excluded.event_id, seen_at = excluded.seen_at,"
        " body = excluded.body, body_codec = excluded.body_codec WHERE excluded.event_id > resources.event_id",
        (kinds, refs, ids))


async def find(conn: Conn, source: str, kind: str, refs: Sequence[str]) -> dict[str, bytes]:
    cur = await conn.execute("SELECT ref, body, body_codec FROM resources WHERE source = %s AND kind = %s"
                             " AND ref = ANY(%s)", (storable(source), storable(kind), [storable(r) for r in refs]))
    return {row["ref"]: unpack_body(row["body"], row["body_codec"]) for row in await cur.fetchall()}


async def prune(conn: Conn, before: float, limit: int) -> int:
    cur = await conn.execute(
        f"DELETE FROM resources WHERE (source, kind, ref) IN ({_PRUNABLE} LIMIT %(limit)s)",
        {"before": before, "limit": limit})
    return cur.rowcount


async def count_prunable(conn: Conn, before: float) -> int:
    cur = await conn.execute(f"SELECT count(*) AS n FROM ({_PRUNABLE}) AS s", {"before": before})
    row = await cur.fetchone()
    return int(row["n"]) if row else 0
