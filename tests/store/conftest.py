"""The `store` fixture: each contract test runs once per backend in BACKENDS.

A backend is a factory: given a test's folder, an async context manager that opens a
store on that test's database and closes it after. Calling it twice in one test opens
two instances on the same database (two processes of one deployment). Adding a
backend is one entry in BACKENDS. PostgreSQL's tests share one database of the
session (tests/conftest.py: pg_url), emptied before each test; without a server
they skip with the reason (fail under CI=true).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from bridge.store import SQLiteStore
from bridge.store.base import Store

StoreFactory = Callable[[Path], AbstractAsyncContextManager[Store]]


@contextlib.asynccontextmanager
async def opened(store: Store) -> AsyncIterator[Store]:
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def sqlite_thread(folder: Path) -> AbstractAsyncContextManager[Store]:
    return opened(SQLiteStore(folder / "bridge.db"))


def sqlite_process(folder: Path) -> AbstractAsyncContextManager[Store]:
    return opened(SQLiteStore(folder / "bridge.db", process=True))


def postgres(url: str) -> StoreFactory:
    from bridge.store.postgres import PostgresStore

    return lambda folder: opened(PostgresStore(url))


BACKENDS: dict[str, StoreFactory] = {
    "sqlite-thread": sqlite_thread,
    "sqlite-process": sqlite_process,
}
BACKEND_NAMES = sorted([*BACKENDS, "postgres"])


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, bool]]:
    return "asyncio", {"use_uvloop": True}  # the loop `bridge serve` runs


@pytest.fixture(params=BACKEND_NAMES)
def store_factory(request: pytest.FixtureRequest) -> StoreFactory:
    if request.param == "postgres":
        return postgres(request.getfixturevalue("pg_url"))
    return BACKENDS[request.param]


@pytest.fixture
async def store(store_factory: StoreFactory, tmp_path: Path) -> AsyncIterator[Store]:
    async with store_factory(tmp_path) as opened_store:
        yield opened_store
