"""The SQLite store: dedupe, group commit, claims with leases and per-key order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from pathlib import Path

import pytest

from bridge.errors import StoreUnavailable
from bridge.model import Event, Outcome, Outgoing, Webhook
from bridge.store import Decision, Mapped, SQLiteStore
from bridge.store.sqlite.queries import event_detail
from bridge.store.sqlite.rows import EVENT_COLUMNS, event_from_row
from bridge.store.sqlite.writer import connect


def hook(key: str, topic: str = "orders/create") -> Webhook:
    return Webhook(source="shopify", topic=topic, dedupe_key=key, body=b'{"id": 1}', headers={"x-shopify-topic": topic})


async def queue_messages(store: SQLiteStore, specs: list[tuple[str, str]]) -> None:
    """One event per spec (destination, ordering key), each mapped to one message."""
    for n, (destination, key) in enumerate(specs):
        result = await store.ingest(hook(f"k{n}"))
        msg = Outgoing(destination, "event", {"n": n}, rule="r", key=key)
        await store.save_mappings([Mapped(result.event_id, "mapped", ["r"], [], [(msg, f"idem-{n}")])], now=0)


def test_resend_is_a_duplicate(store: SQLiteStore) -> None:
    async def go() -> None:
        first = await store.ingest(hook("a"))
        again = await store.ingest(hook("a"))
        other = await store.ingest(hook("b"))
        assert not first.duplicate and again.duplicate and not other.duplicate
        assert again.event_id == first.event_id
        row = store.reader().execute("SELECT duplicates FROM events WHERE id = ?", (first.event_id,)).fetchone()
        assert row[0] == 1

    asyncio.run(go())


def test_concurrent_ingests_share_commits_and_all_land(store: SQLiteStore) -> None:
    async def go() -> None:
        results = await asyncio.gather(*(store.ingest(hook(f"k{i % 150}")) for i in range(300)))
        assert sum(not r.duplicate for r in results) == 150
        assert store.reader().execute("SELECT count(*) FROM events").fetchone()[0] == 150

    asyncio.run(go())


def test_a_group_of_webhooks_gets_the_answers_of_one_by_one(store: SQLiteStore) -> None:
    """Webhooks that arrive together are inserted together: new ones get ids in arrival order,
    a resend of a stored event or of an earlier one in the same group is a duplicate of it."""

    async def go() -> None:
        stored = await store.ingest(hook("old"))
        keys = ["n1", "old", "n2", "n1", "n3"]
        hooks = [hook(k) for k in keys] + [Webhook(source="omneo", topic="profile.created", dedupe_key="n1",
                                                   body=b"{}", headers={})]
        results = await asyncio.gather(*(store.ingest(h) for h in hooks))
        assert [r.duplicate for r in results] == [False, True, False, True, False, False]
        assert results[1].event_id == stored.event_id and results[3].event_id == results[0].event_id
        new_ids = [results[i].event_id for i in (0, 2, 4, 5)]
        assert new_ids == sorted(new_ids) and len(set(new_ids)) == 4
        rows = {r[0]: tuple(r[1:]) for r in store.reader().execute("SELECT id, source, dedupe_key, duplicates FROM events")}
        assert rows[results[0].event_id] == ("shopify", "n1", 1) and rows[stored.event_id] == ("shopify", "old", 1)
        assert rows[results[5].event_id] == ("omneo", "n1", 0)  # the same key from another source is another event
        assert len(rows) == 5

    asyncio.run(go())


def test_one_unstorable_webhook_does_not_fail_its_group(store: SQLiteStore) -> None:
    async def go() -> None:
        broken = Webhook(source="shopify", topic="orders/create", dedupe_key="bad", body={"not": "bytes"},  # type: ignore[arg-type]
                         headers={})
        results = await asyncio.gather(store.ingest(hook("a")), store.ingest(broken), store.ingest(hook("b")),
                                       return_exceptions=True)
        assert isinstance(results[1], Exception)
        assert not results[0].duplicate and not results[2].duplicate  # type: ignore[union-attr]
        keys = [r[0] for r in store.reader().execute("SELECT dedupe_key FROM events ORDER BY id")]
        assert keys == ["a", "b"]

    asyncio.run(go())


def test_ingest_failure_is_store_unavailable(tmp_path) -> None:
    store = SQLiteStore(tmp_path / "b.db")
    with store:
        store.write_sync(lambda conn: (conn.execute("DROP VIEW dedupe"), conn.execute("DROP TABLE events")))

        async def go() -> None:
            with pytest.raises(StoreUnavailable):
                await store.ingest(hook("x"))

        asyncio.run(go())


def test_claim_keeps_order_per_key_and_lets_other_keys_pass(store: SQLiteStore) -> None:
    async def go() -> None:
        await queue_messages(store, [("omnisend", "order:1"), ("omnisend", "order:1"), ("omnisend", "order:2"),
                                     ("ometria", "order:1")])
        first = await store.claim("omnisend", 10, lease_seconds=60, now=1)
        assert [m.record["n"] for m in first] == [0, 2]  # the second order:1 waits for the first
        assert await store.claim("omnisend", 10, lease_seconds=60, now=1) == []
        # the first message fails and is retried later: its key stays blocked, nothing else is
        await store.complete([(first[0], Outcome("retry", 503), Decision("pending", 100)),
                              (first[1], Outcome("delivered", 200), Decision("delivered", 1))], now=1)
        assert await store.claim("omnisend", 10, lease_seconds=60, now=2) == []
        again = await store.claim("omnisend", 10, lease_seconds=60, now=100)
        assert [m.record["n"] for m in again] == [0]
        assert again[0].attempts == 2
        await store.complete([(again[0], Outcome("delivered", 200), Decision("delivered", 100))], now=100)
        last = await store.claim("omnisend", 10, lease_seconds=60, now=100)
        assert [m.record["n"] for m in last] == [1]
        # the other destination was never held back
        assert [m.record["n"] for m in await store.claim("ometria", 10, lease_seconds=60, now=1)] == [3]

    asyncio.run(go())


def test_a_message_in_a_submitted_batch_holds_back_its_key_until_the_batch_is_settled(store: SQLiteStore) -> None:
    # Omnisend runs batches on its side: a later message about the same order must not overtake
    # the one still being processed there in an earlier batch.
    async def go() -> None:
        await queue_messages(store, [("omnisend", "order:1"), ("omnisend", "order:1"), ("omnisend", "order:2")])
        first = await store.claim("omnisend", 10, lease_seconds=60, now=1)
        assert [m.record["n"] for m in first] == [0, 2]
        await store.complete([(m, Outcome("submitted", 200, ref="batch-1"), Decision("submitted", 30)) for m in first],
                             now=1)
        assert await store.claim("omnisend", 10, lease_seconds=60, now=2) == []  # order:1 waits for batch-1
        claimed = await store.claim_batch("omnisend", due_before=30, lease_until=90)
        assert claimed is not None
        ref, batch = claimed
        assert ref == "batch-1" and [m.record["n"] for m in batch] == [0, 2]
        assert [m.submitted_at for m in batch] == [1, 1]  # when the batch was accepted
        await store.complete([(m, Outcome("submitted", None, ref="batch-1"), Decision("submitted", 60)) for m in batch],
                             now=30)  # still processing: the acceptance time stays
        claimed = await store.claim_batch("omnisend", due_before=60, lease_until=120)
        assert claimed is not None
        ref, batch = claimed
        assert [m.submitted_at for m in batch] == [1, 1]
        await store.complete([(m, Outcome("delivered", 200), Decision("delivered", 30)) for m in batch], now=30)
        assert [m.record["n"] for m in await store.claim("omnisend", 10, lease_seconds=60, now=31)] == [1]
        assert store.reader().execute("SELECT count(*) FROM messages WHERE submitted_at IS NOT NULL").fetchone()[0] == 0

    asyncio.run(go())


def test_a_job_that_breaks_the_transaction_does_not_kill_the_writer(store: SQLiteStore) -> None:
    """executescript commits behind the writer's back; the writer must survive and keep serving."""
    with pytest.raises(StoreUnavailable):
        store.write_sync(lambda conn: conn.executescript("SELECT 1"))

    async def go() -> None:
        assert not (await store.ingest(hook("after"))).duplicate

    asyncio.run(go())


