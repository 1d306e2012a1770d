"""What the console reads and writes: events found by an e-mail's or an order number's fingerprint, the
activity of the last hours in buckets, and the log of operators' actions."""

from __future__ import annotations

import pytest

from bridge.model import Mapped
from bridge.search import search_fingerprint
from bridge.store.base import EventFilter, PruneCutoffs, Store

from .support import LEASE, T0, hook, outgoing, record

pytestmark = pytest.mark.anyio
HOUR = 3600.0


async def mapped_with_lookup(store: Store, key: str, lookup: tuple[str, ...], now: float = T0,
                             destination: str = "omnisend") -> int:
    event_id = (await store.ingest(hook(key), now=now)).event_id
    message = outgoing(destination, f"order:{key}")
    await store.save_mappings([Mapped(event_id, "mapped", ["orders"], [], [(message, message.idempotency_key(
        "shopify", key))], lookup)], now)
    return event_id


async def test_events_are_found_by_the_fingerprint_of_an_email_or_an_order_number(store: Store) -> None:
    jane, order = search_fingerprint("Jane@Example.com"), search_fingerprint("#1001")
    assert jane is not None and order is not None
    a = await mapped_with_lookup(store, "a", (jane, order))
    b = await mapped_with_lookup(store, "b", (jane,), now=T0 + 1)
    await mapped_with_lookup(store, "c", (), now=T0 + 2)
    by_email = await store.list_events(EventFilter(search_key=jane), 10)
    assert [e["id"] for e in by_email.items] == [b, a] and by_email.total == 2
    by_order = await store.list_events(EventFilter(search_key=order, topic="orders/create"), 10)
    assert [e["id"] for e in by_order.items] == [a] and by_order.total == 1
    assert (await store.list_events(EventFilter(search_key=search_fingerprint("nobody@example.com")), 10)).total == 0
    # A replay saves them again without a duplicate.
    assert await store.count_replayable(EventFilter(search_key=jane)) == 2


async def test_pruning_an_event_row_forgets_its_fingerprints(store: Store) -> None:
    jane = search_fingerprint("jane@example.com")
    assert jane is not None
    event_id = (await store.ingest(hook("old"), now=T0)).event_id
    await store.save_mappings([Mapped(event_id, "no_rule", [], [], [], (jane,))], T0)
    await store.prune_bodies(T0 + 1, 100)
    assert await store.prune_dedupe(T0 + 1, 100) == 1
    assert (await store.list_events(EventFilter(search_key=jane), 10)).total == 0
    again = (await store.ingest(hook("new"), now=T0 + 2)).event_id
    await store.save_mappings([Mapped(again, "no_rule", [], [], [], (jane,))], T0 + 2)
    assert [e["id"] for e in (await store.list_events(EventFilter(search_key=jane), 10)).items] == [again]
    assert (await store.prune_preview(PruneCutoffs(T0, T0, T0))).dedupe_keys == 0


async def test_activity_counts_received_delivered_and_dead_per_bucket(store: Store) -> None:
    await mapped_with_lookup(store, "a", (), now=T0 + 10)
    await mapped_with_lookup(store, "b", (), now=T0 + HOUR + 10)
    await mapped_with_lookup(store, "c", (), now=T0 + HOUR + 20, destination="ometria")
    await store.ingest(hook("w", source="woocommerce"), now=T0 + 2 * HOUR + 5)
    await record(store, await store.claim("omnisend", 1, LEASE, T0 + 20), "delivered", T0 + 30, status=202)
    await record(store, await store.claim("omnisend", 1, LEASE, T0 + HOUR + 30), "dead", T0 + HOUR + 40, status=400)
    await record(store, await store.claim("ometria", 1, LEASE, T0 + HOUR + 30), "delivered", T0 + 2 * HOUR + 1,
                 status=200)
    buckets = await store.activity(T0, T0 + 3 * HOUR, HOUR)
    assert [b["start"] for b in buckets] == [T0, T0 + HOUR, T0 + 2 * HOUR]
    assert [b["received"] for b in buckets] == [{"shopify": 1}, {"shopify": 2}, {"woocommerce": 1}]
    assert [b["delivered"] for b in buckets] == [{"omnisend": 1}, {}, {"ometria": 1}]
    assert [b["dead"] for b in buckets] == [{}, {"omnisend": 1}, {}]
    last = await store.activity(T0 + 2 * HOUR, T0 + 2 * HOUR + 30, HOUR)  # a part of a bucket
    assert len(last) == 1 and last[0]["delivered"] == {"ometria": 1}
    assert await store.activity(T0 + 5 * HOUR, T0 + 7 * HOUR, HOUR) == [
        {"start": T0 + 5 * HOUR + n * HOUR, "received": {}, "delivered": {}, "dead": {}} for n in range(2)]


async def test_the_log_of_actions_pages_newest_first(store: Store) -> None:
    await store.record_action(T0, "ana", "operator", "retry_dead", "message 4", "1 retried")
    await store.record_action(T0 + 1, "bo", "viewer", "sign_in", "", "")
    await store.record_action(T0 + 2, "ana", "operator", "pause", "omnisend", "maintenance")
    page = await store.list_actions(2)
    assert page.total == 3 and [(a["actor"], a["action"], a["target"]) for a in page.items] == [
        ("ana", "pause", "omnisend"), ("bo", "sign_in", "")]
    assert page.items[0]["at"] == T0 + 2 and page.items[0]["detail"] == "maintenance"
    rest = await store.list_actions(2, offset=2)
    assert [(a["role"], a["detail"]) for a in rest.items] == [("operator", "1 retried")] and rest.total == 3
