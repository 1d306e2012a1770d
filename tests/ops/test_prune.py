"""Retention: delivered messages and bodies go, dedupe keys stay for their whole window."""

from __future__ import annotations

import asyncio

from bridge.model import Webhook
from bridge.ops.prune import prune, prune_daily
from bridge.settings import Settings

from .support import DAY, NOW, Outbox


def test_prune_respects_every_window(outbox: Outbox) -> None:
    old_done = outbox.ingest("old-done", at=NOW - 40 * DAY)
    outbox.map(old_done, [("omnisend", "k1")], at=NOW - 40 * DAY)
    outbox.deliver("omnisend", "delivered", 202, at=NOW - 40 * DAY)
    old_dead = outbox.ingest("old-dead", at=NOW - 40 * DAY)
    outbox.map(old_dead, [("ometria", "k2")], at=NOW - 40 * DAY)
    outbox.deliver("ometria", "dead", 400, at=NOW - 40 * DAY)
    old_waiting = outbox.ingest("old-waiting", at=NOW - 40 * DAY)  # never mapped: rules broken for weeks
    recent = outbox.ingest("recent", at=NOW - 5 * DAY)
    outbox.map(recent, [("omnisend", "k3")], at=NOW - 5 * DAY)
    outbox.deliver("omnisend", "delivered", 202, at=NOW - 5 * DAY)

    result = asyncio.run(prune(outbox.store, NOW, dedupe_days=7))
    # old_done: its message and body went, then the event itself (and with it its key)
    assert (result.messages, result.attempts, result.bodies, result.dedupe_keys) == (1, 1, 1, 1)
    assert outbox.rows("SELECT event_id, state FROM messages ORDER BY id") == [(old_dead, "dead"), (recent, "delivered")]
    bodies = dict(outbox.rows("SELECT id, body IS NULL FROM events"))
    assert bodies == {old_dead: 0, old_waiting: 0, recent: 0}
    assert sorted(outbox.rows("SELECT key FROM dedupe")) == [("old-dead",), ("old-waiting",), ("recent",)]


def test_dedupe_keys_kept_for_the_window(outbox: Outbox) -> None:
    """A key younger than the dedupe window survives even when asked for less, so a resend stays a duplicate."""
    outbox.map(outbox.ingest("six-days", at=NOW - 6 * DAY), [], at=NOW - 6 * DAY)
    outbox.map(outbox.ingest("eight-days", at=NOW - 8 * DAY), [], at=NOW - 8 * DAY)
    result = asyncio.run(prune(outbox.store, NOW, dedupe_days=1, min_dedupe_days=7, bodies_days=1))
    assert result.dedupe_keys == 1
    assert outbox.rows("SELECT key FROM dedupe") == [("six-days",)]
    resend = Webhook("shopify", "orders/create", "six-days", b"{}")
    assert asyncio.run(outbox.store.ingest(resend, now=NOW)).duplicate


def test_prune_dry_run_counts_what_the_run_does(outbox: Outbox) -> None:
    e = outbox.ingest("x", at=NOW - 40 * DAY)
    outbox.map(e, [("omnisend", "k")], at=NOW - 40 * DAY)
    outbox.deliver("omnisend", "delivered", 202, at=NOW - 40 * DAY)
    young = outbox.ingest("young", at=NOW - 3 * DAY)  # its key is inside the dedupe window
    outbox.map(young, [("omnisend", "k2")], at=NOW - 3 * DAY)
    outbox.deliver("omnisend", "delivered", 202, at=NOW - 40 * DAY)
    dead = outbox.ingest("dead", at=NOW - 40 * DAY)  # a dead letter keeps its event
    outbox.map(dead, [("ometria", "k3")], at=NOW - 40 * DAY)
    outbox.deliver("ometria", "dead", 400, at=NOW - 40 * DAY)
    dry = asyncio.run(prune(outbox.store, NOW, dedupe_days=7, dry_run=True))
    assert outbox.rows("SELECT count(*) FROM messages") == [(3,)]  # nothing changed
    done = asyncio.run(prune(outbox.store, NOW, dedupe_days=7))
    # the dry run counts what the run then does, including event rows that only become
    # removable once the same run has deleted their messages and body
    assert (dry.messages, dry.attempts, dry.bodies, dry.dedupe_keys) == (
        done.messages, done.attempts, done.bodies, done.dedupe_keys) == (1, 1, 1, 1)


def test_prune_in_chunks(outbox: Outbox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("bridge.ops.prune.CHUNK", 3)
    for n in range(10):
        outbox.map(outbox.ingest(f"e{n}", at=NOW - 40 * DAY), [("omnisend", f"k{n}")], at=NOW - 40 * DAY)
    outbox.deliver("omnisend", "delivered", 202, at=NOW - 40 * DAY)
    result = asyncio.run(prune(outbox.store, NOW, dedupe_days=7))
    assert (result.messages, result.attempts, result.bodies, result.dedupe_keys) == (10, 10, 10, 10)


def test_prune_daily_runs_then_stops(outbox: Outbox) -> None:
    e = outbox.ingest("x", at=NOW - 40 * DAY)
    outbox.map(e, [("omnisend", "k")], at=NOW - 40 * DAY)
    outbox.deliver("omnisend", "delivered", 202, at=NOW - 40 * DAY)

    async def go() -> None:
        stopping = asyncio.Event()
        task = asyncio.create_task(prune_daily(outbox.store, Settings(), stopping, clock=lambda: NOW,
                                               first_after=0.01, every=3600))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if outbox.rows("SELECT count(*) FROM messages") == [(0,)]:
                break
        stopping.set()
        await asyncio.wait_for(task, 1)

    asyncio.run(go())
    assert outbox.rows("SELECT count(*) FROM messages") == [(0,)]


def test_prune_stops_between_chunks_when_asked(outbox: Outbox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("bridge.ops.prune.CHUNK", 2)
    for n in range(6):
        outbox.map(outbox.ingest(f"e{n}", at=NOW - 40 * DAY), [("omnisend", f"k{n}")], at=NOW - 40 * DAY)
    outbox.deliver("omnisend", "delivered", 202, at=NOW - 40 * DAY)
    asked = iter([False, True])
    result = asyncio.run(prune(outbox.store, NOW, dedupe_days=7, stop=lambda: next(asked, True)))
    assert (result.messages, result.bodies, result.dedupe_keys) == (2, 0, 0)
