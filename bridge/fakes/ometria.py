"""A fake Ometria push API (`POST /v2/push`, `GET /v2/push/_errors`), from shared/docs/apis.md section 2.

Enforced: `X-Ometria-Auth: <key>` (else 401); the body is a JSON array of 1..100 records, all of
one `@type` (contact, order, product, custom_event), each with an `id` and at most 60 KB of JSON
(`Payload invalid: Record is too large.`) -> 400 for the whole request; 8 requests per sliding
second -> 429. Records that pass those checks but miss fields Ometria validates later are counted
as `rejected` in the `{"status": "OK", "request_id", "accepted", "rejected"}` answer and listed by
`GET /v2/push/_errors`, like the real service.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.fakes.control import FakeApi

TYPES = ("contact", "order", "product", "custom_event")
MAX_RECORDS = 100
MAX_RECORD_BYTES = 60 * 1024
# Fields whose absence makes Ometria reject a record after accepting the request.
LATER_REQUIRED = {
    "order": (("timestamp",), ("grand_total",), ("currency",)),
    "custom_event": (("event_type",), ("timestamp",), ("identity_email", "identity_account_id")),
    "contact": (("email", "customer_id"),),
    "product": (("title",),),
}


@dataclass
class FakeOmetria(FakeApi):
    retry_after: int | None = None  # Ometria documents no Retry-After; set to send one
    success_status: int = 202  # 200 vs 202 is not documented (apis.md 2.2): configurable
    records: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)

    def reset_data(self) -> None:
        with self.lock:
            self.records.clear()
            self.errors.clear()

    def too_many(self, reset: float) -> Response:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        return error(429, "Too many requests", headers)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message}, status_code=status, headers=headers)


def record_size(record: Any) -> int:
    return len(json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def create_ometria_app(
    api_key: str = "ometria-test-key",
    *,
    requests_per_second: int = 8,
    window_seconds: float = 1.0,
    retry_after: int | None = None,
    success_status: int = 202,
    clock: Callable[[], float] = time.monotonic,
) -> Starlette:
    fake = FakeOmetria(
        "ometria", api_key, requests_per_second, window_seconds, clock,
        retry_after=retry_after, success_status=success_status,
    )

    def authed(handler: Callable[[Request, Any], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            async def checked(request: Request, body: Any) -> Response:
                if request.headers.get("X-Ometria-Auth") != fake.api_key:
                    return error(401, "Authentication failed")
                result: Response = await handler(request, body)
                return result

            return await fake.handle(request, checked)

        return endpoint

    async def push(request: Request, body: Any) -> Response:
        if not isinstance(body, list):
            return error(400, "Payload invalid: body must be a JSON array")
        if not 1 <= len(body) <= MAX_RECORDS:
            return error(400, f"Payload invalid: 1 to {MAX_RECORDS} records per request")
        types = set()
        for record in body:
            if not isinstance(record, dict):
                return error(400, "Payload invalid: every record must be an object")
            if record.get("@type") not in TYPES:
                return error(400, "Payload invalid: unknown or missing @type")
            types.add(record["@type"])
            if record.get("id") in (None, ""):
                return error(400, "Payload invalid: record without id")
            if record_size(record) > MAX_RECORD_BYTES:
                return error(400, "Payload invalid: Record is too large.")
        if len(types) > 1:
            return error(400, "Payload invalid: one object type per request")
        accepted = rejected = 0
        for record in body:
            problem = next(
                (" or ".join(group) for group in LATER_REQUIRED[record["@type"]]
                 if not any(record.get(name) not in (None, "") for name in group)),
                None,
            )
            with fake.lock:
                if problem is not None:
                    rejected += 1
                    fake.errors.append({"error_message": "field required", "error_path": f"root > {problem}"})
                    del fake.errors[:-100]
                    continue
                accepted += 1
                key = (record["@type"], str(record["id"]))
                stored = fake.records.get(key, {})
                fake.records[key] = {**stored, **record}  # upsert: fields merged into the stored record
        return JSONResponse(
            {"status": "OK", "request_id": str(uuid.uuid4()), "accepted": accepted, "rejected": rejected},
            status_code=fake.success_status,
        )

    async def push_errors(request: Request, body: Any) -> Response:
        with fake.lock:
            return JSONResponse(list(reversed(fake.errors)))

    app = Starlette(
        routes=[
            Route("/v2/push", authed(push), methods=["POST"]),
            Route("/v2/push/_errors", authed(push_errors), methods=["GET"]),
            *fake.routes(),
        ]
    )
    app.state.fake = fake
    return app

