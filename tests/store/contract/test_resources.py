"""Resources kept for lookups: a mapping that names its event's resource keeps that event's body as the
resource's latest state (a later event's wins, whichever is saved last), a replay keeps it too, waiting
events are found by their status and keep their body, and retention forgets old resources."""

from __future__ import annotations

import asyncio

import pytest

from bridge.model import Mapped
from bridge.store.base import EventFilter, PruneCutoffs, Store

from .support import T0, hook

pytestmark = pytest.mark.anyio

DAY = 86400.0


def order(n: int, status: str) -> bytes:
    return b'{"id": 5873920188416718053, "email": "jane@example.com", "n": %d, "status": "%s"}' % (n, status.encode())


async def ingest(store: Store, key: str, body: bytes, now: float = T0, topic: str = "orders/create") -> int:
    return (await store.ingest(hook(key, topic=topic, body=body), now=now)).event_id


def keeping(event_id: int, ref: str = "5873920188416718053", status: str = "mapped") -> Mapped:
    return Mapped(event_id, status, ["orders"], [], [], resource=("order", ref))


async def test_a_mapping_keeps_its_resource_and_a_later_event_wins_whichever_is_saved_last(store: Store) -> None:
    assert await store.resources("shopify", "order", ["5873920188416718053"]) == {}
    first = await ingest(store, "o1", order(1, "pending"))
    second = await ingest(store, "o2", order(2, "paid"), topic="orders/paid")
    third = await ingest(store, "o3", order(3, "fulfilled"), topic="orders/fulfilled")
    await store.save_mappings([keeping(second)], T0 + 1)
    await store.save_mappings([keeping(first), keeping(third)], T0 + 2)  # the older one saved after a later one
    kept = await store.resources("shopify", "order", ["5873920188416718053", "404"])
    assert kept == {"5873920188416718053": order(3, "fulfilled")}  # the body exactly as received, unpacked
    assert await store.resources("woocommerce", "order", ["5873920188416718053"]) == {}
    assert await store.resources("shopify", "product", ["5873920188416718053"]) == {}


async def test_two_events_of_one_resource_in_one_save_keep_the_later(store: Store) -> None:
    big = b'{"id": 7, "note": "' + b"x" * 20_000 + b'"}'  # packed when stored: comes back whole
    first = await ingest(store, "a", b'{"id": 7, "n": 1}')
    second = await ingest(store, "b", big)
    await store.save_mappings([keeping(second, "7"), keeping(first, "7")], T0 + 1)
    assert await store.resources("shopify", "order", ["7"]) == {"7": big}


async def test_a_mapping_a_second_mapper_lost_keeps_nothing(store: Store) -> None:
    event_id = await ingest(store, "o1", order(1, "pending"))
    await store.save_mappings([Mapped(event_id, "mapped", ["orders"], [], [])], T0 + 1)
    await store.save_mappings([keeping(event_id)], T0 + 2)  # the event was mapped already: nothing changes
    assert await store.resources("shopify", "order", ["5873920188416718053"]) == {}


async def test_a_replay_keeps_resources_and_a_dry_run_does_not(store: Store) -> None:
    event_id = await ingest(store, "o1", order(1, "pending"))
    await store.save_mappings([Mapped(event_id, "mapped", ["orders"], [], [])], T0 + 1)
    await store.apply_mappings([keeping(event_id)], T0 + 2, force=False, dry_run=True)
    assert await store.resources("shopify", "order", ["5873920188416718053"]) == {}
    await store.apply_mappings([keeping(event_id)], T0 + 2, force=False, dry_run=False)
    assert await store.resources("shopify", "order", ["5873920188416718053"]) == {
        "5873920188416718053": order(1, "pending")}


async def test_many_refs_are_found_in_one_call(store: Store) -> None:
    ids = [await ingest(store, f"o{n}", b'{"id": %d}' % n) for n in range(1200)]
    await store.save_mappings([keeping(event_id, str(n)) for n, event_id in enumerate(ids)], T0 + 1)
    kept = await store.resources("shopify", "order", [str(n) for n in range(1300)])
    assert len(kept) == 1200 and kept["1199"] == b'{"id": 1199}'


