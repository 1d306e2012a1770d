"""What a signed body must look like (bridge.sources.shape): depth, topic length, a body its topic can have."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import MalformedWebhook
from bridge.sources.shape import (
    MAX_DEPTH,
    check_depth_and_topic,
    check_omneo,
    check_shopify,
    check_woocommerce,
    nests_deeper_than,
)

PAYLOADS = Path(__file__).parent.parent / "payloads"


def real_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((real_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((real_depth(v) for v in value), default=0)
    return 0


# Strings full of brackets, quotes and escapes: what could be taken for structure.
_tricky = st.text('[]{}"\\ab\n', max_size=6)
_values = st.recursive(st.none() | st.booleans() | st.integers() | _tricky,
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_tricky, inner, max_size=3),
                       max_leaves=40)


@settings(max_examples=500, deadline=None)
@given(value=_values, limit=st.integers(0, 8), ascii_only=st.booleans())
def test_depth_is_counted_exactly_whatever_the_strings_hold(value: Any, limit: int, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert nests_deeper_than(limit, body) == (real_depth(value) > limit)


def test_deep_json_and_long_topics_are_malformed_and_the_limit_itself_is_not() -> None:
    at_limit = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    check_depth_and_topic("orders/create", at_limit, True)
    with pytest.raises(MalformedWebhook, match="deeper than 64"):
        check_depth_and_topic("orders/create", b"[" + at_limit + b"]", True)
    with pytest.raises(MalformedWebhook, match="deeper than 64"):
        check_depth_and_topic("x", b'{"a":' * 900 + b"1" + b"}" * 900, True)
    check_depth_and_topic("x", b"[" * 900, False)  # not JSON: stored for inspection as before, not judged here
    with pytest.raises(MalformedWebhook, match="topic is longer"):
        check_depth_and_topic("1-" * 64_000, b"{}", True)


@pytest.mark.parametrize("path", sorted(PAYLOADS.glob("*/*.json")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_sample_delivery_passes_its_topics_checks(path: Path) -> None:
    body = path.read_bytes()
    payload = json.loads(body)
    stem = path.stem.removesuffix("_no_phone").removesuffix("_no_last_name").removesuffix("_empty_billing")
    check_depth_and_topic(stem, body, True)
    if path.parent.name == "shopify":
        check_shopify(stem.replace("_", "/", 1), body)
    elif path.parent.name == "omneo":
        check_omneo(stem.replace("_", "."), payload)
    else:
        check_woocommerce(stem.replace("_", "."), payload)


def test_a_body_relabelled_as_a_topic_it_cannot_be_is_malformed() -> None:
    order = (PAYLOADS / "shopify" / "orders_create.json").read_bytes()
    with pytest.raises(MalformedWebhook, match="cancelled_at"):
        check_shopify("orders/cancelled", order)
    check_shopify("orders/cancelled", (PAYLOADS / "shopify" / "orders_cancelled.json").read_bytes())
    with pytest.raises(MalformedWebhook, match="order_id"):
        check_shopify("refunds/create", order)
    with pytest.raises(MalformedWebhook, match="JSON object"):
        check_shopify("orders/create", b"[1]")

    transaction = json.loads((PAYLOADS / "omneo" / "transaction_created.json").read_bytes())
    profile = json.loads((PAYLOADS / "omneo" / "profile_created.json").read_bytes())
    with pytest.raises(MalformedWebhook, match="profile_id"):
        check_omneo("transaction.created", profile)
    with pytest.raises(MalformedWebhook, match="an id"):
        check_omneo("profile.updated", {k: v for k, v in transaction.items() if k != "id"})
    with pytest.raises(MalformedWebhook, match="JSON object"):
        check_omneo("profile.updated", [profile])

    woo_order = json.loads((PAYLOADS / "woocommerce" / "order_created.json").read_bytes())
    with pytest.raises(MalformedWebhook, match="id only"):
        check_woocommerce("order.deleted", woo_order)
    with pytest.raises(MalformedWebhook, match="not its id only"):
        check_woocommerce("order.created", {"id": 1})
    check_woocommerce("order.deleted", {"id": 1})
    check_woocommerce("order.deleted", {"order": {"id": 1}})  # a legacy API version's wrapping
    with pytest.raises(MalformedWebhook, match="action"):
        check_woocommerce("action.woocommerce_thing", {"id": 1})
