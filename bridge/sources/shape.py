"""What a verified body must look like besides its signature: its depth, its topic, a body its topic can have.

A signature covers the body only: the topic header beside it is the sender's word, and a captured
body can be resent under any topic. Each check here is one that every genuine delivery of the
provider passes (apis.md 3, 4, 5), so a body that fails one is refused with 400 and not stored:

- JSON nested deeper than MAX_DEPTH (no provider nests a resource half as deep; the tools that show
  an event walk it recursively);
- a topic longer than MAX_TOPIC_LENGTH characters (the longest a provider sends is under 50);
- Shopify: a body that is not a JSON object; `orders/cancelled` without `cancelled_at`;
  `refunds/create` without `order_id`;
- Omneo: a body that is not an object with an `id`; `transaction.*` without `profile_id`;
- WooCommerce: `<resource>.deleted` with anything besides the `id` (the whole resource relabelled
  as its deletion); any other resource topic with only an `id`; `action.*` without `action`.
"""

from __future__ import annotations

from typing import Any

from bridge.errors import MalformedWebhook
from bridge.sources.signature import parse_json

MAX_DEPTH = 64
MAX_TOPIC_LENGTH = 255

# Depth is counted over brackets outside strings, with C-speed byte operations only.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_ONE_KIND = bytes.maketrans(b"{}", b"[]")


def nests_deeper_than(limit: int, body: bytes) -> bool:
    """Whether the arrays and objects of JSON `body` nest deeper than `limit`.

    C-speed byte operations only, each a pass over the body: the brackets are kept (as one kind),
    strings are dropped, then each round removes the innermost pairs, at most `limit` rounds.
    """
    if b"\\" in body:  # escapes: \\ first, then \" (JSON has no backslash outside strings)
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = body.translate(_ONE_KIND, _NOT_STRUCTURE)
    # A string without brackets is now "", and those go in one pass. A quote left means a string
    # holds a bracket: then the strings are cut out exactly (slower, and rare).
    brackets = brackets.replace(b'""', b"")
    if b'"' in brackets:
        brackets = b"".join(brackets.split(b'"')[::2])
    for _ in range(limit):
        inner = brackets.replace(b"[]", b"")
        if inner == brackets:  # empty, or unbalanced (not JSON: parse_json has judged it already)
            return False
        brackets = inner
    return bool(brackets)


def check_depth_and_topic(topic: str, body: bytes, payload_ok: bool) -> None:
    """Raise MalformedWebhook when `topic` is too long or a JSON `body` nests too deep."""
    if len(topic) > MAX_TOPIC_LENGTH:
        raise MalformedWebhook(f"the topic is longer than {MAX_TOPIC_LENGTH} characters")
    if payload_ok and nests_deeper_than(MAX_DEPTH, body):
        raise MalformedWebhook(f"the body nests deeper than {MAX_DEPTH} levels")


# Shopify's topics that are checked, and what they need: the body is parsed for these only.
_SHOPIFY_NEEDS = {"orders/cancelled": "cancelled_at", "refunds/create": "order_id"}


def check_shopify(topic: str, body: bytes) -> None:
    """For a JSON `body` (every Shopify payload is a REST resource: an object)."""
    if body.lstrip()[:1] != b"{":
        raise MalformedWebhook(f"a {_shown(topic)} body must be a JSON object")
    needed = _SHOPIFY_NEEDS.get(topic)
    if needed is not None and _value(parse_json(body)[0], needed) in (None, ""):
        raise MalformedWebhook(f"a {topic} body must have {needed}")


_OMNEO_WITH_ID = ("profile.", "transaction.", "reward.")


def check_omneo(topic: str, payload: Any) -> None:
    """For a parsed JSON body (Omneo posts the event context itself: an object)."""
    if not isinstance(payload, dict):
        raise MalformedWebhook(f"a {_shown(topic)} body must be a JSON object")
    if topic.startswith(_OMNEO_WITH_ID) and _value(payload, "id") is None:
        raise MalformedWebhook(f"a {_shown(topic)} body must have an id")
    if topic.startswith("transaction.") and _value(payload, "profile_id") is None:
        raise MalformedWebhook(f"a {_shown(topic)} body must have profile_id")


_WOO_RESOURCES = ("order", "product", "customer", "coupon")


def check_woocommerce(topic: str, payload: Any) -> None:
    """For a parsed JSON body: the resource (legacy API versions wrap it: {"order": {...}})."""
    if not isinstance(payload, dict):
        raise MalformedWebhook(f"a {_shown(topic)} body must be a JSON object")
    resource, _, event = topic.partition(".")
    if resource == "action":
        if "action" not in payload:
            raise MalformedWebhook("an action.* body must have action")
        return
    if resource not in _WOO_RESOURCES:
        return
    if set(payload) == {resource} and isinstance(payload[resource], dict):
        payload = payload[resource]
    if event == "deleted" and set(payload) != {"id"}:
        raise MalformedWebhook(f"a {topic} body holds the id only")
    if event != "deleted" and set(payload) <= {"id"}:
        raise MalformedWebhook(f"a {_shown(topic)} body must be the {resource}, not its id only")


def _value(payload: Any, name: str) -> Any:
    return payload.get(name) if isinstance(payload, dict) else None


def _shown(topic: str) -> str:
    return topic[:64] if topic else "webhook"