def test_expired_lease_is_claimed_again(store: SQLiteStore) -> None:
    async def go() -> None:
        await queue_messages(store, [("omnisend", "")])
        claimed = await store.claim("omnisend", 10, lease_seconds=30, now=0)
        assert len(claimed) == 1
        assert await store.release_expired(now=29) == 0
        assert await store.release_expired(now=31) == 1
        again = await store.claim("omnisend", 10, lease_seconds=30, now=31)
        assert [m.id for m in again] == [claimed[0].id]
        assert again[0].claim != claimed[0].claim
        # a late answer from the first claim cannot move the message on while the new claim holds it
        await store.complete([(claimed[0], Outcome("dead", 400), Decision("dead", 33))], now=31)
        assert store.reader().execute("SELECT state FROM messages").fetchone()[0] == "inflight"
        assert await store.release([claimed[0]], now=31) == 0
        await store.complete([(again[0], Outcome("delivered", 200), Decision("delivered", 32))], now=32)
        assert store.reader().execute("SELECT state FROM messages").fetchone()[0] == "delivered"

    asyncio.run(go())


def test_a_renewed_lease_keeps_the_claim(store: SQLiteStore) -> None:
    async def go() -> None:
        await queue_messages(store, [("omnisend", "")])
        claimed = await store.claim("omnisend", 10, lease_seconds=30, now=0)
        assert await store.extend(claimed, lease_until=60) == 1
        assert await store.release_expired(now=45) == 0
        assert await store.release(claimed, now=46) == 1
        assert tuple(store.reader().execute("SELECT state, attempts FROM messages").fetchone()) == ("pending", 0)

    asyncio.run(go())


