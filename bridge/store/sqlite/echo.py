"""SQLite: the fingerprints of what the bridge last wrote to each Omneo profile (bridge.echo)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from bridge.store.base import SentPrint

MAX_KEYS_PER_QUERY = 500  # well under SQLite's limit of bound parameters


def remember_sent(conn: sqlite3.Connection, prints: Sequence[SentPrint]) -> None:
    conn.executemany(
        "INSERT INTO sent_prints (key, fields, digest, sent_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET fields = excluded.fields, digest = excluded.digest,"
        " sent_at = excluded.sent_at",
        [(p.key, p.fields, p.digest, p.sent_at) for p in prints])


def sent_prints(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, SentPrint]:
    found: dict[str, SentPrint] = {}
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), MAX_KEYS_PER_QUERY):
        chunk = unique[start:start + MAX_KEYS_PER_QUERY]
        rows = conn.execute(f"SELECT key, fields, digest, sent_at FROM sent_prints WHERE key IN "
                            f"({', '.join('?' * len(chunk))})", chunk).fetchall()
        found.update({row[0]: SentPrint(row[0], row[1], row[2], row[3]) for row in rows})
    return found
