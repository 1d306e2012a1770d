"""A Shopify checkout becomes an Omnisend cart, its update keeps it in step, and its completion (the order
placed) closes it:
through the real app and the fake APIs, on a fresh install's areas."""

from __future__ import annotations

import json

from bridge.sign import shopify_headers

from .conftest import Fakes
from .harness import ROOT, SHOPIFY_SECRET, BridgeProcess, wait_until

PAYLOADS = ROOT / "tests" / "payloads"




def post(bridge: BridgeProcess, topic: str, payload: dict[str, object], event_id: str) -> None:
    body = json.dumps(payload).encode()
    assert bridge.post("shopify", body, shopify_headers(body, SHOPIFY_SECRET, topic, event_id=event_id)).status_code == 200


def test_checkout_cart_update_then_the_completed_checkout_closes_it(fresh: BridgeProcess, fakes: Fakes) -> None:
    checkout = json.loads((PAYLOADS / "shopify/checkouts_create.json").read_bytes())
    cart_id = checkout["cart_token"]
    post(fresh, "checkouts/create", checkout, "c-1")
    wait_until(lambda: cart_id in fakes.omnisend.carts)
    cart = fakes.omnisend.carts[cart_id]
    assert cart["cartRecoveryUrl"] == checkout["abandoned_checkout_url"]
    assert (cart["cartSum"], cart["currency"], cart["email"]) == (17990, "AUD", "jane.citizen@example.com")

    checkout["line_items"][0]["quantity"] = 1
    checkout["total_price"] = "89.95"
    checkout["updated_at"] = "2026-11-20T10:05:00+11:00"
    post(fresh, "checkouts/update", checkout, "c-2")
    wait_until(lambda: fakes.omnisend.carts.get(cart_id, {}).get("cartSum") == 8995)
    assert fakes.omnisend.carts[cart_id]["products"][0]["quantity"] == 1

    # the order is placed: Shopify sends the checkout once more, completed
    checkout["completed_at"] = "2026-11-20T10:15:30+11:00"
    post(fresh, "checkouts/update", checkout, "c-done")
    wait_until(lambda: cart_id not in fakes.omnisend.carts)
    carts = [(r.method, r.status) for r in fakes.omnisend.recorded() if r.path.startswith("/v3/carts")]
    assert carts == [("PATCH", 404), ("POST", 200), ("PATCH", 200), ("DELETE", 204)]
    # the checkout's own "started checkout" events went too, and nothing was refused
    wait_until(lambda: fresh.query("SELECT count(*) FROM messages WHERE state != 'delivered'") == [(0,)])
    assert fresh.query("SELECT DISTINCT status FROM events") == [("mapped",)]


def test_a_checkout_missing_its_currency_is_a_mapping_error_not_a_refused_request(fresh: BridgeProcess,
                                                                                  fakes: Fakes) -> None:
    checkout = json.loads((PAYLOADS / "shopify/checkouts_create.json").read_bytes())
    del checkout["currency"]
    post(fresh, "checkouts/create", checkout, "c-3")
    [(status, errors)] = wait_until(lambda: fresh.query("SELECT status, errors FROM events WHERE status != 'received'"))
    assert status == "partial" and "shopify-storefront.yaml:" in errors and "omnisend cart: currency is empty" in errors
    assert [r for r in fakes.omnisend.recorded() if r.path.startswith("/v3/carts")] == []
