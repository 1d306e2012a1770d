"""Products through the real app and the fake APIs, on a fresh install's areas (products allowed by default)."""

from __future__ import annotations

import json

from bridge.sign import shopify_headers, woocommerce_headers

from .conftest import Fakes
from .harness import ROOT, SHOPIFY_SECRET, WOO_SECRET, BridgeProcess, wait_until
from .received import ometria_records

PAYLOADS = ROOT / "tests" / "payloads"




def test_a_shopify_product_reaches_both_catalogues_and_an_update_replaces_it(fresh: BridgeProcess,
                                                                             fakes: Fakes) -> None:
    product = json.loads((PAYLOADS / "shopify/products_create.json").read_bytes())
    body = json.dumps(product).encode()
    headers = {**shopify_headers(body, SHOPIFY_SECRET, "products/create", event_id="p-1"),
               "X-Shopify-Shop-Domain": "harbour-co.myshopify.com"}
    assert fresh.post("shopify", body, headers).status_code == 200
    pid = str(product["id"])
    wait_until(lambda: pid in fakes.omnisend.products)
    stored = fakes.omnisend.products[pid]
    assert stored["url"] == "https://harbour-co.myshopify.com/products/linen-shirt"
    assert [v["status"] for v in stored["variants"]] == ["inStock", "outOfStock"]
    assert fakes.omnisend.categories["shopify-type-shirts"]["title"] == "Shirts"
    [record] = wait_until(lambda: ometria_records(fakes, "product"))
    assert record["id"] == pid and record["price"] == 89.95

    product["title"] = "Linen Shirt, washed"
    body = json.dumps(product).encode()
    headers = {**shopify_headers(body, SHOPIFY_SECRET, "products/update", event_id="p-2"),
               "X-Shopify-Shop-Domain": "harbour-co.myshopify.com"}
    assert fresh.post("shopify", body, headers).status_code == 200
    wait_until(lambda: fakes.omnisend.products[pid]["title"] == "Linen Shirt, washed")
    methods = [(r.method, r.status) for r in fakes.omnisend.recorded() if r.path.startswith("/api/products")]
    assert methods == [("PUT", 404), ("POST", 201), ("PUT", 200)]
    wait_until(lambda: fresh.query("SELECT count(*) FROM messages WHERE state = 'delivered'") == [(6,)])
    assert fresh.query("SELECT DISTINCT status FROM events") == [("mapped",)]


def test_a_woocommerce_product_without_a_title_is_a_mapping_error_and_sends_nothing(fresh: BridgeProcess,
                                                                                     fakes: Fakes) -> None:
    product = json.loads((PAYLOADS / "woocommerce/product_created.json").read_bytes())
    product["name"] = ""
    body = json.dumps(product).encode()
    assert fresh.post("woocommerce", body, woocommerce_headers(body, WOO_SECRET, "product.created")).status_code == 200
    [(status, errors)] = wait_until(lambda: fresh.query("SELECT status, errors FROM events WHERE status != 'received'"))
    assert "catalogue.yaml:68 rule 'WooCommerce product' → omnisend product: title is empty" in json.loads(errors)[0]
    # the category still went; no product request was made that Omnisend would refuse
    wait_until(lambda: "woo-category-18" in fakes.omnisend.categories)
    assert status == "partial" and not [r for r in fakes.omnisend.recorded() if r.path.startswith("/api/products")]
    assert ometria_records(fakes, "product") == []
