"""What operators read and change: pages with totals, one event's trail, the outbox, dead letters, the audit."""

from __future__ import annotations

import pytest

from bridge.model import Mapped
from bridge.store.base import AuditFilter, DeadFilter, EventFilter, Store

from .support import LEASE, T0, event_with, hook, outgoing, record

pytestmark = pytest.mark.anyio
DAY = 86400.0


async def test_events_page_newest_first_with_the_total_of_every_match(store: Store) -> None:
    ids = [(await store.ingest(hook(f"e{n}", topic="orders/paid" if n % 2 else "orders/create"), now=T0 + n * DAY))
           .event_id for n in range(7)]
    first = await store.list_events(EventFilter(), 3)
    second = await store.list_events(EventFilter(), 3, offset=3)
    last = await store.list_events(EventFilter(), 3, offset=6)
    assert [e["id"] for e in first.items + second.items + last.items] == ids[::-1]
    assert (first.total, first.limit, first.offset, second.offset) == (7, 3, 0, 3)
    paid = await store.list_events(EventFilter(topic="orders/paid"), 2)
    assert paid.total == 3 and [e["id"] for e in paid.items] == [ids[5], ids[3]]
    window = await store.list_events(EventFilter(since=T0 + 2 * DAY, until=T0 + 4 * DAY), 10)
    assert [e["id"] for e in window.items] == [ids[3], ids[2]] and window.total == 2
    assert (await store.list_events(EventFilter(status="mapped"), 10)).total == 0
    assert (await store.list_events(EventFilter(source="omneo"), 10, offset=5)).items == []


async def test_an_events_summary_counts_its_messages_by_state(store: Store) -> None:
    event_id = await event_with(store, "a", [outgoing("omnisend", "order:1", n=0), outgoing("ometria", "order:1", n=1)])
    await record(store, await store.claim("omnisend", 10, LEASE, T0), "delivered", T0, status=202)
    [summary] = (await store.list_events(EventFilter(), 10)).items
    assert summary["id"] == event_id and summary["messages"] == {"delivered": 1, "pending": 1}
    assert summary["rules"] == ["orders"] and summary["status"] == "mapped" and not summary["body_pruned"]


async def test_an_events_detail_has_every_message_and_attempt(store: Store) -> None:
    event_id = await event_with(store, "a", [outgoing("ometria", "contact:1", kind="contact", areas=("contacts",))])
    [claimed] = await store.claim("ometria", 10, LEASE, T0)
    await record(store, [claimed], "retry", T0, status=503, detail="busy", next_at=T0 + 10)
    [claimed] = await store.claim("ometria", 10, LEASE, T0 + 10)
    await record(store, [claimed], "delivered", T0 + 11, status=200, detail="ok")
    detail = await store.event_detail(event_id)
    assert detail is not None and detail["headers"] == {"x-shopify-topic": "orders/create"}
    [message] = detail["messages"]
    assert (message["kind"], message["areas"], message["state"], message["attempts"]) == (
        "contact", ["contacts"], "delivered", 2)
    assert message["record"] == {"email": "jane@example.com", "n": 0}
    assert [(a["outcome"], a["status"], a["detail"]) for a in message["trail"]] == [
        ("retry", 503, "busy"), ("delivered", 200, "ok")]


async def test_outbox_stats_and_the_metrics_reads(store: Store) -> None:
    for n in range(3):
        await event_with(store, f"e{n}", [outgoing("omnisend", f"order:{n}")], now=T0 + n)
    await event_with(store, "f", [outgoing("ometria", "order:9")], now=T0)
    [inflight] = await store.claim("ometria", 10, LEASE, T0)
    dead = await store.claim("omnisend", 1, LEASE, T0)
    await record(store, dead, "dead", T0, status=400)
    stats = await store.outbox_stats(T0 + 100, ["omnisend", "ometria", "klaviyo"])
    assert list(stats) == ["klaviyo", "ometria", "omnisend"]
    assert stats["omnisend"]["counts"] == {"pending": 2, "inflight": 0, "submitted": 0, "delivered": 0, "dead": 1}
    assert stats["omnisend"]["oldest_pending_age_seconds"] == 99.0
    assert stats["ometria"]["counts"]["inflight"] == 1 and stats["ometria"]["oldest_pending_age_seconds"] is None
    assert stats["klaviyo"]["counts"]["pending"] == 0 and not stats["klaviyo"]["paused"]
    assert await store.open_counts() == {("omnisend", "pending"): 2, ("omnisend", "dead"): 1,
                                         ("ometria", "inflight"): 1}
    assert await store.oldest_pending() == {"omnisend": T0 + 1}
    assert inflight.destination == "ometria"


