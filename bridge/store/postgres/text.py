"""Text PostgreSQL can store."""

from __future__ import annotations


def storable(text: str) -> str:
    """`text` as PostgreSQL can hold it: a text value cannot contain NUL, nor a lone surrogate
    (a signed body may carry either in a field the bridge keeps, such as a dedupe key)."""
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
