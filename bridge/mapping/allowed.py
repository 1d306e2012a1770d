"""What rule expressions may use: the documented filters and tests, and nothing else of Jinja's.

Jinja's own filters and tests are not there: some make values that cannot be sent (`map` and
`selectattr` make generators), some build huge ones from a few characters (`center`, `format`,
`indent`, `wordwrap`), and none is in the marketers' guide (mappings/README.md). The check
refuses each with a way to do what it was probably meant for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2.tests import TESTS as JINJA_TESTS

# The tests of `is ...`; each one is bounded and returns true or false.
TEST_NAMES = (
    "defined", "undefined", "none", "boolean", "true", "false", "number", "integer", "float", "string",
    "mapping", "sequence", "even", "odd", "divisibleby", "in", "eq", "ne", "lt", "le", "gt", "ge",
    "==", "!=", "<", "<=", ">", ">=",
)
TESTS: dict[str, Callable[..., Any]] = {name: JINJA_TESTS[name] for name in TEST_NAMES}  # type: ignore[misc]

_KEEP_SOME = "to send only some items, use `for each:` with `when:`"
_AS_IS = "lists are sent in the order and shape the webhook has them; build another shape with `for each:`"
_TEXT = "put the value in the text instead, like \"order-{{ id }}\", or join texts with `~`"

# Jinja's built-ins, with what to write instead.
FILTER_FIXES: dict[str, str] = {
    "map": "to take one field of each item, use `| pluck('sku')`; to build each item, use `for each:`",
    "selectattr": "to keep the items whose field has a value, use `| where('kind', 'refund')`; " + _KEEP_SOME,
    "rejectattr": _KEEP_SOME, "select": _KEEP_SOME, "reject": _KEEP_SOME,
    "batch": _AS_IS, "slice": _AS_IS, "reverse": _AS_IS, "sort": _AS_IS, "unique": _AS_IS, "groupby": _AS_IS,
    "dictsort": _AS_IS, "list": _AS_IS, "items": _AS_IS,
    "format": _TEXT, "center": _TEXT, "indent": _TEXT, "wordwrap": _TEXT, "truncate": _TEXT,
    "replace": _TEXT, "title": "write the text in the case you want, or use `| lower` / `| upper`",
    "capitalize": "use `| lower` or `| upper`",
    "round": "use `| decimal` (amounts keep their digits) or `| int`", "float": "use `| decimal`",
    "abs": "use `| decimal`", "sum": "use `| total('amount')` (the sum of one field over a list's items)",
    "min": "use `| first` or `| last`", "max": "use `| first` or `| last`",
    "length": "to send something only when a list has items, use `when: \"{{ line_items }}\"`",
    "count": "to send something only when a list has items, use `when: \"{{ line_items }}\"`",
    "d": "use `| default(...)`", "attr": "read the field with a dot, like `customer.email`",
    "e": "text is sent as it is", "escape": "text is sent as it is", "forceescape": "text is sent as it is",
    "safe": "text is sent as it is", "striptags": "use `| trim`", "urlencode": "text is sent as it is",
    "tojson": "give the value itself: `\"{{ line_items }}\"` sends the list", "pprint": "give the value itself",
    "xmlattr": "text is sent as it is", "urlize": "text is sent as it is", "filesizeformat": "use `| decimal`",
    "wordcount": "send the text itself", "random": "rules give the same result for the same event: there is none",
}


def filter_refusal(name: str) -> str:
    """Why `| name` is refused, with a fix."""
    fix = FILTER_FIXES.get(name)
    if fix is None:
        return f"unknown filter `{name}`"
    return f"`{name}` is not a filter rules can use; {fix} (the filters are listed in mappings/README.md)"


def test_refusal(name: str) -> str:
    if name in JINJA_TESTS:
        return (f"`is {name}` is not a test rules can use; the tests are {', '.join(TEST_NAMES[:16])} and the "
                f"comparisons (mappings/README.md)")
    return f"unknown test `{name}`"
