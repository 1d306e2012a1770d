"""What a refund's rules read beside its payload (bridge/mapping/lookups.py), and the list filters they
use on it: `where`, `total`, `flatten`."""

from __future__ import annotations

import json

import pytest

from bridge.mapping import budget
from bridge.mapping.filters import FilterError, flatten, total, where
from bridge.mapping.lookups import as_of, context, named_ref, resource_of
from bridge.model import Event


def event(topic: str, payload: object, **lookups: bytes | None) -> Event:
    return Event(1, "shopify", topic, "k", 0.0, {}, json.dumps(payload).encode(), lookups=lookups)


def test_where_keeps_the_items_whose_field_has_the_value_an_id_and_its_text_as_one() -> None:
    items = [{"line_item_id": 14736203718472650001, "q": 1}, {"line_item_id": "14736203718472650001", "q": 2},
             {"line_item_id": 2, "q": 3}, "not an object", {"line_item_id": True}]
    assert where(items, "line_item_id", 14736203718472650001) == items[:2]
    assert where(items, "line_item_id", 1) == []  # true is not 1
    assert where(None, "a", 1) is None and where([], "a", 1) == []
    with pytest.raises(FilterError, match="`where` needs a list"):
        where({"a": 1}, "a", 1)


def test_total_sums_exactly_and_keeps_whole_numbers_whole() -> None:
    assert total([{"amount": "0.10"}, {"amount": "0.20"}], "amount") == 0.3  # not 0.30000000000000004
    assert total([{"quantity": 1}, {"quantity": 2}, {}], "quantity") == 3
    assert isinstance(total([{"quantity": 1}], "quantity"), int)
    assert total([], "amount") == 0 and total(None, "amount") is None
    assert total(["1.5", 2]) == 3.5
    with pytest.raises(FilterError, match="`total` needs a money amount"):
        total([{"amount": "lots"}], "amount")


def test_flatten_joins_lists() -> None:
    assert flatten([[1, 2], [], None, [3], 4]) == [1, 2, 3, 4]
    assert flatten(None) is None


def test_the_check_folds_the_list_filters_over_constants_after_an_event_ran_out_of_time() -> None:
    from bridge.mapping.expressions import compile_field

    stale = budget.current()
    stale.deadline = 0.0  # this thread mapped an event long ago: its budget is spent
    try:
        compiled = compile_field("{{ [[{'q': 1}], [{'q': 2}]] | flatten | where('q', 2) | total('q') }}")
        assert compiled.kind == "const" or compiled.evaluate is not None
    finally:
        budget.start(0)


def test_an_order_topic_carries_its_order_and_a_refund_names_it() -> None:
    assert resource_of(event("orders/paid", {"id": 5873920188416718053})) == ("order", "5873920188416718053")
    assert resource_of(event("orders/paid", {"id": None})) is None
    assert resource_of(event("customers/create", {"id": 1})) is None
    lookup, ref = named_ref(event("refunds/create", {"order_id": 5873920188416718053})) or (None, None)
    assert lookup is not None and (lookup.name, ref) == ("order", "5873920188416718053")
    assert named_ref(event("refunds/create", {"order_id": {"id": 1}})) == (lookup, None)
    assert named_ref(event("orders/create", {"id": 1})) is None


def test_the_order_as_of_the_refund_lists_it_once() -> None:
    refund = {"id": 2, "refund_line_items": [{"line_item_id": 9, "quantity": 1}]}
    before = {"id": 1, "refunds": [{"id": 1}]}
    assert as_of(before, refund)["refunds"] == [{"id": 1}, refund]
    after = {"id": 1, "refunds": [{"id": 1}, {"id": "2"}]}  # Shopify's update listed this refund already
    assert as_of(after, refund)["refunds"] == [{"id": 1}, {"id": "2"}]
    assert as_of({"id": 1}, refund)["refunds"] == [refund] and before["refunds"] == [{"id": 1}]  # not changed


def test_context_gives_the_order_or_says_why_not() -> None:
    refund = {"id": 2, "order_id": 7}
    found, errors = context(event("refunds/create", refund, order=b'{"id": 7, "email": "a@example.com"}'), refund)
    assert found == {"order": {"id": 7, "email": "a@example.com", "refunds": [refund]}} and errors == []
    found, errors = context(event("refunds/create", refund, order=None), refund)
    assert found == {} and "the shopify order 7 (its `order_id`) never reached the bridge" in errors[0]
    found, errors = context(event("refunds/create", refund, order=b"[1]"), refund)
    assert found == {} and "is not a JSON object" in errors[0]
    assert context(event("refunds/create", refund), refund) == ({}, [])  # nothing attached: nothing read
    assert context(event("orders/create", refund, order=b"{}"), refund) == ({}, [])


def test_a_shopify_redaction_forgets_the_orders_it_lists() -> None:
    from bridge.mapping.lookups import forgotten

    redact = {"customer": {"id": 1}, "orders_to_redact": [5873920188416718053, "5873920188416718054", None, {}]}
    assert forgotten(event("customers/redact", redact)) == (
        ("order", "5873920188416718053"), ("order", "5873920188416718054"))
    assert forgotten(event("customers/redact", {"orders_to_redact": "1"})) == ()
    assert forgotten(event("orders/create", redact)) == ()
