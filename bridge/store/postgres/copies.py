"""PostgreSQL: the bridge's own copies about a person, deleted with a mapping (bridge/erasure.py,
bridge/echo.py). The caller holds the consent locks of the contacts (consent.lock)."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.model import Mapped
from bridge.store.postgres.connection import Conn


async def forget(conn: Conn, mapped: Sequence[Mapped]) -> None:
    """Delete the consent records and sent prints each mapping's `forget_copies` names."""
    contacts = sorted({c for m in mapped for c in m.forget_copies.contacts})
    prints = sorted({k for m in mapped for k in m.forget_copies.prints})
    if contacts:
        await conn.execute("DELETE FROM consent WHERE contact = ANY(%s::text[])", (contacts,))
    if prints:
        await conn.execute("DELETE FROM sent_prints WHERE key = ANY(%s::text[])", (prints,))
    used = sorted({p for m in mapped for p in m.forget_copies.used_prints})
    if used:  # only while still the ones an echo matched: a later write's print under the key stays
        await conn.execute(
            "DELETE FROM sent_prints AS s USING unnest(%s::text[], %s::text[], %s::float8[]) AS u(key, digest, sent_at)"
            " WHERE s.key = u.key AND s.digest = u.digest AND s.sent_at = u.sent_at",
            ([k for k, _, _ in used], [d for _, d, _ in used], [a for _, _, a in used]))
