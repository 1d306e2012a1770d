"""Events as the fake Omnisend checks them (apis.md 1.2): the event, its contact, and the documented
properties of the recommended events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.fakes import formats
from bridge.fakes.omnisend.contacts import contact_problems
from bridge.fakes.omnisend.errors import Problems

RECOMMENDED_EVENTS = {
    "added product to cart": "",
    "started checkout": "",
    "placed order": "v2",
    "paid for order": "v2",
    "order fulfilled": "v2",
    "order canceled": "v2",
    "order refunded": "v2",
    "ordered product": "v2",
    "viewed product": "v4",
}
CART_EVENTS = ("added product to cart", "started checkout")
ORDER_EVENTS = ("placed order", "paid for order", "order fulfilled", "order canceled", "order refunded")
# Prices in events are decimal major units (apis.md 1.2): numbers, as in the event pages' examples.
ORDER_EVENT_PRICES = ("totalPrice", "subTotalPrice", "totalDiscount", "totalTax", "shippingPrice",
                      "totalRefundedAmount")
PRODUCT_ITEM_NUMBERS = ("productPrice", "productDiscount", "productStrikeThroughPrice", "productQuantity")
# Not checked, as apis.md does not settle them: `paymentStatus` / `fulfillmentStatus` values in events
# ([U]: only the v3 order enums are documented), `discounts[].type` (no values documented for events),
# `productID` / `productSKU` types (the examples and partner code disagree), the format of the order
# events' `createdAt`, and `viewed product` over REST (the docs list only the JS API for it, but do
# not say the REST endpoint refuses it).


def event_problems(event: Any) -> Problems:
    if not isinstance(event, dict):
        return [{"field": "", "code": "invalid_type", "message": "event must be an object"}]
    errors: Problems = []
    for name in ("eventName", "origin"):
        if not formats.text(event.get(name)):
            errors.append({"field": name, "code": "required", "message": f"{name} is required"})
    contact = event.get("contact")
    if not isinstance(contact, dict) or not any(formats.text(contact.get(k)) for k in ("email", "phone", "id")):
        errors.append({"field": "contact", "code": "required", "message": "contact needs email, phone or id"})
    else:
        errors += contact_problems(contact)
    event_name = event.get("eventName")
    # eventVersion: the documented value for a recommended event; empty or absent for the cart events
    # (whose documented value is "") and for custom events (apis.md 1.2).
    expected = RECOMMENDED_EVENTS.get(event_name, "") if isinstance(event_name, str) else ""
    version = event.get("eventVersion")
    if expected and version != expected:
        errors.append({"field": "eventVersion", "code": "invalid_value",
                       "message": f"eventVersion must be {expected!r} for {event_name!r}"})
    elif not expected and version not in (None, ""):
        errors.append({"field": "eventVersion", "code": "invalid_value",
                       "message": f"eventVersion must be empty or absent for {event_name!r}"})
    if event.get("eventTime") is not None and not formats.omnisend_event_time(event["eventTime"]):
        errors.append({"field": "eventTime", "code": "invalid_format",
                       "message": "eventTime must be RFC 3339 or YYYY-MM-DD HH:MM:SS±HH:MM"})
    if event.get("eventID") not in (None, "") and not formats.uuid_v4_to_v7(event["eventID"]):
        errors.append({"field": "eventID", "code": "invalid_format", "message": "eventID must be a UUID (v4 to v7)"})
    properties = event.get("properties")
    if "properties" in event and not isinstance(properties, dict):
        errors.append({"field": "properties", "code": "invalid_type", "message": "properties must be an object"})
    elif isinstance(properties, dict) and isinstance(event_name, str):
        errors += property_problems(event_name, properties)
    return errors


def property_problems(event_name: str, properties: dict[str, Any]) -> Problems:
    """The documented property shapes of the recommended events (apis.md 1.2); custom events are free-form."""
    errors: Problems = []

    def check(path: str, value: Any, ok: Callable[[Any], bool], message: str) -> None:
        if value is not None and not ok(value):
            errors.append({"field": f"properties.{path}", "code": "invalid_type", "message": message})

    items: list[str] = []
    if event_name in CART_EVENTS:
        if properties.get("currency") is not None and not formats.iso4217(properties["currency"]):
            errors.append({"field": "properties.currency", "code": "invalid_format",
                           "message": "currency must be an ISO 4217 code, like EUR"})
        check("value", properties.get("value"), formats.number, "value must be a number")
        items = ["lineItems", "addedItem"]
    elif event_name in ORDER_EVENTS:
        check("orderNumber", properties.get("orderNumber"), formats.integer, "orderNumber must be an integer")
        for name in ORDER_EVENT_PRICES:
            check(name, properties.get(name), formats.number, f"{name} must be a number (decimal major units)")
        check("subTotalTaxIncluded", properties.get("subTotalTaxIncluded"), formats.boolean,
              "subTotalTaxIncluded must be true or false")
        for i, discount in enumerate(listed(properties.get("discounts"))):
            if isinstance(discount, dict):
                check(f"discounts.{i}.amount", discount.get("amount"), formats.number, "amount must be a number")
        items = ["lineItems", "refundedLineItems"]
    elif event_name == "ordered product":
        items = ["product"]
    for name in items:
        value = properties.get(name)
        for i, item in enumerate(listed(value)):
            if not isinstance(item, dict):
                continue
            where = f"{name}.{i}" if isinstance(value, list) else name
            for field_name in PRODUCT_ITEM_NUMBERS:
                check(f"{where}.{field_name}", item.get(field_name), formats.number, f"{field_name} must be a number")
    return errors


def listed(value: Any) -> list[Any]:
    """A list as it is, one object as a list of one, anything else as nothing."""
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else []
