"""Retention: delivered messages, inbound bodies and dedupe keys do not stay for ever.

- Delivered messages (with their attempts) older than `delivered_days`.
- Inbound bodies older than `bodies_days` are dropped (the event row stays,
  its body no longer), except for events that still have open or dead
  messages, or are still waiting to be mapped: those may need a replay.
- Event rows (whose unique key is the dedupe guard) once older than the
  dedupe window, their body already pruned and no message left; never
  sooner, or a provider's resend would be taken as new.
- Resources kept for lookups (the latest state of each Shopify order, which
  its refunds read) once their latest event is older than `lookup_days`.
- Omneo sent prints (what the bridge last wrote to each profile, bridge/echo.py)
  once older than the echo window (OMNEO_ECHO_WINDOW_SECONDS): they can no
  longer recognise an echo.

Consent records are kept: they are the decisions newer ones are judged against
(bridge/consent.py). A person's erasure deletes theirs (bridge/erasure.py).

Each step runs in chunks of CHUNK rows, each its own store write: a writer that
also commits webhooks must not be held by one long delete.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog

from bridge.echo import DEFAULT_WINDOW, echo_window
from bridge.settings import Settings
from bridge.store.base import PruneCutoffs, PruneResult, Store

log = structlog.get_logger("bridge.ops.prune")

DAY = 86400.0
CHUNK = 1000
DEFAULT_DAYS = 30.0
DEFAULT_LOOKUP_DAYS = 120.0

__all__ = ["CHUNK", "DEFAULT_DAYS", "PruneResult", "prune", "prune_daily", "prune_with_settings"]


async def prune(
    store: Store,
    now: float,
    *,
    dedupe_days: float,
    delivered_days: float = DEFAULT_DAYS,
    bodies_days: float = DEFAULT_DAYS,
    lookup_days: float = DEFAULT_LOOKUP_DAYS,
    min_dedupe_days: float = 0.0,
    echo_window_seconds: float = DEFAULT_WINDOW,
    dry_run: bool = False,
    stop: Callable[[], bool] = lambda: False,
) -> PruneResult:
    """Apply retention as of `now`.

    `dedupe_days` is raised to `min_dedupe_days` (pass `settings.dedupe_days`) so a
    caller cannot shorten the dedupe window. `stop` is asked before each chunk: a
    worker shutting down must not queue writes on a store that is closing.
    """
    cutoffs = PruneCutoffs(
        delivered_before=now - max(delivered_days, 0.0) * DAY,
        bodies_before=now - max(bodies_days, 0.0) * DAY,
        dedupe_before=now - max(dedupe_days, min_dedupe_days, 0.0) * DAY,
        resources_before=now - max(lookup_days, 0.0) * DAY,
        sent_prints_before=now - max(echo_window_seconds, 0.0),
    )
    if dry_run:
        return await store.prune_preview(cutoffs)
    result = PruneResult()
    while not stop():
        messages, attempts = await store.prune_delivered(cutoffs.delivered_before, CHUNK)
        result.messages += messages
        result.attempts += attempts
        if messages == 0:
            break
    while not stop() and (bodies := await store.prune_bodies(cutoffs.bodies_before, CHUNK)) > 0:
        result.bodies += bodies
    while not stop() and (keys := await store.prune_dedupe(cutoffs.dedupe_before, CHUNK)) > 0:
        result.dedupe_keys += keys
    while not stop() and (kept := await store.prune_resources(cutoffs.resources_before, CHUNK)) > 0:
        result.resources += kept
    while not stop() and (prints := await store.prune_sent_prints(cutoffs.sent_prints_before, CHUNK)) > 0:
        result.sent_prints += prints
    return result


async def prune_with_settings(store: Store, settings: Settings, now: float, **days: Any) -> PruneResult:
    days.setdefault("lookup_days", settings.lookup_days)
    days.setdefault("echo_window_seconds", echo_window(settings))
    return await prune(store, now, dedupe_days=settings.dedupe_days, min_dedupe_days=settings.dedupe_days, **days)


async def prune_daily(
    store: Store,
    settings: Settings,
    stopping: asyncio.Event,
    clock: Callable[[], float] = time.time,
    every: float = DAY,
    first_after: float = 60.0,
) -> None:
    """The worker's retention task: once soon after start, then once a day, until `stopping` is set."""
    delay = first_after
    while not stopping.is_set():
        try:
            await asyncio.wait_for(stopping.wait(), delay)
            return
        except TimeoutError:
            pass
        try:
            result = await prune_with_settings(store, settings, clock(), stop=stopping.is_set)
            log.info("retention.pruned", **result.as_dict())
        except Exception:  # retention must never take the worker down; try again tomorrow
            log.exception("retention.failed")
        delay = every
