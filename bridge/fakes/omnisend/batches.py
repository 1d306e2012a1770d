"""Batches on the fake Omnisend: `/api/batches` (events, checked item by item) and `/v3/batches`
(contacts and orders checked and stored as their own routes would). A batch is `inProgress` (`/api`) or
`pending` (`/v3`) for the account's `processing_seconds`, then `finished` with each item's answer."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.fakes import formats
from bridge.fakes.control import Handler
from bridge.fakes.omnisend.account import Batch, FakeOmnisend
from bridge.fakes.omnisend.contacts import contact_errors
from bridge.fakes.omnisend.errors import Problems, problem, v3_error
from bridge.fakes.omnisend.events import event_problems
from bridge.fakes.omnisend.orders import order_errors


def post_api_batch(fake: FakeOmnisend) -> Handler:
    """`POST /api/batches`: 201 `{batchID, totalCount}`; event items are checked one by one."""

    async def handler(request: Request, body: Any) -> Response:
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
                response: dict[str, Any] = {"type": "https://problems.omnisend.com/validation", "status": 400,
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

    return handler


def _v3_item(fake: FakeOmnisend, endpoint: str, item: Any) -> tuple[int, dict[str, Any]]:
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


def post_v3_batch(fake: FakeOmnisend) -> Handler:
    """`POST /v3/batches`: 200 `{batchID, totalCount}`; contact and order items are stored as their routes would."""

    async def handler(request: Request, body: Any) -> Response:
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
        if endpoint == "events" and not formats.text(body.get("eventID")):
            fields["eventID"] = ["required for endpoint events"]
        elif endpoint != "events" and body.get("eventID") not in (None, ""):
            fields["eventID"] = ["only allowed for endpoint events"]
        if fields:
            return v3_error(400, "Invalid batch", fields)
        assert isinstance(items, list) and isinstance(method, str) and isinstance(endpoint, str)
        processed: list[dict[str, Any]] = []
        for item in items:
            code, response = _v3_item(fake, endpoint, item)
            processed.append({"itemID": uuid.uuid4().hex[:24], "request": item, "responseCode": code,
                              "response": response, "status": "finished"})
        batch = Batch(uuid.uuid4().hex[:24], method, endpoint, fake.clock(), processed, line="v3",
                      event_id=body.get("eventID"))
        with fake.lock:
            fake.batches[batch.batch_id] = batch
        return JSONResponse({"batchID": batch.batch_id, "totalCount": len(processed)})

    return handler


def _view(fake: FakeOmnisend, batch: Batch, with_items: bool) -> dict[str, Any]:
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


def get_batch(fake: FakeOmnisend, with_items: bool, line: str = "api") -> Handler:
    """A batch's status, and with `with_items` its items' answers; 404 for a batch of the other line."""
    async def handler(request: Request, body: Any) -> Response:
        batch = fake.batches.get(request.path_params["batch_id"])
        if batch is None or batch.line != line:
            return problem(404, "Not Found", "no such batch") if line == "api" else v3_error(404, "batch not found")
        view = _view(fake, batch, with_items)
        if line == "v3":
            view["eventID"] = batch.event_id
        return JSONResponse(view)

    return handler
