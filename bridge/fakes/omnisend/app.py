"""The fake Omnisend's routes: each line's authentication (`/api`: key and version; `/v3`: `X-API-KEY`),
then the record's checks (contacts.py, events.py, orders.py, catalogue.py, batches.py) and the account
that keeps what was accepted (account.py)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.fakes.control import Handler
from bridge.fakes.omnisend.account import FakeOmnisend
from bridge.fakes.omnisend.batches import get_batch, post_api_batch, post_v3_batch
from bridge.fakes.omnisend.catalogue import category_problems, product_problems
from bridge.fakes.omnisend.contacts import contact_errors, contact_request_problems
from bridge.fakes.omnisend.errors import problem, v3_error
from bridge.fakes.omnisend.events import event_problems
from bridge.fakes.omnisend.orders import cart_errors, cart_patch_errors, order_errors, order_patch_errors

VERSIONS = ("2026-03-15",)


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

    def api(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
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

    def v3(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
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
                    message, wrong = order_patch_errors(body)
                    if wrong:
                        return v3_error(400, message, wrong)
                else:
                    status, wrong = cart_patch_errors(body)
                    if wrong:
                        return v3_error(status, "Mandatory fields missing" if status == 422 else "Invalid cart", wrong)
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
        Route("/api/batches", api(post_api_batch(fake)), methods=["POST"]),
        Route("/api/contacts", api(post_api_contact), methods=["POST"]),
        Route("/api/contacts", api(patch_api_contact), methods=["PATCH"]),
        Route("/api/products", api(catalogue("product")), methods=["POST"]),
        Route("/api/products/{resource_id}", api(catalogue("product")), methods=["PUT"]),
        Route("/api/product-categories", api(catalogue("category")), methods=["POST"]),
        Route("/api/product-categories/{resource_id}", api(catalogue("category")), methods=["PATCH"]),
        Route("/api/batches/{batch_id}", api(get_batch(fake, False)), methods=["GET"]),
        Route("/api/batches/{batch_id}/items", api(get_batch(fake, True)), methods=["GET"]),
        Route("/v3/batches", v3(post_v3_batch(fake)), methods=["POST"]),
        Route("/v3/batches/{batch_id}", v3(get_batch(fake, False, "v3")), methods=["GET"]),
        Route("/v3/batches/{batch_id}/items", v3(get_batch(fake, True, "v3")), methods=["GET"]),
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
