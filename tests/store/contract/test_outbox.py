"""The outbox: claims in order per key under a lease, completions fenced by the claim, batches, pauses."""

from __future__ import annotations

import itertools

import pytest

from bridge.store.base import Store

from .support import LEASE, T0, event_with, outgoing, record

pytestmark = pytest.mark.anyio


async def test_a_claim_takes_due_messages_in_order_and_holds_back_later_ones_of_a_key(store: Store) -> None:
    await event_with(store, "a", [outgoing("omnisend", "order:1", n=0), outgoing("omnisend", "order:1", n=1)])
    await event_with(store, "b", [outgoing("omnisend", "order:2")])
    await event_with(store, "c", [outgoing("omnisend", "")])  # unordered
    await event_with(store, "d", [outgoing("ometria", "order:1")])  # another destination's lane
    claimed = await store.claim("omnisend", 10, LEASE, T0)
    assert [(m.key, m.record["n"]) for m in claimed] == [("order:1", 0), ("order:2", 0), ("", 0)]
    assert all(m.attempts == 1 and m.claim for m in claimed) and claimed == sorted(claimed, key=lambda m: m.id)
    assert await store.claim("omnisend", 10, LEASE, T0) == []  # order:1's second waits for its first
    await record(store, claimed[:1], "delivered", T0 + 1)
    [second] = await store.claim("omnisend", 10, LEASE, T0 + 1)
    assert (second.key, second.record["n"]) == ("order:1", 1)
    assert [m.destination for m in await store.claim("ometria", 10, LEASE, T0)] == ["ometria"]


async def test_a_claim_takes_at_most_its_limit(store: Store) -> None:
    for n in range(5):
        await event_with(store, f"e{n}", [outgoing("omnisend", f"order:{n}")])
    first = await store.claim("omnisend", 2, LEASE, T0)
    rest = await store.claim("omnisend", 10, LEASE, T0)
    assert len(first) == 2 and len(rest) == 3 and {m.id for m in first}.isdisjoint(m.id for m in rest)


async def test_a_retry_is_due_after_its_backoff_and_keeps_holding_its_key(store: Store) -> None:
    await event_with(store, "a", [outgoing("omnisend", "order:1", n=0), outgoing("omnisend", "order:1", n=1)])
    [first] = await store.claim("omnisend", 10, LEASE, T0)
    await record(store, [first], "retry", T0, status=503, next_at=T0 + 30)
    assert await store.claim("omnisend", 10, LEASE, T0 + 29) == []
    [again] = await store.claim("omnisend", 10, LEASE, T0 + 30)
    assert again.id == first.id and again.attempts == 2
    await record(store, [again], "dead", T0 + 31, status=400)
    [second] = await store.claim("omnisend", 10, LEASE, T0 + 31)  # a dead head no longer holds its key
    assert second.record["n"] == 1


async def test_an_expired_lease_is_claimed_again_and_the_late_answer_changes_nothing(store: Store) -> None:
    await event_with(store, "a", [outgoing("omnisend", "order:1")])
    [lost] = await store.claim("omnisend", 10, LEASE, T0)
    assert await store.release_expired(T0 + LEASE - 1) == 0
    assert await store.release_expired(T0 + LEASE + 1) == 1
    [again] = await store.claim("omnisend", 10, LEASE, T0 + LEASE + 1)
    assert again.id == lost.id and again.claim != lost.claim
    await record(store, [lost], "delivered", T0 + LEASE + 2)  # the dead worker's late answer: fenced off
    assert (await store.open_counts())[("omnisend", "inflight")] == 1
    await record(store, [again], "delivered", T0 + LEASE + 3)
    assert await store.open_counts() == {}
    detail = await store.event_detail(again.event_id)
    assert detail is not None and detail["messages"][0]["state"] == "delivered"


async def test_extend_keeps_a_slow_delivery_and_release_gives_it_back_uncounted(store: Store) -> None:
    await event_with(store, "a", [outgoing("omnisend", "order:1")])
    [claimed] = await store.claim("omnisend", 10, LEASE, T0)
    assert await store.extend([claimed], T0 + 3 * LEASE) == 1
    assert await store.release_expired(T0 + 2 * LEASE) == 0
    assert await store.release([claimed], T0 + 2 * LEASE) == 1
    [again] = await store.claim("omnisend", 10, LEASE, T0 + 2 * LEASE)
    assert again.id == claimed.id and again.attempts == 1  # the given-back claim did not count
    assert await store.extend([claimed], T0 + 9 * LEASE) == 0  # an old claim cannot extend the new one


