"""The store with its writer in a process of its own (what `bridge serve` and `bridge worker` run)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop

from bridge.config import settings_from_env
from bridge.errors import ConfigError, StoreUnavailable
from bridge.model import Webhook
from bridge.store import SQLiteStore
from bridge.store.sqlite.store import HAND_OVER_EVERY
from bridge.store.sqlite.writer import execute


def hook(key: str) -> Webhook:
    return Webhook(source="shopify", topic="orders/create", dedupe_key=key, body=b'{"id": 1}',
                   headers={"x-shopify-topic": "orders/create"})


def run(tmp_path: Path, test: Callable[[SQLiteStore], Awaitable[Any]]) -> Any:
    """`test` on an open process-writer store, on uvloop as `bridge serve` runs."""
    async def go() -> Any:
        store = SQLiteStore(tmp_path / "bridge.db", process=True)
        await store.open()
        try:
            return await test(store)
        finally:
            await store.close()
    return uvloop.run(go())


def stored_keys(tmp_path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(tmp_path / "bridge.db") as conn:
        return conn.execute("SELECT dedupe_key, duplicates FROM events ORDER BY id").fetchall()


def test_concurrent_webhooks_are_committed_once_each_with_duplicates_counted(tmp_path: Path) -> None:
    async def test(store: SQLiteStore) -> list[Any]:
        return await asyncio.gather(*(store.ingest(hook(f"k{n % 50}")) for n in range(300)))

    results = run(tmp_path, test)
    assert [r.duplicate for r in results[:50]] == [False] * 50
    assert all(r.duplicate for r in results[50:])
    assert [r.event_id for r in results[50:100]] == [r.event_id for r in results[:50]]
    assert stored_keys(tmp_path) == [(f"k{n}", 5) for n in range(50)]


def test_a_busy_writer_gets_the_jobs_of_one_iteration_in_slices(tmp_path: Path) -> None:
    # The first write goes at once (the writer is idle); the rest go every HAND_OVER_EVERY,
    # so the writer commits while the loop still handles the iteration; the tail at its end.
    async def test(store: SQLiteStore) -> tuple[list[int], list[Any]]:
        assert store._process is not None
        sizes: list[int] = []
        send = store._process.send
        store._process.send = lambda jobs: (sizes.append(len(jobs)), send(jobs))[1]  # type: ignore[method-assign]
        results = await asyncio.gather(*(store.ingest(hook(f"k{n}")) for n in range(40)))
        return sizes, results

    sizes, results = run(tmp_path, test)
    assert sizes == [1, HAND_OVER_EVERY, HAND_OVER_EVERY, 40 - 1 - 2 * HAND_OVER_EVERY]
    assert [r.duplicate for r in results] == [False] * 40
    assert stored_keys(tmp_path) == [(f"k{n}", 0) for n in range(40)]


def test_a_job_failure_comes_back_as_its_own_and_spares_the_others(tmp_path: Path) -> None:
    async def test(store: SQLiteStore) -> tuple[Any, ...]:
        return tuple(await asyncio.gather(store.ingest(hook("a")), store.awrite(execute, "DROP TABLE nope"),
                                          store.ingest(hook("b")), return_exceptions=True))

    a, failed, b = run(tmp_path, test)
    assert isinstance(failed, StoreUnavailable) and "nope" in str(failed)
    assert not a.duplicate and not b.duplicate
    assert stored_keys(tmp_path) == [("a", 0), ("b", 0)]


def test_a_job_that_cannot_cross_to_the_writer_is_refused_clearly(tmp_path: Path) -> None:
    async def test(store: SQLiteStore) -> Any:
        with pytest.raises(TypeError, match="module-level function"):
            await store.awrite(lambda conn: conn.execute("SELECT 1"))
        return await store.ingest(hook("after"))

    assert not run(tmp_path, test).duplicate


def test_write_sync_from_a_thread_and_refused_on_the_loop(tmp_path: Path) -> None:
    async def test(store: SQLiteStore) -> int:
        await store.ingest(hook("a"))
        with pytest.raises(RuntimeError, match="awrite"):
            store.write_sync(execute, "SELECT 1")
        return await asyncio.to_thread(store.write_sync, execute, "UPDATE events SET status = 'seen'")

    assert run(tmp_path, test) == 1


def test_a_killed_writer_is_replaced_once_however_many_writes_wait(tmp_path: Path) -> None:
    async def test(store: SQLiteStore) -> Any:
        writer = store._process
        assert writer is not None and writer.proc is not None
        first = await store.ingest(hook("a"))
        old = writer.proc.pid
        os.kill(old, signal.SIGKILL)
        await asyncio.sleep(0.3)  # the loop sees the socket close
        spawned = []
        spawn = writer._spawn
        writer._spawn = lambda: (spawned.append(1), spawn())[1]  # type: ignore[method-assign]
        after = await asyncio.gather(*(store.ingest(hook(k)) for k in ["a", *map(str, range(20))]))
        assert spawned == [1] and writer.proc is not None and writer.proc.pid != old
        return first, after

    first, after = run(tmp_path, test)
    assert after[0].duplicate and after[0].event_id == first.event_id  # the new writer knows the key
    assert not any(r.duplicate for r in after[1:])


def test_the_writer_ignores_sigterm_and_finishes_on_close(tmp_path: Path) -> None:
    async def test(store: SQLiteStore) -> Any:
        assert store._process is not None and store._process.proc is not None
        proc = store._process.proc
        await store.ingest(hook("a"))
        os.kill(proc.pid, signal.SIGTERM)  # a PaaS signals the whole process group on shutdown
        await asyncio.sleep(0.2)
        assert proc.poll() is None
        result = await store.ingest(hook("b"))
        await store.close()
        assert proc.poll() == 0
        return result

    assert not run(tmp_path, test).duplicate
    assert stored_keys(tmp_path) == [("a", 0), ("b", 0)]


def test_opening_off_the_event_loop_says_how_to_use_it(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="event loop"):
        SQLiteStore(tmp_path / "bridge.db", process=True).open_sync()


def test_the_setting_chooses_the_writer() -> None:
    assert settings_from_env({}).store_writer == "process"
    assert settings_from_env({"BRIDGE_STORE_WRITER": "thread"}).store_writer == "thread"
    with pytest.raises(ConfigError, match="BRIDGE_STORE_WRITER must be one of process, thread"):
        settings_from_env({"BRIDGE_STORE_WRITER": "fork"})