async def test_concurrent_saves_of_one_resource_keep_the_latest_event(store: Store) -> None:
    ids = [await ingest(store, f"o{n}", order(n, "paid")) for n in range(20)]
    await asyncio.gather(*(store.save_mappings([keeping(event_id)], T0 + 1) for event_id in reversed(ids)))
    assert await store.resources("shopify", "order", ["5873920188416718053"]) == {
        "5873920188416718053": order(19, "paid")}


async def test_waiting_events_are_found_by_status_leave_the_queue_and_keep_their_body(store: Store) -> None:
    refund = await ingest(store, "r1", b'{"id": 1, "order_id": 2}', topic="refunds/create")
    note = "waiting for the shopify order 2 (its `order_id`), not received yet"
    await store.save_mappings([Mapped(refund, "waiting", [], [note], [])], T0 + 1)
    assert await store.waiting_events(10) == []  # not mapped again by the map loop
    [found] = await store.replayable_events(EventFilter(status="waiting"), 0, 10)
    assert found.id == refund and found.payload() == {"id": 1, "order_id": 2}
    page = await store.list_events(EventFilter(status="waiting"), 10)
    assert page.total == 1 and page.items[0]["errors"] == [note]
    assert await store.prune_bodies(T0 + 100 * DAY, 100) == 0  # a waiting event keeps its body
    # Mapped once its order came: as a replay writes it.
    await store.apply_mappings([Mapped(refund, "mapped", ["refunds"], [], [])], T0 + 2, force=False, dry_run=False)
    assert await store.replayable_events(EventFilter(status="waiting"), 0, 10) == []


async def test_retention_forgets_resources_whose_latest_event_is_old(store: Store) -> None:
    old = await ingest(store, "old", b'{"id": 1}', now=T0 - 200 * DAY)
    recent = await ingest(store, "recent", b'{"id": 2}', now=T0 - 10 * DAY)
    await store.save_mappings([keeping(old, "1"), keeping(recent, "2")], T0)
    cutoffs = PruneCutoffs(delivered_before=T0 - 30 * DAY, bodies_before=T0 - 30 * DAY,
                           dedupe_before=T0 - 7 * DAY, resources_before=T0 - 120 * DAY)
    assert (await store.prune_preview(cutoffs)).resources == 1
    assert await store.prune_resources(cutoffs.resources_before, 10) == 1
    assert await store.prune_resources(cutoffs.resources_before, 10) == 0
    assert await store.resources("shopify", "order", ["1", "2"]) == {"2": b'{"id": 2}'}
    # A kept resource does not depend on its event's body: pruning bodies leaves it.
    assert await store.prune_bodies(T0, 100) == 2
    assert await store.resources("shopify", "order", ["2"]) == {"2": b'{"id": 2}'}


async def test_a_redaction_forgets_the_orders_it_lists_of_its_own_source(store: Store) -> None:
    kept = [await ingest(store, f"o{n}", b'{"id": %d}' % n) for n in (1, 2, 3)]
    other = (await store.ingest(hook("w1", source="woocommerce", body=b'{"id": 1}'), now=T0)).event_id
    await store.save_mappings([keeping(event_id, str(n)) for n, event_id in zip((1, 2, 3), kept)]
                              + [keeping(other, "1")], T0 + 1)
    redact = await ingest(store, "redact", b'{"orders_to_redact": [1, 2]}', topic="customers/redact")
    await store.save_mappings([Mapped(redact, "mapped", ["redact"], [], [], forget_resources=(("order", "1"), ("order", "2")))],
                              T0 + 2)
    assert await store.resources("shopify", "order", ["1", "2", "3"]) == {"3": b'{"id": 3}'}
    assert await store.resources("woocommerce", "order", ["1"]) == {"1": b'{"id": 1}'}
    again = await ingest(store, "redact-2", b'{"orders_to_redact": [3]}', topic="customers/redact")
    await store.save_mappings([Mapped(again, "mapped", ["redact"], [], [])], T0 + 3)
    await store.apply_mappings([Mapped(again, "mapped", ["redact"], [], [], forget_resources=(("order", "3"),))], T0 + 4,
                               force=False, dry_run=False)  # a replay of the redaction forgets too
    assert await store.resources("shopify", "order", ["3"]) == {}
