"""What an event is found by: fingerprints of its e-mails and order numbers, bounded in cost."""

from __future__ import annotations

import orjson

from bridge.log import fingerprint
from bridge.ops.masking import mask_value
from bridge.search import MAX_KEYS, MAX_LOOKS, fingerprints, search_fingerprint

ORDER = {"id": 450789469, "name": "#1042", "order_number": 1042, "email": "Jane.Citizen@Example.com",
         "customer": {"email": "jane.citizen@example.com", "first_name": "Jane"},
         "line_items": [{"id": 1, "name": "Shirt", "price": "10.00"}], "total_price": "10.00"}
BODY = orjson.dumps(ORDER)


def test_an_order_is_found_by_its_email_its_number_and_its_id_in_any_spelling() -> None:
    found = set(fingerprints(BODY, "orders/create"))
    for text in ("jane.citizen@example.com", "JANE.CITIZEN@EXAMPLE.COM", "#1042", "1042", " # 1042 ", "450789469"):
        assert search_fingerprint(text) in found, text
    assert search_fingerprint("Shirt") not in found and search_fingerprint("10.00") not in found
    assert search_fingerprint("1") not in found  # a line item's id is not the order's


def test_the_fingerprints_a_masked_view_shows_find_the_event() -> None:
    masked = mask_value(ORDER)
    found = set(fingerprints(BODY, "orders/create"))
    assert masked["email"] in found and masked["name"] in found
    assert search_fingerprint(masked["email"].upper()) == masked["email"]


def test_an_id_is_an_order_number_only_on_an_order_topic() -> None:
    assert fingerprint("77") not in fingerprints(b'{"id": 77}', "customers/create")
    assert fingerprint("77") in fingerprints(b'{"ID": 77, "line_items": [{"id": 78}]}', "orders/paid")
    assert fingerprint("78") not in fingerprints(b'{"ID": 77, "line_items": [{"id": 78}]}', "orders/paid")


def test_found_in_the_json_text_as_a_walk_of_the_payload_would() -> None:
    spaced = b'{ "Order_Number" : "  #7 ", "note": "say \\"number\\": 8", "orderId": 9.5, "e": " A@b.co " }'
    found = set(fingerprints(spaced))
    assert {fingerprint("7"), fingerprint("  #7 "), fingerprint("a@b.co"), fingerprint(" A@b.co ")} <= found
    assert fingerprint("8") not in found  # inside a string, not a key
    assert fingerprint("9.5") not in found  # a number with a fraction is no order number
    assert fingerprints(b'{"name": "Shirt", "number": true, "x": "no@at all"}') == ()


def test_a_hostile_payload_costs_bounded_work() -> None:
    wide = orjson.dumps({"emails": [f"c{n}@example.com" for n in range(100_000)]})
    assert len(fingerprints(wide)) <= MAX_KEYS + 1
    # Places that are not what is looked for are looked at MAX_LOOKS times at most: the e-mail after them is
    # not reached, and no '@' costs more than a look over MAX_VALUE bytes either side.
    ats = orjson.dumps({"a": "@" * 1_000_000, "b": ["x@" for _ in range(MAX_LOOKS)], "c": "late@example.com"})
    assert fingerprint("late@example.com") not in fingerprints(ats)
    assert fingerprints(orjson.dumps({"c": "late@example.com", "b": ["@"] * 100_000})) != ()
    assert search_fingerprint("") is None and search_fingerprint("not an order!") is not None
