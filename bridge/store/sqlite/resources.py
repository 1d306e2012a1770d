"""SQLite: resources kept for lookups (a Shopify order, for the refunds that name it later).

A resource is kept as the body of the latest event that carried it whole, copied from its events
row in the same transaction as that event's mapping, so the copy is exactly what was received.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from bridge.model import Mapped
from bridge.store.sqlite.rows import unpack_body

_PRUNABLE = "SELECT rowid FROM resources WHERE seen_at < :before"


def keep(conn: sqlite3.Connection, m: Mapped) -> None:
    """The mapped event's body becomes its resource's latest state, unless a later event's is kept; the
    resources it asks to erase are deleted."""
    for kind, ref in m.forget_resources:
        conn.execute("DELETE FROM resources WHERE source = (SELECT source FROM events WHERE id = ?)"
                     " AND kind = ? AND ref = ?", (m.event_id, kind, ref))
    if m.resource is None:
        return
    kind, ref = m.resource
    conn.execute(
        "INSERT INTO resources (source, kind, ref, event_id, seen_at, body, body_codec)"
        " SELECT source, ?, ?, id, received_at, body, body_codec FROM events WHERE id = ? AND body IS NOT NULL"
        " ON CONFLICT (source, kind, ref) DO UPDATE SET event_id = excluded.event_id, seen_at = excluded.seen_at,"
        " body = excluded.body, body_codec = excluded.body_codec WHERE excluded.event_id > resources.event_id",
        (kind, ref, m.event_id),
    )


def find(conn: sqlite3.Connection, source: str, kind: str, refs: Sequence[str]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    wanted = sorted(set(refs))
    for start in range(0, len(wanted), 500):  # SQLite's limit on bound parameters is 999 on old builds
        chunk = wanted[start:start + 500]
        rows = conn.execute(
            f"SELECT ref, body, body_codec FROM resources WHERE source = ? AND kind = ?"
            f" AND ref IN ({', '.join('?' * len(chunk))})", (source, kind, *chunk)).fetchall()
        found.update((row["ref"], unpack_body(row["body"], row["body_codec"])) for row in rows)
    return found


def prune(conn: sqlite3.Connection, before: float, limit: int) -> int:
    return conn.execute(
        f"DELETE FROM resources WHERE rowid IN ({_PRUNABLE} LIMIT :limit)",
        {"before": before, "limit": limit},
    ).rowcount


def count_prunable(conn: sqlite3.Connection, before: float) -> int:
    return int(conn.execute(f"SELECT count(*) FROM ({_PRUNABLE})", {"before": before}).fetchone()[0])
