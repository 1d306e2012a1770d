"""Several producers and claimers on one database, as several processes of one deployment would run.

Each test checks the three things a queue must never get wrong: no message delivered twice, the
messages of one ordering key delivered in the order they were made, and nothing left behind.
Time is the tests' own clock (every call takes `now`), so leases and backoffs expire on cue.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bridge.model import Message
from bridge.store.base import DeadFilter, Store

from ..conftest import StoreFactory
from .support import LEASE, T0, event_with, hook, outgoing, record

pytestmark = pytest.mark.anyio

KEYS = [f"order:{n}" for n in range(6)]


class Clock:
    """The shared clock: every step moves it on a little."""

    def __init__(self) -> None:
        self.now = T0

    def tick(self, seconds: float = 0.01) -> float:
        self.now += seconds
        return self.now


@dataclass
class Ledger:
    """What the claimers did, to check against the three rules."""

    made: dict[int, str] = field(default_factory=dict)  # message id -> ordering key, as the producers queued them
    delivered: list[Message] = field(default_factory=list)  # in the order the deliveries were recorded
    holding: dict[str, int] = field(default_factory=dict)  # ordering key -> id of the message a claimer holds
    violations: list[str] = field(default_factory=list)

    def claimed(self, messages: list[Message]) -> None:
        for m in messages:
            if m.key and self.holding.get(m.key, m.id) != m.id:
                self.violations.append(f"{m.key}: {m.id} claimed while {self.holding[m.key]} is held")
            if m.key:
                self.holding[m.key] = m.id

    def finished(self, messages: list[Message]) -> None:
        for m in messages:
            if m.key and self.holding.get(m.key) == m.id:
                del self.holding[m.key]

    def check(self, expected: int) -> None:
        assert self.violations == []
        ids = [m.id for m in self.delivered]
        assert len(ids) == len(set(ids)), "a message was delivered twice"
        assert sorted(ids) == sorted(self.made) and len(ids) == expected, "a message was lost or never made"
        by_key: dict[str, list[int]] = defaultdict(list)
        for m in self.delivered:
            if m.key:
                by_key[m.key].append(m.id)
        for key, order in by_key.items():
            assert order == sorted(order), f"{key} delivered out of order: {order}"


async def produce(store: Store, clock: Clock, ledger: Ledger, name: str, events: int, rng: random.Random) -> None:
    for n in range(events):
        key = rng.choice(KEYS)
        messages = [outgoing("omnisend", key, n=0), outgoing("omnisend", rng.choice([key, ""]), n=1)]
        event_id = await event_with(store, f"{name}-{n}", messages, clock.tick())
        detail = await store.event_detail(event_id)
        assert detail is not None
        ledger.made.update({m["id"]: m["ordering_key"] for m in detail["messages"]})
        await asyncio.sleep(0)


async def claim_and_deliver(store: Store, clock: Clock, ledger: Ledger, done: asyncio.Event, rng: random.Random,
                            retry_share: float = 0.0) -> None:
    while True:
        claimed = await store.claim("omnisend", rng.randint(1, 5), LEASE, clock.tick())
        if not claimed:
            if done.is_set() and not (await store.open_counts()):
                return
            await asyncio.sleep(0.001)
            continue
        ledger.claimed(claimed)
        await asyncio.sleep(0)  # the "HTTP call": other claimers run meanwhile
        retried = [m for m in claimed if rng.random() < retry_share]
        sent = [m for m in claimed if m not in retried]
        ledger.finished(claimed)
        if retried:  # a backoff that the shared clock soon passes
            await record(store, retried, "retry", clock.tick(), status=503, next_at=clock.now + rng.uniform(0, 0.05))
        if sent:
            ledger.delivered.extend(sent)
            await record(store, sent, "delivered", clock.tick(), status=202)


async def leftovers(store: Store) -> None:
    assert await store.open_counts() == {}
    assert await store.waiting_events(10) == []
    assert (await store.list_dead(DeadFilter(), 10)).total == 0


async def run_together(producers: list[tuple[Store, int]], claimers: list[Store], *, retry_share: float = 0.0
                       ) -> Ledger:
    """Producers (a store each, and how many events it makes) and claimers at once, until all is delivered."""
    clock, ledger, done = Clock(), Ledger(), asyncio.Event()
    claiming = [asyncio.create_task(claim_and_deliver(s, clock, ledger, done, random.Random(n), retry_share))
                for n, s in enumerate(claimers)]
    await asyncio.gather(*(produce(s, clock, ledger, f"p{n}", events, random.Random(100 + n))
                           for n, (s, events) in enumerate(producers)))
    done.set()
    await asyncio.wait_for(asyncio.gather(*claiming), 120)
    return ledger


async def test_producers_and_claimers_on_one_store(store: Store) -> None:
    ledger = await run_together([(store, 40)] * 3, [store] * 4)
    ledger.check(expected=3 * 40 * 2)
    await leftovers(store)


async def test_two_instances_of_one_database_share_the_work(store_factory: StoreFactory, tmp_path: Path) -> None:
    """Two processes of one deployment, each with its own store: both produce, both claim."""
    async with store_factory(tmp_path) as web, store_factory(tmp_path) as worker:
        ledger = await run_together([(web, 40), (worker, 40)], [web, worker, worker])
        ledger.check(expected=2 * 40 * 2)
        await leftovers(web)


async def test_webhooks_on_one_instance_while_another_maps_and_delivers(store_factory: StoreFactory,
                                                                      tmp_path: Path) -> None:
    """`bridge serve --no-worker` and `bridge worker` on one database: the web instance commits a burst of
    webhooks (resends among them) while the worker instance saves mappings, claims and completes. Each
    webhook's answer names its one stored event; every message is delivered once."""
    async with store_factory(tmp_path) as web, store_factory(tmp_path) as worker:
        keys = [f"burst-{n}" for n in range(300)]
        burst = asyncio.gather(*(web.ingest(hook(key), now=T0) for key in keys + keys[:30]))
        ledger = await run_together([(worker, 40)], [worker, worker])
        answers = await burst
        ledger.check(expected=40 * 2)
        await leftovers_of_the_worker(worker)
        # A resend sent at once with its original: either may be stored first (on PostgreSQL two groups of
        # webhooks commit side by side), the other is its duplicate, with the same event.
        assert [a.duplicate for a in answers[30:300]] == [False] * 270
        assert [a.duplicate + b.duplicate for a, b in zip(answers[:30], answers[300:])] == [1] * 30
        assert [a.event_id for a in answers[300:]] == [a.event_id for a in answers[:30]]
        waiting = await worker.waiting_events(1000)
        assert sorted(e.id for e in waiting) == sorted(a.event_id for a in answers[:300])
        assert {e.dedupe_key for e in waiting} == set(keys)


