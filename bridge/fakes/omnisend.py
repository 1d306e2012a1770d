"""A fake Omnisend: the 2026-03-15 `/api` events, contacts, products, categories and batches, and v3
contacts, orders and carts.

Contracts enforced, from docs/reference/apis.md section 1:
- `/api/*`: `Authorization: Omnisend-API-Key <key>` and `Omnisend-Version` (wrong key -> 401, missing
  or unknown version -> 400); errors are RFC 9457 problem JSON with `errors[{field, code, message}]`.
- `/v3/*`: `X-API-KEY: <key>`; errors are `{"error": ..., "fields": {...}}`; missing mandatory
  fields -> 422, wrong types (money must be integer cents) -> 400.
- Events (1.2): `eventTime` RFC 3339 or `YYYY-MM-DD HH:MM:SS±HH:MM`; `eventVersion` the documented
  value of a recommended event, empty or absent for the cart events and custom events; `eventID` a
  UUID v4-v7; `contact` maxLengths, `phone` E.164, `birthdate` YYYY-MM-DD, `gender` m|f, tags and
  opt-in/out/consent lists; the recommended events' documented property types (prices numbers,
  `orderNumber` an integer, cart events' `currency` ISO 4217). All -> 400 with every failing field.
- v3 formats (1.4-1.6) -> 400: order `createdAt`, cart `createdAt`/`updatedAt` ISO 8601, cart
  `currency` 3 characters and `cartRecoveryUrl` a URI, `discountType`, `paymentStatus` and
  `fulfillmentStatus` enums, `countryCode` 2 characters (orders' addresses, contacts), contact
  `birthdate`, identifier channels (`email` for email, `sms` for phone) and their `status` values.
- 400 requests per sliding minute for the whole brand, `X-Rate-Limit-Limit/Remaining/Reset`
  (seconds left) on every answer, 429 with `Retry-After` when over.
- 2026 contacts (`POST /api/contacts` upsert by email, 201/200; `PATCH /api/contacts?email=` update, 404
  for an unknown email): `ContactRequest` checks (`contact_request_problems`); channels are optional, and
  an identifier created without one is stored as `subscribed` (the worst case, for tests to rule out).
- 2026 products (`POST /api/products` 201 / 409 when it exists, `PUT /api/products/{id}` 200 / 404) and
  categories (`POST /api/product-categories` 201 / 409, `PATCH /api/product-categories/{categoryID}` 200 /
  404): `product_problems`, `category_problems`.
- v3 carts: a `PATCH` must carry `currency` and `cartSum` (422 otherwise); `DELETE /v3/carts/{cartID}` 204, 404
  when there is no such cart.
- Batches: 201 `{batchID, totalCount}`, `inProgress` for `processing_seconds`, then `finished`
  with per-item `responseCode` under `responses` / `errors`.
- v3 batches (`/v3/batches`, apis.md 1.7): `X-API-KEY`; `{method, endpoint, items, eventID?}` with
  1..1000 items, PUT only for products/orders, `eventID` required for (and only for) `events`;
  200 `{batchID, totalCount}`, `pending` for `processing_seconds`, then `finished`. Contact and
  order items get the same checks as `POST /v3/contacts` / `POST|PUT /v3/orders`; accepted ones
  land in `contacts` / `orders`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.fakes import formats
from bridge.fakes.control import FakeApi, Handler, ceil_seconds

VERSIONS = ("2026-03-15",)
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
ORDER_PATCH_FIELDS = {
    "paymentStatus", "fulfillmentStatus", "trackingCode", "courierTitle", "courierUrl",
    "canceledDate", "cancelReason", "cartID",
}
ORDER_CENTS = ("orderSum", "subTotalSum", "discountSum", "taxSum", "shippingSum")
PAYMENT_STATUSES = {"awaitingPayment", "partiallyPaid", "paid", "partiallyRefunded", "refunded", "voided"}
FULFILLMENT_STATUSES = {"unfulfilled", "inProgress", "fulfilled", "delivered", "restocked"}
DISCOUNT_TYPES = {"percentage", "fixedAmount", "freeShipping"}
CHANNEL_STATUSES = {"subscribed", "unsubscribed", "nonSubscribed"}
IDENTIFIER_CHANNELS = {"email": "email", "phone": "sms"}  # identifier type -> its key under `channels`

Problems = list[dict[str, str]]


@dataclass
class Batch:
    batch_id: str
    method: str
    endpoint: str
    created: float
    items: list[dict[str, Any]]  # each: itemID, request, responseCode, response
    line: str = "api"  # "api" (/api/batches) or "v3" (/v3/batches): the status names differ
    event_id: str | None = None


@dataclass
class FakeOmnisend(FakeApi):
    processing_seconds: float = 0.05
    retry_after_header: bool = True
    events: list[dict[str, Any]] = field(default_factory=list)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    carts: dict[str, dict[str, Any]] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    categories: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: dict[str, Batch] = field(default_factory=dict)

    def reset_data(self) -> None:
        with self.lock:
            self.events.clear()
            self.contacts.clear()
            self.orders.clear()
            self.carts.clear()
            self.products.clear()
            self.categories.clear()
            self.batches.clear()

    def rate_headers(self, remaining: int, reset: float) -> dict[str, str]:
        return {
            "X-Rate-Limit-Limit": str(self.rate_limit),
            "X-Rate-Limit-Remaining": str(remaining),
            "X-Rate-Limit-Reset": str(ceil_seconds(reset)),
        }

    def write_contact(self, email: str, body: dict[str, Any], *, create: bool) -> dict[str, Any] | None:
        """The 2026 line's contact write: the details merge into the stored contact (custom properties
        key by key); an identifier sent without a channel status on a contact being created is stored
        as `subscribed`, v3's documented default, as the worst case the bridge must never trigger.
        None when updating and no contact has that email."""
        with self.lock:
            stored = self.contacts.get(email)
            if stored is None and not create:
                return None
            contact = dict(stored or {"contactID": uuid.uuid4().hex[:24], "identifiers": []})
            known = {i["id"]: i for i in contact["identifiers"]}
            for ident in body.get("identifiers") or []:
                channel = IDENTIFIER_CHANNELS[ident["type"]]
                held = known.get(ident["id"])
                channels = ident.get("channels") or (held or {}).get("channels") \
                    or {channel: {"status": "subscribed"}}
                known[ident["id"]] = {"type": ident["type"], "id": ident["id"], "channels": channels}
            details = {k: v for k, v in body.items() if k != "identifiers"}
            properties = {**contact.get("customProperties", {}), **details.pop("customProperties", {})}
            contact.update(details, identifiers=list(known.values()))
            if properties:
                contact["customProperties"] = properties
            self.contacts[email] = contact
        return {"id": contact["contactID"], "email": email, **details}

    def store_contact(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create or update a (validated) contact keyed by its first identifier; the v3 answer."""
        ident = body["identifiers"][0]["id"]
        with self.lock:
            contact_id = self.contacts.get(ident, {}).get("contactID") or uuid.uuid4().hex[:24]
            self.contacts[ident] = {**body, "contactID": contact_id}
        return {"email": ident if "@" in str(ident) else None, "contactID": contact_id}

    def too_many(self, reset: float) -> Response:
        """429 `RateLimitProblem`: `retryAfter` (seconds) in the body always; `Retry-After` unless turned off."""
        headers = {"Retry-After": str(ceil_seconds(reset))} if self.retry_after_header else {}
        return problem(429, "Too Many Requests", "rate limit exceeded", kind="rate-limit-exceeded", headers=headers,
                       extra={"retryAfter": ceil_seconds(reset)})


