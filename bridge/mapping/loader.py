"""Reading mappings/*.yaml into compiled rules, collecting every problem with its place.

A marketer fixes a file faster when all its mistakes are listed at once, so
the loader never stops at the first problem: it records
"path:line:col: what is wrong; how to fix it" and carries on, and raises
`RulesError` with the full list at the end.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from bridge.consent import CHANNELS as CONSENT_CHANNELS
from bridge.destinations.catalog import OMETRIA_EVENT_TYPE_MAX, KindSpec
from bridge.errors import RulesError
from bridge.mapping import limits
from bridge.mapping.areas import Allowed, dotted, written_by
from bridge.mapping.check import (
    CONSENT_SOURCES,
    ConsentUse,
    consent_role,
    did_you_mean,
    find_kind,
    foreign_consent_reads,
    known_fields,
)
from bridge.mapping.engine import (
    Build,
    CompiledRuleSet,
    DecisionSpec,
    MessageSpec,
    Rule,
    condition,
    for_each,
    leaf,
    obj,
    seq,
)
from bridge.mapping.expressions import Compiled, ExpressionError, compile_condition, compile_field
from bridge.mapping.lookups import LOOKUPS, reads
from bridge.sources import topics as topic_catalog

SCHEMA_LINE = "# yaml-language-server: $schema="
FILE_KEYS = ("rules", "examples")
RULE_KEYS = ("name", "on", "when", "send", "description")
MESSAGE_KEYS = ("to", "action", "key", "when", "decision", "clear", "allow loop", "fields", "description")
LOOP_KEY = "allow loop"  # a rule on Omneo's own webhooks that writes to Omneo says so (bridge.echo)
DECISION_KEYS = ("contact", "channel", "state", "at", "changed", "description")
DECISION_EXAMPLE = ("decision: {contact: \"{{ email }}\", channel: email, state: \"{{ email_marketing_consent.state }}\", "
                    "at: \"{{ email_marketing_consent.consent_updated_at }}\"}")
FOR_EACH_KEYS = ("for each", "item", "as", "when")
# `order:` is what a refund's rules read as `order` (bridge/mapping/lookups.py): the order's webhook body.
EXAMPLE_KEYS = ("name", "on", "payload", "order", "headers", "received_at", "expect", "errors", "description")
EXPECT_KEYS = ("to", "action", "key", "fields")
TO_PATTERN = re.compile(r"""^\s*([A-Za-z][\w-]*)\s+([A-Za-z][\w-]*)(?:\s+(?:"([^"]*)"|'([^']*)'))?\s*$""")
NAMED_KINDS = {("omnisend", "event"): "eventName", ("ometria", "custom_event"): "event_type"}
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


def display_path(path: Path) -> str:
    """Paths in messages are relative to the working directory when that is shorter."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return relative if not relative.startswith("..") else str(path)


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, file: str, line: int, col: int, message: str) -> None:
        self.items.append(f"{file}:{line}:{col}: {message}")


def _position(parent: Any, key: Any, value: bool = True) -> tuple[int, int]:
    """1-based line and column of a mapping key (or its value) or a sequence item."""
    try:
        if isinstance(parent, CommentedMap):
            line, col = parent.lc.value(key) if value else parent.lc.key(key)
        elif isinstance(parent, CommentedSeq):
            line, col = parent.lc.item(key)
        else:
            line, col = parent.lc.line, parent.lc.col
        return line + 1, col + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return 1, 1


def _node_position(node: Any) -> tuple[int, int]:
    try:
        return node.lc.line + 1, node.lc.col + 1
    except AttributeError:
        return 1, 1


def _plain(node: Any) -> Any:
    """ruamel's commented containers to plain dicts and lists (examples compare with these)."""
    if isinstance(node, dict):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(item) for item in node]
    return node


@dataclass
class _Target:
    """Where the field being compiled will land, for checks and error texts."""

    spec: KindSpec
    rule: str
    line: int
    sources: dict[str, str]
    consent: list[ConsentUse]
    source: str = ""
    # every field path the message can write, with its place, for the areas check
    paths: dict[tuple[str, ...], tuple[int, int]] = field(default_factory=dict)
    opaque: set[tuple[str, ...]] = field(default_factory=set)  # paths whose whole value is one expression
    loop_variables: set[str] = field(default_factory=set)
    # loop variable -> the payload list it walks (`item` -> `line_items[]`), and every payload
    # path the message reads with its place: checked against the file's example payloads
    loop_sources: dict[str, str] = field(default_factory=dict)
    reads: list[tuple[str, str, int, int]] = field(default_factory=list)  # (payload path, as written, place)

    def read(self, paths: frozenset[str], line: int, col: int) -> None:
        for written in paths:
            head, _, rest = written.partition(".")
            path = self.loop_sources[head] + ("." + rest if rest else "") if head in self.loop_sources else written
            self.reads.append((path, written, line, col))


