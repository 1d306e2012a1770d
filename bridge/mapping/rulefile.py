"""A rule file read as YAML, with the place of every node, and the problems found in it.

A marketer fixes a file faster when all its mistakes are listed at once, so
nothing here stops at the first problem: each is recorded as
"path:line:col: what is wrong; how to fix it" and reading carries on.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from bridge.mapping import limits
from bridge.mapping.check import did_you_mean

FILE_KEYS = ("rules", "examples")


def display_path(path: Path) -> str:
    """Paths in messages are relative to the working directory when that is shorter."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return relative if not relative.startswith("..") else str(path)


class Problems:
    """Every problem found while loading a set of rules, as "file:line:col: text"."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, file: str, line: int, col: int, message: str) -> None:
        self.items.append(f"{file}:{line}:{col}: {message}")


def position(parent: Any, key: Any, value: bool = True) -> tuple[int, int]:
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


def node_position(node: Any) -> tuple[int, int]:
    try:
        return node.lc.line + 1, node.lc.col + 1
    except AttributeError:
        return 1, 1


def plain(node: Any) -> Any:
    """ruamel's commented containers to plain dicts and lists (examples compare with these)."""
    if isinstance(node, dict):
        return {str(key): plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [plain(item) for item in node]
    return node


class RuleFile:
    """One file of rules: where it is, the digest of its text, and the problems and notes found in it."""

    def __init__(self, path: Path, problems: Problems) -> None:
        self.path = path
        self.file = display_path(path)
        self.problems = problems
        self.example_problems = Problems()
        self.notes: list[str] = []
        self.digest = ""  # of the text the rules were read from

    def problem(self, line: int, col: int, message: str) -> None:
        self.problems.add(self.file, line, col, message)

    def example_problem(self, line: int, col: int, message: str) -> None:
        """A problem only an example has (its payload file): `check` and `test` report it, but the
        rules still load, so a deployment that ships mappings/ without the payloads keeps running."""
        self.example_problems.add(self.file, line, col, message)

    def unknown_keys(self, node: CommentedMap, allowed: tuple[str, ...], what: str) -> None:
        for key in node:
            if key not in allowed:
                line, col = position(node, key, value=False)
                self.problem(line, col, f"unknown key `{key}` in {what}{did_you_mean(str(key), allowed)}; allowed: {', '.join(allowed)}")

    def read(self) -> CommentedMap | None:
        """The file's document, a mapping with `rules:` and `examples:`; None, with the problem recorded,
        when the file cannot be read as one."""
        try:
            with open(self.path, "rb") as file:
                raw = file.read(limits.MAX_FILE_BYTES + 1)
        except OSError as exc:
            self.problem(1, 1, f"cannot read the file: {exc.strerror or exc}")
            return None
        if len(raw) > limits.MAX_FILE_BYTES:
            self.problem(1, 1, f"this file is over {limits.MAX_FILE_BYTES:,} bytes; rule files are much smaller: "
                               "split it, or check that it is the file you meant to save here")
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
            self.problem(line, col, "this file is not saved as UTF-8 (a letter such as é or – here was saved in "
                                    "another encoding); in your editor choose Save with Encoding → UTF-8")
            return None
        self.digest = hashlib.sha256(text.encode()).hexdigest()
        deep = limits.too_deep(text, limits.MAX_DOCUMENT_DEPTH)
        if deep is not None:
            line = text.count("\n", 0, deep) + 1
            self.problem(line, deep - text.rfind("\n", 0, deep), f"brackets are nested over "
                         f"{limits.MAX_DOCUMENT_DEPTH} levels deep here; write the values out more simply")
            return None
        try:
            document = YAML(typ="rt").load(text)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            what = exc.problem or exc.context or "cannot be read"
            self.problem(line, col, f"YAML syntax error: {what}; check the indentation and that text with `:` or `{{{{` is in quotes")
            return None
        except RecursionError:
            self.problem(1, 1, f"values are nested too deeply to read (keep them under {limits.MAX_DOCUMENT_DEPTH} levels)")
            return None
        except Exception as exc:  # ruamel raises more than MarkedYAMLError on some inputs
            self.problem(1, 1, f"YAML cannot be read ({type(exc).__name__}: {str(exc)[:200]})")
            return None
        too_big = limits.document_problem(document)
        if too_big is not None:
            self.problem(1, 1, too_big)
            return None
        if document is None:
            self.problem(1, 1, "this file has no rules (it is empty or all comments); a running bridge keeps the "
                               "rules it has. To remove this file's rules, delete the file or move it out of the folder")
            return None
        if not isinstance(document, CommentedMap):
            self.problem(1, 1, "a rule file is a mapping with `rules:` (and optionally `examples:`)")
            return None
        for key in document:
            if key not in FILE_KEYS:
                line, col = position(document, key, value=False)
                self.problem(line, col, f"unknown key `{key}`{did_you_mean(str(key), FILE_KEYS)}; a file has `rules:` and `examples:`")
        return document


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

