"""The store: inbound events, dedupe keys, the outbox, and the audit trail of attempts.

`Store` (bridge/store/base.py) is the one interface the rest of the bridge uses.
`make_store` / `open_store` pick the backend from the database URL's scheme:
`sqlite:///path` (or a plain path) is SQLite (bridge/store/sqlite/);
`postgresql://` or `postgres://` is PostgreSQL (bridge/store/postgres/, which needs
the `postgres` extra: it is imported only when used). A backend registers its
schemes in BACKENDS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import ConfigError
from bridge.model import Decision, IngestResult, Mapped
from bridge.settings import Settings, database_path
from bridge.store.base import Store
from bridge.store.sqlite import SQLiteStore


@dataclass(frozen=True)
class StoreOptions:
    process: bool = True  # SQLite: the writer in a process of its own (else a thread)
    migrate: bool = True  # apply pending migrations when the store opens
    create: bool = True  # a database that does not exist yet is made (False: opening it fails)
    pool_size: int = 4  # PostgreSQL: connections this process may open
    notify: bool = True  # PostgreSQL: LISTEN/NOTIFY wake-ups


def _sqlite(url: str, options: StoreOptions) -> Store:
    return SQLiteStore(database_path(url), process=options.process, migrate=options.migrate, create=options.create)


def _postgres(url: str, options: StoreOptions) -> Store:
    try:
        from bridge.store.postgres import PostgresStore
        from bridge.store.postgres.connection import libpq_url
    except ImportError as exc:
        raise ConfigError(f"a PostgreSQL database needs psycopg: pip install 'bridge[postgres]' ({exc})") from None
    return PostgresStore(libpq_url(url), pool_size=options.pool_size, notify=options.notify, migrate=options.migrate)


# scheme -> the factory of a store for a URL of that scheme (not yet opened)
BACKENDS: dict[str, Callable[[str, StoreOptions], Store]] = {
    "sqlite": _sqlite, "postgres": _postgres, "postgresql": _postgres}


def make_store(target: Settings | str | Path, *, process: bool | None = None, migrate: bool | None = None,
               create: bool = True) -> Store:
    """The store for a database URL (or path), or the settings' database; not yet opened."""
    if isinstance(target, Settings):
        url = target.store_url
        options = StoreOptions(target.store_writer == "process" if process is None else process,
                               target.migrate if migrate is None else migrate, create, target.pg_pool_size,
                               target.pg_notify)
    else:
        url = str(target)
        options = StoreOptions(bool(process), True if migrate is None else migrate, create)
    scheme = url.split("://", 1)[0] if "://" in url else "sqlite"
    factory = BACKENDS.get(scheme)
    if factory is None:
        raise ConfigError(f"database URL: no backend for the scheme {scheme!r}; known: {', '.join(sorted(BACKENDS))}")
    return factory(url, options)


async def open_store(target: Settings | str | Path, *, process: bool | None = None, migrate: bool | None = None,
                     create: bool = True) -> Store:
    """`make_store`, opened."""
    store = make_store(target, process=process, migrate=migrate, create=create)
    await store.open()
    return store


__all__ = ["BACKENDS", "Decision", "IngestResult", "Mapped", "SQLiteStore", "Store", "StoreOptions", "make_store",
           "open_store"]
