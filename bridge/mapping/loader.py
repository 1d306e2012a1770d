"""Loading a folder of rule files into one checked rule set: `load_rules`.

Each file is read (bridge.mapping.rulefile), its rules compiled (bridge.mapping.compiler) and its
examples read (bridge.mapping.examples); every problem of every file is collected, and `RulesError`
lists them all at the end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedSeq

from bridge.errors import RulesError
from bridge.mapping.areas import Allowed
from bridge.mapping.check import ConsentUse
from bridge.mapping.compiler import RuleCompiler
from bridge.mapping.engine import CompiledRuleSet
from bridge.mapping.examples import Example, ExampleReader, check_reads_against_examples
from bridge.mapping.rule import Rule
from bridge.mapping.rulefile import Problems, RuleFile, display_path, position, rule_files, skipped_files


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


@dataclass
class _FileRules:
    """What one file gave: its rules, the payload paths they read, its examples and consent fields."""

    rulefile: RuleFile
    rules: list[Rule]
    reads: dict[str, list[tuple[str, str, int, int]]]
    examples: list[Example]
    consent: list[ConsentUse]


def _read_file(path: Path, problems: Problems, payload_roots: tuple[Path, ...]) -> _FileRules:
    """Read, compile and check one file; whatever it holds ends as problems with their places, never as an exception."""
    rulefile = RuleFile(path, problems)
    compiler = RuleCompiler(rulefile)
    examples = ExampleReader(rulefile, payload_roots)
    try:
        document = rulefile.read()
        if document is not None:
            rules = document.get("rules")
            if not isinstance(rules, CommentedSeq):
                line, col = position(document, "rules") if "rules" in document else (1, 1)
                rulefile.problem(line, col, "`rules:` must be a list of rules, each starting with `- name:`")
            elif not rules:
                line, col = position(document, "rules")
                rulefile.problem(line, col, "`rules:` is empty; a running bridge keeps the rules it has. To remove "
                                            "this file's rules, delete the file or move it out of the folder")
            else:
                for index, node in enumerate(rules):
                    _each(rulefile, compiler.rule, rules, index, node, "rule")
            listed = document.get("examples")
            if listed is not None:
                if not isinstance(listed, CommentedSeq):
                    line, col = position(document, "examples")
                    rulefile.problem(line, col, "`examples:` must be a list, each starting with `- name:`")
                else:
                    for index, node in enumerate(listed):
                        _each(rulefile, examples.read, listed, index, node, "example")
    except Exception as exc:  # a case the checks do not foresee: still a located problem
        rulefile.problem(1, 1, f"this file could not be read as rules ({type(exc).__name__}); check it against "
                               "mappings/README.md, or start again from a copy that worked")
    return _FileRules(rulefile, compiler.rules, compiler.reads, examples.examples, compiler.consent)


def _each(rulefile: RuleFile, read: Callable[[CommentedSeq, int, Any], None], parent: CommentedSeq, index: int,
          node: Any, what: str) -> None:
    """Read one rule or example; one that breaks the reader is a problem at its place, and the rest are read."""
    try:
        read(parent, index, node)
    except Exception as exc:
        line, col = position(parent, index)
        rulefile.problem(line, col, f"this {what} could not be read ({type(exc).__name__}); check its keys and "
                                    "values against mappings/README.md")


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
    files = [_read_file(path, problems, tuple(payload_roots)) for path in paths]
    seen: dict[str, str] = {}
    for found in files:
        for rule in found.rules:
            if rule.name in seen:
                problems.add(rule.file, rule.line, 1, f"rule name '{rule.name}' is already used at {seen[rule.name]}; "
                                                      "names must be unique (they keep re-sent events from being sent twice)")
            seen.setdefault(rule.name, f"{rule.file}:{rule.line}")
    if problems.items:
        raise RulesError(problems.items)
    rules = [rule for found in files for rule in found.rules]
    ruleset = LoadedRules(rules, tuple(found.rulefile.file for found in files), allowed_areas)
    ruleset.examples = []
    for found in files:
        names = [rule.name for rule in found.rules]
        for example in found.examples:
            example.rules = names
            ruleset.examples.append(example)
    for found in files:
        try:
            check_reads_against_examples(found.rulefile, found.rules, found.examples, found.reads)
        except Exception as exc:  # an example payload too odd to compare with: the rules still load
            found.rulefile.example_problem(1, 1, f"the examples could not be compared with the rules ({type(exc).__name__})")
    ruleset.example_problems = [p for found in files for p in found.rulefile.example_problems.items]
    ruleset.consent = [use for found in files for use in found.consent]
    ruleset.notes = [note for found in files for note in found.rulefile.notes] + skipped_files(directory)
    ruleset.directory = directory
    ruleset.digests = {found.rulefile.path.name: found.rulefile.digest for found in files}
    ruleset.fingerprint = hashlib.sha256(repr(
        ([(found.rulefile.path.name, found.rulefile.digest) for found in files],
         sorted((d, sorted(a)) for d, a in (allowed_areas or {}).items()), allowed_areas is None)).encode()).hexdigest()
    return ruleset
