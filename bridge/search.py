"""What an event is found by without keeping personal data in clear twice: fingerprints of the e-mail
addresses and order numbers in its payload.

A fingerprint is `bridge.log.fingerprint` of the value (an e-mail lowercased, an order number without
a leading '#'), and of the value as it is, which is the `h:` hash the masked views show: a viewer who
sees `h:1a2b3c4d5e` in a masked payload can search by it. They are computed where the event is mapped (the mapping process,
off the web event loop) and saved with its mapping (`Mapped.search_keys`, table event_lookup).

They are found in the JSON text, not by walking the parsed payload: every e-mail is a string with an
'@' in it, and every order number a value under one of a few keys, so a few searches in C find them
(a walk of a 7 KB order in Python cost ~0.3 ms, more than its rules). A string or a key written with
JSON escapes is not looked into: no provider escapes an e-mail or a key, and such a string is only not
found by a search. What a sender controls costs bounded time: at most MAX_LOOKS places are looked at,
each over at most MAX_VALUE bytes, and at most MAX_KEYS fingerprints are kept per event.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from bridge.log import fingerprint

MAX_LOOKS = 2_000
MAX_KEYS = 32
MAX_VALUE = 254  # the longest e-mail address (RFC 5321 path), and more than any order number

# Keys whose value is an order's number in the payloads the bridge receives: Shopify (order_number,
# name "#1001"), WooCommerce (number, id of an order topic), Omneo and generic senders (orderNumber,
# orderId, order_id).
ORDER_KEYS = frozenset({"order_number", "ordernumber", "order_id", "orderid", "number"})
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
FINGERPRINT = re.compile(r"h:[0-9a-f]{10}")
# What follows a key: its value when that is an integer or a string (a number with a fraction or an
# exponent is not an order number).
VALUE = re.compile(rb'\s*:\s*(?:(?P<digits>-?\d{1,64})(?![.eE\d])|"(?P<text>[^"\\]{0,%d})")' % MAX_VALUE)
NAME_VALUE = re.compile(rb'\s*:\s*"(?P<text>#[^"\\]{0,%d})"' % (MAX_VALUE - 1))  # Shopify's "name": "#1042"
KEYS = dict.fromkeys(sorted(ORDER_KEYS), VALUE) | {"name": NAME_VALUE}


def order_value(value: object) -> str | None:
    """An order number as it is fingerprinted: text without a leading '#', or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    text = str(value).strip().lstrip("#").strip().lower()
    return text if 0 < len(text) <= 64 else None


def fingerprints(body: bytes, topic: str = "") -> tuple[str, ...]:
    """The fingerprints of the e-mails and order numbers in a JSON body, sorted, without repeats."""
    found: set[str] = set()
    looks = _emails(body, found, MAX_LOOKS)
    _keyed(body, found, looks)
    if "order" in topic.lower() and len(found) < MAX_KEYS:  # an order's own id is its number (WooCommerce)
        _top_level_id(body, found)
    return tuple(sorted(found))


def _emails(body: bytes, found: set[str], looks: int) -> int:
    """Add the fingerprints of the strings that are e-mail addresses; the looks left."""
    at = body.find(b"@")
    while at != -1 and looks > 0 and len(found) < MAX_KEYS:
        looks -= 1
        start = body.rfind(b'"', max(at - MAX_VALUE - 1, 0), at)
        end = body.find(b'"', at, at + MAX_VALUE + 1)
        if start != -1 and end != -1 and body.find(b"\\", start, end) == -1:
            text = body[start + 1 : end].decode("utf-8", "replace")
            if EMAIL.fullmatch(text.strip()):
                found.add(fingerprint(text.strip().lower()))
                found.add(fingerprint(text))  # as a masked view shows it under a personal key
        # No closing quote within MAX_VALUE: every '@' up to there is in the same string, too long to be one.
        at = body.find(b"@", end + 1 if end != -1 else at + MAX_VALUE + 1)
    return looks


def _keyed(body: bytes, found: set[str], looks: int) -> None:
    """Add the fingerprints of the order numbers under ORDER_KEYS, and of `name`s such as "#1042"."""
    lowered = body.lower()  # ASCII only: the positions stay those of `body`
    for key, value_after in KEYS.items():
        quoted = b'"' + key.encode() + b'"'
        at = lowered.find(quoted)
        while at != -1 and looks > 0 and len(found) < MAX_KEYS:
            looks -= 1
            match = value_after.match(body, at + len(quoted))
            if match is not None and (at == 0 or body[at - 1] != 0x5C):  # not inside a string: no \" before
                digits = match.lastgroup == "digits"
                _add_number(found, int(match["digits"]) if digits else match["text"].decode("utf-8", "replace"))
            at = lowered.find(quoted, at + len(quoted))


def _top_level_id(body: bytes, found: set[str]) -> None:
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    if isinstance(payload, dict):
        for key, value in payload.items():
            if key.lower() == "id":
                _add_number(found, value)


def _add_number(found: set[str], value: object) -> None:
    number = order_value(value)
    if number is not None:
        found.add(fingerprint(number))
        found.add(fingerprint(value))  # as a masked view shows it ("#1042" under `name`)


def search_fingerprint(text: str) -> str | None:
    """What a search box's text is looked up by: an `h:` fingerprint as given, an e-mail's or an order
    number's fingerprint; None for empty text."""
    text = text.strip()
    if not text:
        return None
    if FINGERPRINT.fullmatch(text.lower()):
        return text.lower()
    if "@" in text:
        return fingerprint(text.lower())
    number = order_value(text)
    return fingerprint(number) if number is not None else None
