"""What a destination's record types require of a message: the fields it must set and the types of
their values.

A rule is checked when it loads, from the fields it writes (a required field it never sets would
fail every event), and each record it produces is checked before it is queued (an expression that
gave nothing, text where a number belongs), so the destination is never sent what it refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.destinations.catalog import (
    BOOLEAN_FIELDS,
    CENTS_FIELDS,
    NUMBER_FIELDS,
    OMETRIA_EVENT_TYPE_MAX,
    OMNISEND_RECOMMENDED_EVENTS,
    WHOLE_NUMBER_FIELDS,
    KindSpec,
)
from bridge.mapping.fields import empty, get_path
from bridge.mapping.rule import MessageSpec


def missing_required(message: MessageSpec, record: dict[str, Any]) -> str:
    """Why a produced record lacks what its destination requires, or "" when it has it all."""
    spec = message.spec
    if (spec.destination, spec.kind, message.action) == ("omnisend", "contact", "update"):
        first = (record.get("identifiers") or [{}])[0]
        if not isinstance(first, dict) or first.get("type") != "email" or empty(first.get("id")):
            return ("identifiers.0 is not an email; an Omnisend contact update finds the contact by email: "
                    "put `type: email` first")
    elif (spec.destination, spec.kind) == ("omnisend", "contact"):
        for number, identifier in enumerate(record.get("identifiers") or []):
            if not isinstance(identifier, dict) or empty(identifier.get("type")):
                return f"identifiers.{number} has no type; Omnisend needs `type: email` or `type: phone`"
            statuses = [c.get("status") for c in (identifier.get("channels") or {}).values() if isinstance(c, dict)]
            if not any(statuses):
                # Omnisend reads a missing status as "subscribed": never let consent be invented.
                return (f"identifiers.{number} has no channel status; Omnisend would subscribe it. "
                        "Guard the identifier with `when:` so it is only sent when consent is known")
    if message.action in spec.partial_actions:  # it names its record, nothing more
        missing = [path for path in spec.key_fields[:1] if empty(get_path(record, path))]
        return f"{missing[0]} is empty; {_explain(message, missing[0])}" if missing else ""
    for path in spec.required:
        if empty(get_path(record, path)):
            return f"{path} is empty; {_explain(message, path)}"
    for group in spec.any_of:
        if all(empty(get_path(record, path)) for path in group):
            names = ", ".join(group[:-1]) + f" and {group[-1]}" if len(group) > 1 else group[0]
            hints = "; ".join(_explain(message, path) for path in group if path in message.sources)
            return f"{names} are all empty (one is needed)" + (f"; {hints}" if hints else "")
    return ""


def _explain(message: MessageSpec, path: str) -> str:
    source = message.sources.get(path)
    if source is None:
        return "the rule does not set it"
    return f"`{source}` gave nothing for this event"


def type_problems(destination: str, kind: str, record: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, problem) for text where the destination takes a number or true/false: what a forgotten
    `| decimal` sends. The destination would refuse the record, Ometria only later and out of sight."""
    checks = _TYPE_CHECKS.get((destination, kind))
    problems: list[tuple[str, str]] = []
    if (destination, kind) == ("omnisend", "event") and record.get("eventName") not in OMNISEND_RECOMMENDED_EVENTS:
        return problems  # a custom event's properties are free-form: "tier": "Gold" is fine
    if (destination, kind) == ("ometria", "custom_event"):
        name = record.get("event_type")
        if isinstance(name, str) and len(name) > OMETRIA_EVENT_TYPE_MAX:  # a name made from the event's data
            problems.append(("event_type", f"the event name \"{name}\" has {len(name)} characters and Ometria keeps "
                                           f"only the first {OMETRIA_EVENT_TYPE_MAX} (\"{name[:OMETRIA_EVENT_TYPE_MAX]}\"): "
                                           "make the name in `to:` shorter"))
    if checks is not None:
        _check_types(record, checks, destination, problems)
    return problems


# Per record type, the fields NUMBER_FIELDS and BOOLEAN_FIELDS name as a tree, so that one walk of a
# record checks them all (this runs for every message): {"lineitems[]": {"quantity": (path, wants)}}.
_Checks = dict[str, Any]


