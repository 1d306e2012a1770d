"""What an event is found by without keeping personal data in clear twice: fingerprints of the e-mail
addresses and order numbers in its payload.

A fingerprint is `bridge.log.fingerprint` of the value (an e-mail lowercased, an order number without
a leading '#'), and of the value as it is, which is the `h:` hash the masked views show: a viewer who
sees `h:1a2b3c4d5e` in a masked payload can search by it. They are computed where the event is mapped (the mapping process,
off the web event loop) and saved with its mapping (`Mapped.search_keys`, table event_lookup).

What a sender controls costs bounded time: at most MAX_NODES values of the payload are looked at, to
MAX_DEPTH levels, and at most MAX_KEYS fingerprints are kept per event.
"""

from __future__ import annotations

import re
from typing import Any

from bridge.log import fingerprint

MAX_NODES = 2_000
MAX_DEPTH = 8
MAX_KEYS = 32
MAX_VALUE = 254  # the longest e-mail address (RFC 5321 path), and more than any order number

# Keys whose value is an order's number in the payloads the bridge receives: Shopify (order_number,
# name "#1001"), WooCommerce (number, id of an order topic), Omneo and generic senders (orderNumber,
# orderId, order_id).
ORDER_KEYS = frozenset({"order_number", "ordernumber", "order_id", "orderid", "number"})
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
FINGERPRINT = re.compile(r"h:[0-9a-f]{10}")


def order_value(value: object) -> str | None:
    """An order number as it is fingerprinted: text without a leading '#', or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    text = str(value).strip().lstrip("#").strip().lower()
    return text if 0 < len(text) <= 64 else None


def fingerprints(payload: Any, topic: str = "") -> tuple[str, ...]:
    """The fingerprints of the e-mails and order numbers in `payload`, sorted, without repeats."""
    found: set[str] = set()
    seen = 0
    is_order = "order" in topic.lower()
    stack: list[tuple[Any, str, int]] = [(payload, "", 0)]
    while stack and seen < MAX_NODES and len(found) < MAX_KEYS:
        value, key, depth = stack.pop()
        seen += 1
        if isinstance(value, dict):
            if depth < MAX_DEPTH:
                stack.extend((v, str(k).lower(), depth + 1) for k, v in list(value.items())[:MAX_NODES])
            continue
        if isinstance(value, list):
            if depth < MAX_DEPTH:
                stack.extend((v, key, depth + 1) for v in value[:MAX_NODES])
            continue
        if isinstance(value, str) and len(value) <= MAX_VALUE and EMAIL.fullmatch(value.strip()):
            found.add(fingerprint(value.strip().lower()))
            found.add(fingerprint(value))  # as a masked view shows it under a personal key
            continue
        top_level_id = is_order and depth == 1 and key == "id"
        shopify_name = key == "name" and isinstance(value, str) and value.startswith("#")
        if key in ORDER_KEYS or top_level_id or shopify_name:
            number = order_value(value)
            if number is not None:
                found.add(fingerprint(number))
                found.add(fingerprint(value))  # as a masked view shows it ("#1042" under `name`)
    return tuple(sorted(found))


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
