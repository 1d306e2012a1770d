"""A person's erasure deletes the bridge's own copies about them (their consent records and the Omneo sent
prints) in the transaction of its mapping, and again when it is replayed (bridge/erasure.py); an echo uses
up the prints it matched (bridge/echo.py)."""

from __future__ import annotations

import pytest

from bridge.consent import contact_fingerprint
from bridge.model import Mapped, OwnCopies
from bridge.store.base import SentPrint, Store

from .support import T0, hook
from .test_consent import consent_message, queued

pytestmark = pytest.mark.anyio

JANE = contact_fingerprint("jane@example.com")
ARI = contact_fingerprint("ari@example.com")
PRINTS = [SentPrint("email:jane", "email", "d1", T0), SentPrint("identity:jane", "email", "d1", T0),
          SentPrint("email:ari", "email", "d2", T0)]


async def decided(store: Store, dedupe_key: str, contact: str, channel: str = "email") -> None:
    event_id = (await store.ingest(hook(dedupe_key, topic="customers/update"), now=T0)).event_id
    message = consent_message("omnisend", "shopify", True, T0 - 10, contact=contact, channel=channel)
    assert await store.save_mappings([Mapped(event_id, "mapped", ["r"], [], [(message, f"k-{dedupe_key}")])], T0) == 1


async def erasure(store: Store, dedupe_key: str, copies: OwnCopies) -> int:
    event_id = (await store.ingest(hook(dedupe_key, topic="customers/redact"), now=T0)).event_id
    await store.save_mappings([Mapped(event_id, "mapped", ["redact"], [], [], forget_copies=copies)], T0 + 1)
    return event_id


async def test_an_erasure_forgets_the_persons_consent_and_prints_and_nobody_elses(store: Store) -> None:
    await decided(store, "j1", JANE)
    await decided(store, "j2", JANE, channel="sms")
    await decided(store, "a1", ARI)
    await store.remember_sent(PRINTS)
    await erasure(store, "redact-jane", OwnCopies(contacts=(JANE,), prints=("email:jane", "identity:jane")))
    assert await store.consent_records(JANE) == []
    assert [r.channel for r in await store.consent_records(ARI)] == ["email"]
    assert set(await store.sent_prints(["email:jane", "identity:jane", "email:ari"])) == {"email:ari"}
    # a decision after the erasure starts afresh: nothing known is newer
    await decided(store, "j3", JANE)
    assert len(await store.consent_records(JANE)) == 1


async def test_an_erasure_mapped_by_another_mapper_first_forgets_once_and_a_replay_forgets_again(
        store: Store) -> None:
    await decided(store, "j1", JANE)
    event_id = await erasure(store, "redact", OwnCopies(contacts=(JANE,)))
    await decided(store, "j2", JANE)  # came after the erasure
    # the same erasure saved again (a second mapper lost the race) changes nothing
    await store.save_mappings([Mapped(event_id, "mapped", ["redact"], [], [], forget_copies=OwnCopies((JANE,)))],
                              T0 + 2)
    assert len(await store.consent_records(JANE)) == 1
    # a dry run of a replay deletes nothing; the replay itself forgets again
    replayed = [Mapped(event_id, "mapped", ["redact"], [], [], forget_copies=OwnCopies((JANE,), ("email:jane",)))]
    await store.remember_sent(PRINTS)
    await store.apply_mappings(replayed, T0 + 3, force=False, dry_run=True)
    assert len(await store.consent_records(JANE)) == 1 and "email:jane" in await store.sent_prints(["email:jane"])
    await store.apply_mappings(replayed, T0 + 3, force=False, dry_run=False)
    assert await store.consent_records(JANE) == []
    assert await store.sent_prints(["email:jane"]) == {}


async def test_an_echo_uses_up_the_prints_it_matched(store: Store) -> None:
    await store.remember_sent(PRINTS)
    echo_id = (await store.ingest(hook("echo", source="omneo", topic="profile.updated"), now=T0)).event_id
    used = (("email:jane", "d1", T0), ("identity:jane", "d1", T0))
    await store.save_mappings([Mapped(echo_id, "echo", [], [], [], forget_copies=OwnCopies(used_prints=used))], T0 + 1)
    assert set(await store.sent_prints(["email:jane", "identity:jane", "email:ari"])) == {"email:ari"}
    assert await queued(store, echo_id) == []


async def test_an_echo_leaves_the_print_of_a_later_write_to_the_same_profile(store: Store) -> None:
    """The echo of a first write is mapped after a second write to the profile kept its print under the same
    key: the second print stays, for the second write's own echo."""
    await store.remember_sent(PRINTS)
    later = SentPrint("email:jane", "email,email_promo", "d3", T0 + 0.25)
    await store.remember_sent([later])
    echo_id = (await store.ingest(hook("created", source="omneo", topic="profile.created"), now=T0)).event_id
    await store.save_mappings([Mapped(echo_id, "mapped", ["r"], [], [], forget_copies=OwnCopies(
        used_prints=(("email:jane", "d1", T0), ("identity:jane", "d1", T0))))], T0 + 1)
    assert await store.sent_prints(["email:jane", "identity:jane"]) == {"email:jane": later}


async def test_retention_prunes_sent_prints_past_the_echo_window_and_keeps_consent(store: Store) -> None:
    from bridge.ops.prune import prune
    from bridge.store.base import PruneCutoffs

    await decided(store, "j1", JANE)
    window = 3600.0
    await store.remember_sent([SentPrint("old-1", "email", "d", T0 - window - 10), SentPrint("old-2", "email", "d",
                               T0 - window - 1), SentPrint("young", "email", "d", T0 - window + 10)])
    cutoffs = PruneCutoffs(T0 - 30 * 86400, T0 - 30 * 86400, T0 - 7 * 86400, sent_prints_before=T0 - window)
    assert (await store.prune_preview(cutoffs)).sent_prints == 2
    assert await store.prune_sent_prints(cutoffs.sent_prints_before, 1) == 1  # one chunk of one
    assert set(await store.sent_prints(["old-1", "old-2", "young"])) in ({"old-1", "young"}, {"old-2", "young"})
    result = await prune(store, T0, dedupe_days=7, echo_window_seconds=window)  # the whole run, as `bridge prune`
    assert result.sent_prints == 1
    assert set(await store.sent_prints(["old-1", "old-2", "young"])) == {"young"}
    # consent records are decisions: kept however old
    later = await prune(store, T0 + 400 * 86400, dedupe_days=7, echo_window_seconds=window)
    assert later.sent_prints == 1 and len(await store.consent_records(JANE)) == 1
