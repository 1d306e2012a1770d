"""PostgreSQL: the fingerprints of what the bridge last wrote to each Omneo profile (bridge.echo)."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.store.base import SentPrint
from bridge.store.postgres.connection import Conn


async def remember_sent(conn: Conn, prints: Sequence[SentPrint]) -> None:
    # One row per key: the newest write of each key in this call wins, as it would one by one.
    newest = {p.key: p for p in sorted(prints, key=lambda p: p.sent_at)}
    if not newest:
        return
    rows = sorted(newest.values(), key=lambda p: p.key)  # a fixed order: two writers lock rows alike
    await conn.execute(
        "INSERT INTO sent_prints (key, fields, digest, sent_at)"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[])"
        " ON CONFLICT (key) DO UPDATE SET fields = excluded.fields, digest = excluded.digest,"
        " sent_at = excluded.sent_at",
        ([p.key for p in rows], [p.fields for p in rows], [p.digest for p in rows], [p.sent_at for p in rows]))


async def sent_prints(conn: Conn, keys: Sequence[str]) -> dict[str, SentPrint]:
    cur = await conn.execute("SELECT key, fields, digest, sent_at FROM sent_prints WHERE key = ANY(%s::text[])",
                             (list(dict.fromkeys(keys)),))
    return {r["key"]: SentPrint(r["key"], r["fields"], r["digest"], r["sent_at"]) for r in await cur.fetchall()}
