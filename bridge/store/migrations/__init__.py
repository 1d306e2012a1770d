"""Numbered schema migrations, the same way for every backend.

Each backend keeps its files in `bridge/store/migrations/<backend>/NNNN_what.sql`.
They are applied in number order, each in one transaction that also records it in
the `schema_migrations` table:

    schema_migrations (version TEXT PRIMARY KEY,   -- "0001"
                       name    TEXT NOT NULL,      -- "0001_initial"
                       applied_at <the backend's timestamp> NOT NULL)

This module finds the files and decides what to apply (`migrations`, `pending`);
the backend runs them with its own connection, under its own lock, so that two
processes starting at once apply each migration once (SQLite: `BEGIN IMMEDIATE`,
and the version checked again inside it; PostgreSQL: an advisory lock).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bridge.errors import MigrationError
from bridge.store.base import MigrationStatus

VERSION_TABLE = "schema_migrations"
FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: str  # "0001"
    name: str  # "0001_initial"
    sql: str


def migrations(backend: str, folder: Path | None = None) -> list[Migration]:
    """The migrations of `backend` (or those in `folder`), in version order; a misnamed file is an error."""
    root = folder if folder is not None else Path(str(resources.files("bridge.store.migrations").joinpath(backend)))
    found: list[Migration] = []
    for path in sorted(root.iterdir()):
        if path.name.startswith((".", "_")) or path.is_dir():
            continue
        match = FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file {path.name!r} is not named NNNN_what.sql")
        found.append(Migration(match.group(1), path.stem, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations of {backend} share a number: {', '.join(versions)}")
    return found


def pending(applied: Iterable[str], available: Sequence[Migration]) -> list[Migration]:
    """The migrations not yet applied, in order. Versions the database has beyond `available` (a newer
    bridge migrated it, as in a rolling deploy) are left as they are."""
    done = set(applied)
    return [m for m in available if m.version not in done]


def status(applied_now: Sequence[Migration], applied: Iterable[str], *, created: bool = False) -> MigrationStatus:
    """What a run did (`applied_now`), and the newest version the database has after it (`applied`: every
    version recorded, these included); `created` when the run made the schema from nothing."""
    return MigrationStatus(applied=[m.name for m in applied_now], current=max(applied, default=None),
                           created=created)


def unapplied_error(missing: Sequence[Migration]) -> MigrationError:
    """The error of a store opened without migrating on a database that lacks migrations."""
    names = ", ".join(m.name for m in missing)
    return MigrationError(f"the database lacks migrations {names}: run `bridge migrate` (or start without "
                          "--no-migrate / BRIDGE_MIGRATE=false)")
