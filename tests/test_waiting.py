"""A refund's order, looked up by the worker with the shipped rules and a real store (SQLite, and
PostgreSQL when a server is there): found in the store or earlier in the same batch; waited for when it
has not come (then mapped when it comes, or a mapping error once the wait is over); looked up without
waiting by a replay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.mapping import load_rules
from bridge.model import Webhook
from bridge.ops.replay import replay
from bridge.settings import Settings
from bridge.store import SQLiteStore
from bridge.store.base import EventFilter, Store
from bridge.worker import Worker
from tests.test_worker import ScriptedDestination

ROOT = Path(__file__).resolve().parents[1]
PAYLOADS = ROOT / "tests" / "payloads" / "shopify"
RULES = load_rules(ROOT / "mappings")  # every area allowed: Omnisend v3 orders too
OID = "5873920188416718053"
WAIT = 3600.0
SENT = [("omnisend", "event"), ("ometria", "order"), ("omnisend", "order")]


@dataclass
class Holder:
    current: Any = RULES


Opener = Callable[[], contextlib.AbstractAsyncContextManager[Store]]


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else ""  # skips without a server

    @contextlib.asynccontextmanager
    async def opened() -> AsyncIterator[Store]:
        if url:
            from bridge.store.postgres import PostgresStore

            store: Store = PostgresStore(url)
        else:
            store = SQLiteStore(tmp_path / "bridge.db")
        await store.open()
        try:
            yield store
        finally:
            await store.close()

    return opened


def run(open_store: Opener, test: Callable[[Store], Awaitable[None]]) -> None:
    async def go() -> None:
        async with open_store() as store:
            await test(store)

    asyncio.run(go())


def make(store: Store, clock: list[float]) -> Worker:
    settings = Settings(lookup_wait_seconds=WAIT, mapping="thread")
    destinations = {name: ScriptedDestination(name) for name in ("omnisend", "ometria")}
    return Worker(settings, store, Holder(), destinations, clock=lambda: clock[0])  # type: ignore[arg-type]


async def post(store: Store, topic: str, name: str, key: str, now: float) -> int:
    body = (PAYLOADS / name).read_bytes()
    return (await store.ingest(Webhook("shopify", topic, key, body), now=now)).event_id


async def events(store: Store) -> list[tuple[str, str, list[str]]]:
    page = await store.list_events(EventFilter(), 100)
    return [(e["topic"], e["status"], e["errors"]) for e in reversed(page.items)]


async def refund_records(store: Store) -> list[tuple[str, str, dict[str, Any]]]:
    page = await store.list_events(EventFilter(topic="refunds/create"), 100)
    records = []
    for summary in reversed(page.items):
        detail = await store.event_detail(summary["id"])
        assert detail is not None
        records += [(m["destination"], m["kind"], m["record"]) for m in detail["messages"]]
    return records


def test_an_order_earlier_in_the_same_batch_is_found(open_store: Opener) -> None:
    async def go(store: Store) -> None:
        clock = [1_795_000_000.0]
        await post(store, "orders/create", "orders_create.json", "o1", clock[0])
        await post(store, "refunds/create", "refunds_create.json", "r1", clock[0] + 1)
        assert await make(store, clock).map_once() == 2  # one batch: the order is not saved when the refund maps
        assert [status for _, status, _ in await events(store)] == ["mapped", "mapped"]
        [(destination, kind, event), (_, _, order), (_, _, v3)] = await refund_records(store)
        assert (destination, kind, event["eventName"], event["contact"]["email"]) == (
            "omnisend", "event", "order refunded", "jane.citizen@example.com")
        assert order["status"] == "partially_refunded" and order["lineitems"][0]["quantity_refunded"] == 1
        assert v3 == {"orderID": OID, "paymentStatus": "partiallyRefunded"}

    run(open_store, go)


def test_a_refund_waits_for_its_order_then_is_mapped_when_it_comes(open_store: Opener,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bridge.worker.RECHECK_MIN_SECONDS", 0.0)  # no second between two looks
    async def go(store: Store) -> None:
        clock = [1_795_000_000.0]
        worker = make(store, clock)
        await post(store, "refunds/create", "refunds_create.json", "r1", clock[0])
        await worker.map_once()
        [(topic, status, [note])] = await events(store)
        assert (topic, status) == ("refunds/create", "waiting")
        assert note.startswith(f"waiting for the shopify order {OID} (its `order_id`), not received yet")
        assert "a mapping error 1 h after this event" in note
        assert await worker.recheck_waiting(RULES) == 0  # still nothing to find: it keeps waiting
        assert (await events(store))[0][1] == "waiting" and await refund_records(store) == []
        await post(store, "orders/create", "orders_create.json", "o1", clock[0] + 60)
        clock[0] += 60
        await worker.map_once()  # maps the order and keeps it
        await worker.map_once()  # the refund, read again at once since an order was kept
        assert [status for _, status, _ in await events(store)] == ["mapped", "mapped"]
        assert [(d, k) for d, k, _ in await refund_records(store)] == SENT

    run(open_store, go)


def test_a_refund_whose_order_does_not_come_in_time_is_a_mapping_error_a_replay_fixes(open_store: Opener) -> None:
    async def go(store: Store) -> None:
        clock = [1_795_000_000.0]
        worker = make(store, clock)
        await post(store, "refunds/create", "refunds_create.json", "r1", clock[0])
        await worker.map_once()
        clock[0] += WAIT  # the wait is over
        assert await worker.recheck_waiting(RULES) == 1
        [(_, status, errors)] = await events(store)
        assert status == "mapping_error" and await refund_records(store) == []
        assert errors[0].startswith(f"shopify refunds/create: the shopify order {OID} (its `order_id`) never reached")
        assert any("shopify-orders.yaml:" in e and "timestamp is empty" in e for e in errors)
        assert await worker.recheck_waiting(RULES) == 0  # no longer waiting

        # The order is sent again from Shopify; replaying the refund then sends it.
        await post(store, "orders/create", "orders_create.json", "o1", clock[0])
        await worker.map_once()
        summary = await replay(store, RULES, EventFilter(source="shopify", topic="refunds/create"), clock[0])
        assert summary.queued == 3 and summary.events_with_errors == 0
        assert [status for _, status, _ in await events(store)] == ["mapped", "mapped"]
        assert [(d, k) for d, k, _ in await refund_records(store)] == SENT

    run(open_store, go)
