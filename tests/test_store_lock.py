"""The SQLite writer's own wait for the write lock (bridge/store/sqlite/lock.py).

Unit tests of the retry loop on a fake clock, then the writer against a second connection that
holds the lock on a real file, as `bridge worker`'s writer does beside the web process's.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.errors import StoreUnavailable
from bridge.model import Webhook
from bridge.store import SQLiteStore
from bridge.store.sqlite import lock as lock_module
from bridge.store.sqlite.ingest import count_repeats
from bridge.store.sqlite.lock import (
    FIRST_PAUSE_SECONDS,
    GAP_PER_HELD,
    GAP_SECONDS,
    MAX_PAUSE_SECONDS,
    WriteLock,
    is_busy,
    retry_busy,
)
from bridge.store.sqlite.writer import _Job, commit_group, connect, execute, open_writer


class FakeTime:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def busy_error() -> sqlite3.OperationalError:
    """A real SQLITE_BUSY, from SQLite: a second BEGIN IMMEDIATE on a WAL file, without a wait."""
    with tempfile.TemporaryDirectory() as folder:
        holder = sqlite3.connect(Path(folder) / "x.db", isolation_level=None)
        other = sqlite3.connect(Path(folder) / "x.db", isolation_level=None, timeout=0)
        try:
            holder.execute("PRAGMA journal_mode = WAL")
            holder.execute("BEGIN IMMEDIATE")
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            return exc
        finally:
            other.close()
            holder.close()
    raise AssertionError("the second BEGIN IMMEDIATE did not meet the lock")


BUSY = busy_error()


def failing(times: int, error: Exception = BUSY) -> tuple[list[int], object]:
    calls: list[int] = []

    def attempt() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "done"

    return calls, attempt


def test_busy_is_sqlites_busy_and_nothing_else() -> None:
    assert is_busy(BUSY)
    assert not is_busy(sqlite3.OperationalError("no such table: x"))
    assert not is_busy(ValueError("database is locked"))


def test_a_busy_attempt_is_tried_again_after_short_growing_pauses() -> None:
    time = FakeTime()
    calls, attempt = failing(6)
    assert retry_busy(attempt, clock=time.clock, sleep=time.sleep, jitter=lambda: 1.0) == "done"  # type: ignore[arg-type]
    assert len(calls) == 7
    assert time.sleeps == pytest.approx([0.0001, 0.0002, 0.0004, 0.0008, 0.001, 0.001])
    assert time.sleeps[0] == FIRST_PAUSE_SECONDS and max(time.sleeps) == MAX_PAUSE_SECONDS


def test_the_pauses_are_jittered_between_half_and_all_of_the_step() -> None:
    time = FakeTime()
    _, attempt = failing(3)
    retry_busy(attempt, clock=time.clock, sleep=time.sleep, jitter=lambda: 0.0)  # type: ignore[arg-type]
    assert time.sleeps == pytest.approx([0.00005, 0.0001, 0.0002])


def test_after_the_deadline_the_busy_error_is_raised_without_sleeping_past_it() -> None:
    time = FakeTime()
    calls, attempt = failing(10**9)
    with pytest.raises(sqlite3.OperationalError) as raised:
        retry_busy(attempt, 0.05, clock=time.clock, sleep=time.sleep, jitter=lambda: 1.0)  # type: ignore[arg-type]
    assert raised.value is BUSY
    assert sum(time.sleeps) == pytest.approx(0.05)
    assert len(calls) == len(time.sleeps) + 1


def test_any_other_error_is_raised_at_once() -> None:
    time = FakeTime()
    calls, attempt = failing(1, sqlite3.OperationalError("disk I/O error"))
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        retry_busy(attempt, clock=time.clock, sleep=time.sleep)  # type: ignore[arg-type]
    assert len(calls) == 1 and time.sleeps == []


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "bridge.db"
    with SQLiteStore(path):  # the schema
        pass
    yield path


class Holder:
    """Another connection (another process's writer) holding the write lock until released."""

    def __init__(self, path: Path) -> None:
        self.conn = connect(path)
        self.conn.execute("BEGIN IMMEDIATE")

    def release_after(self, seconds: float) -> threading.Thread:
        def go() -> None:
            threading.Event().wait(seconds)
            self.conn.execute("COMMIT")
        thread = threading.Thread(target=go)
        thread.start()
        return thread

    def close(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")
        self.conn.close()


def test_the_writer_has_no_busy_timeout_of_sqlites(db: Path) -> None:
    conn = open_writer(db)
    try:
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 0
    finally:
        conn.close()


def test_begin_waits_for_the_other_writer_and_then_holds_the_lock(db: Path) -> None:
    holder = Holder(db)
    conn = open_writer(db)
    try:
        with pytest.raises(sqlite3.OperationalError):  # no wait of SQLite's own
            conn.execute("BEGIN IMMEDIATE")
        thread = holder.release_after(0.05)
        WriteLock(conn).begin(webhooks=True)
        thread.join()
        assert conn.in_transaction
        conn.execute("COMMIT")
    finally:
        conn.close()
        holder.close()


def transaction(conn: sqlite3.Connection, lock: WriteLock, time: FakeTime, *, webhooks: bool = False,
                held: float = 0.0) -> None:
    lock.begin(webhooks=webhooks)
    time.now += held
    conn.execute("COMMIT")
    lock.released()


def test_a_writer_without_webhooks_that_met_the_other_leaves_it_gaps(db: Path) -> None:
    time = FakeTime()
    conn = open_writer(db)
    lock = WriteLock(conn, clock=time.clock, sleep=time.sleep)
    try:
        transaction(conn, lock, time)  # nobody else yet: no gap
        transaction(conn, lock, time)
        assert time.sleeps == []

        lock.met()  # the other writer held the lock a moment ago
        transaction(conn, lock, time, held=0.0)  # right after its last transaction: a gap first
        assert time.sleeps == [pytest.approx(GAP_SECONDS)]
        transaction(conn, lock, time, held=0.010)  # the gap again, then it holds the lock 10 ms
        transaction(conn, lock, time)  # and leaves it free GAP_PER_HELD times as long first
        assert time.sleeps[1:] == [pytest.approx(GAP_SECONDS), pytest.approx(0.010 * GAP_PER_HELD)]

        time.now += lock_module.CONTENDED_SECONDS  # the other writer has not been met for a while
        transaction(conn, lock, time)
        transaction(conn, lock, time)
        assert len(time.sleeps) == 3
    finally:
        conn.close()


def test_a_writer_of_webhooks_never_leaves_gaps(db: Path) -> None:
    """`bridge serve`'s writer commits the worker's transactions too: a gap would hold up its webhooks."""
    time = FakeTime()
    conn = open_writer(db)
    lock = WriteLock(conn, clock=time.clock, sleep=time.sleep)
    try:
        transaction(conn, lock, time, webhooks=True)
        lock.met()
        transaction(conn, lock, time, held=0.010)
        transaction(conn, lock, time)
        assert time.sleeps == []
    finally:
        conn.close()


def test_a_group_of_webhooks_that_meets_the_lock_commits_together_once_it_is_free(db: Path) -> None:
    holder = Holder(db)
    conn = open_writer(db)
    lock = WriteLock(conn)
    rows = [("shopify", "orders/create", f"k{n}", 1.0, "{}", b'{"id": 1}', "received") for n in range(3)]
    jobs = [_Job(execute, ("SELECT 1",), None, row) for row in [*rows, rows[0]]]
    try:
        thread = holder.release_after(0.05)
        results = commit_group(lock, jobs)
        thread.join()
    finally:
        conn.close()
        holder.close()
    assert [ok for _, ok, _ in results] == [True] * 4
    assert [value.duplicate for _, _, value in results] == [False, False, False, True]
    with sqlite3.connect(db) as check:
        assert check.execute("SELECT dedupe_key, duplicates FROM events ORDER BY id").fetchall() == [
            ("k0", 1), ("k1", 0), ("k2", 0)]


def test_repeats_counted_outside_a_transaction_wait_for_the_lock_and_count_once(db: Path) -> None:
    with sqlite3.connect(db) as setup:
        setup.executemany("INSERT INTO events (source, topic, dedupe_key, received_at, headers, body, status) "
                          "VALUES ('shopify', 'orders/create', ?, 1.0, '{}', x'7b7d', 'received')",
                          [("a",), ("b",)])
    holder = Holder(db)
    conn = open_writer(db)
    try:
        thread = holder.release_after(0.05)
        count_repeats(conn, Counter({1: 2, 2: 1}))
        thread.join()
    finally:
        conn.close()
        holder.close()
    with sqlite3.connect(db) as check:
        assert check.execute("SELECT id, duplicates FROM events ORDER BY id").fetchall() == [(1, 2), (2, 1)]


def test_a_webhook_that_cannot_have_the_lock_in_time_is_refused_and_not_stored(
        db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock_module, "WAIT_SECONDS", 0.1)
    webhook = Webhook("shopify", "orders/create", "late", b'{"id": 1}', {})

    async def go() -> None:
        with SQLiteStore(db) as store:
            holder = Holder(db)
            try:
                with pytest.raises(StoreUnavailable):
                    await store.ingest(webhook)
            finally:
                holder.close()
            assert not (await store.ingest(webhook)).duplicate  # the lock free again: stored now, once

    asyncio.run(go())