async def test_a_deferred_message_is_due_again_without_an_attempt(store: Store) -> None:
    await event_with(store, "a", [outgoing("omnisend", "order:1")])
    [claimed] = await store.claim("omnisend", 10, LEASE, T0)
    await record(store, [claimed], "deferred", T0, next_at=T0 + 5)
    assert await store.claim("omnisend", 10, LEASE, T0 + 4) == []
    [again] = await store.claim("omnisend", 10, LEASE, T0 + 5)
    assert again.attempts == 1
    detail = await store.event_detail(again.event_id)
    assert detail is not None and detail["messages"][0]["trail"] == []  # nothing was sent


async def test_a_submitted_batch_holds_its_keys_until_its_result_is_read(store: Store) -> None:
    await event_with(store, "a", [outgoing("omnisend", "order:1", n=0), outgoing("omnisend", "order:1", n=1)])
    await event_with(store, "b", [outgoing("omnisend", "order:2")])
    sent = await store.claim("omnisend", 10, LEASE, T0)
    await record(store, sent, "submitted", T0, next_at=T0 + 5, status=202, ref="batch-1")
    assert await store.claim("omnisend", 10, LEASE, T0 + 1) == []  # order:1's second waits for the batch
    assert await store.claim_batch("omnisend", T0 + 4, T0 + 4 + LEASE) is None  # not due yet
    held = await store.claim_batch("omnisend", T0, T0 + LEASE, holding_due_before=T0 + 5)
    assert held is not None and held[0] == "batch-1"  # due early: a later message of its key waits for it
    _, messages = held
    assert sorted(m.id for m in messages) == sorted(m.id for m in sent)
    assert all(m.submitted_at == T0 for m in messages)
    await record(store, messages, "delivered", T0 + 6, status=200)
    [second] = await store.claim("omnisend", 10, LEASE, T0 + 6)
    assert (second.key, second.record["n"]) == ("order:1", 1)


async def test_a_batch_whose_result_is_not_ready_is_looked_at_again_later(store: Store) -> None:
    await event_with(store, "a", [outgoing("omnisend", "order:1")])
    sent = await store.claim("omnisend", 10, LEASE, T0)
    await record(store, sent, "submitted", T0, next_at=T0 + 5, ref="batch-1")
    claimed = await store.claim_batch("omnisend", T0 + 5, T0 + 5 + LEASE)
    assert claimed is not None
    await record(store, claimed[1], "submitted", T0 + 6, next_at=T0 + 20, ref="batch-1")  # still processing
    assert await store.claim_batch("omnisend", T0 + 19, T0 + 19 + LEASE) is None
    assert await store.claim_batch("omnisend", T0 + 20, T0 + 20 + LEASE) is not None


async def test_pauses_are_shared_and_say_which_key_was_refused(store: Store) -> None:
    await store.set_paused("omnisend", True, "credentials refused (401)", "fp-1", T0)
    await store.set_paused("ometria", True, "paused by an operator", None, T0 + 1)
    await store.set_paused("ometria", False, "resumed by an operator", None, T0 + 2)
    states = await store.destination_states()
    assert states["omnisend"] == {"name": "omnisend", "paused": True, "reason": "credentials refused (401)",
                                  "changed_at": T0, "key_fingerprint": "fp-1"}
    assert not states["ometria"]["paused"] and states["ometria"]["changed_at"] == T0 + 2
    stats = await store.outbox_stats(T0 + 3, ["omnisend", "ometria"])
    assert stats["omnisend"]["paused"] and stats["omnisend"]["pause_reason"] == "credentials refused (401)"
    assert not stats["ometria"]["paused"] and stats["ometria"]["pause_reason"] is None


async def test_budget_slots_are_numbered_one_interval_apart_on_the_stores_clock_or_none_where_nothing_is_shared(
        store: Store) -> None:
    """The account's budget: each take reserves the next slot of one schedule and answers the wait until
    it; a held slot goes no earlier than its hold, the ones before it keep their place and the ones after
    follow it. A backend for one worker has nothing to share."""
    slots = [await store.take_budget("ometria", 10.0) for _ in range(3)]
    last = slots[-1]
    await store.hold_budget("ometria", last.number + 2, (last.at or 0.0) + 5.0)
    after = [await store.take_budget("ometria", 10.0) for _ in range(3)]
    if last.at is None:
        assert [*slots, *after] == [(0.0, None, 0)] * 6
        return
    assert [slot.number for slot in (*slots, *after)] == [slots[0].number + n for n in range(6)]
    ats = [slot.at for slot in (*slots, *after) if slot.at is not None]
    assert [b - a for a, b in itertools.pairwise(ats)] == pytest.approx([0.1, 0.1, 0.1, 4.9, 0.1])
    assert slots[0].wait < 0.05 and 0.1 < last.wait <= 0.2 + 1e-6 and 5.0 < after[1].wait <= 5.3
