"""SQLite: the bridge's own copies about a person, deleted with a mapping (bridge/erasure.py, bridge/echo.py)."""

from __future__ import annotations

import sqlite3

from bridge.model import OwnCopies


def forget(conn: sqlite3.Connection, copies: OwnCopies) -> None:
    """Delete the consent records of `copies.contacts`, the sent prints under `copies.prints`, and those of
    `copies.used_prints` that are still the ones an echo matched."""
    conn.executemany("DELETE FROM consent WHERE contact = ?", [(c,) for c in copies.contacts])
    conn.executemany("DELETE FROM sent_prints WHERE key = ?", [(k,) for k in copies.prints])
    conn.executemany("DELETE FROM sent_prints WHERE key = ? AND digest = ? AND sent_at = ?", copies.used_prints)
