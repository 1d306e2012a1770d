"""Mapping speed: the shipped Shopify order rules against the same mapping written by hand.

Both take a stored `bridge.model.Event` (raw body bytes) and return the same `Outgoing` messages;
the hand-written one is checked to produce exactly what the rules produce before it is timed.
A second figure runs the worker's own mapping step (Worker.map_once: read waiting events from
the store, map them, save messages) over events committed to a store, which is what growth
(a store already holding a million delivered messages) can slow down.

    python -m bench.mapping [--db PATH] [--label mapping] [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import phonenumbers

from bench.common import ROOT, SHOPIFY_SECRET, WORK, bench_db, order_body, save
from bridge.config import settings_from_env
from bridge.model import Event, Outgoing
from bridge.sign import shopify_headers

OMNISEND_RULE = OMETRIA_RULE = "Shopify order placed"


def _money(value: Any) -> float | None:
    return None if value in (None, "") else float(Decimal(str(value)))


def _time(value: Any) -> str | None:
    if value in (None, ""):
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _phone(value: Any, region: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        parsed = phonenumbers.parse(str(value), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _clean(value: Any) -> Any:
    """Empty values are left out, as the rules leave them out."""
    if isinstance(value, dict):
        cleaned = {k: _clean(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


# Shopify's names to Omnisend's, as the rules' `lookup` tables translate them.
PAYMENT_STATUS = {"pending": "awaitingPayment", "authorized": "awaitingPayment", "partially_paid": "partiallyPaid",
                  "paid": "paid", "partially_refunded": "partiallyRefunded", "refunded": "refunded", "voided": "voided"}
FULFILLMENT_STATUS = {"unfulfilled": "unfulfilled", "partial": "inProgress", "fulfilled": "fulfilled",
                      "restocked": "restocked"}
DISCOUNT_TYPE = {"percentage": "percentage", "fixed_amount": "fixedAmount", "shipping": "freeShipping"}


def hand_map(event: Event) -> list[Outgoing]:
    """mappings/shopify-orders.yaml, written as a Python function."""
    o = json.loads(event.body)
    customer = o.get("customer") or {}
    ship = o.get("shipping_address") or {}
    email = (o.get("email") or "").lower()
    created = _time(o.get("created_at"))
    shipping = _money(((o.get("total_shipping_price_set") or {}).get("shop_money") or {}).get("amount"))
    codes = o.get("discount_codes") or []
    items = o.get("line_items") or []
    key = f"order:{o['id']}"
    messages = []
    if o.get("email"):
        tags = [t.strip() for t in o["tags"].split(",") if t.strip()] if o.get("tags") else None
        record = {
            "eventName": "placed order", "eventVersion": "v2", "origin": "api", "eventTime": created,
            "contact": {"email": email, "phone": _phone(o.get("phone"), "AU"),
                        "firstName": customer.get("first_name"), "lastName": customer.get("last_name")},
            "properties": {
                "orderID": _str(o.get("id")), "orderNumber": o.get("order_number"), "createdAt": created,
                "currency": o.get("currency"), "totalPrice": _money(o.get("total_price")),
                "subTotalPrice": _money(o.get("subtotal_price")), "subTotalTaxIncluded": o.get("taxes_included"),
                "totalDiscount": _money(o.get("total_discounts")), "totalTax": _money(o.get("total_tax")),
                "shippingPrice": shipping,
                "shippingMethod": next((s.get("title") for s in o.get("shipping_lines") or []), None),
                "paymentMethod": next(iter(o.get("payment_gateway_names") or []), None),
                "paymentStatus": PAYMENT_STATUS.get(o.get("financial_status")),
                "fulfillmentStatus": FULFILLMENT_STATUS.get(o.get("fulfillment_status") or "unfulfilled"),
                "orderStatusURL": o.get("order_status_url"), "note": o.get("note"), "tags": tags,
                "discounts": [{"code": d.get("code"), "amount": _money(d.get("amount")), "type": DISCOUNT_TYPE.get(d.get("type"))}
                              for d in codes],
                "lineItems": [{
                    "productID": _str(i.get("product_id")), "productVariantID": _str(i.get("variant_id")),
                    "productTitle": i.get("title"), "productVariantTitle": i.get("variant_title"),
                    "productSKU": i.get("sku"), "productVendor": i.get("vendor"),
                    "productPrice": _money(i.get("price")), "productDiscount": _money(i.get("total_discount")),
                    "productQuantity": i.get("quantity"), "productWeight": i.get("grams"),
                } for i in items],
                "shippingAddress": {
                    "firstName": ship.get("first_name"), "lastName": ship.get("last_name"),
                    "address1": ship.get("address1"), "address2": ship.get("address2"), "city": ship.get("city"),
                    "state": ship.get("province"), "stateCode": ship.get("province_code"), "zip": ship.get("zip"),
                    "country": ship.get("country"), "countryCode": ship.get("country_code"),
                },
            },
        }
        messages.append(Outgoing("omnisend", "event", _clean(record), OMNISEND_RULE, "create", key, 0))
    headers = {k.lower(): v for k, v in event.headers.items()}
    record = {
        "id": _str(o.get("id")), "timestamp": created, "grand_total": _money(o.get("total_price")),
        "subtotal": _money(o.get("subtotal_price")), "discount": _money(o.get("total_discounts")),
        "tax": _money(o.get("total_tax")), "shipping": shipping, "currency": o.get("currency"),
        "status": o.get("financial_status"), "is_valid": True, "web_id": o.get("name"),
        "ip_address": o.get("browser_ip"), "channel": o.get("source_name"),
        "store": headers.get("x-shopify-shop-domain"),
        "coupon_code": ",".join(str(d.get("code")) for d in codes),
        "customer": {"id": _str(customer.get("id")), "email": email, "firstname": customer.get("first_name"),
                     "lastname": customer.get("last_name")},
        "shipping_address": {"city": ship.get("city"), "state": ship.get("province"),
                             "country_code": ship.get("country_code"), "postcode": ship.get("zip")},
        "lineitems": [{"product_id": _str(i.get("product_id")), "variant_id": _str(i.get("variant_id")),
                       "sku": i.get("sku"), "quantity": i.get("quantity"), "unit_price": _money(i.get("price")),
                       "discount": _money(i.get("total_discount"))} for i in items],
    }
    record = _clean(record)
    record["@merge"] = True
    messages.append(Outgoing("ometria", "order", record, OMETRIA_RULE, "upsert", key, 1))
    return messages


def sample_event(i: int = 1) -> Event:
    body = order_body()
    headers = {k.lower(): v for k, v in shopify_headers(body, SHOPIFY_SECRET, "orders/create").items()}
    return Event(i, "shopify", "orders/create", f"k{i}", time.time(), headers, body)


def rate(fn: Any, event: Event, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(50):
            fn(event)
        n += 50
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - t0)


def compare(rules_messages: list[Outgoing], hand_messages: list[Outgoing]) -> list[str]:
    def view(m: Outgoing) -> tuple[Any, ...]:
        return (m.destination, m.kind, m.action, m.key, json.dumps(m.record, sort_keys=True))

    a, b = sorted(map(view, rules_messages)), sorted(map(view, hand_messages))
    return [] if a == b else [f"rules: {x}\nhand:  {y}" for x, y in zip(a, b) if x != y] or ["message count differs"]


async def store_mapping(db: Path, rules: Any, events: int) -> dict[str, Any]:
    """Worker.map_once over `events` freshly committed events: the store's read, map and save."""
    from bridge.settings import Secret, Settings, SourceSettings
    from bridge.sources.shopify import ShopifySource
    from bridge.store import SQLiteStore
    from bridge.worker import Worker

    source = ShopifySource.from_settings(SourceSettings("shopify", "shopify", (Secret(SHOPIFY_SECRET),)))
    store = SQLiteStore(db)
    await store.open()
    try:
        hooks = []
        for i in range(events):
            body = order_body(order_id=7_000_000_000_000 + i, email=f"map{i}@example.com")
            hooks.append(source.verify(shopify_headers(body, SHOPIFY_SECRET, "orders/create",
                                                       event_id=f"map-{db.stem}-{i}"), body))
        await asyncio.gather(*(store.ingest(h) for h in hooks))

        class Holder:
            current = rules

        worker = Worker(Settings(database_path=db, destinations={}), store, Holder(), {})
        t0 = time.perf_counter()
        mapped = 0
        while mapped < events:
            n = await worker.map_once()
            if n == 0:
                break
            mapped += n
        elapsed = time.perf_counter() - t0
    finally:
        await store.close()
    return {"events": mapped, "seconds": round(elapsed, 3), "events_per_second": round(mapped / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--in-place", action="store_true", help="use --db itself, not a copy")
    parser.add_argument("--db", type=Path, default=None, help="map through a copy of this database (growth)")
    parser.add_argument("--label", default="mapping")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--store-events", type=int, default=4000)
    parser.add_argument("--skip-pure", action="store_true")
    args = parser.parse_args()
    import logging

    import structlog
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    from bridge.mapping.areas import allowed_from_settings
    from bridge.mapping.loader import load_rules

    # what a fresh install maps: Omnisend v3 orders (opt-in) are held back, as the hand-written mapping has none
    rules = load_rules(ROOT / "mappings", allowed_from_settings(settings_from_env({})))
    event = sample_event()
    result: dict[str, Any] = {"body_bytes": len(event.body)}
    if not args.skip_pure:
        mismatch = compare(rules.map(event).messages, hand_map(event))
        result["outputs_identical"] = not mismatch
        result["mismatch"] = mismatch[:3]
        runs = []
        for _ in range(2):  # alternate so drift hits both alike; keep the better of each
            runs.append((rate(lambda e: rules.map(e), event, args.seconds / 2), rate(hand_map, event, args.seconds / 2)))
        result["rules_per_second"] = round(max(r for r, _ in runs), 1)
        result["hand_per_second"] = round(max(h for _, h in runs), 1)
        result["ratio"] = round(result["rules_per_second"] / result["hand_per_second"], 3)
    WORK.mkdir(parents=True, exist_ok=True)
    db = bench_db(args.label, args.db, args.in_place)
    result["store_path"] = asyncio.run(store_mapping(db, rules, args.store_events))
    save(args.label, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