def _type_tree(where: tuple[str, str]) -> _Checks:
    tree: _Checks = {}
    cents = CENTS_FIELDS.get(where, ())
    for wants, paths in (("number", NUMBER_FIELDS.get(where, ())), ("boolean", BOOLEAN_FIELDS.get(where, ()))):
        for path in paths:
            *parents, last = path.split(".")
            node = tree
            for step in parents:
                node = node.setdefault(step, {})
            node[last] = (path, wants, _fix(path, wants, cents))
    return tree


def _fix(path: str, wants: str, cents: tuple[str, ...]) -> str:
    if wants == "boolean":
        return "make its expression give true or false"
    if path in cents:
        return "add `| cents` to its expression (this field is in cents: 22.50 is 2250)"
    if path.rsplit(".", 1)[-1] in WHOLE_NUMBER_FIELDS:
        return "add `| int` to its expression"
    return "add `| decimal` to its expression"


_TYPE_CHECKS: dict[tuple[str, str], _Checks] = {where: _type_tree(where) for where in {*NUMBER_FIELDS, *BOOLEAN_FIELDS}}


def _check_types(node: Any, checks: _Checks, destination: str, problems: list[tuple[str, str]]) -> None:
    if not isinstance(node, dict):
        return
    for step, check in checks.items():
        each = step.endswith("[]")
        value = node.get(step[:-2] if each else step)
        if value is None:
            continue
        for item in (value if isinstance(value, list) else ()) if each else (value,):
            if isinstance(check, dict):
                _check_types(item, check, destination, problems)
            elif check[1] == "number" and isinstance(item, (str, bool)):
                problems.append((check[0], f"`{check[0]}` is {item!r}, but {destination} needs a number there: {check[2]}"))
            elif check[1] == "boolean" and not isinstance(item, bool):
                problems.append((check[0], f"`{check[0]}` is {item!r}, but {destination} needs true or false there: "
                                           f"{check[2]}"))


# The example given for a required field a message does not set, where a plain `field: "{{ ... }}"` is no help.
REQUIRED_EXAMPLES = {
    ("omnisend", "event", "origin"): "origin: api",
    ("omnisend", "event", "eventName"): 'to: omnisend event "placed order"',
}


def sets(sources: Mapping[str, str], path: str) -> bool:
    """Whether a field of the rule writes `path`: the field itself, something inside it, or a whole
    object around it (`contact: "{{ customer }}"`)."""
    return any(s == path or s.startswith(path + ".") or path.startswith(s + ".") for s in sources)


def unset_required(spec: KindSpec, sources: Mapping[str, str], action: str) -> list[str]:
    """A field the destination requires that the rule never sets would fail every event: say so when it loads.
    `sources` are the field paths the message sets. A partial action (an order's status update, a cart's
    closing) needs only what names the record."""
    what = f"{spec.destination} {spec.kind}"
    if action in spec.partial_actions:
        return [f"{what} {action} needs `{path}` and this message does not set it"
                for path in spec.key_fields[:1] if not sets(sources, path)]
    problems = []
    for path in spec.required:
        if not sets(sources, path):
            example = REQUIRED_EXAMPLES.get((spec.destination, spec.kind, path), f'{path}: "{{{{ ... }}}}"')
            problems.append(f"{what} needs `{path}` and this message does not set it; "
                            f"add it under `fields:`, like `{example}`")
    for group in spec.any_of:
        if not any(sets(sources, path) for path in group):
            problems.append(f"{what} needs one of {', '.join(f'`{p}`' for p in group)} and this message "
                            "sets none; add one under `fields:`")
    return problems


def fixed_event_type_too_long(spec: KindSpec, sources: Mapping[str, str]) -> str | None:
    """Ometria keeps the first 32 characters of a custom event's `event_type` (apis.md §2.5): two
    long names that start alike would arrive as one, so a fixed name over 32 is refused."""
    if (spec.destination, spec.kind) != ("ometria", "custom_event"):
        return None
    name = sources.get("event_type")
    if name is None or "{{" in name or len(name) <= OMETRIA_EVENT_TYPE_MAX:
        return None
    return (f"Ometria keeps only the first {OMETRIA_EVENT_TYPE_MAX} characters of an event type: "
            f"\"{name}\" ({len(name)}) would arrive as \"{name[:OMETRIA_EVENT_TYPE_MAX]}\"; "
            "use a shorter name")