async def test_dead_letters_page_and_come_back_with_a_fresh_budget(store: Store) -> None:
    for n in range(4):
        await event_with(store, f"e{n}", [outgoing("omnisend" if n < 3 else "ometria", f"order:{n}")])
    for n, destination in enumerate(["omnisend"] * 3 + ["ometria"]):
        claimed = await store.claim(destination, 1, LEASE, T0 + n)
        await record(store, claimed, "dead", T0 + n, status=422, detail=f"refused {n}")
    page = await store.list_dead(DeadFilter(), 2)
    assert page.total == 4 and [d["last_detail"] for d in page.items] == ["refused 3", "refused 2"]
    assert page.items[0]["died_at"] == T0 + 3 and page.items[0]["attempts"] == 1
    omnisend = await store.list_dead(DeadFilter(destination="omnisend", since=T0 + 1), 10)
    assert omnisend.total == 2
    assert await store.retry_dead(DeadFilter(ids=(omnisend.items[0]["id"],)), T0 + 10) == 1
    [back] = await store.claim("omnisend", 10, LEASE, T0 + 10)
    assert back.id == omnisend.items[0]["id"] and back.attempts == 1 and back.created_at == T0 + 10
    assert await store.retry_dead(DeadFilter(destination="omnisend"), T0 + 11) == 2
    assert (await store.list_dead(DeadFilter(), 10)).total == 1
    assert await store.retry_dead(DeadFilter(), T0 + 12) == 1  # every dead letter (the caller asked for all)


async def test_the_audit_lists_what_was_written_by_area_newest_first(store: Store) -> None:
    await event_with(store, "a", [outgoing("ometria", "contact:1", kind="contact", areas=("contacts", "consent"))])
    await event_with(store, "b", [outgoing("omnisend", "order:1", areas=("orders",))])
    await record(store, await store.claim("ometria", 10, LEASE, T0), "delivered", T0 + 1, status=200)
    [retried] = await store.claim("omnisend", 10, LEASE, T0)
    await record(store, [retried], "retry", T0 + 2, status=503, next_at=T0 + 3)  # changed nothing: not listed
    await record(store, await store.claim("omnisend", 10, LEASE, T0 + 3), "dead", T0 + 4, status=400)
    every = await store.audit(AuditFilter(), 10)
    assert [(a["destination"], a["outcome"]) for a in every.items] == [("omnisend", "dead"), ("ometria", "delivered")]
    assert every.total == 2 and every.items[1]["areas"] == ["contacts", "consent"]
    assert every.items[1]["record"] == {"email": "jane@example.com", "n": 0} and every.items[1]["source"] == "shopify"
    consent = await store.audit(AuditFilter(area="consent"), 10)
    assert [a["destination"] for a in consent.items] == ["ometria"]
    assert (await store.audit(AuditFilter(area="con"), 10)).total == 0  # an area is a whole word
    assert (await store.audit(AuditFilter(destination="omnisend", since=T0 + 5), 10)).total == 0
    second = await store.audit(AuditFilter(), 1, offset=1)
    assert second.total == 2 and [a["destination"] for a in second.items] == ["ometria"]


async def test_unmapped_counts_the_events_waiting_to_be_mapped_and_when_the_oldest_arrived(store: Store) -> None:
    assert await store.unmapped() == {"count": 0, "oldest_received_at": None}
    first = await event_with(store, "mapped-first", [outgoing("omnisend", "order:1")], now=T0)
    for n in range(3):
        await store.ingest(hook(f"waiting-{n}"), now=T0 + 10 + n)
    assert await store.unmapped() == {"count": 3, "oldest_received_at": T0 + 10}
    waiting = await store.waiting_events(10)
    assert first not in [e.id for e in waiting]
    await store.save_mappings([Mapped(waiting[0].id, "no_rule", [], [], [])], T0 + 20)
    assert await store.unmapped() == {"count": 2, "oldest_received_at": T0 + 11}
