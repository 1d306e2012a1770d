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
from datetime import UTC, datetime
from typing import Any

from jinja2.runtime import Context

from bridge.destinations.catalog import KindSpec
from bridge.mapping import budget, lookups
from bridge.mapping.areas import Allowed, areas_of, describe, not_allowed, setting_name, setting_that_allows
from bridge.mapping.expressions import new_scope
from bridge.mapping.fields import FieldError, empty, get_path, set_path
from bridge.mapping.limits import unsendable
from bridge.mapping.result import MapResult
from bridge.mapping.rule import MessageSpec, Rule
from bridge.mapping.types import missing_required, type_problems
from bridge.model import IDEMPOTENCY_NAMESPACE, Event, Outgoing

# Ometria merges these record types field by field when `@merge` is true;
# without it a partial update may blank stored fields (apis.md 2.2).
MERGED_BY_DEFAULT = {("ometria", "contact"), ("ometria", "order"), ("ometria", "product")}


def default_key(spec: KindSpec, record: dict[str, Any]) -> str:
    for path in spec.key_fields:
        value = get_path(record, path)
        if not empty(value):
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
        missing = missing_required(message, record)
        if missing:
            result.errors.append(f"{where()}: {missing}")
            return
        wrong = type_problems(message.destination, message.kind, record)
        if wrong:
            result.errors.extend(f"{where(message.places.get(path, (0, 0))[0])}: {problem}" for path, problem in wrong)
            return
        bad = unsendable(record) or (unsendable({"key": key}) if not empty(key) else None)
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
            key=str(key) if not empty(key) else default_key(message.spec, record),
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
        kept = [i for i in identifiers if not (isinstance(i, dict) and empty(i.get("id")))]
        if kept:
            record["identifiers"] = kept
        else:
            record.pop("identifiers")