class FileLoader:
    def __init__(self, path: Path, problems: Problems, payload_roots: Sequence[Path] = ()) -> None:
        self.path = path
        self.payload_roots = tuple(payload_roots)
        self.file = display_path(path)
        self.problems = problems
        self.example_problems = Problems()
        self.reads: dict[str, list[tuple[str, str, int, int]]] = {}  # rule name -> payload paths it reads
        self.rules: list[Rule] = []
        self.examples: list[Example] = []
        self.consent: list[ConsentUse] = []
        self.notes: list[str] = []
        self.digest = ""  # of the text these rules were read from

    def problem(self, line: int, col: int, message: str) -> None:
        self.problems.add(self.file, line, col, message)

    def example_problem(self, line: int, col: int, message: str) -> None:
        """A problem only an example has (its payload file): `check` and `test` report it, but the
        rules still load, so a deployment that ships mappings/ without the payloads keeps running."""
        self.example_problems.add(self.file, line, col, message)

    # --- file ---------------------------------------------------------------

    def load(self) -> None:
        """Read and check the file; whatever it holds ends as problems with their places, never as an exception."""
        try:
            self._load()
        except Exception as exc:  # a case the checks below do not foresee: still a located problem
            self.problem(1, 1, f"this file could not be read as rules ({type(exc).__name__}); check it against "
                               "mappings/README.md, or start again from a copy that worked")

    def _load(self) -> None:
        try:
            with open(self.path, "rb") as file:
                raw = file.read(limits.MAX_FILE_BYTES + 1)
        except OSError as exc:
            self.problem(1, 1, f"cannot read the file: {exc.strerror or exc}")
            return
        if len(raw) > limits.MAX_FILE_BYTES:
            self.problem(1, 1, f"this file is over {limits.MAX_FILE_BYTES:,} bytes; rule files are much smaller: "
                               "split it, or check that it is the file you meant to save here")
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
            self.problem(line, col, "this file is not saved as UTF-8 (a letter such as é or – here was saved in "
                                    "another encoding); in your editor choose Save with Encoding → UTF-8")
            return
        self.digest = hashlib.sha256(text.encode()).hexdigest()
        deep = limits.too_deep(text, limits.MAX_DOCUMENT_DEPTH)
        if deep is not None:
            line = text.count("\n", 0, deep) + 1
            self.problem(line, deep - text.rfind("\n", 0, deep), f"brackets are nested over "
                         f"{limits.MAX_DOCUMENT_DEPTH} levels deep here; write the values out more simply")
            return
        try:
            document = YAML(typ="rt").load(text)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            what = exc.problem or exc.context or "cannot be read"
            self.problem(line, col, f"YAML syntax error: {what}; check the indentation and that text with `:` or `{{{{` is in quotes")
            return
        except RecursionError:
            self.problem(1, 1, f"values are nested too deeply to read (keep them under {limits.MAX_DOCUMENT_DEPTH} levels)")
            return
        except Exception as exc:  # ruamel raises more than MarkedYAMLError on some inputs
            self.problem(1, 1, f"YAML cannot be read ({type(exc).__name__}: {str(exc)[:200]})")
            return
        too_big = limits.document_problem(document)
        if too_big is not None:
            self.problem(1, 1, too_big)
            return
        if document is None:
            self.problem(1, 1, "this file has no rules (it is empty or all comments); a running bridge keeps the "
                               "rules it has. To remove this file's rules, delete the file or move it out of the folder")
            return
        if not isinstance(document, CommentedMap):
            self.problem(1, 1, "a rule file is a mapping with `rules:` (and optionally `examples:`)")
            return
        for key in document:
            if key not in FILE_KEYS:
                line, col = _position(document, key, value=False)
                self.problem(line, col, f"unknown key `{key}`{did_you_mean(str(key), FILE_KEYS)}; a file has `rules:` and `examples:`")
        rules = document.get("rules")
        if not isinstance(rules, CommentedSeq):
            line, col = _position(document, "rules") if "rules" in document else (1, 1)
            self.problem(line, col, "`rules:` must be a list of rules, each starting with `- name:`")
        elif not rules:
            line, col = _position(document, "rules")
            self.problem(line, col, "`rules:` is empty; a running bridge keeps the rules it has. To remove this file's "
                                    "rules, delete the file or move it out of the folder")
        else:
            for index, node in enumerate(rules):
                self._each(self.rule, rules, index, node, "rule")
        examples = document.get("examples")
        if examples is not None:
            if not isinstance(examples, CommentedSeq):
                line, col = _position(document, "examples")
                self.problem(line, col, "`examples:` must be a list, each starting with `- name:`")
            else:
                for index, node in enumerate(examples):
                    self._each(self.example, examples, index, node, "example")

    def _each(self, read: Any, parent: CommentedSeq, index: int, node: Any, what: str) -> None:
        """Read one rule or example; one that breaks the reader is a problem at its place, and the rest are read."""
        try:
            read(parent, index, node)
        except Exception as exc:
            line, col = _position(parent, index)
            self.problem(line, col, f"this {what} could not be read ({type(exc).__name__}); check its keys and "
                                    "values against mappings/README.md")

    # --- rules --------------------------------------------------------------

    def _unknown_keys(self, node: CommentedMap, allowed: tuple[str, ...], what: str) -> None:
        for key in node:
            if key not in allowed:
                line, col = _position(node, key, value=False)
                self.problem(line, col, f"unknown key `{key}` in {what}{did_you_mean(str(key), allowed)}; allowed: {', '.join(allowed)}")

    def rule(self, parent: CommentedSeq, index: int, node: Any) -> None:
        line, col = _position(parent, index)
        if not isinstance(node, CommentedMap):
            self.problem(line, col, "each rule is a mapping starting with `- name:`")
            return
        self._unknown_keys(node, RULE_KEYS, "a rule")
        name = node.get("name")
        if name is not None and not isinstance(name, str):
            nline, ncol = _position(node, "name")
            self.problem(nline, ncol, f"put the rule's name in quotes: `name: \"{name}\"`")
            name = str(name)
        elif not isinstance(name, str) or not name.strip():
            self.problem(line, col, "the rule needs a `name:` (it is shown in logs and errors)")
            name = f"rule {index + 1}"
        line = _node_position(node)[0]
        on = self.on(node, line, col)
        if on is None:
            return
        source, topics = on
        when = None
        if "when" in node:
            when = self.condition(node, "when", f"rule '{name}' when", rule=name)
        send = node.get("send")
        if send == "ignore":
            self.rules.append(Rule(name, self.file, line, source, topics, [], ignore=True, when=when))
            return
        if not isinstance(send, CommentedSeq) or not send:
            sline, scol = _position(node, "send") if "send" in node else (line, col)
            self.problem(sline, scol, "`send:` must list at least one message (`- to: omnisend event`), or be `ignore`")
            return
        messages = [m for i, item in enumerate(send) if (m := self.message(name, source, send, i, item)) is not None]
        self.rules.append(Rule(name, self.file, line, source, topics, messages, when=when))

    def on(self, node: CommentedMap, line: int, col: int) -> tuple[str, tuple[str, ...]] | None:
        value = node.get("on")
        oline, ocol = _position(node, "on") if "on" in node else (line, col)
        entries = value if isinstance(value, list) else [value]
        source = None
        topics: list[str] = []
        for entry in entries:
            words = str(entry or "").replace(",", " ").split()
            if len(words) < 2:
                self.problem(oline, ocol, "`on:` names a source and a topic, like `on: shopify orders/create`")
                return None
            if source is not None and words[0] != source:
                self.problem(oline, ocol, f"one rule listens to one source; `{words[0]}` differs from `{source}`: write a second rule")
                return None
            source = words[0]
            topics.extend(words[1:])
        assert source is not None
        self.check_topics(source, topics, oline, ocol)
        return source, tuple(dict.fromkeys(topics))

    def check_topics(self, source: str, topics: list[str], line: int, col: int) -> None:
        """A misspelt source or topic would make the rule never run: refuse what cannot arrive, note the rest."""
        if source not in topic_catalog.KNOWN:
            close = did_you_mean(source, tuple(topic_catalog.KNOWN))
            if close:  # a note: BRIDGE_SOURCES_FILE may name a source `shopify2` or `bigcommerce`
                self.notes.append(f"{self.file}:{line}: note: `{source}` is not a built-in source{close} The rule "
                                  f"only runs if a source of this name is set up (BRIDGE_SOURCES_FILE)")
            return
        for topic in topics:
            if topic_catalog.known(source, topic):
                continue
            hint = did_you_mean(topic, tuple(sorted(topic_catalog.KNOWN[source])))
            if topic_catalog.closed(source):
                self.problem(line, col, f"{source} never sends `{topic}`{hint or '; its topics are like `order.created`'}")
            else:
                self.notes.append(f"{self.file}:{line}: note: `{topic}` is not a topic {source} is known to send"
                                  f"{hint or ''}; the rule only runs if {source} sends exactly this name")

    def condition(self, node: CommentedMap, key: str, what: str, rule: str | None = None) -> Build | None:
        """A `when:`; with `rule`, its payload paths are checked against the examples like a field's."""
        line, col = _position(node, key)
        if _unquoted_merge_tag(node[key]):
            self.problem(line, col, UNQUOTED_TAG.format(key=key))
            return None
        try:
            compiled = compile_condition(node[key])
        except ExpressionError as exc:
            self.problem(line + exc.line - 1, col, f"{exc}")
            return None
        if rule is not None:
            self.reads.setdefault(rule, []).extend((path, path, line, col) for path in sorted(compiled.paths))
        return condition(compiled, what, line)

    def message(self, rule: str, source: str, parent: CommentedSeq, index: int, node: Any) -> MessageSpec | None:
        line, col = _position(parent, index)
        if not isinstance(node, CommentedMap) or "to" not in node:
            self.problem(line, col, "each message starts with `- to: <destination> <record type>`, like `- to: omnisend event \"placed order\"`")
            return None
        line = _node_position(node)[0]
        self._unknown_keys(node, MESSAGE_KEYS, "a message")
        tline, tcol = _position(node, "to")
        match = TO_PATTERN.match(str(node["to"]))
        if match is None:
            self.problem(tline, tcol, "`to:` is `<destination> <record type>` and, for events, a name in quotes: `omnisend event \"placed order\"`")
            return None
        destination, kind, name = match.group(1), match.group(2), match.group(3) or match.group(4)
        spec, problem = find_kind(destination, kind)
        if spec is None:
            self.problem(tline, tcol, problem)
            return None
        self.loop_check(rule, source, destination, node, tline, tcol)
        action = str(node.get("action", spec.actions[0]))
        if action not in spec.actions:
            aline, acol = _position(node, "action")
            self.problem(aline, acol, f"{destination} {kind} cannot `{action}`{did_you_mean(action, spec.actions)}; allowed: {', '.join(spec.actions)}")
        target = _Target(spec, rule, line, {}, self.consent, source)
        fields = node.get("fields")
        entries: list[tuple[str, Build]] = []
        if name is not None:
            named = NAMED_KINDS.get((destination, kind))
            if named is None:
                self.problem(tline, tcol, f"a name in quotes only fits events; {destination} {kind} has none")
            elif isinstance(fields, CommentedMap) and named in fields:
                self.problem(tline, tcol, f"the event name is given twice: in `to:` and in `{named}:`; keep one")
            else:
                try:
                    entries.append((named, leaf(compile_field(name), named, tline)))
                except ExpressionError as exc:
                    self.problem(tline, tcol, str(exc))
                target.sources[named] = name
                target.paths[(named,)] = (tline, tcol)
        if not isinstance(fields, CommentedMap):
            fline, fcol = _position(node, "fields") if "fields" in node else (line, col)
            self.problem(fline, fcol, "the message needs `fields:` with what to send")
            return None
        before = len(self.problems.items)
        body = self.object(fields, (), target, extra=entries)
        if len(self.problems.items) == before:  # a misspelt field is reported once, not also as missing
            self.required_fields(spec, target, tline, tcol, action)
        self.event_type_length(spec, target)
        when = self.condition(node, "when", f"{destination} {kind} when", rule=rule) if "when" in node else None
        key = None
        if "key" in node:
            kline, kcol = _position(node, "key")
            try:
                key = leaf(compile_field(node["key"]), "key", kline)
            except ExpressionError as exc:
                self.problem(kline + exc.line - 1, kcol, str(exc))
        clear = self.clear(node, spec, rule)
        self.reads.setdefault(rule, []).extend(target.reads)
        writes = written_by(destination, kind, action, target.paths, clear, target.opaque)
        places = {dotted(path): place for path, place in reversed(list(target.paths.items()))}
        places[f"{destination} {kind} records"] = (tline, tcol)
        if "clear" in node:
            for name in clear:
                places[f"clear: {name}"] = places[name] = _position(node, "clear")
        if action == "replace":
            aline, acol = places["action: replace"] = _position(node, "action")
            self.notes.append(f"{self.file}:{aline}: note: rule '{rule}' replaces the whole {destination} {kind} "
                              f"(PUT: every field this record leaves out is erased); the rule must build the complete "
                              f"record from this event. This is the deletions area; `action: update` changes only "
                              f"the fields sent")
        decision = self.decision(node, rule, target) if "decision" in node else None
        if "consent" in writes and decision is None and "decision" not in node:
            cline = places.get(writes["consent"][0], (line, col))[0]
            self.notes.append(f"{self.file}:{cline}: note: rule '{rule}' writes consent ({', '.join(writes['consent'])}) "
                              f"to {destination} with no `decision:`, so it sends what the webhook says even when "
                              "nobody decided it (a platform's default) and even when it is older than a decision "
                              "the bridge knows; add `decision:` with whose it is, the channel, the state and when "
                              f"it was decided, like `{DECISION_EXAMPLE}` (mappings/README.md, \"Consent is a "
                              "decision\")")
        elif "decision" in node and "consent" not in writes:
            dline, dcol = _position(node, "decision", value=False)
            self.problem(dline, dcol, "`decision:` belongs to a message that writes consent, and this one writes none; "
                                      "remove it")
        return MessageSpec(destination, kind, spec, action, index, line, body, when=when, key=key,
                           clear=clear, sources=target.sources, areas=tuple(writes), writes=writes, places=places,
                           decision=decision)

    def decision(self, node: CommentedMap, rule: str, target: _Target) -> DecisionSpec | None:
        """`decision:` of a consent message (bridge/consent.py): every part an expression reading the payload,
        the state from where the source states consent."""
        line, col = _position(node, "decision")
        value = node["decision"]
        if not isinstance(value, CommentedMap):
            self.problem(line, col, f"`decision:` lists contact, channel, state and at, like `{DECISION_EXAMPLE}`")
            return None
        line = _node_position(value)[0]
        self._unknown_keys(value, DECISION_KEYS, "`decision:`")
        missing = [name for name in ("contact", "channel", "state", "at") if name not in value]
        if missing:
            self.problem(line, col, f"`decision:` needs {', '.join(f'`{m}`' for m in missing)}, like `{DECISION_EXAMPLE}`")
            return None
        channel = str(value["channel"])
        if channel not in CONSENT_CHANNELS:
            kline, kcol = _position(value, "channel")
            self.problem(kline, kcol, f"`channel: {channel}` is not a consent channel; use one of "
                                      f"{', '.join(CONSENT_CHANNELS)}{did_you_mean(channel, CONSENT_CHANNELS)}")
            return None
        builds: dict[str, Build] = {}
        sources: dict[str, str] = {}
        for name in ("contact", "state", "at", "changed"):
            if name not in value:
                continue
            kline, kcol = _position(value, name)
            try:
                compiled = compile_field(value[name])
            except ExpressionError as exc:
                self.problem(kline + exc.line - 1, kcol, str(exc))
                return None
            if compiled.kind == "const" or not compiled.names - {"event"}:
                self.problem(kline, kcol, f"decision `{name}` must read the webhook (like "
                                          f"`{name}: \"{{{{ ... }}}}\"`), not the fixed {compiled.source!r}: "
                                          "a decision is what this person did")
                return None
            if name == "state":
                foreign = foreign_consent_reads(target.source, compiled.paths)
                if foreign:
                    self.problem(kline, kcol, f"decision `state` is consent, and {target.source} states consent only "
                                              f"in {' / '.join(CONSENT_SOURCES[target.source])}; this reads "
                                              f"{', '.join(f'`{p}`' for p in foreign)}")
            self.reads.setdefault(rule, []).extend((p, p, kline, kcol) for p in sorted(compiled.paths))
            builds[name] = leaf(compiled, f"decision.{name}", kline)
            read = sorted(p for p in compiled.paths if p.split(".")[0] != "event")
            sources[name] = ", ".join(f"`{p}`" for p in read) or f"`{compiled.source}`"  # for --explain and errors
        return DecisionSpec(builds["contact"], channel, builds["state"], builds["at"], builds.get("changed"), line,
                            sources)

    def loop_check(self, rule: str, source: str, destination: str, node: CommentedMap, line: int, col: int) -> None:
        """Omneo's webhooks mapped back to Omneo make a loop: each write makes Omneo send another webhook.
        Refused unless the message says `allow loop: true`, and then noted (`bridge mappings check` shows it)."""
        allowed = node.get(LOOP_KEY)
        if LOOP_KEY in node and not isinstance(allowed, bool):
            aline, acol = _position(node, LOOP_KEY)
            self.problem(aline, acol, f"`{LOOP_KEY}:` is true or false")
            return
        if destination != "omneo" or source != "omneo":
            if allowed:
                aline, acol = _position(node, LOOP_KEY)
                self.problem(aline, acol, f"`{LOOP_KEY}:` only fits a rule on Omneo's webhooks that sends to Omneo; "
                                          "remove it")
            return
        if not allowed:
            self.problem(line, col, f"rule '{rule}' sends Omneo's own webhooks back to Omneo: every profile it writes "
                                    "makes Omneo send another webhook, which this rule would write again (a loop). "
                                    f"Send these events to omnisend or ometria instead; if the loop is meant (a rule "
                                    f"whose `when:` stops it), add `{LOOP_KEY}: true` to this message")
            return
        self.notes.append(f"{self.file}:{line}: warning: rule '{rule}' sends Omneo's own webhooks back to Omneo "
                          f"(`{LOOP_KEY}: true`): make sure its `when:` stops the loop, and that Omneo's webhook "
                          "namespace matches the bridge's API token (docs/sources.md)")

    def required_fields(self, spec: KindSpec, target: _Target, line: int, col: int, action: str) -> None:
        """A field the destination requires that the rule never sets would fail every event: say so now.
        A partial action (an order's status update, a cart's closing) needs only what names the record."""
        what = f"{spec.destination} {spec.kind}"
        if action in spec.partial_actions:
            for path in spec.key_fields[:1]:
                if not _sets(target.sources, path):
                    self.problem(line, col, f"{what} {action} needs `{path}` and this message does not set it")
            return
        for path in spec.required:
            if not _sets(target.sources, path):
                example = REQUIRED_EXAMPLES.get((spec.destination, spec.kind, path), f'{path}: "{{{{ ... }}}}"')
                self.problem(line, col, f"{what} needs `{path}` and this message does not set it; "
                                        f"add it under `fields:`, like `{example}`")
        for group in spec.any_of:
            if not any(_sets(target.sources, path) for path in group):
                self.problem(line, col, f"{what} needs one of {', '.join(f'`{p}`' for p in group)} and this message "
                                        "sets none; add one under `fields:`")

    def clear(self, node: CommentedMap, spec: KindSpec, rule: str) -> tuple[str, ...]:
        if "clear" not in node:
            return ()
        line, col = _position(node, "clear")
        value = node["clear"]
        paths = [value] if isinstance(value, str) else list(value or [])
        fields = spec.fields
        for path in paths:
            top = str(path).split(".")[0]
            if fields and top not in fields:
                self.problem(line, col, f"cannot clear unknown field `{path}`{did_you_mean(top, fields)}")
        if spec.destination == "omnisend":
            self.problem(line, col, "`clear:` sends null, which only Ometria understands; Omnisend keeps fields you leave out")
        self.notes.append(f"{self.file}:{line}: note: rule '{rule}' clears {', '.join(map(str, paths))} on "
                          f"{spec.destination} {spec.kind} (sends null, erasing the stored value; deletions area)")
        return tuple(str(path) for path in paths)

    # --- fields -------------------------------------------------------------

    def object(self, node: CommentedMap, path: tuple[str, ...], target: _Target,
               extra: list[tuple[str, Build]] | None = None) -> Build:
        entries = list(extra or [])
        known = known_fields(target.spec, path) if "[]" not in path else None
        when = None
        for key in node:
            name = str(key)
            if name != "for each" and re.sub(r"[\s_\-]", "", name.lower()) == "foreach":
                line, col = _position(node, key, value=False)
                self.problem(line, col, f"`{name}:` should be `for each:` (two words, a space between)")
                continue
            if name == "when" and path:
                when = self.condition(node, "when", ".".join(path) + " when")
                continue
            if name == "@type":
                line, col = _position(node, key, value=False)
                self.problem(line, col, "leave out `@type`: the destination adds it from the record type in `to:`")
                continue
            if known is not None and name not in known:
                line, col = _position(node, key, value=False)
                where = f"{target.spec.destination} {target.spec.kind}" + (f" {'.'.join(path)}" if path else "")
                self.problem(line, col, f"unknown destination field `{name}` for {where}{did_you_mean(name, known)}")
                continue
            built = self.value(node, key, path + (name,), target)
            if built is not None:
                entries.append((name, built))
        if path:
            self.consent_check(node, path, target, when_guard=when is not None and self._guard_reads(node))
        return obj(entries, when)

    def event_type_length(self, spec: KindSpec, target: _Target) -> None:
        """Ometria keeps the first 32 characters of a custom event's `event_type` (apis.md §2.5): two
        long names that start alike would arrive as one, so a fixed name over 32 is refused."""
        if (spec.destination, spec.kind) != ("ometria", "custom_event"):
            return
        name = target.sources.get("event_type")
        if name is None or "{{" in name or len(name) <= OMETRIA_EVENT_TYPE_MAX:
            return
        line, col = target.paths.get(("event_type",), (1, 1))
        self.problem(line, col, f"Ometria keeps only the first {OMETRIA_EVENT_TYPE_MAX} characters of an event type: "
                                f"\"{name}\" ({len(name)}) would arrive as \"{name[:OMETRIA_EVENT_TYPE_MAX]}\"; "
                                "use a shorter name")

    def _guard_reads(self, node: CommentedMap) -> bool:
        try:
            return bool(compile_condition(node["when"]).names - {"event"})
        except ExpressionError:
            return False

    def value(self, parent: Any, key: Any, path: tuple[str, ...], target: _Target) -> Build | None:
        node = parent[key]
        line, col = _position(parent, key)
        joined = ".".join(step for step in path)
        if _unquoted_merge_tag(node):
            self.problem(line, col, UNQUOTED_TAG.format(key=key))
            return None
        if isinstance(node, CommentedMap):
            if "for each" in node:
                return self.for_each(node, path, target)
            return self.object(node, path, target)
        if isinstance(node, CommentedSeq):
            items = [b for i in range(len(node)) if (b := self.value(node, i, path + ("[]",), target)) is not None]
            self.consent_check(node, path, target, when_guard=all(
                isinstance(item, CommentedMap) and "when" in item and self._guard_reads(item) for item in node))
            return seq(items)
        try:
            compiled = compile_field(node)
        except ExpressionError as exc:
            hint = did_you_mean(str(exc).split("`")[1], tuple(check_filters())) if "unknown filter" in str(exc) else ""
            self.problem(line + exc.line - 1, col, f"{exc}{hint}")
            return None
        concrete = joined.replace("[]", str(key) if isinstance(key, int) else "0")
        target.read(compiled.paths, line, col)
        target.sources.setdefault(concrete, compiled.source)
        target.paths.setdefault(path, (line, col))
        if compiled.kind != "const":
            target.opaque.add(path)
        self.leaf_consent(compiled, path, target, line, col)
        return leaf(compiled, joined, line)

    def for_each(self, node: CommentedMap, path: tuple[str, ...], target: _Target) -> Build | None:
        self._unknown_keys(node, FOR_EACH_KEYS, "a `for each` block")
        line, col = _position(node, "for each")
        try:
            source = compile_condition(node["for each"])
        except ExpressionError as exc:
            self.problem(line + exc.line - 1, col, str(exc))
            return None
        variable = str(node.get("as", "item"))
        if not variable.isidentifier() or variable.startswith("_"):
            aline, acol = _position(node, "as")
            self.problem(aline, acol, "`as:` is a simple name like `line`")
            return None
        if "item" not in node:
            self.problem(line, col, "a `for each` block needs `item:` describing each element")
            return None
        item_path = path + ("[]",)
        target.paths.setdefault(path, (line, col))
        target.read(source.paths, line, col)
        walked = next(iter(source.paths), None) if len(source.paths) == 1 else None
        previous = target.loop_sources.get(variable)
        if walked is not None:
            head = walked.split(".")[0]
            walked = target.loop_sources.get(head, head) + walked[len(head):]
            target.loop_sources[variable] = walked + "[]"
        added = variable not in target.loop_variables
        target.loop_variables.add(variable)
        try:
            if isinstance(node["item"], CommentedMap):
                item: Build | None = self.object(node["item"], item_path, target)
            else:
                item = self.value(node, "item", item_path, target)
        finally:
            if added:
                target.loop_variables.discard(variable)
            if previous is None:
                target.loop_sources.pop(variable, None)
            else:
                target.loop_sources[variable] = previous
        when = self.condition(node, "when", ".".join(path) + " when") if "when" in node else None
        reads = source.names - {"event"}
        if consent_role(target.spec.destination, target.spec.kind, path) == "container" and reads:
            self._record_consent(target, path, line, col, source, reads)
        if item is None:
            return None
        return for_each(leaf(source, ".".join(path), line), variable, item, when)

    # --- consent ------------------------------------------------------------

    def leaf_consent(self, compiled: Compiled, path: tuple[str, ...], target: _Target, line: int, col: int) -> None:
        role = consent_role(target.spec.destination, target.spec.kind, path)
        if role is None:
            return
        reads = compiled.names - {"event"}
        if compiled.kind == "const" or not reads:
            self.problem(line, col, f"consent can only come from the payload (for example "
                                    f"`{{{{ attributes.comms.email_promo }}}}`), not the literal {compiled.source!r}: "
                                    f"{'.'.join(path)} decides whether this person gets marketing")
            return
        self._record_consent(target, path, line, col, compiled, reads)

    def consent_check(self, node: Any, path: tuple[str, ...], target: _Target, when_guard: bool) -> None:
        role = consent_role(target.spec.destination, target.spec.kind, path)
        if role == "leaf":
            line, col = _node_position(node)
            self.problem(line, col, f"{'.'.join(path)} is consent: give one `{{{{ expression }}}}` that reads the payload")
        elif role == "container" and not when_guard and not self._all_leaves_read_payload(node):
            line, col = _node_position(node)
            self.problem(line, col, f"{'.'.join(path)} is consent: build it with `for each:` over the payload, "
                                    f"or guard it with `when:` reading the payload (for example `attributes.comms.email_promo`)")

    def _all_leaves_read_payload(self, node: Any) -> bool:
        if isinstance(node, dict):
            return bool(node) and all(self._all_leaves_read_payload(v) for k, v in node.items() if k != "when")
        if isinstance(node, list):
            return bool(node) and all(self._all_leaves_read_payload(v) for v in node)
        try:
            compiled = compile_field(node)
        except ExpressionError:
            return True  # reported elsewhere
        return compiled.kind != "const" and bool(compiled.names - {"event"})

    def _record_consent(self, target: _Target, path: tuple[str, ...], line: int, col: int, compiled: Compiled,
                        reads: frozenset[str] | set[str]) -> None:
        foreign = foreign_consent_reads(target.source, compiled.paths, frozenset(target.loop_variables))
        if foreign:
            self.problem(line, col, f"{dotted(path)} is consent, and {target.source} states consent only in "
                                    f"{' / '.join(CONSENT_SOURCES[target.source])}; "
                                    f"this reads {', '.join(f'`{p}`' for p in foreign)}")
        target.consent.append(ConsentUse(self.file, line, target.rule, target.spec.destination, target.spec.kind,
                                         dotted(path), compiled.source, tuple(sorted(reads)),
                                         tuple(sorted(p for p in compiled.paths if p.split(".")[0] != "event"))))

    # --- examples -------------------------------------------------------------

    def example(self, parent: CommentedSeq, index: int, node: Any) -> None:
        line, col = _position(parent, index)
        if not isinstance(node, CommentedMap):
            self.problem(line, col, "each example is a mapping starting with `- name:`")
            return
        self._unknown_keys(node, EXAMPLE_KEYS, "an example")
        line = _node_position(node)[0]
        name = str(node.get("name") or f"example {index + 1}")
        on = self.on(node, line, col)
        if on is None:
            return
        source, topics = on
        payload = self.example_payload(node, line, col)
        found = {key: self.example_payload(node, line, col, key) for key in LOOKUP_NAMES if key in node}
        for key in found:
            if not any((lookup := reads(source, topic)) is not None and lookup.name == key for topic in topics):
                kline, kcol = _position(node, key)
                readers = ", ".join(f"{lookup.source} {' / '.join(sorted(lookup.named_by))}"
                                    for lookup in LOOKUPS if lookup.name == key)
                self.problem(kline, kcol, f"`{key}:` is read only by {readers}: this example's rules cannot read it")
        expect = node.get("expect", [])
        if not isinstance(expect, list):
            eline, ecol = _position(node, "expect")
            self.problem(eline, ecol, "`expect:` is a list of messages (`- to: omnisend event`), or `[]` for none")
            return
        for i, item in enumerate(expect):
            iline, icol = _position(expect, i)
            if not isinstance(item, CommentedMap) or "to" not in item:
                self.problem(iline, icol, "each expected message starts with `- to: <destination> <record type>`")
                continue
            self._unknown_keys(item, EXPECT_KEYS, "an expected message")
        errors = [str(e) for e in node.get("errors", []) or []]
        headers = {str(k): str(v) for k, v in (node.get("headers") or {}).items()}
        received = str(node.get("received_at", "2026-11-23T09:30:00Z"))
        for topic in topics:
            self.examples.append(Example(self.file, line, name, source, topic, payload, headers, received,
                                         _plain(expect), errors, lookups=found))

    def example_payload(self, node: CommentedMap, line: int, col: int, key: str = "payload") -> Any:
        """The example's `payload:` (or `order:`): inline, or read from the JSON file it names."""
        import json

        if key not in node:
            self.problem(line, col, "the example needs `payload:`: the webhook body inline, or a path to a JSON file")
            return None
        value = node[key]
        if isinstance(value, (dict, list)):
            return _plain(value)
        pline, pcol = _position(node, key)
        candidates = [self.path.parent / str(value), self.path.parent.parent / str(value),
                      *(root / str(value) for root in self.payload_roots)]
        for candidate in candidates:
            if candidate.is_file():
                try:
                    return json.loads(candidate.read_text(encoding="utf-8"))
                except RecursionError:
                    self.example_problem(pline, pcol, f"{value} is nested too deeply to read")
                    return None
                except ValueError as exc:
                    self.example_problem(pline, pcol, f"{value} is not valid JSON: {exc}")
                    return None
        self.example_problem(pline, pcol, f"payload file `{value}` not found (looked next to this file and in the project root)")
        return None


