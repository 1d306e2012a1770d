from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pgserver
import pytest

from bridge.store import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
# Whole folders of tests that start real servers and processes: `pytest -m "not slow"` leaves them out.
SLOW_FOLDERS = ("e2e", "reliability")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(item.path).relative_to(ROOT / "tests").parts[0] in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(tmp_path / "bridge.db") as s:
        yield s


# -- PostgreSQL (tests/pgserver.py): one database for the session, emptied before each test using it --


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pgserver.Server]:
    server = pgserver.find_server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_session_url(pg_server: pgserver.Server) -> Iterator[str]:
    """A database of this test session, with the schema, dropped at the end."""
    import asyncio

    from bridge.store.postgres.migrate import migrate

    url = pg_server.create_database()
    try:
        asyncio.run(migrate(url))
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture
def pg_url(pg_session_url: str) -> str:
    """The session's database with every table emptied and every identity starting again at 1.

    DELETE, not TRUNCATE: the tables hold a few rows each, and TRUNCATE makes new files for all of them
    (~0.1 s a test against ~5 ms). The schema has no foreign keys, so the order does not matter."""
    import psycopg

    with psycopg.connect(pg_session_url) as conn, conn.transaction():
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                                             " AND tablename <> 'schema_migrations'")]
        sequences = [r[0] for r in conn.execute("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")]
        for table in tables:
            conn.execute(f'DELETE FROM "{table}"')
        for sequence in sequences:
            conn.execute(f'ALTER SEQUENCE "{sequence}" RESTART')
    return pg_session_url
