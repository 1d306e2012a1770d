"""Shopify refunds through the real app and fakes: matched to the order received before, they reach
Omnisend (`order refunded`, the v3 order's status) and Ometria (the order's refunded lines, merged into
the stored order, not replacing it); a refund that comes before its order waits for it; one whose order
never comes, or that names none, is a mapping error and no request."""

from __future__ import annotations

import json
from pathlib import Path

from bridge.sign import shopify_headers

from .conftest import Fakes, bridge_env
from .harness import ROOT, SHOPIFY_SECRET, BridgeProcess, wait_until

PAYLOADS = ROOT / "tests" / "payloads" / "shopify"
ORDER = json.loads((PAYLOADS / "orders_create.json").read_bytes())
OID = str(ORDER["id"])


def post(bridge: BridgeProcess, topic: str, body: bytes, event_id: str) -> None:
    response = bridge.post("shopify", body, shopify_headers(body, SHOPIFY_SECRET, topic, event_id=event_id))
    assert response.status_code == 200, response.text


def post_file(bridge: BridgeProcess, topic: str, name: str, event_id: str) -> None:
    post(bridge, topic, (PAYLOADS / name).read_bytes(), event_id)


def refunded_events(fakes: Fakes) -> list[dict[str, object]]:
    return [e for e in fakes.omnisend.events if e.get("eventName") == "order refunded"]


def all_delivered(bridge: BridgeProcess) -> bool:
    return bridge.query("SELECT count(*) FROM messages WHERE state != 'delivered'") == [(0,)]


def test_an_order_then_its_refunds_reach_both_destinations(tmp_path: Path, fakes: Fakes) -> None:
    env = bridge_env(fakes, OMNISEND_AREAS="events,contacts,orders,carts,products")
    bridge = BridgeProcess(tmp_path, env).start()
    try:
        post_file(bridge, "orders/create", "orders_create.json", "o-1")
        wait_until(lambda: ("order", OID) in fakes.ometria.records and OID in fakes.omnisend.orders)
        post_file(bridge, "refunds/create", "refunds_create.json", "r-1")
        wait_until(lambda: len(refunded_events(fakes)) == 1 and all_delivered(bridge))

        [event] = refunded_events(fakes)
        assert event["contact"] == {"email": "jane.citizen@example.com"}  # from the order: the refund has none
        properties = event["properties"]
        assert isinstance(properties, dict)
        assert (properties["orderID"], properties["orderNumber"], properties["totalRefundedAmount"]) == (OID, 1042, 89.95)
        assert [(i["productSKU"], i["productQuantity"]) for i in properties["refundedLineItems"]] == [("LS-SAND-M", 1)]
        assert fakes.omnisend.orders[OID]["paymentStatus"] == "partiallyRefunded"
        stored = fakes.ometria.records[("order", OID)]
        assert stored["status"] == "partially_refunded"
        assert [(i["sku"], i["quantity"], i["quantity_refunded"], i["refunded"]) for i in stored["lineitems"]] == [
            ("LS-SAND-M", 2, 1, 89.95), ("TOTE-NAT", 1, 0, 0)]
        # merged, not replaced: what only orders/create sent is still there
        assert stored["customer"]["email"] == "jane.citizen@example.com" and stored["web_id"] == "#1042"

        # Shopify's update of the order lists the first refund; the second refund adds to it.
        post_file(bridge, "orders/updated", "orders_updated_refunded.json", "o-2")
        post_file(bridge, "refunds/create", "refunds_create_second.json", "r-2")
        wait_until(lambda: len(refunded_events(fakes)) == 2 and all_delivered(bridge))
        stored = fakes.ometria.records[("order", OID)]
        assert [(i["sku"], i["quantity_refunded"]) for i in stored["lineitems"]] == [("LS-SAND-M", 1), ("TOTE-NAT", 1)]
        assert refunded_events(fakes)[1]["properties"]["totalRefundedAmount"] == 31.5
        assert bridge.query("SELECT topic, status, errors FROM events WHERE topic = 'refunds/create'") == [
            ("refunds/create", "mapped", None), ("refunds/create", "mapped", None)]
        assert [r for r in fakes.omnisend.recorded() + fakes.ometria.recorded() if r.status >= 400] == []
        assert fakes.ometria.errors == []
    finally:
        bridge.stop()


def test_a_refund_that_comes_before_its_order_waits_for_it(tmp_path: Path, fakes: Fakes) -> None:
    bridge = BridgeProcess(tmp_path, bridge_env(fakes)).start()
    try:
        post_file(bridge, "refunds/create", "refunds_create.json", "r-1")
        wait_until(lambda: bridge.query("SELECT status FROM events") == [("waiting",)])
        [(errors,)] = bridge.query("SELECT errors FROM events")
        assert f"waiting for the shopify order {OID}" in errors
        assert refunded_events(fakes) == []
        post_file(bridge, "orders/create", "orders_create.json", "o-1")
        wait_until(lambda: len(refunded_events(fakes)) == 1 and all_delivered(bridge))
        assert bridge.query("SELECT topic, status FROM events ORDER BY id") == [
            ("refunds/create", "mapped"), ("orders/create", "mapped")]
        assert fakes.ometria.records[("order", OID)]["lineitems"][0]["quantity_refunded"] == 1
        assert '"event.waiting"' in bridge.logs()
    finally:
        bridge.stop()


def test_a_refund_whose_order_never_comes_or_that_names_none_is_a_mapping_error(tmp_path: Path,
                                                                                 fakes: Fakes) -> None:
    bridge = BridgeProcess(tmp_path, bridge_env(fakes, BRIDGE_LOOKUP_WAIT_SECONDS="1")).start()
    try:
        post_file(bridge, "refunds/create", "refunds_create.json", "r-1")
        # A refund without `order_id` is refused at the door (400); one whose `order_id` is not an id is not.
        refund = json.loads((PAYLOADS / "refunds_create.json").read_bytes())
        post(bridge, "refunds/create", json.dumps({**refund, "id": 929361463, "order_id": {"id": 5}}).encode(), "r-2")
        wait_until(lambda: [s for (s,) in bridge.query("SELECT status FROM events ORDER BY id")] == [
            "mapping_error", "mapping_error"])
        never, unnamed = [json.loads(e) for (e,) in bridge.query("SELECT errors FROM events ORDER BY id")]
        assert any(f"the shopify order {OID} (its `order_id`) never reached the bridge" in e for e in never)
        assert any("shopify-orders.yaml:" in e and "timestamp is empty" in e for e in never)  # the rule's line
        assert any("`order_id` names no order (it is empty, or not an id)" in e for e in unnamed)
        assert any("shopify-orders.yaml:" in e and "timestamp is empty" in e for e in unnamed)
        assert bridge.query("SELECT count(*) FROM messages") == [(0,)]
        assert fakes.omnisend.recorded() == [] and fakes.ometria.recorded() == []  # no request a destination refuses
    finally:
        bridge.stop()
