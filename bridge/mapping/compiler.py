"""Compiling a rule file's `rules:` into rules the engine runs, checking each as it goes.

Every rule, message and field is checked against what its destination accepts
(bridge.destinations.catalog, bridge.mapping.check, bridge.mapping.types), what
the deployment allows it to write (bridge.mapping.areas) and where its source
states consent; each problem is recorded at its place in the file
(bridge.mapping.rulefile) and compiling carries on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from bridge.consent import CHANNELS as CONSENT_CHANNELS
from bridge.destinations.catalog import KindSpec
from bridge.mapping.areas import dotted, written_by
from bridge.mapping.check import (
    CONSENT_SOURCES,
    ConsentUse,
    consent_role,
    did_you_mean,
    find_kind,
    foreign_consent_reads,
    known_fields,
)
from bridge.mapping.expressions import Compiled, ExpressionError, compile_condition, compile_field
from bridge.mapping.fields import Build, condition, for_each, leaf, obj, seq
from bridge.mapping.rule import DecisionSpec, MessageSpec, Rule
from bridge.mapping.rulefile import RuleFile, node_position, position
from bridge.mapping.types import fixed_event_type_too_long, unset_required
from bridge.sources import topics as topic_catalog

RULE_KEYS = ("name", "on", "when", "send", "description")
MESSAGE_KEYS = ("to", "action", "key", "when", "decision", "clear", "allow loop", "fields", "description")
LOOP_KEY = "allow loop"  # a rule on Omneo's own webhooks that writes to Omneo says so (bridge.echo)
DECISION_KEYS = ("contact", "channel", "state", "at", "changed", "description")
DECISION_EXAMPLE = ("decision: {contact: \"{{ email }}\", channel: email, state: \"{{ email_marketing_consent.state }}\", "
                    "at: \"{{ email_marketing_consent.consent_updated_at }}\"}")
FOR_EACH_KEYS = ("for each", "item", "as", "when")
TO_PATTERN = re.compile(r"""^\s*([A-Za-z][\w-]*)\s+([A-Za-z][\w-]*)(?:\s+(?:"([^"]*)"|'([^']*)'))?\s*$""")
NAMED_KINDS = {("omnisend", "event"): "eventName", ("ometria", "custom_event"): "event_type"}

UNQUOTED_TAG = ("put the value in quotes: `{key}: \"{{{{ ... }}}}\"`. Without them YAML reads `{{{{ ... }}}}` "
                "as a list of settings, not as text to fill in")


def unquoted_merge_tag(value: Any) -> bool:
    """`eventTime: {{ created_at }}` without quotes: YAML reads a mapping whose key is a mapping."""
    return isinstance(value, CommentedMap) and any(isinstance(k, Mapping) for k in value)


def check_filters() -> list[str]:
    from bridge.mapping.filters import FILTERS

    return sorted(FILTERS)


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


def read_on(rulefile: RuleFile, node: CommentedMap, line: int, col: int) -> tuple[str, tuple[str, ...]] | None:
    """`on: shopify orders/create, orders/paid` of a rule or an example: its source and topics."""
    value = node.get("on")
    oline, ocol = position(node, "on") if "on" in node else (line, col)
    entries = value if isinstance(value, list) else [value]
    source = None
    topics: list[str] = []
    for entry in entries:
        words = str(entry or "").replace(",", " ").split()
        if len(words) < 2:
            rulefile.problem(oline, ocol, "`on:` names a source and a topic, like `on: shopify orders/create`")
            return None
        if source is not None and words[0] != source:
            rulefile.problem(oline, ocol, f"one rule listens to one source; `{words[0]}` differs from `{source}`: write a second rule")
            return None
        source = words[0]
        topics.extend(words[1:])
    assert source is not None
    check_topics(rulefile, source, topics, oline, ocol)
    return source, tuple(dict.fromkeys(topics))


