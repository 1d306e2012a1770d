"""v3 orders and carts as the fake Omnisend checks them (apis.md 1.4, 1.5): 422 for what is missing,
400 for a wrong type or format."""

from __future__ import annotations

from typing import Any

from bridge.fakes import formats
from bridge.fakes.omnisend.contacts import country_code

ORDER_PATCH_FIELDS = {
    "paymentStatus", "fulfillmentStatus", "trackingCode", "courierTitle", "courierUrl",
    "canceledDate", "cancelReason", "cartID",
}
ORDER_CENTS = ("orderSum", "subTotalSum", "discountSum", "taxSum", "shippingSum")
PAYMENT_STATUSES = {"awaitingPayment", "partiallyPaid", "paid", "partiallyRefunded", "refunded", "voided"}
FULFILLMENT_STATUSES = {"unfulfilled", "inProgress", "fulfilled", "delivered", "restocked"}
DISCOUNT_TYPES = {"percentage", "fixedAmount", "freeShipping"}


def missing_fields(record: dict[str, Any], names: tuple[str, ...], any_of: tuple[str, ...] = ()) -> dict[str, list[str]]:
    fields = {name: ["field required"] for name in names if record.get(name) in (None, "")}
    if any_of and not any(formats.text(record.get(k)) for k in any_of):
        fields[" or ".join(any_of)] = ["one of these is required"]
    return fields


def not_cents(record: dict[str, Any], names: tuple[str, ...], prefix: str = "") -> dict[str, list[str]]:
    return {
        prefix + name: ["must be an integer amount in cents"]
        for name in names
        if name in record and record[name] is not None
        and (not isinstance(record[name], int) or isinstance(record[name], bool))
    }


def product_lines(record: dict[str, Any], required: tuple[str, ...], cents: tuple[str, ...]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    products = record.get("products", [])
    if not isinstance(products, list):
        return {"products": ["must be an array"]}
    for i, product in enumerate(products):
        if not isinstance(product, dict):
            fields[f"products.{i}"] = ["must be an object"]
            continue
        fields.update({f"products.{i}.{k}": v for k, v in missing_fields(product, required).items()})
        fields.update(not_cents(product, cents, f"products.{i}."))
        quantity = product.get("quantity")
        if quantity is not None and (not isinstance(quantity, int) or quantity < 1):
            fields[f"products.{i}.quantity"] = ["must be an integer >= 1"]
    return fields


def order_errors(record: dict[str, Any]) -> tuple[int, dict[str, list[str]]]:
    missing = missing_fields(record, ("orderID", "currency", "orderSum", "createdAt"), ("email", "phone", "contactID"))
    missing.update({k: v for k, v in product_lines(record, ("productID", "variantID", "title", "quantity", "price"), ()).items()
                    if v == ["field required"]})
    if missing:
        return 422, missing
    wrong = not_cents(record, ORDER_CENTS)
    wrong.update(product_lines(record, ("productID", "variantID", "title", "quantity", "price"), ("price", "discount")))
    wrong.update(status_errors(record))
    wrong.update(order_formats(record))
    return (400, wrong) if wrong else (200, {})


def order_formats(record: dict[str, Any]) -> dict[str, list[str]]:
    """v3 order field formats (apis.md 1.5): `currency` exactly 3 characters and `orderNumber` an integer,
    as Omnisend holds them (the OpenAPI's integer, not the docs table's string)."""
    fields = times(record, ("createdAt", "updatedAt", "canceledDate"))
    currency = record.get("currency")
    if currency is not None and not (isinstance(currency, str) and len(currency) == 3):
        fields["currency"] = ["must be 3 characters"]
    if record.get("orderNumber") is not None and not formats.integer(record["orderNumber"]):
        fields["orderNumber"] = ["must be an integer"]
    if record.get("discountType") not in (None, *DISCOUNT_TYPES):
        fields["discountType"] = ["must be one of " + ", ".join(sorted(DISCOUNT_TYPES))]
    if record.get("discountValue") is not None and not formats.integer(record["discountValue"]):
        fields["discountValue"] = ["must be an integer"]
    if record.get("subTotalTaxIncluded") is not None and not formats.boolean(record["subTotalTaxIncluded"]):
        fields["subTotalTaxIncluded"] = ["must be true or false"]
    for name in ("billingAddress", "shippingAddress"):
        address = record.get(name)
        if isinstance(address, dict):
            fields.update(country_code(address, f"{name}."))
    return fields


def times(record: dict[str, Any], names: tuple[str, ...]) -> dict[str, list[str]]:
    return {name: ["must be an ISO 8601 date and time, like 2026-11-23T10:00:00Z"]
            for name in names if record.get(name) is not None and not formats.iso8601(record[name])}


def status_errors(record: dict[str, Any]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    if record.get("paymentStatus") not in (None, *PAYMENT_STATUSES):
        fields["paymentStatus"] = ["not an allowed value"]
    if record.get("fulfillmentStatus") not in (None, *FULFILLMENT_STATUSES):
        fields["fulfillmentStatus"] = ["not an allowed value"]
    return fields


def cart_errors(record: dict[str, Any]) -> tuple[int, dict[str, list[str]]]:
    # Carts: "email and/or contactID must be given" (apis.md 1.4) - phone alone is not enough.
    required = ("cartProductID", "productID", "variantID", "title", "quantity", "price")
    missing = missing_fields(record, ("cartID", "currency", "cartSum"), ("email", "contactID"))
    missing.update({k: v for k, v in product_lines(record, required, ()).items() if v == ["field required"]})
    if missing:
        return 422, missing
    wrong = not_cents(record, ("cartSum",))
    wrong.update(product_lines(record, required, ("price", "oldPrice", "discount")))
    wrong.update(cart_formats(record))
    return (400, wrong) if wrong else (200, {})


def cart_formats(record: dict[str, Any]) -> dict[str, list[str]]:
    """v3 cart field formats (apis.md 1.4): currency 3 characters, ISO 8601 times, a URI to recover the cart."""
    fields = times(record, ("createdAt", "updatedAt"))
    currency = record.get("currency")
    if currency is not None and not (isinstance(currency, str) and len(currency) == 3):
        fields["currency"] = ["must be 3 characters"]
    if record.get("cartRecoveryUrl") is not None and not formats.uri(record["cartRecoveryUrl"]):
        fields["cartRecoveryUrl"] = ["must be a URI"]
    return fields


def order_patch_errors(record: dict[str, Any]) -> tuple[str, dict[str, list[str]]]:
    """A v3 order `PATCH`: only its status fields, with allowed values; the error text and field -> what is wrong."""
    extra = sorted(set(record) - ORDER_PATCH_FIELDS)
    if extra:
        return "only status fields can be updated", {k: ["not allowed"] for k in extra}
    wrong = status_errors(record)
    wrong.update(times(record, ("canceledDate",)))
    return "Invalid order", wrong


def cart_patch_errors(record: dict[str, Any]) -> tuple[int, dict[str, list[str]]]:
    """A v3 cart `PATCH` must carry `currency` and `cartSum` (Omnisend refuses one without them: 422)."""
    absent = missing_fields(record, ("currency", "cartSum"))
    if absent:
        return 422, absent
    wrong = not_cents(record, ("cartSum",))
    wrong.update(product_lines(record, (), ("price", "oldPrice", "discount")))
    wrong.update(cart_formats(record))
    return (400, wrong) if wrong else (200, {})
