"""Value formats the fakes check, written out from docs/reference/apis.md (not taken from the bridge).

Each function answers whether a present value has the documented form; callers skip absent values
(missing or null: a null clears a field, and required fields are checked on their own).
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

_DATE = r"\d{4}-\d{2}-\d{2}"
_TIME = r"\d{2}:\d{2}:\d{2}(?:\.\d+)?"
# RFC 3339 date-time: a full time and an offset (`Z` or `±HH:MM`), `T` between (RFC 3339 5.6).
_RFC3339 = re.compile(rf"{_DATE}[Tt]{_TIME}(?:[Zz]|[+-]\d{{2}}:\d{{2}})", re.ASCII)
# Omnisend's other event-time form: `YYYY-MM-DD HH:MM:SS±HH:MM` (apis.md 1.2).
_OMNISEND_SPACED = re.compile(rf"{_DATE} \d{{2}}:\d{{2}}:\d{{2}}[+-]\d{{2}}:\d{{2}}", re.ASCII)
# ISO 8601 date-time, extended form: `T`, minutes at least, the offset optional unless asked for.
_ISO8601 = re.compile(rf"{_DATE}T\d{{2}}:\d{{2}}(?::\d{{2}}(?:[.,]\d+)?)?(?P<offset>Z|[+-]\d{{2}}(?::?\d{{2}})?)?",
                      re.ASCII)
_MOMENT = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2}))?", re.ASCII)
_E164 = re.compile(r"\+[1-9]\d{1,14}", re.ASCII)
_ISO4217 = re.compile(r"[A-Z]{3}", re.ASCII)


def _real_moment(text: str) -> bool:
    """The digits name a real date and time (no 2026-02-30, no 25:00)."""
    match = _MOMENT.match(text)
    if match is None:
        return False
    try:
        year, month, day, hour, minute, second = (int(part or 0) for part in match.groups())
        datetime(year, month, day, hour, minute, second)
    except ValueError:
        return False
    return True


def rfc3339(value: Any) -> bool:
    """`2021-07-01T00:00:00Z`, `2026-11-20T10:15:30.5+11:00`."""
    return isinstance(value, str) and _RFC3339.fullmatch(value) is not None and _real_moment(value)


def omnisend_event_time(value: Any) -> bool:
    """An Omnisend `eventTime`: RFC 3339 or `YYYY-MM-DD HH:MM:SS±HH:MM` (apis.md 1.2)."""
    return rfc3339(value) or (isinstance(value, str) and _OMNISEND_SPACED.fullmatch(value) is not None
                              and _real_moment(value))


def iso8601(value: Any, *, offset: bool = False) -> bool:
    """An ISO 8601 date and time (`2026-11-20T10:15:30`, `...Z`, `...+11:00`); with `offset`, the
    offset is required (Ometria custom events: "ISO 8601 with offset", apis.md 2.5)."""
    if not isinstance(value, str):
        return False
    match = _ISO8601.fullmatch(value)
    if match is None or (offset and match.group("offset") is None):
        return False
    return _real_moment(value)


def ymd(value: Any) -> bool:
    """A calendar date `YYYY-MM-DD`."""
    if not isinstance(value, str) or re.fullmatch(_DATE, value, re.ASCII) is None:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def e164(value: Any) -> bool:
    """E.164: `+`, a country code not starting with 0, at most 15 digits in all."""
    return isinstance(value, str) and _E164.fullmatch(value) is not None


def iso4217(value: Any) -> bool:
    """The form of an ISO 4217 currency code (three capital letters; the code list is not checked)."""
    return isinstance(value, str) and _ISO4217.fullmatch(value) is not None


def uuid_v4_to_v7(value: Any) -> bool:
    """A UUID of version 4, 5, 6 or 7 (Omnisend `eventID`, apis.md 1.2)."""
    try:
        parsed = uuid.UUID(str(value))
    except ValueError:
        return False
    return parsed.version in (4, 5, 6, 7)


def uri(value: Any) -> bool:
    """An absolute URI: a scheme and, for http(s), a host."""
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    if not parts.scheme:
        return False
    return bool(parts.netloc) if parts.scheme in ("http", "https") else True


def number(value: Any) -> bool:
    """A JSON number (true/false are not numbers, though Python counts them as ints)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def boolean(value: Any) -> bool:
    return isinstance(value, bool)


def text(value: Any) -> bool:
    """Text that is not blank."""
    return isinstance(value, str) and value.strip() != ""