def check_reads_against_examples(loader: FileLoader) -> None:
    """A payload path a rule reads that no example payload of its topic has, but a near name does:
    almost surely a typo, which would otherwise quietly leave the field out of every message."""
    for rule in loader.rules:
        payloads = [{**e.payload, **{k: v for k, v in e.lookups.items() if v is not None}}
                    if isinstance(e.payload, dict) else e.payload for e in loader.examples
                    if e.source == rule.source and e.topic in rule.topics and e.payload is not None]
        if not payloads:
            continue
        seen: set[tuple[str, int, int]] = set()
        for path, written, line, col in loader.reads.get(rule.name, []):
            if path.split(".")[0] == "event" or (path, line, col) in seen:
                continue
            seen.add((path, line, col))
            misses = [miss for payload in payloads if (miss := missing_step(payload, path)) is not None]
            if len(misses) < len(payloads):
                continue  # some example has it: an optional field
            step, keys = misses[0]
            close = difflib.get_close_matches(step, keys, n=1, cutoff=0.75)
            if close:
                loader.example_problems.add(
                    loader.file, line, col,
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


def check_filters() -> list[str]:
    from bridge.mapping.filters import FILTERS

    return sorted(FILTERS)


class LoadedRules(CompiledRuleSet):
    """A rule set plus what the checker learnt while loading it."""

    examples: list[Example]
    example_problems: list[str]
    consent: list[ConsentUse]
    notes: list[str]
    directory: Path
    # The files' names and texts, and the policy, this set was built from: another process
    # that loads the same directory knows by it whether it holds the very same rules.
    fingerprint: str
    digests: dict[str, str]  # file name -> sha256 of the text it was read from



REQUIRED_EXAMPLES = {
    ("omnisend", "event", "origin"): "origin: api",
    ("omnisend", "event", "eventName"): 'to: omnisend event "placed order"',
}


def _sets(sources: Mapping[str, str], path: str) -> bool:
    """Whether a field of the rule writes `path`: the field itself, something inside it, or a whole
    object around it (`contact: "{{ customer }}"`)."""
    return any(s == path or s.startswith(path + ".") or path.startswith(s + ".") for s in sources)


UNQUOTED_TAG = ("put the value in quotes: `{key}: \"{{{{ ... }}}}\"`. Without them YAML reads `{{{{ ... }}}}` "
                 "as a list of settings, not as text to fill in")


def _unquoted_merge_tag(value: Any) -> bool:
    """`eventTime: {{ created_at }}` without quotes: YAML reads a mapping whose key is a mapping."""
    return isinstance(value, CommentedMap) and any(isinstance(k, Mapping) for k in value)


def rule_files(directory: Path) -> list[Path]:
    """The rule files: names ending in .yaml or .yml (any case), .yaml first. Hidden files are
    skipped: macOS leaves `._name.yaml` beside a copied file, and editors their lock files."""
    files = [p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")]
    return (sorted(p for p in files if p.name.lower().endswith(".yaml"))
            + sorted(p for p in files if p.name.lower().endswith(".yml")))


def skipped_files(directory: Path) -> list[str]:
    """Notes for files that look like rule files but are not read (`orders.yaml.txt`, `orders.yaml.bak`)."""
    read = set(rule_files(directory))
    return [f"{display_path(p)}: note: not read as rules, because the name does not end in .yaml; "
            "rename it if it holds rules"
            for p in sorted(directory.iterdir())
            if p.is_file() and p not in read and not p.name.startswith(".")
            and (".yaml" in p.name.lower() or ".yml" in p.name.lower())]


def load_rules(directory: Path, allowed_areas: Allowed | None = None, payload_roots: Sequence[Path] = ()) -> LoadedRules:
    """Load and check every rule file in `directory`; raise `RulesError` listing all problems.

    `allowed_areas` ({destination: areas}, from `areas.allowed_from_settings`)
    is the deployment's policy; None allows everything. A message writing an
    area its destination does not allow is not a rule error: the set loads with
    that message blocked, and `.blocked` lists each refusal with its place.
    `payload_roots` are more folders an example's payload path is looked for in (a set kept in the store
    is checked in a folder of its own, away from the project's example payloads).
    """
    directory = Path(directory)
    problems = Problems()
    if not directory.is_dir():
        raise RulesError([f"{display_path(directory)}: the rules directory does not exist"])
    paths = rule_files(directory)
    if not paths:  # a mount that came up empty, or files moved away: refused, like an emptied file
        skipped = [note.split(":", 1)[0] for note in skipped_files(directory)]
        raise RulesError([f"{display_path(directory)}: there are no rule files in this folder "
                          "(names ending in .yaml); put the rule files back"
                          + (f" or rename {', '.join(skipped)} to end in .yaml" if skipped else "")
                          + ". Until then events are kept waiting and are mapped once rules load"])
    loaders = []
    for path in paths:
        loader = FileLoader(path, problems, payload_roots)
        loader.load()
        loaders.append(loader)
    seen: dict[str, str] = {}
    for loader in loaders:
        for rule in loader.rules:
            if rule.name in seen:
                problems.add(rule.file, rule.line, 1, f"rule name '{rule.name}' is already used at {seen[rule.name]}; "
                                                      "names must be unique (they keep re-sent events from being sent twice)")
            seen.setdefault(rule.name, f"{rule.file}:{rule.line}")
    if problems.items:
        raise RulesError(problems.items)
    rules = [rule for loader in loaders for rule in loader.rules]
    ruleset = LoadedRules(rules, tuple(loader.file for loader in loaders), allowed_areas)
    ruleset.examples = []
    for loader in loaders:
        names = [rule.name for rule in loader.rules]
        for example in loader.examples:
            example.rules = names
            ruleset.examples.append(example)
    for loader in loaders:
        try:
            check_reads_against_examples(loader)
        except Exception as exc:  # an example payload too odd to compare with: the rules still load
            loader.example_problem(1, 1, f"the examples could not be compared with the rules ({type(exc).__name__})")
    ruleset.example_problems = [p for loader in loaders for p in loader.example_problems.items]
    ruleset.consent = [use for loader in loaders for use in loader.consent]
    ruleset.notes = [note for loader in loaders for note in loader.notes] + skipped_files(directory)
    ruleset.directory = directory
    ruleset.digests = {loader.path.name: loader.digest for loader in loaders}
    ruleset.fingerprint = hashlib.sha256(repr(
        ([(loader.path.name, loader.digest) for loader in loaders],
         sorted((d, sorted(a)) for d, a in (allowed_areas or {}).items()), allowed_areas is None)).encode()).hexdigest()
    return ruleset
