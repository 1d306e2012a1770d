"""A fake Ometria push API (`POST /v2/push`, `GET /v2/push/_errors`), from docs/reference/apis.md section 2.

Enforced: `X-Ometria-Auth: <key>` (else 401); the body is a JSON array of 1..100 records, all of
one `@type` (contact, order, product, custom_event), each with an `id` and at most 60 KB of JSON
(`Payload invalid: Record is too large.`) -> 400 for the whole request; 8 requests per sliding
second -> 429. Records that pass those checks but miss fields Ometria validates later are counted
as `rejected` in the `{"status": "OK", "request_id", "accepted", "rejected"}` answer and listed by
`GET /v2/push/_errors`, like the real service. So are records with a value of the wrong form
(`not a valid value`): order `timestamp` ISO 8601, `currency` ISO 4217, money and line item amounts
numbers, a line's `quantity_refunded` a whole number, `is_valid` / `is_on_sale` /
`@merge` / `@force_optin` booleans; contact `phone_number` E.164, `marketing_optin` and `gender`
values, ISO 8601 `timestamp_*`; custom event `timestamp` ISO 8601 with an offset, `event_type` at
most 32 characters, property values (strings at most 512 characters, dates with an offset); product
`price` / `special_price` numbers, `is_active` boolean. A record with `@merge: true` is checked and
stored merged into the one stored under its `@type` and `id` (a partial update is whole); one without
it replaces the stored record, as Ometria's upsert does. GDPR anonymisation
(`POST /v2/data-deletion-requests`): its own 6 a minute, a valid `email`, 404 for an unknown one.
"""

from __future__ import annotations

import json
import re
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
from bridge.fakes.control import FakeApi, SlidingWindow

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
# Order money and line item amounts are numbers (apis.md 2.4); a line's `quantity_refunded` is a count.
ORDER_NUMBERS = ("grand_total", "subtotal", "discount", "shipping", "tax")
LINEITEM_NUMBERS = ("quantity", "unit_price", "subtotal", "tax", "total", "discount", "refunded")
ERASURES_PER_MINUTE = 6  # the GDPR anonymisation API's own limit (apis.md 2.1)
PERSONAL_FIELDS = ("email", "firstname", "lastname", "middlename", "prefix", "phone_number", "date_of_birth",
                   "customer_id")
MARKETING_OPTIN = ("EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT", "NOT_SPECIFIED")
CONTACT_TIMES = ("timestamp_acquired", "timestamp_subscribed", "timestamp_unsubscribed")
# "keep under 32 chars, longer names are truncated" (apis.md 2.5). Ometria would take the event and
# keep the first 32 characters, which then no longer name the event type Ometria set up: the fake
# refuses a longer type instead, so that the loss shows. At most 32 is taken, as the bridge does.
EVENT_TYPE_MAX = 32
PROPERTY_TEXT_MAX = 512  # a custom event's string property
# A text that reads as a date and time: a custom event's date property must carry an offset.
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
LOOKS_LIKE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", re.ASCII)
# Not checked: the order `status` (apis.md gives examples, not a list), which of `identity_email` /
# `identity_account_id` a custom event needs (either is taken; [U]), `date_of_birth`, `country_id`
# and contact `properties` (no form documented), and the `X-QueueSize-*` headers ([U]).


@dataclass
class FakeOmetria(FakeApi):
    retry_after: int | None = None  # Ometria documents no Retry-After; set to send one
    success_status: int = 202  # 200 vs 202 is not documented (apis.md 2.2): configurable
    records: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    erasures: list[dict[str, Any]] = field(default_factory=list)  # accepted anonymisation requests
    erasure_window: SlidingWindow = field(default_factory=lambda: SlidingWindow(ERASURES_PER_MINUTE, 60.0))

    def reset_data(self) -> None:
        with self.lock:
            self.records.clear()
            self.errors.clear()
            self.erasures.clear()

    def anonymise(self, email: str) -> bool:
        """Anonymise every contact with that email (personal fields dropped); False when there is none."""
        with self.lock:
            found = [key for key, record in self.records.items()
                     if key[0] == "contact" and str(record.get("email", "")).lower() == email.lower()]
            for key in found:
                self.records[key] = {name: value for name, value in self.records[key].items()
                                     if name not in PERSONAL_FIELDS}
            return bool(found)

    def too_many(self, reset: float) -> Response:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        return error(429, "Too many requests", headers)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message}, status_code=status, headers=headers)