def test_pause_refunds_the_attempt(store: SQLiteStore) -> None:
    async def go() -> None:
        await queue_messages(store, [("omnisend", "")])
        [m] = await store.claim("omnisend", 10, lease_seconds=30, now=0)
        await store.complete([(m, Outcome("pause", 401), Decision("pending", 0, refund_attempt=True))], now=0)
        row = store.reader().execute("SELECT state, attempts FROM messages").fetchone()
        assert tuple(row) == ("pending", 0)
        trail = store.reader().execute("SELECT outcome, status FROM attempts").fetchall()
        assert [tuple(r) for r in trail] == [("pause", 401)]

    asyncio.run(go())


def test_second_mapper_queues_nothing(store: SQLiteStore) -> None:
    async def go() -> None:
        result = await store.ingest(hook("a"))
        msg = Outgoing("omnisend", "event", {}, rule="r")
        mapped = Mapped(result.event_id, "mapped", ["r"], [], [(msg, "idem")])
        assert await store.save_mappings([mapped], now=0) == 1
        assert await store.save_mappings([mapped], now=0) == 0

    asyncio.run(go())


def test_wal_and_full_sync(store: SQLiteStore) -> None:
    conn = store.reader()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert isinstance(conn, sqlite3.Connection)


def test_deferred_leaves_no_attempt_behind(store: SQLiteStore) -> None:
    """A message the local rate limiter held back was never sent: no audit row, no attempt counted."""
    async def go() -> None:
        await queue_messages(store, [("omnisend", "")])
        [m] = await store.claim("omnisend", 10, lease_seconds=30, now=0)
        await store.complete([(m, Outcome("deferred", retry_after=5), Decision("pending", 5, refund_attempt=True))], now=0)
        assert tuple(store.reader().execute("SELECT state, attempts, next_at FROM messages").fetchone()) == ("pending", 0, 5)
        assert store.reader().execute("SELECT count(*) FROM attempts").fetchone()[0] == 0
        assert await store.claim("omnisend", 10, lease_seconds=30, now=4) == []

    asyncio.run(go())


