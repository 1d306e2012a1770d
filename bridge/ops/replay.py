"""Replay: run stored events again through the current rules.

Used after a rule was wrong. Each message a replayed event makes carries the
same idempotency key as the first time (source, dedupe key, rule, index), so
the outbox knows what was already done with it:

- delivered, or still open (pending, in flight): not queued again, unless forced;
- dead: the dead letter is brought back as pending with the new record;
- never seen (a rule that did not match before): queued.

An event that looks something up (a Shopify refund reads its order, bridge/mapping/lookups.py)
reads it as the store has it now, and does not wait for it: without it, it is a mapping error.

Events are read and mapped in batches; each batch's writes (event status,
messages) are one store write (`Store.apply_mappings`), where the idempotency
check runs, so a worker mapping the same event at the same time cannot make a
duplicate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bridge.mapping import RuleSet
from bridge.mapping.process import complete, map_events
from bridge.settings import Settings
from bridge.store.base import EventFilter, ReplaySummary, Store
from bridge.waiting import attach

BATCH = 200
Progress = Callable[[int, int], None]

__all__ = ["BATCH", "ReplaySummary", "load_current_rules", "replay"]


def load_current_rules(settings: Settings) -> RuleSet:
    """The rules as they are on disk now (raises RulesError when they do not load)."""
    from bridge.mapping import load_rules
    from bridge.mapping.areas import allowed_from_settings

    # The deployment's areas apply to replays too: a replay never sends what a live event could not.
    rules: RuleSet = load_rules(settings.mappings_dir, allowed_areas=allowed_from_settings(settings))
    return rules


async def replay(
    store: Store,
    rules: RuleSet,
    where: EventFilter,
    now: float,
    *,
    force: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ReplaySummary:
    """Replay every stored event matching `where`, oldest first, in batches (mapped in a thread)."""
    total = await store.count_replayable(where)
    summary = ReplaySummary(dry_run=dry_run)
    after = 0
    if progress is not None:
        progress(0, total)
    while True:
        events = await store.replayable_events(where, after, BATCH)
        if not events:
            break
        # What the events look up (a refund's order) as the store has it now; a replay does not wait.
        ready, _ = await attach(store, events, now, wait_seconds=0.0)
        mapped = await asyncio.to_thread(map_events, rules, ready)
        # A batch ends at an event over its mapping budget: the events after it are read again.
        after = events[-1].id if complete(events, mapped) else mapped[-1].event_id
        summary.add(await store.apply_mappings(mapped, now, force=force, dry_run=dry_run))
        if progress is not None:
            progress(min(summary.events, total), total)
    return summary
