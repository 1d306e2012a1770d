"""Compiled fields: each part of a message as a function of the evaluation context.

The loader compiles a rule's `fields:` into a tree of these builders (a leaf per
expression, an object, a list, a `for each` loop, a `when:` condition); the
engine calls the tree's root once per message. A field that cannot be computed
raises `FieldError` with its record path and the line it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2.runtime import Context

from bridge.mapping import budget
from bridge.mapping.expressions import Compiled

Build = Callable[[Context], Any]


class FieldError(Exception):
    """A field could not be computed; `path` is where in the record, `line` where in its file (0: unknown)."""

    def __init__(self, path: str, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.line = line


def empty(value: Any) -> bool:
    """A value a record leaves out: None, or an empty text, object or list."""
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
            if not empty(value):
                out[name] = value
        return out

    return build


def seq(items: list[Build]) -> Build:
    def build(ctx: Context) -> list[Any]:
        out = []
        for make in items:
            value = make(ctx)
            if not empty(value):
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
                if not empty(made):
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

