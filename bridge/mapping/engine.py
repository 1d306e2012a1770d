"""The engine: compiled rules turn one stored event into outgoing messages.

Rules are compiled once by the loader into closures; mapping an event builds
one shared evaluation context and walks each matching rule's `send` list.
Nothing here raises for bad data: every problem becomes a line in
`MapResult.errors` naming the file, the line, the rule and the field. A
record that could not be sent (a value that is not plain JSON, or too big)
is such a problem too, and so is an event whose rules run over the mapping
budget (bridge.mapping.budget).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jinja2.runtime import Context

from bridge.consent import ConsentDecision, contact_fingerprint, moment
from bridge.destinations.catalog import (
    BOOLEAN_FIELDS,
    CENTS_FIELDS,
    NUMBER_FIELDS,
    OMETRIA_EVENT_TYPE_MAX,
    OMNISEND_RECOMMENDED_EVENTS,
    WHOLE_NUMBER_FIELDS,
    KindSpec,
)
from bridge.log import quoted
from bridge.mapping import budget, lookups
from bridge.mapping.areas import Allowed, areas_of, describe, not_allowed, setting_name, setting_that_allows
from bridge.mapping.expressions import Compiled, new_scope
from bridge.mapping.filters import yes_or_no
from bridge.mapping.limits import unsendable
from bridge.mapping.result import MapResult
from bridge.model import IDEMPOTENCY_NAMESPACE, Event, Outgoing

Build = Callable[[Context], Any]

# Ometria merges these record types field by field when `@merge` is true;
# without it a partial update may blank stored fields (apis.md 2.2).
MERGED_BY_DEFAULT = {("ometria", "contact"), ("ometria", "order"), ("ometria", "product")}


class FieldError(Exception):
    """A field could not be computed; `path` is where in the record, `line` where in its file (0: unknown)."""

    def __init__(self, path: str, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.line = line


def _empty(value: Any) -> bool:
    return value is None or (value.__class__ in (str, dict, list) and not value)


def leaf(compiled: Compiled, path: str, line: int = 0) -> Build:
    evaluate = compiled.evaluate
    if compiled.kind == "const":
        return evaluate

    def build(ctx: Context) -> Any:
        try:
            value = evaluate(ctx)
        except FieldError:
            raise
        except Exception as exc:  # a filter or the sandbox refused: one message fails, not the worker
            raise FieldError(path, f"`{compiled.source}` failed: {exc}", line) from None
        if value.__class__ is str and len(value) > budget.COUNTED_TEXT:
            budget.spend_text(len(value))
        return value

    return build


def obj(entries: list[tuple[str, Build]], when: Build | None = None) -> Build:
    def build(ctx: Context) -> dict[str, Any] | None:
        if when is not None and not when(ctx):
            return None
        out: dict[str, Any] = {}
        for name, make in entries:
            value = make(ctx)
            if not _empty(value):
                out[name] = value
        return out

    return build


def seq(items: list[Build]) -> Build:
    def build(ctx: Context) -> list[Any]:
        out = []
        for make in items:
            value = make(ctx)
            if not _empty(value):
                out.append(value)
        return out

    return build


def for_each(source: Build, name: str, item: Build, when: Build | None = None) -> Build:
    def build(ctx: Context) -> list[Any] | None:
        values = source(ctx)
        if not values or not isinstance(values, (list, tuple)):
            return None
        scope = ctx.vars
        saved = scope.get(name, _UNSET)
        out = []
        try:
            for value in values:
                budget.spend()
                scope[name] = value
                if when is not None and not when(ctx):
                    continue
                made = item(ctx)
                if not _empty(made):
                    out.append(made)
        finally:
            if saved is _UNSET:
                scope.pop(name, None)
            else:
                scope[name] = saved
        return out

    return build


_UNSET = object()


def condition(compiled: Compiled, what: str, line: int = 0) -> Build:
    evaluate = compiled.evaluate

    def check(ctx: Context) -> bool:
        try:
            return bool(evaluate(ctx))
        except Exception as exc:
            raise FieldError(what, f"condition `{compiled.source}` failed: {exc}", line) from None

    return check


def get_path(record: Any, path: str) -> Any:
    value = record
    for step in path.split("."):
        if isinstance(value, dict):
            value = value.get(step)
        elif isinstance(value, list) and step.isdigit():
            index = int(step)
            value = value[index] if index < len(value) else None
        else:
            return None
    return value


def set_path(record: dict[str, Any], path: str, value: Any) -> None:
    steps = path.split(".")
    for step in steps[:-1]:
        record = record.setdefault(step, {})
    record[steps[-1]] = value


@dataclass
class DecisionSpec:
    """`decision:` of a message that writes consent: whose decision, on which channel, subscribed or not,
    when the person decided (`at`), and, for a source that gives no such time, when its flag changed."""

    contact: Build
    channel: str
    state: Build
    at: Build
    changed: Build | None
    line: int
    sources: dict[str, str] = field(default_factory=dict)  # key -> the payload fields it reads, for `--explain`

    def make(self, ctx: Context, source: str) -> ConsentDecision | None:
        """The decision of this event, or None when it states none (no yes/no, no time): then no consent
        is sent. A time or contact that cannot be read is a FieldError."""
        subscribed = yes_or_no(self.state(ctx))
        if subscribed is None:
            return None
        at = self._time("at", self.at, ctx)
        changed = self._time("changed", self.changed, ctx) if self.changed is not None else None
        if at is None and changed is None:
            return None
        contact = self.contact(ctx)
        if not isinstance(contact, str) or not contact.strip():
            raise FieldError("decision.contact", f"{self.sources.get('contact')} gave no e-mail: a consent "
                                                 "decision must say whose it is", self.line)
        return ConsentDecision(contact_fingerprint(contact), self.channel, subscribed, source, at, changed)

    def _time(self, name: str, build: Build, ctx: Context) -> float | None:
        value = build(ctx)
        try:
            return moment(value)
        except (TypeError, ValueError):
            raise FieldError(f"decision.{name}", f"{self.sources.get(name)} gave {quoted(value)}, which is not "
                                                 "a date and time", self.line) from None


@dataclass
class MessageSpec:
    destination: str
    kind: str
    spec: KindSpec
    action: str
    index: int
    line: int
    build: Build
    when: Build | None = None
    key: Build | None = None
    clear: tuple[str, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)  # field path -> template, for error text
    areas: tuple[str, ...] = ()  # every area the message can write (areas.py)
    writes: dict[str, list[str]] = field(default_factory=dict)  # area -> the fields that write it
    places: dict[str, tuple[int, int]] = field(default_factory=dict)  # field (as in `writes`) -> line, col
    decision: DecisionSpec | None = None  # a consent message's decision; without one it goes unjudged (a note)

    @property
    def label(self) -> str:
        return f"{self.destination} {self.kind}"


@dataclass
class Rule:
    name: str
    file: str
    line: int
    source: str
    topics: tuple[str, ...]
    messages: list[MessageSpec]
    ignore: bool = False
    when: Build | None = None


def default_key(spec: KindSpec, record: dict[str, Any]) -> str:
    for path in spec.key_fields:
        value = get_path(record, path)
        if not _empty(value):
            return f"{_key_prefix(spec, path)}:{value}"
    return ""


def _key_prefix(spec: KindSpec, path: str) -> str:
    last = path.rsplit(".", 1)[-1].lower()
    for noun in ("order", "cart", "product", "category"):
        if noun in last:
            return noun
    if last == "id" and spec.kind in ("order", "product", "cart"):
        return spec.kind
    return "contact"


def event_metadata(event: Event) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    for name, value in event.headers.items():
        lowered = name.lower()
        headers[lowered] = value
        headers[lowered.replace("-", "_")] = value  # `event.headers.x_shopify_shop_domain` in a tag
    received = datetime.fromtimestamp(event.received_at, tz=UTC).isoformat().replace("+00:00", "Z")
    return {
        "id": event.id,
        "source": event.source,
        "topic": event.topic,
        "received_at": received,
        "dedupe_key": event.dedupe_key,
        "uuid": str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{event.source}\x1f{event.dedupe_key}")),
        "headers": headers,
        "shop_domain": headers.get("x_shopify_shop_domain") or headers.get("x_wc_webhook_source"),
    }


class CompiledRuleSet:
    """The rules of one directory, indexed by (source, topic). Implements `RuleSet`."""

    def __init__(self, rules: list[Rule], files: tuple[str, ...] = (), allowed_areas: Allowed | None = None) -> None:
        self.rules = rules
        self.files = files
        self.allowed_areas = allowed_areas
        self._by_topic: dict[tuple[str, str], list[Rule]] = {}
        for rule in rules:
            for topic in rule.topics:
                self._by_topic.setdefault((rule.source, topic), []).append(rule)
        # Policy refusals: the rule is fine, the deployment forbids an area it writes.
        self.blocked: list[str] = []
        self._blocked: dict[int, str] = {}
        self._position = {id(rule): position for position, rule in enumerate(rules)}
        if allowed_areas is not None:
            for rule in rules:
                for message in rule.messages:
                    self._refuse(rule, message, allowed_areas)

    def _refuse(self, rule: Rule, message: MessageSpec, allowed: Allowed) -> None:
        refused = not_allowed(message.destination, message.areas, allowed)
        if not refused:
            return
        what = describe(message.writes, refused)
        line, col = message.places.get(message.writes[refused[0]][0], (message.line, 1))
        self.blocked.append(f"{rule.file}:{line}:{col}: note: this message writes {what} to {message.destination}, "
                            f"which is not allowed; to allow it set "
                            f"{setting_that_allows(message.destination, allowed, refused)}")
        self._blocked[id(message)] = (f"blocked: this message writes {what} to {message.destination}, "
                                      f"not allowed by {setting_name(message.destination)}; "
                                      f"{setting_that_allows(message.destination, allowed, refused)} would allow it")

    def __len__(self) -> int:
        return len(self.rules)

    def rules_for(self, source: str, topic: str) -> list[Rule]:
        return self._by_topic.get((source, topic), [])

    def map(self, event: Event) -> MapResult:
        rules = self.rules_for(event.source, event.topic)
        result = MapResult()
        if not rules:
            return result
        try:
            payload = event.payload()
        except ValueError as exc:
            result.errors.append(f"{event.source} {event.topic}: the body is not JSON ({exc})")
            return result
        root: dict[str, Any] = dict(payload) if isinstance(payload, dict) else {}
        root.setdefault("payload", payload)
        root["event"] = event_metadata(event)
        found, missing = lookups.context(event, payload)
        root.update(found)  # `order`: a refund's order, kept from its own webhooks
        result.errors.extend(missing)
        ctx = new_scope(root)
        applied = False
        budget.start(event.id)
        for rule in rules:
            budget.enter(self._position[id(rule)], event.id)
            try:
                if rule.when is not None and not rule.when(ctx):
                    continue
            except FieldError as exc:
                result.errors.append(f"{rule.file}:{exc.line or rule.line} rule '{rule.name}': {exc.message}")
                continue
            except budget.OverBudget as exc:
                return over_budget(rule, str(exc))
            applied = True
            result.rules.append(rule.name)
            if rule.ignore:
                result = MapResult(result.messages, result.errors, result.rules, ignored=True, withheld=result.withheld)
                continue
            try:
                for message in rule.messages:
                    self._produce(rule, message, ctx, result)
            except budget.OverBudget as exc:
                return over_budget(rule, str(exc))
        if not applied:
            # The topic has rules but every condition said no: a deliberate skip.
            return MapResult(result.messages, result.errors, result.rules, ignored=True, withheld=result.withheld)
        return result

    def _produce(self, rule: Rule, message: MessageSpec, ctx: Context, result: MapResult) -> None:
        def where(line: int = 0) -> str:  # the field's line when the error knows it, else the message's
            return f"{rule.file}:{line or message.line} rule '{rule.name}' → {message.label}"

        try:
            if message.when is not None and not message.when(ctx):
                return
        except FieldError as exc:
            result.errors.append(f"{where(exc.line)}: {exc.path}: {exc.message}")
            return
        blocked = self._blocked.get(id(message))
        if blocked is not None:
            # A notice, only when the message would have been sent: the deployment chose this, the rule is fine.
            result.withheld.append(f"{where()}: {blocked}")
            return
        decision = None
        if message.decision is not None:
            try:
                decision = message.decision.make(ctx, rule.source)
            except FieldError as exc:
                result.errors.append(f"{where(exc.line)}: {exc.path}: {exc.message}")
                return
            if decision is None:  # nobody decided anything here: a default, or a state that is no consent
                return
        try:
            record = message.build(ctx) or {}
            key = message.key(ctx) if message.key is not None else None
        except FieldError as exc:
            result.errors.append(f"{where(exc.line)}: {exc.path}: {exc.message}")
            return
        if (message.destination, message.kind) == ("omnisend", "contact"):
            _drop_identifiers_without_id(record)
        missing = _missing_required(message, record)
        if missing:
            result.errors.append(f"{where()}: {missing}")
            return
        wrong = type_problems(message.destination, message.kind, record)
        if wrong:
            result.errors.extend(f"{where(message.places.get(path, (0, 0))[0])}: {problem}" for path, problem in wrong)
            return
        bad = unsendable(record) or (unsendable({"key": key}) if not _empty(key) else None)
        if bad is not None:
            path, problem = bad
            result.errors.append(f"{where(_line_of(message, path))}: {path}: the value {problem}")
            return
        for path in message.clear:
            set_path(record, path, None)
        if (message.destination, message.kind) in MERGED_BY_DEFAULT:
            record.setdefault("@merge", True)
        areas = areas_of(message.destination, message.kind, message.action, record, message.clear)
        refused = not_allowed(message.destination, areas, self.allowed_areas)
        if refused:
            # A value computed as a whole (`contact: "{{ customer }}"`) brought in what the rule did not name.
            result.withheld.append(f"{where()}: blocked: this record writes {', '.join(refused)} to "
                                   f"{message.destination}, not allowed by {setting_name(message.destination)}; "
                                   f"{setting_that_allows(message.destination, self.allowed_areas or {}, refused)} "
                                   "would allow it")
            return
        result.messages.append(Outgoing(
            destination=message.destination,
            kind=message.kind,
            record=record,
            rule=rule.name,
            action=message.action,
            key=str(key) if not _empty(key) else default_key(message.spec, record),
            index=message.index,
            areas=areas,
            decision=decision,
        ))


def over_budget(rule: Rule, why: str) -> MapResult:
    """The event whose mapping ran over its budget: one error naming the rule, no messages."""
    return MapResult(errors=[f"{rule.file}:{rule.line} rule '{rule.name}': mapping this event stopped: {why}, "
                             "the mapping budget of one event; the rule must do less for each event"],
                     rules=[rule.name], over_budget=True)


def _line_of(message: MessageSpec, path: str) -> int:
    """The line of the field a record path (`properties.lineItems.0.sku`) came from, or 0."""
    steps: list[str] = []
    for step in path.split("."):
        if step.isdigit() and steps:
            steps[-1] += "[]"
        else:
            steps.append(step)
    while steps:
        place = message.places.get(".".join(steps))
        if place is not None:
            return place[0]
        if steps[-1].endswith("[]"):  # `note[]` is inside the value of `note`
            steps[-1] = steps[-1][:-2]
        else:
            steps.pop()
    return 0


def _drop_identifiers_without_id(record: dict[str, Any]) -> None:
    """An Omnisend identifier whose value came out empty (a profile with no phone) is left out, as an
    empty field is: Omnisend requires `id` on every identifier and would refuse the whole contact."""
    identifiers = record.get("identifiers")
    if isinstance(identifiers, list):
        kept = [i for i in identifiers if not (isinstance(i, dict) and _empty(i.get("id")))]
        if kept:
            record["identifiers"] = kept
        else:
            record.pop("identifiers")


def _missing_required(message: MessageSpec, record: dict[str, Any]) -> str:
    spec = message.spec
    if (spec.destination, spec.kind, message.action) == ("omnisend", "contact", "update"):
        first = (record.get("identifiers") or [{}])[0]
        if not isinstance(first, dict) or first.get("type") != "email" or _empty(first.get("id")):
            return ("identifiers.0 is not an email; an Omnisend contact update finds the contact by email: "
                    "put `type: email` first")
    elif (spec.destination, spec.kind) == ("omnisend", "contact"):
        for number, identifier in enumerate(record.get("identifiers") or []):
            if not isinstance(identifier, dict) or _empty(identifier.get("type")):
                return f"identifiers.{number} has no type; Omnisend needs `type: email` or `type: phone`"
            statuses = [c.get("status") for c in (identifier.get("channels") or {}).values() if isinstance(c, dict)]
            if not any(statuses):
                # Omnisend reads a missing status as "subscribed": never let consent be invented.
                return (f"identifiers.{number} has no channel status; Omnisend would subscribe it. "
                        "Guard the identifier with `when:` so it is only sent when consent is known")
    if message.action in spec.partial_actions:  # it names its record, nothing more
        missing = [path for path in spec.key_fields[:1] if _empty(get_path(record, path))]
        return f"{missing[0]} is empty; {_explain(message, missing[0])}" if missing else ""
    for path in spec.required:
        if _empty(get_path(record, path)):
            return f"{path} is empty; {_explain(message, path)}"
    for group in spec.any_of:
        if all(_empty(get_path(record, path)) for path in group):
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