def check_topics(rulefile: RuleFile, source: str, topics: list[str], line: int, col: int) -> None:
    """A misspelt source or topic would make the rule never run: refuse what cannot arrive, note the rest."""
    if source not in topic_catalog.KNOWN:
        close = did_you_mean(source, tuple(topic_catalog.KNOWN))
        if close:  # a note: BRIDGE_SOURCES_FILE may name a source `shopify2` or `bigcommerce`
            rulefile.notes.append(f"{rulefile.file}:{line}: note: `{source}` is not a built-in source{close} The rule "
                                  f"only runs if a source of this name is set up (BRIDGE_SOURCES_FILE)")
        return
    for topic in topics:
        if topic_catalog.known(source, topic):
            continue
        hint = did_you_mean(topic, tuple(sorted(topic_catalog.KNOWN[source])))
        if topic_catalog.closed(source):
            rulefile.problem(line, col, f"{source} never sends `{topic}`{hint or '; its topics are like `order.created`'}")
        else:
            rulefile.notes.append(f"{rulefile.file}:{line}: note: `{topic}` is not a topic {source} is known to send"
                                  f"{hint or ''}; the rule only runs if {source} sends exactly this name")


class RuleCompiler:
    """Compiles the rules of one file; `rules` are those that compiled, `reads` each rule's payload paths
    (for the examples' check), `consent` every field that writes consent."""

    def __init__(self, rulefile: RuleFile) -> None:
        self.rulefile = rulefile
        self.rules: list[Rule] = []
        self.reads: dict[str, list[tuple[str, str, int, int]]] = {}  # rule name -> payload paths it reads
        self.consent: list[ConsentUse] = []

    def problem(self, line: int, col: int, message: str) -> None:
        self.rulefile.problem(line, col, message)

    def rule(self, parent: CommentedSeq, index: int, node: Any) -> None:
        line, col = position(parent, index)
        if not isinstance(node, CommentedMap):
            self.problem(line, col, "each rule is a mapping starting with `- name:`")
            return
        self.rulefile.unknown_keys(node, RULE_KEYS, "a rule")
        name = node.get("name")
        if name is not None and not isinstance(name, str):
            nline, ncol = position(node, "name")
            self.problem(nline, ncol, f"put the rule's name in quotes: `name: \"{name}\"`")
            name = str(name)
        elif not isinstance(name, str) or not name.strip():
            self.problem(line, col, "the rule needs a `name:` (it is shown in logs and errors)")
            name = f"rule {index + 1}"
        line = node_position(node)[0]
        on = read_on(self.rulefile, node, line, col)
        if on is None:
            return
        source, topics = on
        when = None
        if "when" in node:
            when = self.condition(node, "when", f"rule '{name}' when", rule=name)
        send = node.get("send")
        if send == "ignore":
            self.rules.append(Rule(name, self.rulefile.file, line, source, topics, [], ignore=True, when=when))
            return
        if not isinstance(send, CommentedSeq) or not send:
            sline, scol = position(node, "send") if "send" in node else (line, col)
            self.problem(sline, scol, "`send:` must list at least one message (`- to: omnisend event`), or be `ignore`")
            return
        messages = [m for i, item in enumerate(send) if (m := self.message(name, source, send, i, item)) is not None]
        self.rules.append(Rule(name, self.rulefile.file, line, source, topics, messages, when=when))

    def condition(self, node: CommentedMap, key: str, what: str, rule: str | None = None) -> Build | None:
        """A `when:`; with `rule`, its payload paths are checked against the examples like a field's."""
        line, col = position(node, key)
        if unquoted_merge_tag(node[key]):
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
        line, col = position(parent, index)
        if not isinstance(node, CommentedMap) or "to" not in node:
            self.problem(line, col, "each message starts with `- to: <destination> <record type>`, like `- to: omnisend event \"placed order\"`")
            return None
        line = node_position(node)[0]
        self.rulefile.unknown_keys(node, MESSAGE_KEYS, "a message")
        tline, tcol = position(node, "to")
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
            aline, acol = position(node, "action")
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
            fline, fcol = position(node, "fields") if "fields" in node else (line, col)
            self.problem(fline, fcol, "the message needs `fields:` with what to send")
            return None
        before = len(self.rulefile.problems.items)
        body = self.object(fields, (), target, extra=entries)
        if len(self.rulefile.problems.items) == before:  # a misspelt field is reported once, not also as missing
            for problem in unset_required(spec, target.sources, action):
                self.problem(tline, tcol, problem)
        too_long = fixed_event_type_too_long(spec, target.sources)
        if too_long is not None:
            self.problem(*target.paths.get(("event_type",), (1, 1)), too_long)
        when = self.condition(node, "when", f"{destination} {kind} when", rule=rule) if "when" in node else None
        key = None
        if "key" in node:
            kline, kcol = position(node, "key")
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
                places[f"clear: {name}"] = places[name] = position(node, "clear")
        if action == "replace":
            aline, acol = places["action: replace"] = position(node, "action")
            self.rulefile.notes.append(f"{self.rulefile.file}:{aline}: note: rule '{rule}' replaces the whole {destination} {kind} "
                                       f"(PUT: every field this record leaves out is erased); the rule must build the complete "
                                       f"record from this event. This is the deletions area; `action: update` changes only "
                                       f"the fields sent")
        decision = self.decision(node, rule, target) if "decision" in node else None
        if "consent" in writes and decision is None and "decision" not in node:
            cline = places.get(writes["consent"][0], (line, col))[0]
            self.rulefile.notes.append(f"{self.rulefile.file}:{cline}: note: rule '{rule}' writes consent ({', '.join(writes['consent'])}) "
                                       f"to {destination} with no `decision:`, so it sends what the webhook says even when "
                                       "nobody decided it (a platform's default) and even when it is older than a decision "
                                       "the bridge knows; add `decision:` with whose it is, the channel, the state and when "
                                       f"it was decided, like `{DECISION_EXAMPLE}` (mappings/README.md, \"Consent is a "
                                       "decision\")")
        elif "decision" in node and "consent" not in writes:
            dline, dcol = position(node, "decision", value=False)
            self.problem(dline, dcol, "`decision:` belongs to a message that writes consent, and this one writes none; "
                                      "remove it")
        return MessageSpec(destination, kind, spec, action, index, line, body, when=when, key=key,
                           clear=clear, sources=target.sources, areas=tuple(writes), writes=writes, places=places,
                           decision=decision)

    def decision(self, node: CommentedMap, rule: str, target: _Target) -> DecisionSpec | None:
        """`decision:` of a consent message (bridge/consent.py): every part an expression reading the payload,
        the state from where the source states consent."""
        line, col = position(node, "decision")
        value = node["decision"]
        if not isinstance(value, CommentedMap):
            self.problem(line, col, f"`decision:` lists contact, channel, state and at, like `{DECISION_EXAMPLE}`")
            return None
        line = node_position(value)[0]
        self.rulefile.unknown_keys(value, DECISION_KEYS, "`decision:`")
        missing = [name for name in ("contact", "channel", "state", "at") if name not in value]
        if missing:
            self.problem(line, col, f"`decision:` needs {', '.join(f'`{m}`' for m in missing)}, like `{DECISION_EXAMPLE}`")
            return None
        channel = str(value["channel"])
        if channel not in CONSENT_CHANNELS:
            kline, kcol = position(value, "channel")
            self.problem(kline, kcol, f"`channel: {channel}` is not a consent channel; use one of "
                                      f"{', '.join(CONSENT_CHANNELS)}{did_you_mean(channel, CONSENT_CHANNELS)}")
            return None
        builds: dict[str, Build] = {}
        sources: dict[str, str] = {}
        for name in ("contact", "state", "at", "changed"):
            if name not in value:
                continue
            kline, kcol = position(value, name)
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
            aline, acol = position(node, LOOP_KEY)
            self.problem(aline, acol, f"`{LOOP_KEY}:` is true or false")
            return
        if destination != "omneo" or source != "omneo":
            if allowed:
                aline, acol = position(node, LOOP_KEY)
                self.problem(aline, acol, f"`{LOOP_KEY}:` only fits a rule on Omneo's webhooks that sends to Omneo; "
                                          "remove it")
            return
        if not allowed:
            self.problem(line, col, f"rule '{rule}' sends Omneo's own webhooks back to Omneo: every profile it writes "
                                    "makes Omneo send another webhook, which this rule would write again (a loop). "
                                    f"Send these events to omnisend or ometria instead; if the loop is meant (a rule "
                                    f"whose `when:` stops it), add `{LOOP_KEY}: true` to this message")
            return
        self.rulefile.notes.append(f"{self.rulefile.file}:{line}: warning: rule '{rule}' sends Omneo's own webhooks back to Omneo "
                                   f"(`{LOOP_KEY}: true`): make sure its `when:` stops the loop, and that Omneo's webhook "
                                   "namespace matches the bridge's API token (docs/sources.md)")

    def clear(self, node: CommentedMap, spec: KindSpec, rule: str) -> tuple[str, ...]:
        if "clear" not in node:
            return ()
        line, col = position(node, "clear")
        value = node["clear"]
        paths = [value] if isinstance(value, str) else list(value or [])
        fields = spec.fields
        for path in paths:
            top = str(path).split(".")[0]
            if fields and top not in fields:
                self.problem(line, col, f"cannot clear unknown field `{path}`{did_you_mean(top, fields)}")
        if spec.destination == "omnisend":
            self.problem(line, col, "`clear:` sends null, which only Ometria understands; Omnisend keeps fields you leave out")
        self.rulefile.notes.append(f"{self.rulefile.file}:{line}: note: rule '{rule}' clears {', '.join(map(str, paths))} on "
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
                line, col = position(node, key, value=False)
                self.problem(line, col, f"`{name}:` should be `for each:` (two words, a space between)")
                continue
            if name == "when" and path:
                when = self.condition(node, "when", ".".join(path) + " when")
                continue
            if name == "@type":
                line, col = position(node, key, value=False)
                self.problem(line, col, "leave out `@type`: the destination adds it from the record type in `to:`")
                continue
            if known is not None and name not in known:
                line, col = position(node, key, value=False)
                where = f"{target.spec.destination} {target.spec.kind}" + (f" {'.'.join(path)}" if path else "")
                self.problem(line, col, f"unknown destination field `{name}` for {where}{did_you_mean(name, known)}")
                continue
            built = self.value(node, key, path + (name,), target)
            if built is not None:
                entries.append((name, built))
        if path:
            self.consent_check(node, path, target, when_guard=when is not None and self._guard_reads(node))
        return obj(entries, when)

    def _guard_reads(self, node: CommentedMap) -> bool:
        try:
            return bool(compile_condition(node["when"]).names - {"event"})
        except ExpressionError:
            return False

    def value(self, parent: Any, key: Any, path: tuple[str, ...], target: _Target) -> Build | None:
        node = parent[key]
        line, col = position(parent, key)
        joined = ".".join(step for step in path)
        if unquoted_merge_tag(node):
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
        self.rulefile.unknown_keys(node, FOR_EACH_KEYS, "a `for each` block")
        line, col = position(node, "for each")
        try:
            source = compile_condition(node["for each"])
        except ExpressionError as exc:
            self.problem(line + exc.line - 1, col, str(exc))
            return None
        variable = str(node.get("as", "item"))
        if not variable.isidentifier() or variable.startswith("_"):
            aline, acol = position(node, "as")
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
            line, col = node_position(node)
            self.problem(line, col, f"{'.'.join(path)} is consent: give one `{{{{ expression }}}}` that reads the payload")
        elif role == "container" and not when_guard and not self._all_leaves_read_payload(node):
            line, col = node_position(node)
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
        target.consent.append(ConsentUse(self.rulefile.file, line, target.rule, target.spec.destination, target.spec.kind,
                                         dotted(path), compiled.source, tuple(sorted(reads)),
                                         tuple(sorted(p for p in compiled.paths if p.split(".")[0] != "event"))))

    # --- examples -------------------------------------------------------------
