"""Numbered schema migrations, the same way for every backend.

Each backend keeps its files in `bridge/store/migrations/<backend>/NNNN_what.sql`,
applied in number order, each in one transaction that also records it in the
`schema_migrations` table (version, name, applied_at). The runner here knows
the files and the order; the backend supplies a `MigrationSession`: its own
connection, and its own lock so that two processes starting at once apply each
migration once (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: an advisory lock).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

from bridge.errors import MigrationError
from bridge.store.base import MigrationStatus

VERSION_TABLE = "schema_migrations"
FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: str  # "0001"
    name: str  # "0001_initial"
    sql: str


class MigrationSession(Protocol):
    """A backend's side of a migration run."""

    async def applied_versions(self) -> set[str]:
        """The versions recorded in schema_migrations, creating the table when it is missing."""
        ...

    async def apply(self, migration: Migration) -> bool:
        """Under the backend's lock, in one transaction: run the migration and record it, unless it is
        recorded by now (another process applied it meanwhile). True when this call applied it."""
        ...


def migrations(backend: str, folder: Path | None = None) -> list[Migration]:
    """The migrations of `backend` (or of `folder`), in version order; a misnamed file is an error."""
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
        raise MigrationError(f"two migrations of {backend} share a number: {versions}")
    return found


async def apply_pending(session: MigrationSession, available: list[Migration]) -> MigrationStatus:
    """Apply every migration in `available` that the database lacks, in order. Versions the database
    has beyond these (a newer bridge migrated it; a rolling deploy) are left as they are."""
    applied = await session.applied_versions()
    done: list[str] = []
    for migration in available:
        if migration.version in applied:
            continue
        if await session.apply(migration):
            done.append(migration.name)
    newest = max([*applied, *(m.version for m in available)], default=None)
    return MigrationStatus(applied=done, current=newest)