async def leftovers_of_the_worker(store: Store) -> None:
    assert await store.open_counts() == {}
    assert (await store.list_dead(DeadFilter(), 10)).total == 0


async def test_retries_with_backoff_keep_the_order_of_each_key(store: Store) -> None:
    ledger = await run_together([(store, 30)] * 2, [store] * 3, retry_share=0.4)
    ledger.check(expected=2 * 30 * 2)
    await leftovers(store)
    assert any(m.attempts > 1 for m in ledger.delivered)  # some deliveries came after retries


async def test_a_claimer_that_dies_holding_leases_loses_nothing(store: Store) -> None:
    clock, ledger = Clock(), Ledger()
    await produce(store, clock, ledger, "p", 30, random.Random(3))
    held = await store.claim("omnisend", 20, LEASE, clock.tick())  # then the claimer dies: no answer, no release
    assert held
    ledger.claimed(held)
    survivor = await store.claim("omnisend", 100, LEASE, clock.tick())
    assert {m.key for m in survivor if m.key}.isdisjoint({m.key for m in held if m.key})  # its keys wait
    ledger.claimed(survivor)
    ledger.delivered.extend(survivor)
    ledger.finished(survivor)
    await record(store, survivor, "delivered", clock.tick())
    assert await store.release_expired(clock.now) == 0  # not before the lease ran out
    clock.tick(LEASE + 1)
    assert await store.release_expired(clock.now) == len(held)
    ledger.finished(held)
    done = asyncio.Event()
    done.set()
    await asyncio.wait_for(asyncio.gather(*(claim_and_deliver(store, clock, ledger, done, random.Random(n))
                                            for n in range(2))), 120)
    await record(store, held, "dead", clock.tick())  # the dead claimer's late answer: fenced off
    ledger.check(expected=30 * 2)
    await leftovers(store)
    detail = await store.event_detail(held[0].event_id)
    assert detail is not None
    [message] = [m for m in detail["messages"] if m["id"] == held[0].id]
    assert message["state"] == "delivered"  # the late answer moved nothing on
    assert sorted(a["outcome"] for a in message["trail"]) == ["dead", "delivered"]  # but its call is on record
