"""The `examples:` of rule files: each payload must produce exactly the expected messages.

An example is read with the rules of its file, and the payload paths those rules read are checked
against its payload (a near miss is almost surely a typo); running the examples maps each payload
with its own file's rules and compares what comes out with what the example expects.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from bridge.consent import judge
from bridge.mapping.compiler import TO_PATTERN, read_on
from bridge.mapping.engine import CompiledRuleSet
from bridge.mapping.lookups import LOOKUPS, reads
from bridge.mapping.rule import Rule
from bridge.mapping.rulefile import RuleFile, node_position, plain, position
from bridge.model import Event, Outgoing

if TYPE_CHECKING:
    from bridge.mapping.loader import LoadedRules

# `order:` is what a refund's rules read as `order` (bridge/mapping/lookups.py): the order's webhook body.
EXAMPLE_KEYS = ("name", "on", "payload", "order", "headers", "received_at", "expect", "errors", "description")
EXPECT_KEYS = ("to", "action", "key", "fields")
LOOKUP_NAMES = tuple(lookup.name for lookup in LOOKUPS)


@dataclass
class Example:
    """An example from a rule file: this payload must produce exactly these messages."""

    file: str
    line: int
    name: str
    source: str
    topic: str
    payload: Any
    headers: dict[str, str]
    received_at: str
    expect: list[dict[str, Any]]
    errors: list[str]
    rules: list[str] = field(default_factory=list)  # the names of the rules in the example's own file
    lookups: dict[str, Any] = field(default_factory=dict)  # `order:` -> what the rules read as `order`


class ExampleReader:
    """Reads the examples of one file; `examples` are those read, one per topic each names."""

    def __init__(self, rulefile: RuleFile, payload_roots: tuple[Path, ...] = ()) -> None:
        self.rulefile = rulefile
        self.payload_roots = payload_roots
        self.examples: list[Example] = []

    def read(self, parent: CommentedSeq, index: int, node: Any) -> None:
        line, col = position(parent, index)
        if not isinstance(node, CommentedMap):
            self.rulefile.problem(line, col, "each example is a mapping starting with `- name:`")
            return
        self.rulefile.unknown_keys(node, EXAMPLE_KEYS, "an example")
        line = node_position(node)[0]
        name = str(node.get("name") or f"example {index + 1}")
        on = read_on(self.rulefile, node, line, col)
        if on is None:
            return
        source, topics = on
        payload = self.payload(node, line, col)
        found = {key: self.payload(node, line, col, key) for key in LOOKUP_NAMES if key in node}
        for key in found:
            if not any((lookup := reads(source, topic)) is not None and lookup.name == key for topic in topics):
                kline, kcol = position(node, key)
                readers = ", ".join(f"{lookup.source} {' / '.join(sorted(lookup.named_by))}"
                                    for lookup in LOOKUPS if lookup.name == key)
                self.rulefile.problem(kline, kcol, f"`{key}:` is read only by {readers}: this example's rules cannot read it")
        expect = node.get("expect", [])
        if not isinstance(expect, list):
            eline, ecol = position(node, "expect")
            self.rulefile.problem(eline, ecol, "`expect:` is a list of messages (`- to: omnisend event`), or `[]` for none")
            return
        for i, item in enumerate(expect):
            iline, icol = position(expect, i)
            if not isinstance(item, CommentedMap) or "to" not in item:
                self.rulefile.problem(iline, icol, "each expected message starts with `- to: <destination> <record type>`")
                continue
            self.rulefile.unknown_keys(item, EXPECT_KEYS, "an expected message")
        errors = [str(e) for e in node.get("errors", []) or []]
        headers = {str(k): str(v) for k, v in (node.get("headers") or {}).items()}
        received = str(node.get("received_at", "2026-11-23T09:30:00Z"))
        for topic in topics:
            self.examples.append(Example(self.rulefile.file, line, name, source, topic, payload, headers, received,
                                         plain(expect), errors, lookups=found))

    def payload(self, node: CommentedMap, line: int, col: int, key: str = "payload") -> Any:
        """The example's `payload:` (or `order:`): inline, or read from the JSON file it names."""
        if key not in node:
            self.rulefile.problem(line, col, "the example needs `payload:`: the webhook body inline, or a path to a JSON file")
            return None
        value = node[key]
        if isinstance(value, (dict, list)):
            return plain(value)
        pline, pcol = position(node, key)
        candidates = [self.rulefile.path.parent / str(value), self.rulefile.path.parent.parent / str(value),
                      *(root / str(value) for root in self.payload_roots)]
        for candidate in candidates:
            if candidate.is_file():
                try:
                    return json.loads(candidate.read_text(encoding="utf-8"))
                except RecursionError:
                    self.rulefile.example_problem(pline, pcol, f"{value} is nested too deeply to read")
                    return None
                except ValueError as exc:
                    self.rulefile.example_problem(pline, pcol, f"{value} is not valid JSON: {exc}")
                    return None
        self.rulefile.example_problem(pline, pcol, f"payload file `{value}` not found (looked next to this file and in the project root)")
        return None


def check_reads_against_examples(rulefile: RuleFile, rules: list[Rule], examples: list[Example],
                                 reads: dict[str, list[tuple[str, str, int, int]]]) -> None:
    """A payload path a rule reads that no example payload of its topic has, but a near name does:
    almost surely a typo, which would otherwise quietly leave the field out of every message."""
    for rule in rules:
        payloads = [{**e.payload, **{k: v for k, v in e.lookups.items() if v is not None}}
                    if isinstance(e.payload, dict) else e.payload for e in examples
                    if e.source == rule.source and e.topic in rule.topics and e.payload is not None]
        if not payloads:
            continue
        seen: set[tuple[str, int, int]] = set()
        for path, written, line, col in reads.get(rule.name, []):
            if path.split(".")[0] == "event" or (path, line, col) in seen:
                continue
            seen.add((path, line, col))
            misses = [miss for payload in payloads if (miss := missing_step(payload, path)) is not None]
            if len(misses) < len(payloads):
                continue  # some example has it: an optional field
            step, keys = misses[0]
            close = difflib.get_close_matches(step, keys, n=1, cutoff=0.75)
            if close:
                rulefile.example_problem(
                    line, col,
                    f"`{written}` is not in the example payload for {rule.source} "
                    f"{'/'.join(rule.topics)}: there is no `{step}`; did you mean `{close[0]}`?")


def missing_step(payload: Any, path: str) -> tuple[str, list[str]] | None:
    """None if `path` (dots; `name[]` = any element of that list) leads somewhere in `payload`, else the
    first missing step with the names that were there."""
    nodes = [payload]
    for raw in path.split("."):
        step, each = (raw[:-2], True) if raw.endswith("[]") else (raw, False)
        found, keys = [], []
        for node in nodes:
            if isinstance(node, dict):
                keys += [str(k) for k in node]
                if step in node:
                    found.append(node[step])
            elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
                found.append(node[int(step)])
            elif isinstance(node, list):
                return None  # a list read by an attribute (a filter's job): not ours to judge
        if not found:
            return step, sorted(set(keys))
        if each:
            found = [item for value in found if isinstance(value, list) for item in value]
            if not found:
                return None  # an empty list in the example: nothing to compare with
        nodes = [n for n in found if n is not None]
        if not nodes:
            return None
    return None


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
