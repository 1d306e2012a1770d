"""What an event is found by: fingerprints of its e-mails and order numbers, bounded in cost."""

from __future__ import annotations

from bridge.log import fingerprint
from bridge.ops.masking import mask_value
from bridge.search import MAX_KEYS, fingerprints, search_fingerprint

ORDER = {"id": 450789469, "name": "#1042", "order_number": 1042, "email": "Jane.Citizen@Example.com",
         "customer": {"email": "jane.citizen@example.com", "first_name": "Jane"},
         "line_items": [{"id": 1, "name": "Shirt", "price": "10.00"}], "total_price": "10.00"}


def test_an_order_is_found_by_its_email_its_number_and_its_id_in_any_spelling() -> None:
    found = set(fingerprints(ORDER, "orders/create"))
    for text in ("jane.citizen@example.com", "JANE.CITIZEN@EXAMPLE.COM", "#1042", "1042", " # 1042 ", "450789469"):
        assert search_fingerprint(text) in found, text
    assert search_fingerprint("Shirt") not in found and search_fingerprint("10.00") not in found
    assert search_fingerprint("1") not in found  # a line item's id is not the order's


def test_the_fingerprints_a_masked_view_shows_find_the_event() -> None:
    masked = mask_value(ORDER)
    found = set(fingerprints(ORDER, "orders/create"))
    assert masked["email"] in found and masked["name"] in found
    assert search_fingerprint(masked["email"].upper()) == masked["email"]


def test_an_id_is_an_order_number_only_on_an_order_topic() -> None:
    assert fingerprint("77") not in fingerprints({"id": 77}, "customers/create")
    assert fingerprint("77") in fingerprints({"id": 77}, "orders/paid")


def test_a_hostile_payload_costs_bounded_work() -> None:
    deep: object = "x@example.com"
    for _ in range(10_000):
        deep = [deep]
    wide = {"emails": [f"c{n}@example.com" for n in range(100_000)]}
    assert fingerprints(deep) == ()  # deeper than MAX_DEPTH
    assert len(fingerprints(wide)) <= MAX_KEYS + 1
    assert search_fingerprint("") is None and search_fingerprint("not an order!") is not None