def database_without(tmp_path: Path, table: str, column: str) -> Path:
    """A database as created before `column` was added to `table` (and before numbered migrations)."""
    path = tmp_path / "old.db"
    with SQLiteStore(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.execute("DROP TABLE schema_migrations")
    return path


def test_a_database_from_before_a_column_was_added_gets_it_on_open(tmp_path) -> None:
    path = database_without(tmp_path, "messages", "submitted_at")  # as created before 2026-11-23
    store = SQLiteStore(path)
    with store:
        columns = [row[1] for row in store.reader().execute("PRAGMA table_info(messages)")]
        assert "submitted_at" in columns

        async def go() -> None:
            await queue_messages(store, [("omnisend", "order:1")])
            [claimed] = await store.claim("omnisend", 10, lease_seconds=60, now=1)
            assert claimed.submitted_at is None

        asyncio.run(go())


def stored_events(path: Path) -> list[Event]:
    with contextlib.closing(connect(path)) as conn:
        return [event_from_row(row) for row in conn.execute(f"SELECT {EVENT_COLUMNS} FROM events ORDER BY id")]


ORDER = json.dumps({"id": 820982911946154508, "email": "jon@example.com", "line_items": [
    {"title": f"IPod Nano - {n}GB", "price": "199.00", "sku": f"IPOD2008{n}"} for n in range(40)]}).encode()


@pytest.mark.parametrize("process", [False, True], ids=["thread-writer", "process-writer"])
def test_bodies_are_stored_packed_and_read_back_as_signed(tmp_path, process: bool) -> None:
    noise = os.urandom(3000)  # an invalid_json body LZ4 cannot shrink: stored as it came
    hooks = [Webhook("shopify", "orders/create", "big", ORDER), Webhook("shopify", "orders/create", "tiny", b"{}"),
             Webhook("shopify", "orders/create", "noise", noise, payload_ok=False)]
    async def go() -> list[int]:
        store = SQLiteStore(tmp_path / "bridge.db", process=process)
        await store.open()  # a writer process belongs to the loop that opens it
        try:
            first = await store.ingest(hooks[0])
            rest = await asyncio.gather(*(store.ingest(h) for h in hooks[1:]))  # one group
        finally:
            await store.close()
        return [first.event_id, *(r.event_id for r in rest)]

    ids = asyncio.run(go())
    with contextlib.closing(connect(tmp_path / "bridge.db")) as conn:
        rows = {row[0]: (row[1], row[2]) for row in conn.execute("SELECT id, body_codec, length(body) FROM events")}
    assert rows[ids[0]][0] == "lz4" and rows[ids[0]][1] < len(ORDER) / 2
    assert rows[ids[2]] == (None, len(noise))
    events = {e.id: e for e in stored_events(tmp_path / "bridge.db")}
    assert events[ids[0]].body == ORDER and events[ids[1]].body == b"{}" and events[ids[2]].body == noise
    assert events[ids[0]].payload() == json.loads(ORDER)
    with contextlib.closing(connect(tmp_path / "bridge.db")) as conn:  # what `bridge events show` prints
        detail, noise_detail = event_detail(conn, ids[0]), event_detail(conn, ids[2])
    assert detail is not None and detail["payload"] == json.loads(ORDER) and not detail["body_pruned"]
    assert noise_detail is not None and noise_detail["payload"] == noise.decode("utf-8", "replace")
    with sqlite3.connect(tmp_path / "bridge.db") as conn:  # as `bridge prune` leaves an old event
        conn.execute("UPDATE events SET body = NULL, body_codec = NULL WHERE id = ?", (ids[0],))
    with contextlib.closing(connect(tmp_path / "bridge.db")) as conn:
        pruned = event_detail(conn, ids[0])
    assert pruned is not None and pruned["body_pruned"] and pruned["payload"] is None
    assert stored_events(tmp_path / "bridge.db")[0].body == b""


def test_bodies_stored_before_packing_unknown_codecs_and_broken_blocks(tmp_path) -> None:
    path = database_without(tmp_path, "events", "body_codec")  # as created before 2026-12-01
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO events (source, topic, dedupe_key, received_at, headers, body, status)"
                     " VALUES ('shopify', 'orders/create', 'old', 1, '{}', ?, 'received')", (ORDER,))
    with SQLiteStore(path):
        pass
    assert [e.body for e in stored_events(path)] == [ORDER]
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE events SET body_codec = 'zstd'")  # written by a later version
    with pytest.raises(StoreUnavailable, match="zstd"):
        stored_events(path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE events SET body_codec = 'lz4', body = x'00ff00ff'")  # not an LZ4 block
    with pytest.raises(StoreUnavailable, match="cannot be unpacked"):
        stored_events(path)


def test_the_index_of_idempotency_keys_is_dropped_from_earlier_databases(tmp_path) -> None:
    path = tmp_path / "old.db"
    with SQLiteStore(path):
        pass
    with sqlite3.connect(path) as conn:  # as created before 2026-12-02 (and before numbered migrations)
        conn.execute("CREATE INDEX messages_idem ON messages (idempotency_key)")
        conn.execute("DROP TABLE schema_migrations")
    with SQLiteStore(path):
        pass
    with sqlite3.connect(path) as conn:
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "messages_idem" not in indexes and "messages_event" in indexes
