"""What the Omneo destination keeps: each message's batch id, and what was written to each profile (its echo)."""

from __future__ import annotations

import pytest

from bridge.store.base import SentPrint, Store

from .support import LEASE, T0, event_with, outgoing, record

pytestmark = pytest.mark.anyio


async def test_a_delivered_message_keeps_its_batch_id_and_the_detail_shows_it(store: Store) -> None:
    event_id = await event_with(store, "a", [outgoing("omneo", "contact:a@example.com", kind="profile",
                                                      areas=("contacts",))])
    [sent] = await store.claim("omneo", 10, LEASE, T0)
    await record(store, [sent], "delivered", T0, status=202, detail="queued in Omneo batch b-1", ref="b-1")
    detail = await store.event_detail(event_id)
    assert detail is not None
    [message] = detail["messages"]
    assert (message["state"], message["batch"]) == ("delivered", "b-1")


async def test_a_batch_result_read_later_keeps_the_batch_id(store: Store) -> None:
    event_id = await event_with(store, "a", [outgoing("omnisend", "order:1")])
    sent = await store.claim("omnisend", 10, LEASE, T0)
    await record(store, sent, "submitted", T0, next_at=T0 + 5, ref="batch-1")
    claimed = await store.claim_batch("omnisend", T0 + 5, T0 + 5 + LEASE)
    assert claimed is not None
    await record(store, claimed[1], "delivered", T0 + 6, status=200)  # the item result carries no ref
    detail = await store.event_detail(event_id)
    assert detail is not None and [m["batch"] for m in detail["messages"]] == ["batch-1"]
    never = await event_with(store, "b", [outgoing("ometria", "order:2")])
    await record(store, await store.claim("ometria", 10, LEASE, T0), "delivered", T0, status=202)
    detail = await store.event_detail(never)
    assert detail is not None and [m["batch"] for m in detail["messages"]] == [None]


async def test_sent_prints_are_kept_per_key_and_the_newest_wins(store: Store) -> None:
    assert await store.sent_prints(["email:x"]) == {}
    await store.remember_sent([SentPrint("email:x", "email,first_name", "d1", T0),
                               SentPrint("identity:y", "email,first_name", "d1", T0)])
    await store.remember_sent([SentPrint("email:x", "email", "d2", T0 + 5)])
    found = await store.sent_prints(["email:x", "identity:y", "email:unknown"])
    assert found == {"email:x": SentPrint("email:x", "email", "d2", T0 + 5),
                     "identity:y": SentPrint("identity:y", "email,first_name", "d1", T0)}


async def test_many_keys_are_looked_up_at_once(store: Store) -> None:
    prints = [SentPrint(f"email:{n}", "email", f"d{n}", T0) for n in range(1200)]
    await store.remember_sent(prints)
    await store.remember_sent([SentPrint("email:7", "email", "again", T0 + 1), SentPrint("email:7", "email", "last",
                                                                                           T0 + 2)])
    found = await store.sent_prints([p.key for p in prints])
    assert len(found) == 1200 and found["email:7"].digest == "last"
