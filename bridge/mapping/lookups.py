"""Lookups: what an event names but does not carry, from what the bridge received before.

A Shopify refund (`refunds/create`) names its order (`order_id`) but carries no email, no order
total and no order date, so neither Omnisend's `order refunded` event nor a refund on the Ometria
order can be made from it alone. The bridge keeps the latest state of every Shopify order it
receives (the body of the order's latest orders/* event, saved with that event's mapping as
`Mapped.resource`), and a refund's rules read that order as `order`: `{{ order.email }}`.

A Shopify `customers/redact` lists the customer's orders (`orders_to_redact`): their kept copies
are deleted with that event's mapping, whatever the deletions area allows the destinations.

What the rules see is the order as of the refund: when the kept state predates the refund (the
order's own update has not come yet), the refund is added to its `refunds`.

An event whose resource is not kept yet waits for it (bridge/waiting.py): mapped when the order
comes, or after `lookup_wait_seconds` without it, as a mapping error saying so. Nothing here does
I/O: the worker attaches what it found to the event (`Event.lookups`), and the engine reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from bridge import jsoncodec
from bridge.model import Event


@dataclass(frozen=True)
class Lookup:
    name: str  # what rules read: `{{ order.email }}`
    source: str
    kind: str  # the kind of resource kept
    carried_by: frozenset[str]  # topics whose payload is the resource itself, its id in `id`
    named_by: frozenset[str]  # topics whose events read it
    ref_field: str  # the field of those events that names it
    forgotten_by: frozenset[str] = frozenset()  # topics whose events erase some (a customer's redaction)
    forget_field: str = ""  # the field of those events that lists the ids to forget


# Every topic whose body is a whole Shopify order (the REST Order resource).
ORDER = Lookup(
    name="order",
    source="shopify",
    kind="order",
    carried_by=frozenset({"orders/create", "orders/updated", "orders/paid", "orders/fulfilled",
                          "orders/partially_fulfilled", "orders/cancelled"}),
    named_by=frozenset({"refunds/create"}),
    ref_field="order_id",
    # Shopify's privacy webhook lists the customer's orders: the bridge forgets its copies of them.
    forgotten_by=frozenset({"customers/redact"}),
    forget_field="orders_to_redact",
)
LOOKUPS = (ORDER,)
_CARRIED = {(lookup.source, topic): lookup for lookup in LOOKUPS for topic in lookup.carried_by}
_NAMED = {(lookup.source, topic): lookup for lookup in LOOKUPS for topic in lookup.named_by}
_FORGOTTEN = {(lookup.source, topic): lookup for lookup in LOOKUPS for topic in lookup.forgotten_by}


def reads(source: str, topic: str) -> Lookup | None:
    """The lookup events of this topic read, if any."""
    return _NAMED.get((source, topic))


def carries(source: str, topic: str) -> Lookup | None:
    """The lookup whose resource events of this topic carry, if any."""
    return _CARRIED.get((source, topic))


def ref_text(value: Any) -> str | None:
    """A resource id as kept: 5873920188416718053 and "5873920188416718053" are one order."""
    if value is None or isinstance(value, (bool, dict, list)) or str(value).strip() == "":
        return None
    return str(value).strip()


class _TopLevelId(msgspec.Struct):
    """A body's top-level `id` alone: every order event is read for it, in ~15 us where parsing the whole
    10 KB order takes ~200 us (its 19-digit ids send it to the json module), a tenth of mapping it."""

    id: Any = None


_READ_ID = msgspec.json.Decoder(_TopLevelId)


def _payload(event: Event) -> Any:
    try:
        return jsoncodec.loads(event.body)
    except ValueError:
        return None


def resource_of(event: Event) -> tuple[str, str] | None:
    """(kind, id) of the resource this event carries whole, to keep for later lookups."""
    lookup = carries(event.source, event.topic)
    if lookup is None:
        return None
    try:
        ref = ref_text(_READ_ID.decode(event.body).id)
    except msgspec.MsgspecError:  # not JSON, or not an object
        return None
    return (lookup.kind, ref) if ref is not None else None


def forgotten(event: Event) -> tuple[tuple[str, str], ...]:
    """(kind, id) of every kept resource this event asks to erase (Shopify customers/redact)."""
    lookup = _FORGOTTEN.get((event.source, event.topic))
    if lookup is None:
        return ()
    payload = _payload(event)
    listed = payload.get(lookup.forget_field) if isinstance(payload, dict) else None
    refs = {ref for value in (listed if isinstance(listed, list) else []) if (ref := ref_text(value)) is not None}
    return tuple((lookup.kind, ref) for ref in sorted(refs))


def named_ref(event: Event) -> tuple[Lookup, str | None] | None:
    """The lookup this event reads and the id it names (None when its payload names none)."""
    lookup = reads(event.source, event.topic)
    if lookup is None:
        return None
    payload = _payload(event)
    return lookup, ref_text(payload.get(lookup.ref_field)) if isinstance(payload, dict) else None


def context(event: Event, payload: Any) -> tuple[dict[str, Any], list[str]]:
    """What the rules read beside the payload (`order`), and the errors of lookups that found nothing.

    An event mapped without lookups attached (a rule file's example without one, `bridge mappings
    try` without `--order`) reads nothing more and has no such error."""
    lookup = reads(event.source, event.topic)
    if lookup is None or lookup.name not in event.lookups:
        return {}, []
    body = event.lookups[lookup.name]
    ref = ref_text(payload.get(lookup.ref_field)) if isinstance(payload, dict) else None
    where = f"{event.source} {event.topic}"
    if ref is None:
        return {}, [f"{where}: `{lookup.ref_field}` names no {lookup.kind} (it is empty, or not an id), so the "
                    f"{lookup.kind} cannot be looked up; the rules ran without `{lookup.name}`"]
    if body is None:
        return {}, [f"{where}: the {event.source} {lookup.kind} {ref} (its `{lookup.ref_field}`) never reached "
                    f"the bridge, or reached it longer ago than BRIDGE_LOOKUP_DAYS; the rules ran without "
                    f"`{lookup.name}`. Once the {lookup.kind} has been received, replay this event"]
    try:
        value = jsoncodec.loads(body)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        return {}, [f"{where}: the kept {lookup.kind} {ref} is not a JSON object; the rules ran without "
                    f"`{lookup.name}`"]
    return {lookup.name: as_of(value, payload)}, []


def as_of(order: dict[str, Any], refund: Any) -> dict[str, Any]:
    """The order with this refund among its `refunds`: its kept state may predate the refund."""
    refunds = order.get("refunds")
    refunds = list(refunds) if isinstance(refunds, list) else []
    if isinstance(refund, dict):
        refund_id = ref_text(refund.get("id"))
        if refund_id is None or all(not isinstance(r, dict) or ref_text(r.get("id")) != refund_id
                                    for r in refunds):
            refunds.append(refund)
    return {**order, "refunds": refunds}
