"""Consent decisions: a message carrying one is queued only when it is newer than every decision known for
its contact and channel, judged in the transaction that queues it (bridge/consent.py)."""

from __future__ import annotations

import asyncio

import pytest

from bridge.consent import ConsentDecision, contact_fingerprint
from bridge.model import Mapped, Outgoing
from bridge.store.base import EventFilter, Store

from .support import T0, event_with, hook, outgoing

pytestmark = pytest.mark.anyio

JANE = contact_fingerprint("Jane@Example.com")
DAY = 86_400.0


def consent_message(destination: str, source: str, subscribed: bool, decided_at: float | None, *,
                    changed_at: float | None = None, channel: str = "email", contact: str = JANE,
                    n: int = 0) -> Outgoing:
    decision = ConsentDecision(contact, channel, subscribed, source, decided_at, changed_at)
    return Outgoing(destination, "contact", {"marketing_optin": "EXPLICITLY_OPTEDIN" if subscribed else
                                             "EXPLICITLY_OPTEDOUT"}, rule="contacts", index=n,
                    areas=("contacts", "consent"), decision=decision)


async def queued(store: Store, event_id: int) -> list[str]:
    detail = await store.event_detail(event_id)
    assert detail is not None
    return [m["destination"] for m in detail["messages"]]


async def test_a_decision_goes_with_every_message_of_its_event_and_is_kept_by_contact_fingerprint(
        store: Store) -> None:
    event = await event_with(store, "s1", [consent_message("omnisend", "shopify", True, T0 - DAY),
                                           consent_message("ometria", "shopify", True, T0 - DAY, n=1),
                                           outgoing("omnisend", "contact:x", n=2)])
    assert await queued(store, event) == ["omnisend", "ometria", "omnisend"]
    [known] = await store.consent_records(JANE)
    assert (known.channel, known.source, known.subscribed, known.decided_at) == ("email", "shopify", True, T0 - DAY)
    assert known.decided_event == event and known.said_event == event
    assert await store.consent_records(contact_fingerprint("someone@else.com")) == []


async def test_the_newer_decision_wins_whichever_source_says_it_and_an_older_one_is_dropped(store: Store) -> None:
    await event_with(store, "s1", [consent_message("omnisend", "shopify", True, T0 - DAY)])
    older = await event_with(store, "o1", [consent_message("omnisend", "omneo", False, T0 - 2 * DAY)],
                             source="omneo", topic="profile.updated")
    assert await queued(store, older) == []
    same = await event_with(store, "o2", [consent_message("omnisend", "omneo", True, T0 - DAY)],
                            source="omneo", topic="profile.updated")
    assert await queued(store, same) == []  # the same decision coming back (an echo) is no change
    newer = await event_with(store, "o3", [consent_message("omnisend", "omneo", False, T0)],
                             source="omneo", topic="profile.updated")
    assert await queued(store, newer) == ["omnisend"]
    stale = await event_with(store, "s2", [consent_message("omnisend", "shopify", True, T0 - DAY + 1)])
    assert await queued(store, stale) == []
    records = {r.source: r for r in await store.consent_records(JANE)}
    assert records["omneo"].decided_at == T0 and not records["omneo"].subscribed
    assert records["shopify"].decided_at == T0 - DAY


async def test_without_a_time_only_a_change_of_the_sources_own_flag_is_a_decision(store: Store) -> None:
    later = T0 + DAY
    first = await event_with(store, "o1", [consent_message("omnisend", "omneo", False, None, changed_at=T0)],
                             source="omneo", topic="profile.created")
    assert await queued(store, first) == []  # the first flag seen may be a default
    again = await event_with(store, "o2", [consent_message("omnisend", "omneo", False, None, changed_at=T0 + 5)],
                             source="omneo", topic="profile.updated")
    assert await queued(store, again) == []
    changed = await event_with(store, "o3", [consent_message("omnisend", "omneo", True, None, changed_at=later)],
                               source="omneo", topic="profile.updated")
    assert await queued(store, changed) == ["omnisend"]
    [known] = await store.consent_records(JANE)
    assert known.subscribed and known.decided_at == later
    no_change_time = await event_with(store, "o4", [consent_message("omnisend", "omneo", False, None)],
                                      source="omneo", topic="profile.updated")
    assert await queued(store, no_change_time) == []


async def test_channels_are_judged_apart(store: Store) -> None:
    await event_with(store, "s1", [consent_message("omnisend", "shopify", True, T0)])
    sms = await event_with(store, "o1", [consent_message("omnisend", "omneo", False, T0 - DAY, channel="sms")],
                           source="omneo", topic="profile.updated")
    assert await queued(store, sms) == ["omnisend"]
    assert [(r.channel, r.source) for r in await store.consent_records(JANE)] == [("email", "shopify"),
                                                                                   ("sms", "omneo")]


async def test_a_replay_sends_its_decision_again_only_while_it_is_the_newest(store: Store) -> None:
    first = await event_with(store, "s1", [consent_message("omnisend", "shopify", True, T0 - DAY)])
    [event] = await store.replayable_events(EventFilter(), 0, 1)
    message = consent_message("omnisend", "shopify", True, T0 - DAY)
    mapped = Mapped(first, "mapped", ["contacts"], [], [(message, "replayed-key")])
    summary = await store.apply_mappings([mapped], T0 + 1, force=True, dry_run=False)
    assert event.id == first and summary.queued == 1
    await event_with(store, "o1", [consent_message("omnisend", "omneo", False, T0)],
                     source="omneo", topic="profile.updated")
    later = Mapped(first, "mapped", ["contacts"], [], [(message, "replayed-again")])
    summary = await store.apply_mappings([later], T0 + 2, force=True, dry_run=False)
    assert summary.queued == 0  # the older decision never overrides the newer one


async def test_two_mappers_saving_opposite_decisions_at_once_queue_only_the_newer(store: Store) -> None:
    ids = [(await store.ingest(hook(f"k{n}", source="omneo", topic="profile.updated"), now=T0)).event_id
           for n in range(6)]
    mappings = [Mapped(event_id, "mapped", ["contacts"], [], [(consent_message("omnisend", "omneo", n % 2 == 0,
                                                                              T0 + n), f"key-{n}")])
                for n, event_id in enumerate(ids)]
    await asyncio.gather(*(store.save_mappings([m], T0 + 10) for m in reversed(mappings)))
    [known] = await store.consent_records(JANE)
    assert known.decided_at == T0 + 5 and known.subscribed is False
    newest = await queued(store, ids[-1])
    assert newest == ["omnisend"]
