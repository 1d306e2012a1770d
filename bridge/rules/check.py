"""A rule set's check, as the loader makes it (bridge.mapping.loader): each problem with its file, line and
fix; and the runs of its files' examples (bridge.mapping.examples)."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.mapping.areas import Allowed
from bridge.mapping.examples import run_examples
from bridge.mapping.loader import LoadedRules, load_rules
from bridge.mapping.reload import failed_load
from bridge.rules import files as ruleset

# "path:line:col: what is wrong; how to fix it", the loader's form of every problem
LOCATED = re.compile(r"(?P<file>[^\n]*?):(?P<line>\d+):(?P<column>\d+): (?P<text>.*)", re.DOTALL)


@dataclass(frozen=True)
class Problem:
    file: str  # the file's name in the set ("" when the problem is the set's)
    line: int
    column: int
    message: str  # what is wrong
    fix: str  # how to fix it ("" when the message says it)

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "column": self.column, "message": self.message, "fix": self.fix}


@dataclass
class CheckResult:
    problems: list[Problem] = field(default_factory=list)  # the set cannot run: it is not published
    example_problems: list[Problem] = field(default_factory=list)  # examples that do not fit the rules
    notes: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # messages this deployment's areas keep from being sent
    rules: int = 0
    files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "rules": self.rules, "files": self.files,
                "problems": [p.as_dict() for p in self.problems],
                "example_problems": [p.as_dict() for p in self.example_problems],
                "notes": self.notes, "blocked": self.blocked}


def problem(text: str, folder: Path) -> Problem:
    """One loader problem, its folder's path taken out: the set's file names are what a marketer knows."""
    text = _local(text, folder)
    match = LOCATED.fullmatch(text)
    if match is None:
        return Problem("", 0, 0, *_split(text))
    return Problem(Path(match["file"]).name, int(match["line"]), int(match["column"]), *_split(match["text"]))


def _split(text: str) -> tuple[str, str]:
    message, _, fix = text.partition("; ")
    return message, fix


def _local(text: str, folder: Path) -> str:
    for prefix in {str(folder) + "/", str(folder.resolve()) + "/"}:
        text = text.replace(prefix, "")
    return text.replace(str(folder), "the rule set")


def check_files(files: Mapping[str, str], allowed: Allowed | None,
                payload_roots: Sequence[Path] = ()) -> tuple[CheckResult, LoadedRules | None]:
    """Check a set the way an instance loads it; example payload paths are looked for in `payload_roots`
    too (the rules folder and the project beside it). CPU work: call it in a thread."""
    result = CheckResult(files=len(files))
    named = ruleset.problems(files)
    if named:
        result.problems = [Problem("", 0, 0, *_split(text)) for text in named]
        return result, None
    with tempfile.TemporaryDirectory(prefix="bridge-check-") as tmp:
        folder = Path(tmp)
        ruleset.export(files, folder)
        try:
            loaded = load_rules(folder, allowed, payload_roots)
        except Exception as exc:  # a RulesError lists the problems; anything else is one located line
            result.problems = [problem(text, folder) for text in failed_load(folder, exc)]
            return result, None
        result.rules = len(loaded)
        result.example_problems = [problem(text, folder) for text in loaded.example_problems]
        result.notes = [_local(text, folder) for text in loaded.notes]
        result.blocked = [_local(text, folder) for text in loaded.blocked]
    return result, loaded


def examples(files: Mapping[str, str], allowed: Allowed | None, file: str | None = None,
             payload_roots: Sequence[Path] = ()) -> dict[str, Any]:
    """Run the examples of every file, or of one: each with ok and, when it fails, the diff."""
    with tempfile.TemporaryDirectory(prefix="bridge-examples-") as tmp:
        folder = Path(tmp)
        ruleset.export(files, folder)
        try:
            loaded = load_rules(folder, allowed, payload_roots)
        except Exception as exc:
            return {"ok": False, "problems": [problem(t, folder).as_dict() for t in failed_load(folder, exc)],
                    "examples": []}
        runs = [outcome for outcome in run_examples(loaded)
                if file is None or Path(outcome.example.file).name == file]
        return {"ok": all(run.ok for run in runs), "problems": [],
                "examples": [{"file": Path(run.example.file).name, "line": run.example.line, "name": run.example.name,
                              "topic": run.example.topic, "ok": run.ok, "report": _local(run.report, folder)}
                             for run in runs]}
