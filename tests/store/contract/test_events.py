"""Inbound events: committed once per (source, dedupe key), waiting until a mapper saves them, mapped once."""

from __future__ import annotations

import asyncio

import pytest

from bridge.model import Mapped
from bridge.store.base import EventFilter, Store

from .support import T0, event_with, hook, outgoing

pytestmark = pytest.mark.anyio


async def test_a_resend_is_a_duplicate_of_its_source_only(store: Store) -> None:
    first = await store.ingest(hook("a"), now=T0)
    again = await store.ingest(hook("a"), now=T0 + 1)
    other_source = await store.ingest(hook("a", source="woocommerce"), now=T0 + 2)
    assert not first.duplicate and again.duplicate and not other_source.duplicate
    assert again.event_id == first.event_id != other_source.event_id
    page = await store.list_events(EventFilter(source="shopify"), 10)
    assert page.total == 1 and page.items[0]["duplicates"] == 1


async def test_concurrent_resends_store_one_event(store: Store) -> None:
    results = await asyncio.gather(*(store.ingest(hook(f"k{n % 5}"), now=T0) for n in range(50)))
    assert sum(not r.duplicate for r in results) == 5
    by_key: dict[int, set[int]] = {}
    for n, r in enumerate(results):
        by_key.setdefault(n % 5, set()).add(r.event_id)
    assert all(len(ids) == 1 for ids in by_key.values())
    assert (await store.list_events(EventFilter(), 100)).total == 5


async def test_webhooks_arriving_together_keep_their_order_and_each_resend_is_counted(store: Store) -> None:
    """The ingests of one moment may share a commit: each still gets its own answer."""
    old = await store.ingest(hook("old"), now=T0)
    keys = ["a", "old", "b", "a", "bad", "c", "old", "a"]
    results = await asyncio.gather(*(store.ingest(hook(k, body=b"{" if k == "bad" else b'{"id": 1}',
                                                       payload_ok=k != "bad"), now=T0 + 1) for k in keys))
    assert [r.duplicate for r in results] == [False, True, False, True, False, False, True, True]
    ids = {k: r.event_id for k, r in zip(keys, results, strict=True) if not r.duplicate}
    assert ids["a"] < ids["b"] < ids["bad"] < ids["c"], "ids in the order the webhooks arrived"
    assert results[1].event_id == results[6].event_id == old.event_id
    assert results[3].event_id == results[7].event_id == ids["a"]
    page = await store.list_events(EventFilter(), 10)
    counts = {e["dedupe_key"]: e["duplicates"] for e in page.items}
    assert counts == {"old": 2, "a": 2, "b": 0, "bad": 0, "c": 0}
    assert [e.dedupe_key for e in await store.waiting_events(10)] == ["old", "a", "b", "c"], "bad waits for no mapper"


async def test_events_wait_in_id_order_until_mapped_and_the_first_mapper_wins(store: Store) -> None:
    ids = [(await store.ingest(hook(f"e{n}"), now=T0 + n)).event_id for n in range(5)]
    invalid = (await store.ingest(hook("bad", body=b"{", payload_ok=False), now=T0)).event_id
    waiting = await store.waiting_events(10)
    assert [e.id for e in waiting] == ids and invalid not in [e.id for e in waiting]
    assert waiting[0].payload() == {"id": 1} and waiting[0].headers["x-shopify-topic"] == "orders/create"
    assert [e.id for e in await store.waiting_events(2, after=ids[1])] == ids[2:4]

    message = outgoing("omnisend", "order:1")
    mapped = Mapped(ids[0], "mapped", ["orders"], [], [(message, message.idempotency_key("shopify", "e0"))])
    assert await store.save_mappings([mapped], T0 + 10) == 1
    assert await store.save_mappings([mapped], T0 + 11) == 0  # a second mapper of the same event queues nothing
    assert [e.id for e in await store.waiting_events(10)] == ids[1:]
    detail = await store.event_detail(ids[0])
    assert detail is not None and detail["status"] == "mapped" and len(detail["messages"]) == 1


async def test_a_body_comes_back_as_it_was_signed(store: Store) -> None:
    body = b'{"id": 820982911946154508, "note": "' + b"x" * 20_000 + b'"}'
    event_id = (await store.ingest(hook("big", body=body), now=T0)).event_id
    [event] = await store.waiting_events(1)
    assert event.id == event_id and event.body == body
    detail = await store.event_detail(event_id)
    assert detail is not None and detail["payload"]["id"] == 820982911946154508 and not detail["body_pruned"]


async def test_an_event_with_a_mapping_error_records_it(store: Store) -> None:
    event_id = await event_with(store, "e", [], errors=["rule orders: contact.email is empty"])
    detail = await store.event_detail(event_id)
    assert detail is not None and detail["status"] == "partial"
    assert detail["errors"] == ["rule orders: contact.email is empty"] and detail["messages"] == []
    assert await store.event_detail(event_id + 1000) is None


async def test_a_new_database_holds_no_event_until_the_first_and_knows_when_it_was_made(store: Store) -> None:
    made = await store.created_at()
    assert made is not None and not await store.holds_events()
    await store.ingest(hook("first"), now=T0)
    assert await store.holds_events() and await store.created_at() == made


async def test_the_newest_event_id_grows_with_each_new_event_and_not_with_a_resend(store: Store) -> None:
    assert await store.newest_event_id() == 0
    first = await store.ingest(hook("a"), now=T0)
    assert await store.newest_event_id() == first.event_id
    await store.ingest(hook("a"), now=T0 + 1)
    assert await store.newest_event_id() == first.event_id
    second = await store.ingest(hook("b"), now=T0 + 2)
    assert await store.newest_event_id() == second.event_id > first.event_id


async def test_a_worker_keeps_the_mapping_turn_it_renews_and_another_takes_it_once_given_back(store: Store) -> None:
    assert await store.mapping_turn("worker-a", 10.0, T0)
    assert await store.mapping_turn("worker-a", 10.0, T0 + 5), "its holder renews it"
    await store.mapping_turn("worker-a", 0.0, T0 + 6)  # a stop gives it back
    assert await store.mapping_turn("worker-b", 10.0, T0 + 7)
    assert await store.mapping_turn("worker-b", 10.0, T0 + 30), "its own turn ran out, nobody took it: again"
