"""Omnisend v3 orders: on with `orders` in OMNISEND_AREAS, off on a fresh install; through the real app and fakes."""

from __future__ import annotations

import json
from pathlib import Path

from bridge.sign import shopify_headers

from .conftest import Fakes, bridge_env
from .harness import ROOT, SHOPIFY_SECRET, BridgeProcess, wait_until

PAYLOADS = ROOT / "tests" / "payloads"


def post(bridge: BridgeProcess, topic: str, name: str, event_id: str) -> None:
    body = (PAYLOADS / "shopify" / name).read_bytes()
    assert bridge.post("shopify", body, shopify_headers(body, SHOPIFY_SECRET, topic, event_id=event_id)).status_code == 200


def test_v3_orders_follow_the_order_when_switched_on(tmp_path: Path, fakes: Fakes) -> None:
    bridge = BridgeProcess(tmp_path, bridge_env(fakes, OMNISEND_AREAS="events,contacts,orders,carts,products")).start()
    try:
        order = json.loads((PAYLOADS / "shopify/orders_create.json").read_bytes())
        oid = str(order["id"])
        post(bridge, "orders/create", "orders_create.json", "o-1")
        wait_until(lambda: oid in fakes.omnisend.orders)
        stored = fakes.omnisend.orders[oid]
        assert (stored["orderNumber"], stored["currency"], stored["orderSum"]) == (1042, "AUD", 22135)
        assert stored["cartID"] == order["cart_token"] and stored["paymentStatus"] == "awaitingPayment"
        post(bridge, "orders/paid", "orders_paid.json", "o-2")
        wait_until(lambda: fakes.omnisend.orders[oid].get("paymentStatus") == "paid")
        post(bridge, "orders/fulfilled", "orders_fulfilled.json", "o-3")
        wait_until(lambda: fakes.omnisend.orders[oid].get("fulfillmentStatus") == "fulfilled")
        assert fakes.omnisend.orders[oid]["trackingCode"] == "33ABC1234567"
        post(bridge, "orders/cancelled", "orders_cancelled.json", "o-4")
        wait_until(lambda: fakes.omnisend.orders[oid].get("canceledDate"))
        patches = [r for r in fakes.omnisend.recorded() if r.method == "PATCH" and r.path.startswith("/v3/orders/")]
        assert [r.status for r in patches] == [200, 200, 200]
        wait_until(lambda: bridge.query("SELECT count(*) FROM messages WHERE state != 'delivered'") == [(0,)])
    finally:
        bridge.stop()


def test_a_fresh_install_sends_no_v3_order(tmp_path: Path, fakes: Fakes) -> None:
    env = bridge_env(fakes)
    del env["OMNISEND_AREAS"], env["OMETRIA_AREAS"]
    bridge = BridgeProcess(tmp_path, env).start()
    try:
        post(bridge, "orders/create", "orders_create.json", "o-5")
        wait_until(lambda: bridge.query("SELECT count(*) FROM messages WHERE state = 'delivered'") == [(2,)])
        assert bridge.query("SELECT status, errors FROM events") == [("mapped", None)]
        assert [r for r in fakes.omnisend.recorded() if r.path.startswith("/v3/orders")] == []
    finally:
        bridge.stop()
