"""The SQLite backend: one file, one writer doing group commits, WAL readers (see store.py)."""

from bridge.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
