"""A fake Omnisend: the 2026-03-15 `/api` events and batches, and v3 contacts, orders and carts.

Contracts enforced, from shared/docs/apis.md section 1:
- `/api/*`: `Authorization: Omnisend-API-Key <key>` and `Omnisend-Version` (wrong key -> 401, missing
  or unknown version -> 400); errors are RFC 9457 problem JSON with `errors[{field, code, message}]`.
- `/v3/*`: `X-API-KEY: <key>`; errors are `{"error": ..., "fields": {...}}`; missing mandatory
  fields -> 422, wrong types (money must be integer cents) -> 400.
- 400 requests per sliding minute for the whole brand, `X-Rate-Limit-Limit/Remaining/Reset`
  (seconds left) on every answer, 429 with `Retry-After` when over.
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
from dataclasses import dataclass, field
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

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
    batches: dict[str, Batch] = field(default_factory=dict)

    def reset_data(self) -> None:
        with self.lock:
            self.events.clear()
            self.contacts.clear()
            self.orders.clear()
            self.carts.clear()
            self.batches.clear()

    def rate_headers(self, remaining: int, reset: float) -> dict[str, str]:
        return {
            "X-Rate-Limit-Limit": str(self.rate_limit),
            "X-Rate-Limit-Remaining": str(remaining),
            "X-Rate-Limit-Reset": str(ceil_seconds(reset)),
        }

    def store_contact(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create or update a (validated) contact keyed by its first identifier; the v3 answer."""
        ident = body["identifiers"][0]["id"]
        with self.lock:
            contact_id = self.contacts.get(ident, {}).get("contactID") or uuid.uuid4().hex[:24]
            self.contacts[ident] = {**body, "contactID": contact_id}
        return {"email": ident if "@" in str(ident) else None, "contactID": contact_id}

    def too_many(self, reset: float) -> Response:
        headers = {"Retry-After": str(ceil_seconds(reset))} if self.retry_after_header else {}
        return problem(429, "Too Many Requests", "rate limit exceeded", kind="rate-limit-exceeded", headers=headers)


def problem(
    status: int,
    title: str,
    detail: str,
    errors: Problems | None = None,
    *,
    kind: str = "problem",
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
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


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


# contactDto.Contact maxLength (apis.md 1.2), written out here: the fake does not take the bridge's word.
CONTACT_MAX_LENGTHS = {"phone": 15, "firstName": 50, "lastName": 50, "address": 500, "city": 100, "state": 100,
                       "country": 100, "countryCode": 3, "postalCode": 20}


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
        for name, limit in CONTACT_MAX_LENGTHS.items():
            if isinstance(contact.get(name), str) and len(contact[name]) > limit:
                errors.append({"field": f"contact.{name}", "code": "too_long",
                               "message": f"{name} is at most {limit} characters"})
    event_name = event.get("eventName")
    if isinstance(event_name, str) and event_name in RECOMMENDED_EVENTS:
        expected = RECOMMENDED_EVENTS[event_name]
        if expected and event.get("eventVersion") != expected:
            errors.append({"field": "eventVersion", "code": "invalid_value",
                           "message": f"eventVersion must be {expected!r} for {event_name!r}"})
    if event.get("eventID") not in (None, "") and not _is_uuid(event["eventID"]):
        errors.append({"field": "eventID", "code": "invalid_format", "message": "eventID must be a UUID"})
    if "properties" in event and not isinstance(event["properties"], dict):
        errors.append({"field": "properties", "code": "invalid_type", "message": "properties must be an object"})
    return errors


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
    return (400, wrong) if wrong else (200, {})


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
    if isinstance(record.get("currency"), str) and len(record["currency"]) != 3:
        wrong["currency"] = ["must be 3 characters"]
    return (400, wrong) if wrong else (200, {})


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
    if record.get("gender") not in (None, "m", "f"):
        fields["gender"] = ["must be m or f"]
    return fields


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

    def write_resource(kind: str) -> Handler:
        store = fake.orders if kind == "order" else fake.carts
        id_field = f"{kind}ID"
        validate = order_errors if kind == "order" else cart_errors

        async def handler(request: Request, body: dict[str, Any]) -> Response:
            path_id = request.path_params.get("resource_id")
            if request.method == "PATCH":
                if path_id not in store:
                    return v3_error(404, f"{kind} not found")
                if kind == "order":
                    extra = sorted(set(body) - ORDER_PATCH_FIELDS)
                    if extra:
                        return v3_error(400, "only status fields can be updated", {k: ["not allowed"] for k in extra})
                    wrong = _enums(body)
                else:
                    wrong = _not_cents(body, ("cartSum",))
                    wrong.update(_products(body, (), ("price", "oldPrice", "discount")))
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
        Route("/api/batches/{batch_id}", api(get_batch(False)), methods=["GET"]),
        Route("/api/batches/{batch_id}/items", api(get_batch(True)), methods=["GET"]),
        Route("/v3/batches", v3(post_v3_batch), methods=["POST"]),
        Route("/v3/batches/{batch_id}", v3(get_batch(False, "v3")), methods=["GET"]),
        Route("/v3/batches/{batch_id}/items", v3(get_batch(True, "v3")), methods=["GET"]),
        Route("/v3/contacts", v3(post_contact), methods=["POST"]),
        Route("/v3/orders", v3(write_resource("order")), methods=["POST"]),
        Route("/v3/orders/{resource_id}", v3(write_resource("order")), methods=["PUT", "PATCH"]),
        Route("/v3/carts", v3(write_resource("cart")), methods=["POST"]),
        Route("/v3/carts/{resource_id}", v3(write_resource("cart")), methods=["PUT", "PATCH"]),
        *fake.routes(),
    ]
    app = Starlette(routes=routes)
    app.state.fake = fake
    return app
