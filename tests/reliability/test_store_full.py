"""The store when SQLite reports the database full in the middle of a group commit.

SQLite may roll back the whole transaction itself on SQLITE_FULL. The writer must then fail every
job of that batch (their work is gone) and keep running; it must never leave a caller waiting.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.errors import StoreUnavailable
from bridge.model import Webhook

from .test_full_disk import CappedStore

ANSWER_WITHIN = 5.0


def webhook(n: int) -> Webhook:
    # Random padding: the writer packs bodies with LZ4, and a repeated one would take no room at all.
    return Webhook("shopify", "orders/create", f"full-{n}", b'{"id": %d, "pad": "%s"}' % (n, os.urandom(1500).hex().encode()))


def ingest(store: CappedStore, n: int) -> str:
    """One webhook through `ingest`: 'stored', or 'refused' (StoreUnavailable); fails if no answer comes."""
    return answer(asyncio.run_coroutine_threadsafe(store.ingest(webhook(n)), LOOP), n)


def multi_statement_write(store: CappedStore, n: int) -> str:
    """A write of several statements (as save_mappings, claim and complete are): runs under a savepoint."""
    def fn(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO events (source, topic, dedupe_key, received_at, headers, body, status)"
                     " VALUES ('test', 't', ?, 0, '{}', x'00', 'received')", (f"full-{n}",))
        conn.execute("INSERT INTO attempts (message_id, at, outcome, detail) VALUES (0, 0, 'retry', ?)", ("x" * 3000,))
    return answer(store.write(fn), n)


def answer(future: concurrent.futures.Future[object], n: int) -> str:
    try:
        future.result(ANSWER_WITHIN)
    except StoreUnavailable:
        return "refused"
    except concurrent.futures.TimeoutError:
        pytest.fail(f"write {n} got no answer in {ANSWER_WITHIN} s: the store writer is gone")
    return "stored"


LOOP = asyncio.new_event_loop()


@pytest.fixture(scope="module", autouse=True)
def running_loop() -> Iterator[None]:
    thread = threading.Thread(target=LOOP.run_forever, daemon=True)
    thread.start()
    yield
    LOOP.call_soon_threadsafe(LOOP.stop)
    thread.join(5)


def fill_then_free(tmp_path: Path, write: Callable[[CappedStore, int], str]) -> None:
    store = CappedStore(tmp_path / "bridge.db", pages=60)
    store.open_sync()
    try:
        answers = [write(store, n) for n in range(200)]
        assert "refused" in answers
        stored = {k for (k,) in store.reader().execute("SELECT key FROM dedupe")}
        assert {f"full-{n}" for n, a in enumerate(answers) if a == "stored"} <= stored
        store.cap(100_000)
        assert [write(store, n) for n in range(200, 210)] == ["stored"] * 10
    finally:
        store.close_sync()


def test_ingest_refuses_when_full_and_accepts_again(tmp_path: Path) -> None:
    fill_then_free(tmp_path, ingest)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_savepoint_write_refuses_when_full_and_accepts_again(tmp_path: Path) -> None:
    fill_then_free(tmp_path, multi_statement_write)
