"""Replay (mapped again, idempotently) and retention (bodies, delivered messages, dedupe keys after their window)."""

from __future__ import annotations

import pytest

from bridge.errors import StoreUnavailable
from bridge.model import Mapped, Outgoing
from bridge.store.base import EventFilter, PruneCutoffs, Store

from .support import LEASE, T0, event_with, hook, outgoing, record

pytestmark = pytest.mark.anyio
DAY = 86400.0


def replayed(event_id: int, dedupe_key: str, *messages: Outgoing) -> Mapped:
    return Mapped(event_id, "mapped", ["orders"], [], [(m, m.idempotency_key("shopify", dedupe_key)) for m in messages])


async def test_replay_reads_what_can_be_mapped_again(store: Store) -> None:
    ids = [(await store.ingest(hook(f"e{n}"), now=T0 + n)).event_id for n in range(5)]
    await store.ingest(hook("bad", body=b"{", payload_ok=False), now=T0)
    where = EventFilter(since=T0 + 1)
    assert await store.count_replayable(where) == 4
    assert [e.id for e in await store.replayable_events(where, 0, 2)] == ids[1:3]
    assert [e.id for e in await store.replayable_events(where, ids[2], 10)] == ids[3:]
    assert await store.count_replayable(EventFilter(since=T0 - 1)) == 5  # never the invalid body


async def test_a_replay_queues_the_missed_brings_dead_letters_back_and_skips_the_done(store: Store) -> None:
    done = await event_with(store, "done", [outgoing("omnisend", "order:1")])
    await record(store, await store.claim("omnisend", 10, LEASE, T0), "delivered", T0)
    died = await event_with(store, "died", [outgoing("omnisend", "order:2")])
    await record(store, await store.claim("omnisend", 10, LEASE, T0), "dead", T0, status=422)
    missed = (await store.ingest(hook("missed"), now=T0)).event_id
    batch = [replayed(done, "done", outgoing("omnisend", "order:1", record={"v": 2})),
             replayed(died, "died", outgoing("omnisend", "order:2", record={"v": 2})),
             replayed(missed, "missed", outgoing("ometria", "order:3", record={"v": 2}))]

    dry = await store.apply_mappings(batch, T0 + 10, force=False, dry_run=True)
    assert (dry.events, dry.queued, dry.requeued_dead, dry.skipped_delivered, dry.dry_run) == (3, 2, 1, 1, True)
    assert await store.open_counts() == {("omnisend", "dead"): 1}  # a dry run changes nothing
    summary = await store.apply_mappings(batch, T0 + 10, force=False, dry_run=False)
    assert (summary.queued, summary.requeued_dead, summary.skipped_delivered) == (2, 1, 1)
    back = await store.claim("omnisend", 10, LEASE, T0 + 10)
    assert [(m.event_id, m.record, m.attempts) for m in back] == [(died, {"v": 2}, 1)]  # in place, fresh budget
    assert [m.event_id for m in await store.claim("ometria", 10, LEASE, T0 + 10)] == [missed]
    again = await store.apply_mappings(batch, T0 + 11, force=False, dry_run=False)
    assert (again.queued, again.skipped_delivered, again.skipped_open) == (0, 1, 2)
    forced = await store.apply_mappings(batch[:1], T0 + 12, force=True, dry_run=False)
    assert forced.queued == 1 and [m.event_id for m in await store.claim("omnisend", 10, LEASE, T0 + 12)] == [done]


async def test_retention_keeps_what_a_replay_or_a_resend_needs(store: Store) -> None:
    old_done = await event_with(store, "old-done", [outgoing("omnisend", "order:1")], now=T0 - 40 * DAY)
    await record(store, await store.claim("omnisend", 10, LEASE, T0 - 40 * DAY), "delivered", T0 - 40 * DAY)
    old_dead = await event_with(store, "old-dead", [outgoing("ometria", "order:2")], now=T0 - 40 * DAY)
    await record(store, await store.claim("ometria", 10, LEASE, T0 - 40 * DAY), "dead", T0 - 40 * DAY)
    old_waiting = (await store.ingest(hook("old-waiting"), now=T0 - 40 * DAY)).event_id  # never mapped
    young = await event_with(store, "young", [outgoing("omnisend", "order:3")], now=T0 - 5 * DAY)
    await record(store, await store.claim("omnisend", 10, LEASE, T0 - 5 * DAY), "delivered", T0 - 40 * DAY)
    cutoffs = PruneCutoffs(delivered_before=T0 - 30 * DAY, bodies_before=T0 - 30 * DAY, dedupe_before=T0 - 7 * DAY)

    preview = await store.prune_preview(cutoffs)
    assert (preview.messages, preview.attempts, preview.bodies, preview.dedupe_keys) == (2, 2, 1, 1)
    assert await store.prune_delivered(cutoffs.delivered_before, 1) == (1, 1)  # one chunk of one
    assert await store.prune_delivered(cutoffs.delivered_before, 10) == (1, 1)
    assert await store.prune_delivered(cutoffs.delivered_before, 10) == (0, 0)
    assert await store.prune_bodies(cutoffs.bodies_before, 10) == 1
    assert await store.prune_dedupe(cutoffs.dedupe_before, 10) == 1

    remaining = {e["id"]: e for e in (await store.list_events(EventFilter(), 10)).items}
    assert set(remaining) == {old_dead, old_waiting, young}  # old_done, its body and messages gone, then its key
    assert not remaining[old_dead]["body_pruned"] and not remaining[old_waiting]["body_pruned"]
    assert (await store.ingest(hook("young"), now=T0)).duplicate  # a key inside the window is still known
    assert not (await store.ingest(hook("old-done"), now=T0)).duplicate
    assert old_done not in remaining


async def test_probe_and_migrate_on_an_open_store(store: Store) -> None:
    await store.probe()
    assert (await store.migrate()).applied == []  # open() applied them
    assert (await store.destination_states()) == {}  # the probe leaves nothing


async def test_a_closed_store_answers_store_unavailable(store: Store) -> None:
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.ingest(hook("a"), now=T0)
    with pytest.raises(StoreUnavailable):
        await store.probe()