def record_problems(record: dict[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """What Ometria's later validation refuses in a record, as (field path, message); empty: valid.

    Blank values (null, "") are not checked: without `@merge` a blank may clear a stored field.
    """
    kind = record["@type"]
    problems: list[tuple[tuple[str, ...], str]] = [((" or ".join(group),), "field required") for group in LATER_REQUIRED[kind]
                if not any(record.get(name) not in (None, "") for name in group)]

    def check(path: tuple[str, ...], value: Any, ok: Any, expected: str) -> None:
        if value not in (None, "") and not ok(value):
            problems.append((path, f"not a valid value (expected {expected})"))

    for flag in ("@merge", "@force_optin"):
        check((flag,), record.get(flag), formats.boolean, "true or false")
    if kind == "order":
        check(("timestamp",), record.get("timestamp"), formats.iso8601, "an ISO 8601 date and time")
        check(("currency",), record.get("currency"), formats.iso4217, "an ISO 4217 currency code")
        check(("is_valid",), record.get("is_valid"), formats.boolean, "true or false")
        for name in ORDER_NUMBERS:
            check((name,), record.get(name), formats.number, "a number")
        lineitems = record.get("lineitems")
        for i, item in enumerate(lineitems if isinstance(lineitems, list) else []):
            if isinstance(item, dict):
                check(("lineitems", str(i), "is_on_sale"), item.get("is_on_sale"), formats.boolean, "true or false")
                for name in LINEITEM_NUMBERS:
                    check(("lineitems", str(i), name), item.get(name), formats.number, "a number")
                check(("lineitems", str(i), "quantity_refunded"), item.get("quantity_refunded"), formats.integer,
                      "a whole number")
    elif kind == "contact":
        check(("marketing_optin",), record.get("marketing_optin"), MARKETING_OPTIN.__contains__,
              " or ".join(MARKETING_OPTIN))
        for name in CONTACT_TIMES:
            check((name,), record.get(name), formats.iso8601, "an ISO 8601 date and time")
        check(("phone_number",), record.get("phone_number"), formats.e164, "an E.164 number, like +447700900123")
        check(("gender",), record.get("gender"), ("m", "f", "o").__contains__, "m, f or o")
    elif kind == "product":
        for name in ("price", "special_price"):
            check((name,), record.get(name), formats.number, "a number")
        check(("is_active",), record.get("is_active"), formats.boolean, "true or false")
    elif kind == "custom_event":
        check(("timestamp",), record.get("timestamp"), lambda v: formats.iso8601(v, offset=True),
              "ISO 8601 with an offset, like 2023-05-25T15:32:52+00:00")
        check(("event_type",), record.get("event_type"), lambda v: isinstance(v, str) and len(v) <= EVENT_TYPE_MAX,
              f"a name of at most {EVENT_TYPE_MAX} characters")
        properties = record.get("properties")
        if properties is not None and not isinstance(properties, dict):
            problems.append((("properties",), "not a valid value (expected an object)"))
        for name, value in (properties.items() if isinstance(properties, dict) else ()):
            check(("properties", name), value, _property_value, f"a string of at most {PROPERTY_TEXT_MAX} characters, "
                  "a boolean, a number, a list, or a date in ISO 8601 with an offset")
    return problems


def _property_value(value: Any) -> bool:
    """A custom event property (apis.md 2.5): string (at most 512 characters), boolean, number, products
    list, or date (ISO 8601 with offset). A nested object is taken: Ometria only says it cannot be
    used in segments or triggers. A text that reads as a date and time is taken for a date."""
    if isinstance(value, str):
        if LOOKS_LIKE_TIME.match(value):
            return formats.iso8601(value, offset=True)
        return len(value) <= PROPERTY_TEXT_MAX
    return True  # JSON's other values: number, boolean, list, object


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
            key = (record["@type"], str(record["id"]))
            with fake.lock:
                stored = fake.records.get(key, {})
                # `@merge: true`: unset fields come from the stored record, so a partial update is whole;
                # without it the record replaces what was stored (apis.md 2.2).
                merged = {**stored, **record} if record.get("@merge") is True else dict(record)
                problems = record_problems(merged)
                if problems:
                    rejected += 1
                    fake.errors += [{"error_message": message, "error_path": " > ".join(("root", *path))}
                                    for path, message in problems]
                    del fake.errors[:-100]
                    continue
                accepted += 1
                fake.records[key] = merged
        return JSONResponse(
            {"status": "OK", "request_id": str(uuid.uuid4()), "accepted": accepted, "rejected": rejected},
            status_code=fake.success_status,
        )

    async def erase(request: Request, body: Any) -> Response:
        """`POST /v2/data-deletion-requests` `{email, ...}`: 6 a minute (429 beyond), a valid email (400), 404
        when no contact has it, else the request's `{id, action, ...}` (201)."""
        with fake.lock:
            allowed, _, reset = fake.erasure_window.check(fake.clock())
        if not allowed:
            return error(429, "Too many requests: GDPR anonymisation is limited to 6 a minute",
                         {"Retry-After": str(max(1, int(reset + 0.999)))})
        email = body.get("email") if isinstance(body, dict) else None
        if not isinstance(email, str) or not EMAIL.fullmatch(email):
            return error(400, "Payload invalid: a valid email is required")
        if not fake.anonymise(email):
            return error(404, "No contact found for this identity")
        entry = {"id": str(uuid.uuid4()), "action": "anonymise", "comment": body.get("comment"),
                 "email": email}
        with fake.lock:
            fake.erasures.append(entry)
        return JSONResponse(entry, status_code=201)

    async def push_errors(request: Request, body: Any) -> Response:
        with fake.lock:
            return JSONResponse(list(reversed(fake.errors)))

    app = Starlette(
        routes=[
            Route("/v2/push", authed(push), methods=["POST"]),
            Route("/v2/push/_errors", authed(push_errors), methods=["GET"]),
            Route("/v2/data-deletion-requests", authed(erase), methods=["POST"]),
            *fake.routes(),
        ]
    )
    app.state.fake = fake
    return app