def problem(
    status: int,
    title: str,
    detail: str,
    errors: Problems | None = None,
    *,
    kind: str = "problem",
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        **(extra or {}),
        "type": f"https://problems.omnisend.com/{kind}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": f"urn:omnisend:request:{uuid.uuid4()}",
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


def v3_error(status: int, message: str, fields: dict[str, list[str]] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "fields": fields or {}}, status_code=status)


# --- validation (returns problems; empty means valid) ----------------------------------------------


def _text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


# contactDto.Contact maxLength (apis.md 1.2), written out here: the fake does not take the bridge's word.
CONTACT_MAX_LENGTHS = {"phone": 15, "firstName": 50, "lastName": 50, "address": 500, "city": 100, "state": 100,
                       "country": 100, "countryCode": 3, "postalCode": 20}
# contact optIns / optOuts / consents: at most this many entries, and the text limits of each entry.
CONTACT_LISTS = {"optIns": (10, {"source": 100}), "optOuts": (10, {"reason": 100, "source": 100}),
                 "consents": (100, {"source": 100, "userAgent": 200})}
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
        if not _text(event.get(name)):
            errors.append({"field": name, "code": "required", "message": f"{name} is required"})
    contact = event.get("contact")
    if not isinstance(contact, dict) or not any(_text(contact.get(k)) for k in ("email", "phone", "id")):
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


def profile_problems(contact: dict[str, Any]) -> Problems:
    """What an event's `contact` and a 2026 `ContactRequest` share: `birthdate` YYYY-MM-DD, `gender` m|f,
    at most 100 `tags` (text), `customProperties` an object."""
    errors: Problems = []
    if contact.get("birthdate") is not None and not formats.ymd(contact["birthdate"]):
        errors.append({"field": "birthdate", "code": "invalid_format", "message": "birthdate must be YYYY-MM-DD"})
    if contact.get("gender") not in (None, "m", "f"):
        errors.append({"field": "gender", "code": "invalid_value", "message": "gender must be m or f"})
    tags = contact.get("tags")
    if tags is not None and (not isinstance(tags, list) or len(tags) > 100
                             or not all(isinstance(tag, str) for tag in tags)):
        errors.append({"field": "tags", "code": "invalid_value", "message": "tags must be at most 100 strings"})
    if contact.get("customProperties") is not None and not isinstance(contact["customProperties"], dict):
        errors.append({"field": "customProperties", "code": "invalid_type",
                       "message": "customProperties must be an object"})
    return errors


