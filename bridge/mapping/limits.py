"""How big a value a rule may build, and whether a record can be sent.

Rules are written by marketers and run on data an outside sender chose, so
nothing a rule computes may grow without bound: the operators that can build
a large value from a small one (`*` on text or lists, `**`, `%` on text) are
bounded here, both when the check folds constants and when an event is
mapped; nesting in a field's text is bounded before Jinja's recursive parser
sees it. The record a message makes is checked to hold plain JSON values of
a bounded size before it is queued (`unsendable`).
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable

from jinja2 import Undefined

MAX_BUILT_LENGTH = 10_000  # characters of text, or items of a list, that `*` may build
MAX_POWER_DIGITS = 300  # an integer `**` result
MAX_NESTING = 32  # brackets, and the depth of an expression's tree
MAX_FIELD_TEXT = 4_000  # characters in one field's template
MAX_RECORD_CHARS = 512_000  # a record as JSON, about half of what a destination takes per request
MAX_RECORD_DEPTH = 32
MAX_FILE_BYTES = 1_000_000  # a rule file
MAX_DOCUMENT_VALUES = 200_000  # values in a rule file with every alias (`*name`) written out
MAX_DOCUMENT_DEPTH = 64


class LimitError(ValueError):
    """A rule's expression would build a value over a limit."""


def _multiply(left: Any, right: Any) -> Any:
    for sized, count in ((left, right), (right, left)):
        if isinstance(sized, (str, list, tuple)) and isinstance(count, int) and not isinstance(count, bool):
            if len(sized) * max(count, 0) > MAX_BUILT_LENGTH:
                what = "text" if isinstance(sized, str) else "a list"
                raise LimitError(f"`*` would make {what} of {len(sized) * count:,} "
                                 f"{'characters' if isinstance(sized, str) else 'items'}; rules may build at most "
                                 f"{MAX_BUILT_LENGTH:,}")
    return operator.mul(left, right)


def _power(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        digits = right * math.log10(abs(left))
        if digits > MAX_POWER_DIGITS:
            raise LimitError(f"`**` would make a number of about {round(digits):,} digits; rules may build at most "
                             f"{MAX_POWER_DIGITS}")
    return operator.pow(left, right)


def _modulo(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        raise LimitError("`%` formatting of text is not available in rules; put the value in the text instead, "
                         "like \"order-{{ id }}\", or join with `~`")
    return operator.mod(left, right)


BOUNDED_BINOPS: dict[str, Callable[[Any, Any], Any]] = {"*": _multiply, "**": _power, "%": _modulo}


def binop(name: str, left: Any, right: Any) -> Any:
    """`left <name> right` for an operator of BOUNDED_BINOPS; LimitError when it would grow too big."""
    return BOUNDED_BINOPS[name](left, right)


def too_deep(text: str, limit: int = MAX_NESTING) -> int | None:
    """Where brackets first nest deeper than `limit`, or None (brackets inside quotes count too: this
    runs before a recursive parser, Jinja's or YAML's, which would overflow its stack or take minutes)."""
    depth = 0
    for index, char in enumerate(text):
        if char in "([{":
            depth += 1
            if depth > limit:
                return index
        elif char in ")]}":
            depth = max(depth - 1, 0)
    return None


def document_problem(document: Any) -> str | None:
    """What makes a loaded YAML document too big to walk, or None.

    YAML anchors and aliases share one value between places, so a file of a few lines can stand
    for billions of values ("billion laughs"), or for a value that contains itself; everything
    that walks the rules would then run out of time, memory or stack. Counted once per value."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()  # values whose children are being counted
    stack: list[tuple[Any, int, bool]] = [(document, 0, False)] if isinstance(document, (dict, list)) else []
    while stack:
        node, depth, counted = stack.pop()
        children = list(node.values()) if isinstance(node, dict) else node
        if counted:
            open_.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes.get(id(child), 1) for child in children)
            if sizes[id(node)] > MAX_DOCUMENT_VALUES:
                return (f"with its aliases (`*name`) written out this file holds over {MAX_DOCUMENT_VALUES:,} "
                        "values; write the values out instead of repeating anchors")
            continue
        if id(node) in open_:
            return "an alias (`*name`) refers to the value that contains it; write the value out instead"
        if depth > MAX_DOCUMENT_DEPTH:
            return f"values are nested over {MAX_DOCUMENT_DEPTH} levels deep"
        open_.add(id(node))
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in children
                     if isinstance(child, (dict, list)) and id(child) not in sizes)
    return None


_PLAIN_LEAVES = (int, float, bool, type(None))


def _unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unsendable(record: Any) -> tuple[str, str] | None:
    """(field path, problem) when `record` is not plain JSON of a bounded size, else None.

    Walks the record once, without recursion, adding up an estimate of its JSON size."""
    size = 0
    stack: list[tuple[str, Any, int]] = [("", record, 0)]
    while stack:
        path, value, depth = stack.pop()
        if depth > MAX_RECORD_DEPTH:
            return path, f"is nested over {MAX_RECORD_DEPTH} levels deep"
        if isinstance(value, dict):
            size += 2
            for key, item in value.items():
                if not isinstance(key, str):
                    return path, f"has a key {type(key).__name__} {str(key)[:40]!r}; keys must be text"
                size += len(key) + 4
                stack.append((f"{path}.{key}" if path else key, item, depth + 1))
        elif isinstance(value, (list, tuple)):
            size += 2
            stack.extend((f"{path}.{index}" if path else str(index), item, depth + 1) for index, item in enumerate(value))
        elif isinstance(value, Undefined):
            return path, ("is a field the webhook does not have, inside a list or object the rule builds "
                          "(`[customer.tag]`); build it with `for each:`, or give the field a `| default(...)`")
        elif isinstance(value, str):
            if not value.isascii() and not _unicode(value):
                return path, "holds text that is not valid Unicode (a lone surrogate such as \\ud800)"
            size += len(value) + 2
        elif isinstance(value, _PLAIN_LEAVES):
            if isinstance(value, float) and not math.isfinite(value):
                return path, f"is {value}, which JSON cannot carry"
            size += 8
        else:
            return path, (f"is a {type(value).__name__}, not a value a destination can take (text, a number, "
                          "true/false, a list or an object)")
        if size > MAX_RECORD_CHARS:
            return path, f"makes the record over {MAX_RECORD_CHARS:,} characters; a destination would refuse it"
    return None
