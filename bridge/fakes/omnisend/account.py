"""One fake Omnisend account: what it holds (events, contacts, orders, carts, products, categories,
batches), how a contact write merges into it, and its rate limit's headers and 429."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

from bridge.fakes.control import FakeApi, ceil_seconds
from bridge.fakes.omnisend.contacts import IDENTIFIER_CHANNELS
from bridge.fakes.omnisend.errors import problem


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