def contact_problems(contact: dict[str, Any]) -> Problems:
    """An event's `contact` against contactDto.Contact (apis.md 1.2)."""
    errors: Problems = []

    def wrong(name: str, code: str, message: str) -> None:
        errors.append({"field": f"contact.{name}", "code": code, "message": message})

    for name, limit in CONTACT_MAX_LENGTHS.items():
        if isinstance(contact.get(name), str) and len(contact[name]) > limit:
            wrong(name, "too_long", f"{name} is at most {limit} characters")
    if contact.get("phone") is not None and not formats.e164(contact["phone"]):
        wrong("phone", "invalid_format", "phone must be E.164, like +1234567890")
    errors += [{**problem, "field": f"contact.{problem['field']}"} for problem in profile_problems(contact)]
    for name, (most, limits) in CONTACT_LISTS.items():
        entries = contact.get(name)
        if entries is None:
            continue
        if not isinstance(entries, list) or len(entries) > most:
            wrong(name, "invalid_value", f"{name} must be a list of at most {most} entries")
            continue
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                wrong(f"{name}.{i}", "invalid_type", "must be an object")
                continue
            for key, limit in limits.items():
                if isinstance(entry.get(key), str) and len(entry[key]) > limit:
                    wrong(f"{name}.{i}.{key}", "too_long", f"{key} is at most {limit} characters")
            # The channel values are listed for optIns only (email | sms); consents' createdAt is RFC 3339.
            if name == "optIns" and entry.get("channel") not in ("email", "sms"):
                wrong(f"{name}.{i}.channel", "invalid_value", "channel must be email or sms")
            if name == "consents" and entry.get("createdAt") is not None and not formats.rfc3339(entry["createdAt"]):
                wrong(f"{name}.{i}.createdAt", "invalid_format", "createdAt must be RFC 3339")
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
        for i, discount in enumerate(_listed(properties.get("discounts"))):
            if isinstance(discount, dict):
                check(f"discounts.{i}.amount", discount.get("amount"), formats.number, "amount must be a number")
        items = ["lineItems", "refundedLineItems"]
    elif event_name == "ordered product":
        items = ["product"]
    for name in items:
        value = properties.get(name)
        for i, item in enumerate(_listed(value)):
            if not isinstance(item, dict):
                continue
            where = f"{name}.{i}" if isinstance(value, list) else name
            for field_name in PRODUCT_ITEM_NUMBERS:
                check(f"{where}.{field_name}", item.get(field_name), formats.number, f"{field_name} must be a number")
    return errors


def _listed(value: Any) -> list[Any]:
    """A list as it is, one object as a list of one, anything else as nothing."""
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else []


def _missing(record: dict[str, Any], names: tuple[str, ...], any_of: tuple[str, ...] = ()) -> dict[str, list[str]]:
    fields = {name: ["field required"] for name in names if record.get(name) in (None, "")}
    if any_of and not any(_text(record.get(k)) for k in any_of):
        fields[" or ".join(any_of)] = ["one of these is required"]
    return fields


def _not_cents(record: dict[str, Any], names: tuple[str, ...], prefix: str = "") -> dict[str, list[str]]:
    return {
        prefix + name: ["must be an integer amount in cents"]
        for name in names
        if name in record and record[name] is not None
        and (not isinstance(record[name], int) or isinstance(record[name], bool))
    }


