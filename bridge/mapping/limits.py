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
from collections.abc import Callable
from typing import Any

from jinja2 import Undefined

MAX_BUILT_LENGTH = 10_000  # characters of text, or items of a list, that `*` may build
MAX_POWER_DIGITS = 300  # an integer `**` or `*` result
MAX_INT_DIGITS = 4_300  # `| int` of text, as Python's own int() of text (longer ones take quadratic time)
MAX_NESTING = 32  # brackets, and the depth of an expression's tree
MAX_FIELD_TEXT = 4_000  # characters in one field's template
MAX_RECORD_CHARS = 512_000  # a record as JSON, about half of what a destination takes per request
MAX_RECORD_DEPTH = 255  # orjson's own limit (deeper records are written by the json module, slowly)
MAX_FILE_BYTES = 1_000_000  # a rule file
MAX_DOCUMENT_VALUES = 200_000  # values in a rule file with every alias (`*name`) written out
MAX_DOCUMENT_DEPTH = 64


class LimitError(ValueError):
    """A rule's expression would build a value over a limit."""


def _multiply(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int):
        digits = (left.bit_length() + right.bit_length()) * math.log10(2)
        if digits > MAX_POWER_DIGITS + 1:
            raise LimitError(f"`*` would make a number of about {round(digits):,} digits; rules may build at most "
                             f"{MAX_POWER_DIGITS}")
    for sized, count in ((left, right), (right, left)):
        if isinstance(sized, (str, list, tuple)) and isinstance(count, int) and not isinstance(count, bool):
            if len(sized) * max(count, 0) > MAX_BUILT_LENGTH:
                what = "text" if isinstance(sized, str) else "a list"
                raise LimitError(f"`*` would make {what} of {len(sized) * count:,} "
                                 f"{'characters' if isinstance(sized, str) else 'items'}; rules may build at most "
                                 f"{MAX_BUILT_LENGTH:,}")
            if not isinstance(sized, str) and size_of(sized) * max(count, 0) > MAX_RECORD_CHARS:
                raise LimitError(f"`*` would make a list over {MAX_RECORD_CHARS:,} characters")
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


def _add(left: Any, right: Any) -> Any:
    if (isinstance(left, (str, list, tuple)) and type(left) is type(right)
            and size_of(left) + size_of(right) > MAX_RECORD_CHARS):
        raise LimitError(f"`+` would make a value over {MAX_RECORD_CHARS:,} characters")
    return operator.add(left, right)


BOUNDED_BINOPS: dict[str, Callable[[Any, Any], Any]] = {"*": _multiply, "**": _power, "%": _modulo, "+": _add}


def size_of(value: Any, limit: int = MAX_RECORD_CHARS) -> int:
    """About how many characters `value` takes as JSON, counted up to just over `limit` and no further.

    A list a rule builds may hold the same value many times ({% set b = [a, a] %}, [b, b], ...): it is
    counted at every place it is, as JSON and text would write it, so that no such value can grow past
    the limit however few characters the rule took."""
    size = 0
    stack = [value]
    while stack and size <= limit:
        item = stack.pop()
        if isinstance(item, str):
            size += len(item) + 2
        elif isinstance(item, dict):
            size += 2 + 2 * len(item)
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            size += 2 + len(item)
            stack.extend(item)
        else:
            size += 8
    return size


def measured(value: Any) -> Any:
    """`value`, a list or object a rule built, when it is within the limit (LimitError otherwise)."""
    if size_of(value) > MAX_RECORD_CHARS:
        raise LimitError(f"this list or object would be over {MAX_RECORD_CHARS:,} characters")
    return value


def joined(parts: Any) -> str:
    """`a ~ b ~ c`: the texts joined, until they would be over the limit."""
    out: list[str] = []
    size = 0
    for part in parts:
        text = part if isinstance(part, str) else str(part)
        size += len(text)
        if size > MAX_RECORD_CHARS:
            raise LimitError(f"`~` would make text over {MAX_RECORD_CHARS:,} characters")
        out.append(text)
    return "".join(out)


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


def _unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unsendable(record: Any) -> tuple[str, str] | None:
    """(field path, problem) when `record` is not plain JSON of a bounded size, else None.

    This runs for every message, so the walk keeps no paths (about 14 us for a shipped order
    record): once a value is found wrong, a second walk finds where it is. It stops as soon as
    the record is over the limit, so a record holding one large payload value at thousands of
    places costs no more than one that holds it once (orjson would write them all out first)."""
    found = _first_problem(record)
    if found is None:
        return None
    culprit, problem = found
    return _path_to(record, culprit), problem


_NUMBERS = (int, float, bool)
_TOO_DEEP_PROBLEM = f"is nested over {MAX_RECORD_DEPTH} levels deep"
_TOO_BIG_PROBLEM = f"makes the record over {MAX_RECORD_CHARS:,} characters; a destination would refuse it"
_NOT_UNICODE = "holds text that is not valid Unicode (a lone surrogate such as \\ud800)"


def _first_problem(record: Any) -> tuple[Any, str] | None:
    """The first value found wrong, with the problem; None when the record is fine. Without recursion,
    adding up an estimate of the record's size as JSON."""
    size = 0
    stack: list[tuple[Any, int]] = [(record, 0)]
    while stack:
        value, depth = stack.pop()
        kind = type(value)
        if kind is str:
            size += len(value) + 4
            if not value.isascii() and not _unicode(value):
                return value, _NOT_UNICODE
        elif kind is dict or kind is list or kind is tuple:
            size += 2  # an empty list held at many places is still written at each
            if depth >= MAX_RECORD_DEPTH:
                return value, _TOO_DEEP_PROBLEM
            if kind is dict:
                for key in value:
                    if type(key) is not str:
                        return value, f"has a key that is not text (a {type(key).__name__}); keys must be text"
                    size += len(key) + 4
                items = value.values()
            else:
                items = value
            for item in items:
                if type(item) is str:  # most values: counted here rather than pushed
                    size += len(item) + 4
                    if not item.isascii() and not _unicode(item):
                        return item, _NOT_UNICODE
                    if size > MAX_RECORD_CHARS:
                        return item, _TOO_BIG_PROBLEM
                else:
                    stack.append((item, depth + 1))
        elif kind in _NUMBERS or value is None:
            size += 8
            if kind is float and not math.isfinite(value):
                return value, f"is {value}, which JSON cannot carry"
        else:
            return value, _not_plain(value)
        if size > MAX_RECORD_CHARS:
            return value, _TOO_BIG_PROBLEM
    return None


def _not_plain(value: Any) -> str:
    if isinstance(value, Undefined):
        return ("is a field the webhook does not have, inside a list or object the rule builds "
                "(`[customer.tag]`); build it with `for each:`, or give the field a `| default(...)`")
    return (f"is a {type(value).__name__}, not a value a destination can take (text, a number, true/false, "
            "a list or an object)")


def _path_to(record: Any, culprit: Any) -> str:
    """The dotted path (`properties.lineItems.0.sku`) of the first place `culprit` is in `record`."""
    stack: list[tuple[Any, str, int]] = [(record, "", 0)]
    visits = 0
    while stack and visits <= MAX_RECORD_CHARS:  # a value held at very many places: the search gives up
        visits += 1
        value, path, depth = stack.pop()
        if value is culprit:
            return path
        if depth > MAX_RECORD_DEPTH:
            continue
        if isinstance(value, dict):
            stack.extend((item, f"{path}.{key}" if path else str(key), depth + 1) for key, item in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((item, f"{path}.{n}" if path else str(n), depth + 1) for n, item in enumerate(value))
    return ""
