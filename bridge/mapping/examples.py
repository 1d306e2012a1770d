"""Running the `examples:` of rule files: each payload must produce exactly the expected messages."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.consent import judge
from bridge.mapping.engine import CompiledRuleSet
from bridge.mapping.loader import TO_PATTERN, Example, LoadedRules
from bridge.mapping.lookups import reads
from bridge.model import Event, Outgoing


@dataclass(frozen=True)
class ExampleOutcome:
    example: Example
    ok: bool
    report: str  # empty when ok; otherwise a unified diff and/or missing errors

    @property
    def title(self) -> str:
        return f"{self.example.file}:{self.example.line} example '{self.example.name}' ({self.example.topic})"


def example_event(example: Example) -> Event:
    received = datetime.fromisoformat(example.received_at.replace("Z", "+00:00")).timestamp()
    # `order:` is attached as the worker attaches a kept order (bridge/waiting.py); an example without it
    # is mapped as one whose order never came, when its topic looks one up.
    lookup = reads(example.source, example.topic)
    attached: dict[str, bytes | None] = {}
    if lookup is not None:
        found = example.lookups.get(lookup.name)
        attached[lookup.name] = None if found is None else json.dumps(found).encode()
    return Event(id=0, source=example.source, topic=example.topic, dedupe_key=f"example:{example.name}",
                 received_at=received, headers=example.headers,
                 body=json.dumps(example.payload).encode(), lookups=attached)


def _as_expected(message: Outgoing, shape: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"to": f"{message.destination} {message.kind}"}
    if shape is None or "action" in shape:
        out["action"] = message.action
    if shape is None or "key" in shape:
        out["key"] = message.key
    out["fields"] = message.record
    return out


def _normalise_expected(item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    match = TO_PATTERN.match(str(item.get("to", "")))
    if match:
        out["to"] = f"{match.group(1)} {match.group(2)}"
    out.setdefault("fields", {})
    return {key: out[key] for key in ("to", "action", "key", "fields") if key in out}


def _dump(messages: list[dict[str, Any]]) -> list[str]:
    return json.dumps(messages, indent=2, ensure_ascii=False, sort_keys=True).splitlines(keepends=True)


def run_examples(ruleset: LoadedRules) -> list[ExampleOutcome]:
    by_file: dict[str, CompiledRuleSet] = {}
    outcomes = []
    for example in ruleset.examples:
        own = by_file.get(example.file)
        if own is None:
            own = by_file[example.file] = CompiledRuleSet([r for r in ruleset.rules if r.file == example.file])
        outcomes.append(run_example(own, example))
    return outcomes


def first_sight(messages: list[Outgoing]) -> list[Outgoing]:
    """The messages the store would queue for an event about a contact it knows nothing of yet: a consent
    decision without its time (only a change of flag) is then none (bridge/consent.py)."""
    return [m for m in messages if m.decision is None or judge(m.decision, [], 0).send]


def run_example(ruleset: CompiledRuleSet, example: Example) -> ExampleOutcome:
    result = ruleset.map(example_event(example))
    expected = [_normalise_expected(item) for item in example.expect]
    actual = [_as_expected(message, expected[i] if i < len(expected) else None)
              for i, message in enumerate(first_sight(result.messages))]
    report: list[str] = []
    if actual != expected:
        report.extend(difflib.unified_diff(_dump(expected), _dump(actual), "expected", "produced"))
    for wanted in example.errors:
        if not any(wanted in error for error in result.errors):
            report.append(f"expected an error containing {wanted!r}; got: {result.errors or 'no errors'}\n")
    if not example.errors and result.errors:
        report.extend(f"unexpected mapping error: {error}\n" for error in result.errors)
    return ExampleOutcome(example, not report, "".join(report))
