"""Events that wait for what they name: a Shopify refund whose order the bridge has not received.

Before events are mapped, each one that reads a lookup (bridge/mapping/lookups.py) gets the
resource it names attached (`Event.lookups`): from an earlier event of the same batch (whose
mapping is not saved yet), else from the store. When neither has it:

- an event received less than `wait_seconds` ago is not mapped: it is saved as `waiting`, with a
  note of what it waits for, and the worker reads it again (`Worker.recheck_waiting`) until the
  resource comes. Webhooks arrive out of order: a refund may come seconds before its order.
- an older one is mapped without it, and the engine makes that a mapping error that names what
  never came (an order that predates the bridge, say). Replayed once the order is in, it is sent.

So a refund is never dropped: it is sent, waiting (shown as such), or a mapping error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from bridge.mapping import lookups
from bridge.model import Event, Mapped
from bridge.store.base import Store


def reads_lookups(events: Sequence[Event]) -> bool:
    """Whether any of these events reads a lookup (then earlier mappings must be saved first)."""
    return any(lookups.reads(e.source, e.topic) is not None for e in events)


async def attach(store: Store, events: Sequence[Event], now: float,
                 wait_seconds: float) -> tuple[list[Event], list[Mapped]]:
    """(the events to map now, each with its lookups attached; the mappings of those that wait)."""
    named = {e.id: found for e in events
             if e.status != "invalid_json" and (found := lookups.named_ref(e)) is not None}
    if not named:
        return list(events), []
    wanted: dict[tuple[str, str], set[str]] = {}
    for lookup, ref in named.values():
        if ref is not None:
            wanted.setdefault((lookup.source, lookup.kind), set()).add(ref)
    kept = {key: await store.resources(key[0], key[1], sorted(refs)) for key, refs in wanted.items()}
    in_batch: dict[tuple[str, str, str], bytes] = {}
    ready: list[Event] = []
    waiting: list[Mapped] = []
    for event in events:
        carried = lookups.carries(event.source, event.topic)
        refs = wanted.get((carried.source, carried.kind), set()) if carried is not None else set()
        if refs and any(ref.encode() in event.body for ref in refs):  # parsed only when it may be one
            resource = lookups.resource_of(event)
            if resource is not None:
                in_batch[(event.source, *resource)] = event.body
        if event.id not in named:
            ready.append(event)
            continue
        lookup, ref = named[event.id]
        body = None
        if ref is not None:
            body = in_batch.get((lookup.source, lookup.kind, ref)) or kept[(lookup.source, lookup.kind)].get(ref)
        if body is None and ref is not None and now - event.received_at < wait_seconds:
            waiting.append(Mapped(event.id, "waiting", [], [
                f"waiting for the {lookup.source} {lookup.kind} {ref} (its `{lookup.ref_field}`), not received yet: "
                f"mapped when it comes, or a mapping error {_duration(wait_seconds)} after this event without it"], []))
            continue
        ready.append(replace(event, lookups={lookup.name: body}))
    return ready, waiting


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