def _products(record: dict[str, Any], required: tuple[str, ...], cents: tuple[str, ...]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    products = record.get("products", [])
    if not isinstance(products, list):
        return {"products": ["must be an array"]}
    for i, product in enumerate(products):
        if not isinstance(product, dict):
            fields[f"products.{i}"] = ["must be an object"]
            continue
        fields.update({f"products.{i}.{k}": v for k, v in _missing(product, required).items()})
        fields.update(_not_cents(product, cents, f"products.{i}."))
        quantity = product.get("quantity")
        if quantity is not None and (not isinstance(quantity, int) or quantity < 1):
            fields[f"products.{i}.quantity"] = ["must be an integer >= 1"]
    return fields


def order_errors(record: dict[str, Any]) -> tuple[int, dict[str, list[str]]]:
    missing = _missing(record, ("orderID", "currency", "orderSum", "createdAt"), ("email", "phone", "contactID"))
    missing.update({k: v for k, v in _products(record, ("productID", "variantID", "title", "quantity", "price"), ()).items()
                    if v == ["field required"]})
    if missing:
        return 422, missing
    wrong = _not_cents(record, ORDER_CENTS)
    wrong.update(_products(record, ("productID", "variantID", "title", "quantity", "price"), ("price", "discount")))
    wrong.update(_enums(record))
    wrong.update(_order_formats(record))
    return (400, wrong) if wrong else (200, {})


def _order_formats(record: dict[str, Any]) -> dict[str, list[str]]:
    """v3 order field formats (apis.md 1.5): `currency` exactly 3 characters and `orderNumber` an integer,
    as Omnisend holds them (the OpenAPI's integer, not the docs table's string)."""
    fields = _times(record, ("createdAt", "updatedAt", "canceledDate"))
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
            fields.update(_country_code(address, f"{name}."))
    return fields


def _times(record: dict[str, Any], names: tuple[str, ...]) -> dict[str, list[str]]:
    return {name: ["must be an ISO 8601 date and time, like 2026-11-23T10:00:00Z"]
            for name in names if record.get(name) is not None and not formats.iso8601(record[name])}


def _country_code(record: dict[str, Any], prefix: str = "") -> dict[str, list[str]]:
    code = record.get("countryCode")
    if code is None or (isinstance(code, str) and len(code) == 2):
        return {}
    return {f"{prefix}countryCode": ["must be 2 characters"]}


def _enums(record: dict[str, Any]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    if record.get("paymentStatus") not in (None, *PAYMENT_STATUSES):
        fields["paymentStatus"] = ["not an allowed value"]
    if record.get("fulfillmentStatus") not in (None, *FULFILLMENT_STATUSES):
        fields["fulfillmentStatus"] = ["not an allowed value"]
    return fields


def cart_errors(record: dict[str, Any]) -> tuple[int, dict[str, list[str]]]:
    # Carts: "email and/or contactID must be given" (apis.md 1.4) - phone alone is not enough.
    required = ("cartProductID", "productID", "variantID", "title", "quantity", "price")
    missing = _missing(record, ("cartID", "currency", "cartSum"), ("email", "contactID"))
    missing.update({k: v for k, v in _products(record, required, ()).items() if v == ["field required"]})
    if missing:
        return 422, missing
    wrong = _not_cents(record, ("cartSum",))
    wrong.update(_products(record, required, ("price", "oldPrice", "discount")))
    wrong.update(_cart_formats(record))
    return (400, wrong) if wrong else (200, {})


def _cart_formats(record: dict[str, Any]) -> dict[str, list[str]]:
    """v3 cart field formats (apis.md 1.4): currency 3 characters, ISO 8601 times, a URI to recover the cart."""
    fields = _times(record, ("createdAt", "updatedAt"))
    currency = record.get("currency")
    if currency is not None and not (isinstance(currency, str) and len(currency) == 3):
        fields["currency"] = ["must be 3 characters"]
    if record.get("cartRecoveryUrl") is not None and not formats.uri(record["cartRecoveryUrl"]):
        fields["cartRecoveryUrl"] = ["must be a URI"]
    return fields


def contact_errors(record: dict[str, Any]) -> dict[str, list[str]]:
    identifiers = record.get("identifiers")
    if not isinstance(identifiers, list) or not identifiers:
        return {"identifiers": ["field required"]}
    fields: dict[str, list[str]] = {}
    for i, ident in enumerate(identifiers):
        if not isinstance(ident, dict):
            fields[f"identifiers.{i}"] = ["must be an object"]
            continue
        for name in ("type", "id", "channels"):
            if ident.get(name) in (None, "", {}):
                fields[f"identifiers.{i}.{name}"] = ["field required"]
        if ident.get("type") not in (None, "email", "phone"):
            fields[f"identifiers.{i}.type"] = ["must be email or phone"]
        fields.update(_channels(ident, f"identifiers.{i}.channels"))
    if record.get("gender") not in (None, "m", "f"):
        fields["gender"] = ["must be m or f"]
    if record.get("birthdate") is not None and not formats.ymd(record["birthdate"]):
        fields["birthdate"] = ["must be YYYY-MM-DD"]
    if record.get("sendWelcomeEmail") is not None and not formats.boolean(record["sendWelcomeEmail"]):
        fields["sendWelcomeEmail"] = ["must be true or false"]
    fields.update(_country_code(record))
    return fields


def _channels(identifier: dict[str, Any], where: str) -> dict[str, list[str]]:
    """`channels` of a v3 contact identifier: `email` for an email, `sms` for a phone (apis.md 1.6), each
    with a `status` of subscribed, unsubscribed or nonSubscribed. The phone's form is not documented
    for v3 identifiers (only for event contacts), so it is not checked here."""
    channels = identifier.get("channels")
    if not isinstance(channels, dict) or not channels:
        return {}  # missing: reported as required above
    fields: dict[str, list[str]] = {}
    expected = IDENTIFIER_CHANNELS.get(identifier.get("type"))  # type: ignore[arg-type]
    if expected is not None and set(channels) != {expected}:
        fields[where] = [f"a {identifier['type']} identifier takes the `{expected}` channel"]
    for name, channel in channels.items():
        status = channel.get("status") if isinstance(channel, dict) else None
        if not isinstance(channel, dict) or status not in (None, *CHANNEL_STATUSES):
            fields[f"{where}.{name}.status"] = ["must be one of " + ", ".join(sorted(CHANNEL_STATUSES))]
    return fields


CONTACT_REQUEST_TEXT = ("firstName", "lastName", "address", "city", "state", "country", "postalCode", "createdAt")


def contact_request_problems(record: Any, *, creating: bool) -> Problems:
    """`ContactRequest` of the 2026 line (`POST /api/contacts`, `PATCH /api/contacts?email=`): identifiers
    need `id` and `type`; `channels` are optional, but a channel given needs its `status`; a phone
    identifier is E.164; `countryCode` ISO alpha-2, `birthdate` YYYY-MM-DD, `gender` m|f, `tags` at most
    100, `customProperties` an object. A creation needs an email identifier (Omnisend upserts by email)."""
    if not isinstance(record, dict):
        return [{"field": "", "code": "invalid_type", "message": "body must be an object"}]
    errors: Problems = []

    def wrong(name: str, code: str, message: str) -> None:
        errors.append({"field": name, "code": code, "message": message})

    identifiers = record.get("identifiers")
    if identifiers is not None and not isinstance(identifiers, list):
        wrong("identifiers", "invalid_type", "identifiers must be a list")
        identifiers = []
    for i, ident in enumerate(identifiers or []):
        where = f"identifiers.{i}"
        if not isinstance(ident, dict):
            wrong(where, "invalid_type", "must be an object")
            continue
        for name in ("id", "type"):
            if not _text(ident.get(name)):
                wrong(f"{where}.{name}", "required", f"{name} is required")
        if ident.get("type") not in (None, "email", "phone"):
            wrong(f"{where}.type", "invalid_value", "type must be email or phone")
        if ident.get("type") == "phone" and not formats.e164(ident.get("id")):
            wrong(f"{where}.id", "invalid_format", "a phone must be E.164, like +1234567890")
        channels = ident.get("channels")
        if channels is not None:
            for name, channel in (channels.items() if isinstance(channels, dict) else [("", None)]):
                if not isinstance(channel, dict) or channel.get("status") not in CHANNEL_STATUSES:
                    wrong(f"{where}.channels.{name}.status", "required",
                          "status is required: " + ", ".join(sorted(CHANNEL_STATUSES)))
    if creating and not any(isinstance(i, dict) and i.get("type") == "email" for i in identifiers or []):
        wrong("identifiers", "required", "an email identifier is required to create a contact")
    for name in CONTACT_REQUEST_TEXT:
        if name in record and not isinstance(record[name], str):
            wrong(name, "invalid_type", f"{name} must be a string")
    if record.get("countryCode") is not None and not (isinstance(record["countryCode"], str)
                                                      and len(record["countryCode"]) == 2):
        wrong("countryCode", "invalid_format", "countryCode must be ISO 3166-1 alpha-2")
    return errors + profile_problems(record)


PRODUCT_STATUSES = ("inStock", "outOfStock", "notAvailable")
PRODUCT_TEXT_MAX = {"id": 100, "title": 255, "url": 1000, "description": 1000, "vendor": 100, "type": 100,
                    "defaultImageUrl": 1000}
VARIANT_TEXT_MAX = {"id": 100, "title": 255, "url": 1000, "sku": 255, "description": 1000, "defaultImageUrl": 1000}


def product_problems(record: Any) -> Problems:
    """`Product` of the 2026 line (`POST /api/products`, `PUT /api/products/{id}`): required `id, title, url,
    currency, status`; `status` inStock|outOfStock|notAvailable; `currency` ISO 4217; urls are URIs; text
    within its maxLength; `variants` 1..500, each `id, title, url, price` (a number); at most 100 tags and
    category ids, 300 images."""
    if not isinstance(record, dict):
        return [{"field": "", "code": "invalid_type", "message": "body must be an object"}]
    errors: Problems = []

    def wrong(name: str, code: str, message: str) -> None:
        errors.append({"field": name, "code": code, "message": message})

    def texts(item: dict[str, Any], limits: dict[str, int], required: tuple[str, ...], where: str) -> None:
        for name in required:
            if not _text(item.get(name)):
                wrong(f"{where}{name}", "required", f"{name} is required")
        for name, limit in limits.items():
            value = item.get(name)
            if value is not None and (not isinstance(value, str) or len(value) > limit):
                wrong(f"{where}{name}", "invalid_length", f"{name} must be text of at most {limit} characters")
        for name in ("url", "defaultImageUrl"):
            if _text(item.get(name)) and not formats.uri(item[name]):
                wrong(f"{where}{name}", "invalid_format", f"{name} must be a URL")

    texts(record, PRODUCT_TEXT_MAX, ("id", "title", "url", "currency", "status"), "")
    if _text(record.get("currency")) and not formats.iso4217(record["currency"]):
        wrong("currency", "invalid_format", "currency must be an ISO 4217 code")
    if _text(record.get("status")) and record["status"] not in PRODUCT_STATUSES:
        wrong("status", "invalid_value", "status must be one of " + ", ".join(PRODUCT_STATUSES))
    for name, limit in (("tags", 100), ("categoryIDs", 100), ("images", 300)):
        value = record.get(name)
        if value is not None and (not isinstance(value, list) or len(value) > limit
                                  or not all(isinstance(v, str) for v in value)):
            wrong(name, "invalid_type", f"{name} must be at most {limit} strings")
    variants = record.get("variants")
    if variants is not None and (not isinstance(variants, list) or not 1 <= len(variants) <= 500):
        wrong("variants", "invalid_length", "variants must hold 1 to 500 entries")
    for i, variant in enumerate(variants if isinstance(variants, list) else []):
        if not isinstance(variant, dict):
            wrong(f"variants.{i}", "invalid_type", "must be an object")
            continue
        texts(variant, VARIANT_TEXT_MAX, ("id", "title", "url"), f"variants.{i}.")
        for name in ("price", "strikeThroughPrice"):
            if (name == "price" or variant.get(name) is not None) and not formats.number(variant.get(name)):
                wrong(f"variants.{i}.{name}", "invalid_type", f"{name} must be a number")
        if variant.get("status") not in (None, *PRODUCT_STATUSES):
            wrong(f"variants.{i}.status", "invalid_value", "status must be one of " + ", ".join(PRODUCT_STATUSES))
    return errors


def category_problems(record: Any, *, creating: bool) -> Problems:
    """`CreateCategoryRequest` / `UpdateCategoryRequest`: `categoryID` 1..100 characters (creation), `title`
    at most 255, both required."""
    if not isinstance(record, dict):
        return [{"field": "", "code": "invalid_type", "message": "body must be an object"}]
    errors: Problems = []
    for name, limit in ((("categoryID", 100),) if creating else ()) + (("title", 255),):
        value = record.get(name)
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            errors.append({"field": name, "code": "required", "message": f"{name} is required, 1 to {limit} characters"})
    return errors


# --- the app -----------------------------------------------------------------------------------------


def create_omnisend_app(
    api_key: str = "omnisend-test-key",
    *,
    requests_per_minute: int = 400,
    window_seconds: float = 60.0,
    processing_seconds: float = 0.05,
    retry_after_header: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> Starlette:
    fake = FakeOmnisend(
        "omnisend", api_key, requests_per_minute, window_seconds, clock,
        processing_seconds=processing_seconds, retry_after_header=retry_after_header,
    )

    def api(handler: Handler) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            async def checked(request: Request, body: Any) -> Response:
                if request.headers.get("Authorization") != f"Omnisend-API-Key {fake.api_key}":
                    return problem(401, "Unauthorized", "missing or invalid Authorization header")
                version = request.headers.get("Omnisend-Version")
                if version not in VERSIONS:
                    return problem(400, "Bad Request", f"Omnisend-Version header must be one of {', '.join(VERSIONS)}",
                                   [{"field": "Omnisend-Version", "code": "required", "message": "unsupported or missing"}])
                return await handler(request, body)

            return await fake.handle(request, checked)

        return endpoint

    def v3(handler: Handler) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            async def checked(request: Request, body: Any) -> Response:
                if request.headers.get("X-API-KEY") != fake.api_key:
                    return v3_error(401, "Unauthorized: missing or invalid X-API-KEY")
                if request.method in ("POST", "PUT", "PATCH") and not isinstance(body, dict):
                    return v3_error(400, "request body must be a JSON object")
                return await handler(request, body)

            return await fake.handle(request, checked)

        return endpoint

    async def post_event(request: Request, body: Any) -> Response:
        errors = event_problems(body)
        if errors:
            return problem(400, "Validation failed", "the event is not valid", errors, kind="validation")
        with fake.lock:
            fake.events.append(body)
        return Response(status_code=202)

    async def post_batch(request: Request, body: Any) -> Response:
        errors: Problems = []
        if not isinstance(body, dict):
            return problem(400, "Validation failed", "body must be an object", [])
        if body.get("method") not in ("POST", "PUT"):
            errors.append({"field": "method", "code": "invalid_value", "message": "method must be POST or PUT"})
        if body.get("endpoint") not in ("products", "contacts", "events", "categories"):
            errors.append({"field": "endpoint", "code": "invalid_value", "message": "unknown endpoint"})
        items = body.get("items")
        if not isinstance(items, list) or not 1 <= len(items) <= 100:
            errors.append({"field": "items", "code": "invalid_length", "message": "items must hold 1 to 100 entries"})
        if errors:
            return problem(400, "Validation failed", "the batch is not valid", errors, kind="validation")
        assert isinstance(items, list)
        processed: list[dict[str, Any]] = []
        for item in items:
            item_errors = event_problems(item) if body["endpoint"] == "events" else []
            if item_errors:
                response: Any = {"type": "https://problems.omnisend.com/validation", "status": 400,
                                 "title": "Validation failed", "errors": item_errors}
                code = 400
            else:
                response, code = {}, 202
                if body["endpoint"] == "events":
                    with fake.lock:
                        fake.events.append(item)
            processed.append({"itemID": uuid.uuid4().hex[:24], "request": item, "responseCode": code,
                              "response": response, "status": "finished"})
        batch = Batch(uuid.uuid4().hex[:24], body["method"], body["endpoint"], fake.clock(), processed)
        with fake.lock:
            fake.batches[batch.batch_id] = batch
        return JSONResponse({"batchID": batch.batch_id, "totalCount": len(processed)}, status_code=201)

    def v3_item(endpoint: str, method: str, item: Any) -> tuple[int, Any]:
        """One v3 batch item, checked and stored like the single-resource route would."""
        if not isinstance(item, dict):
            return 400, {"error": "item must be a JSON object", "fields": {}}
        if endpoint == "contacts":
            fields = contact_errors(item)
            if fields:
                return 400, {"error": "Invalid contact", "fields": fields}
            return 200, fake.store_contact(item)
        if endpoint == "orders":
            status, fields = order_errors(item)
            if fields:
                return status, {"error": "Invalid order" if status == 400 else "Mandatory fields missing",
                                "fields": fields}
            record_id = str(item["orderID"])
            with fake.lock:
                fake.orders[record_id] = {**item, "orderID": record_id}
            return 200, {"orderID": record_id, "email": item.get("email"), "phone": item.get("phone")}
        return 200, {}  # products, categories, events: not modelled beyond the batch shape

    async def post_v3_batch(request: Request, body: dict[str, Any]) -> Response:
        fields: dict[str, list[str]] = {}
        method, endpoint, items = body.get("method"), body.get("endpoint"), body.get("items")
        if endpoint not in ("contacts", "orders", "products", "events", "categories"):
            fields["endpoint"] = ["must be one of contacts, orders, products, events, categories"]
        if method not in ("POST", "PUT"):
            fields["method"] = ["must be POST or PUT"]
        elif method == "PUT" and endpoint not in ("products", "orders"):
            fields["method"] = ["PUT is only allowed for products and orders"]
        if not isinstance(items, list) or not 1 <= len(items) <= 1000:
            fields["items"] = ["must hold 1 to 1000 operations"]
        if endpoint == "events" and not _text(body.get("eventID")):
            fields["eventID"] = ["required for endpoint events"]
        elif endpoint != "events" and body.get("eventID") not in (None, ""):
            fields["eventID"] = ["only allowed for endpoint events"]
        if fields:
            return v3_error(400, "Invalid batch", fields)
        assert isinstance(items, list) and isinstance(method, str) and isinstance(endpoint, str)
        processed: list[dict[str, Any]] = []
        for item in items:
            code, response = v3_item(endpoint, method, item)
            processed.append({"itemID": uuid.uuid4().hex[:24], "request": item, "responseCode": code,
                              "response": response, "status": "finished"})
        batch = Batch(uuid.uuid4().hex[:24], method, endpoint, fake.clock(), processed, line="v3",
                      event_id=body.get("eventID"))
        with fake.lock:
            fake.batches[batch.batch_id] = batch
        return JSONResponse({"batchID": batch.batch_id, "totalCount": len(processed)})

    def batch_view(batch: Batch, with_items: bool) -> dict[str, Any]:
        done = fake.clock() >= batch.created + fake.processing_seconds
        errors = [i for i in batch.items if i["responseCode"] >= 300]
        waiting = "pending" if batch.line == "v3" else "inProgress"
        view: dict[str, Any] = {
            "batchID": batch.batch_id, "method": batch.method, "endpoint": batch.endpoint,
            "status": "finished" if done else waiting, "totalCount": len(batch.items),
            "finishedCount": len(batch.items) if done else 0, "errorsCount": len(errors) if done else 0,
        }
        if with_items:
            view["responses"] = [i for i in batch.items if i["responseCode"] < 300] if done else []
            view["errors"] = errors if done else []
        return view

    def get_batch(with_items: bool, line: str = "api") -> Handler:
        async def handler(request: Request, body: Any) -> Response:
            batch = fake.batches.get(request.path_params["batch_id"])
            if batch is None or batch.line != line:
                return problem(404, "Not Found", "no such batch") if line == "api" else v3_error(404, "batch not found")
            view = batch_view(batch, with_items)
            if line == "v3":
                view["eventID"] = batch.event_id
            return JSONResponse(view)

        return handler

    async def post_contact(request: Request, body: dict[str, Any]) -> Response:
        fields = contact_errors(body)
        if fields:
            return v3_error(400, "Invalid contact", fields)
        return JSONResponse(fake.store_contact(body))

    async def post_api_contact(request: Request, body: Any) -> Response:
        errors = contact_request_problems(body, creating=True)
        if errors:
            return problem(400, "Validation failed", "the contact is not valid", errors, kind="validation")
        email = next(str(i["id"]) for i in body["identifiers"] if i.get("type") == "email")
        existed = email in fake.contacts
        answer = fake.write_contact(email, body, create=True)
        return JSONResponse(answer, status_code=200 if existed else 201)

    async def patch_api_contact(request: Request, body: Any) -> Response:
        email = request.query_params.get("email")
        if not email:
            return problem(400, "Validation failed", "email is required", [
                {"field": "email", "code": "required", "message": "the email query parameter is required"}],
                kind="validation")
        errors = contact_request_problems(body, creating=False)
        if errors:
            return problem(400, "Validation failed", "the contact is not valid", errors, kind="validation")
        answer = fake.write_contact(email, body, create=False)
        if answer is None:
            return problem(404, "Not Found", "contact not found")
        return JSONResponse(answer)

    def catalogue(kind: str) -> Handler:
        """Products and categories: POST creates (409 when the id exists), PUT (product) / PATCH (category)
        writes one that exists (404 otherwise)."""
        store, id_field = (fake.products, "id") if kind == "product" else (fake.categories, "categoryID")

        async def handler(request: Request, body: Any) -> Response:
            path_id = request.path_params.get("resource_id")
            creating = path_id is None
            if kind == "product":
                errors = product_problems(body)
                if not creating and not errors and str(body.get("id")) != path_id:
                    errors = [{"field": "id", "code": "invalid_value", "message": "id differs from the path"}]
            else:
                errors = category_problems(body, creating=creating)
            if errors:
                return problem(400, "Validation failed", f"the {kind} is not valid", errors, kind="validation")
            record_id = str(body[id_field]) if creating else str(path_id)
            with fake.lock:
                exists = record_id in store
                if creating and exists:
                    return problem(409, "Conflict", f"{kind} already exists")
                if not creating and not exists:
                    return problem(404, "Not Found", f"{kind} not found")
                store[record_id] = {**store.get(record_id, {}), **body, id_field: record_id}
            return JSONResponse({id_field: record_id}, status_code=201 if creating else 200)

        return handler

    def write_resource(kind: str) -> Handler:
        store = fake.orders if kind == "order" else fake.carts
        id_field = f"{kind}ID"
        validate = order_errors if kind == "order" else cart_errors

        async def handler(request: Request, body: dict[str, Any]) -> Response:
            path_id = request.path_params.get("resource_id")
            if request.method == "DELETE":
                with fake.lock:
                    if store.pop(str(path_id), None) is None:
                        return v3_error(404, f"{kind} not found")
                return Response(status_code=204)
            if request.method == "PATCH":
                if path_id not in store:
                    return v3_error(404, f"{kind} not found")
                if kind == "order":
                    extra = sorted(set(body) - ORDER_PATCH_FIELDS)
                    if extra:
                        return v3_error(400, "only status fields can be updated", {k: ["not allowed"] for k in extra})
                    wrong = _enums(body)
                    wrong.update(_times(body, ("canceledDate",)))
                else:
                    # a cart PATCH must carry `currency` and `cartSum` (Omnisend refuses one without them)
                    missing = _missing(body, ("currency", "cartSum"))
                    if missing:
                        return v3_error(422, "Mandatory fields missing", missing)
                    wrong = _not_cents(body, ("cartSum",))
                    wrong.update(_products(body, (), ("price", "oldPrice", "discount")))
                    wrong.update(_cart_formats(body))
                if wrong:
                    return v3_error(400, f"Invalid {kind}", wrong)
                with fake.lock:
                    store[path_id].update(body)
                return JSONResponse(store[path_id])
            if path_id is not None and body.get(id_field) not in (None, path_id):
                return v3_error(400, f"{id_field} in body differs from the path", {id_field: ["mismatch"]})
            status, fields = validate({**body, id_field: path_id} if path_id is not None else body)
            if fields:
                return v3_error(status, f"Invalid {kind}" if status == 400 else "Mandatory fields missing", fields)
            record_id = str(path_id or body[id_field])
            with fake.lock:
                store[record_id] = {**body, id_field: record_id}
            answer = {id_field: record_id, "email": body.get("email")}
            if kind == "order":
                answer["phone"] = body.get("phone")
            return JSONResponse(answer)

        return handler

    routes = [
        Route("/api/events", api(post_event), methods=["POST"]),
        Route("/api/batches", api(post_batch), methods=["POST"]),
        Route("/api/contacts", api(post_api_contact), methods=["POST"]),
        Route("/api/contacts", api(patch_api_contact), methods=["PATCH"]),
        Route("/api/products", api(catalogue("product")), methods=["POST"]),
        Route("/api/products/{resource_id}", api(catalogue("product")), methods=["PUT"]),
        Route("/api/product-categories", api(catalogue("category")), methods=["POST"]),
        Route("/api/product-categories/{resource_id}", api(catalogue("category")), methods=["PATCH"]),
        Route("/api/batches/{batch_id}", api(get_batch(False)), methods=["GET"]),
        Route("/api/batches/{batch_id}/items", api(get_batch(True)), methods=["GET"]),
        Route("/v3/batches", v3(post_v3_batch), methods=["POST"]),
        Route("/v3/batches/{batch_id}", v3(get_batch(False, "v3")), methods=["GET"]),
        Route("/v3/batches/{batch_id}/items", v3(get_batch(True, "v3")), methods=["GET"]),
        Route("/v3/contacts", v3(post_contact), methods=["POST"]),
        Route("/v3/orders", v3(write_resource("order")), methods=["POST"]),
        Route("/v3/orders/{resource_id}", v3(write_resource("order")), methods=["PUT", "PATCH"]),
        Route("/v3/carts", v3(write_resource("cart")), methods=["POST"]),
        Route("/v3/carts/{resource_id}", v3(write_resource("cart")), methods=["PUT", "PATCH", "DELETE"]),
        *fake.routes(),
    ]
    app = Starlette(routes=routes)
    app.state.fake = fake
    return app
