"""Omnisend: events on the 2026-03-15 `/api` line, contacts/orders/carts on v3 (apis.md 1.1-1.8).

Why two lines: the `eventName`/`contact`/`properties` events are documented on `/api/events`
(and v5), not on v3, whose `/v3/events` is the legacy custom-event API; carts and orders exist only
as v3 resources. Both lines share one budget (400 requests/minute per brand, sliding window), so
one limiter guards every request, batch follow-ups included.

Event batching: several events claimed together go as `POST /api/batches` (up to 100 items, one
request instead of up to 100). Batches are processed asynchronously: deliver() reports the
messages `submitted` with the batch id, and the worker calls follow_up() later, when the
destination is idle (at the latest five minutes after the result is due): it reads
`GET /api/batches/{id}` and, once `finished`/`stopped`, `GET /api/batches/{id}/items`, giving
each message the outcome of its item's `responseCode` (matched by `eventID`), so a refused item
becomes a dead letter. During a burst a batch costs one request; its two follow-up requests are
spent when the budget is free. Fewer than `event_batch_min` events (default 4) go one by one.
A submitted batch is never sent again: Omnisend only dedupes historical events by eventID +
eventTime.
"""

from __future__ import annotations

import json
from typing import Any, Sequence
from urllib.parse import quote

from bridge.destinations.base import Exchange, HttpDestination, Planned
from bridge.destinations.http import classify_status
from bridge.destinations.ratelimit import Clock, RateLimiter, Sleep
from bridge.model import Message, Outcome, PreparedRequest
from bridge.settings import DestinationSettings

DEFAULT_VERSION = "2026-03-15"
MAX_BATCH_ITEMS = 100  # /api/batches: 1..100 items (apis.md 1.7)
# PATCH /v3/orders/{id} is "update order status": only these fields are accepted (apis.md 1.5).
ORDER_STATUS_FIELDS = (
    "paymentStatus", "fulfillmentStatus", "trackingCode", "courierTitle", "courierUrl",
    "canceledDate", "cancelReason", "cartID",
)
FINAL_BATCH_STATUSES = ("finished", "stopped")

# (kind, action) -> (method, path template, id field or None)
ROUTES: dict[tuple[str, str], tuple[str, str, str | None]] = {
    ("contact", "upsert"): ("POST", "/v3/contacts", None),
    ("contact", "create"): ("POST", "/v3/contacts", None),
    ("order", "create"): ("POST", "/v3/orders", None),
    ("order", "replace"): ("PUT", "/v3/orders/{id}", "orderID"),
    ("order", "update"): ("PATCH", "/v3/orders/{id}", "orderID"),
    ("cart", "create"): ("POST", "/v3/carts", None),
    ("cart", "replace"): ("PUT", "/v3/carts/{id}", "cartID"),
    ("cart", "update"): ("PATCH", "/v3/carts/{id}", "cartID"),
}


def event_for(message: Message) -> dict[str, Any]:
    """The event as sent: the idempotency key becomes `eventID` unless the rule set one."""
    record = dict(message.record)
    if not record.get("eventID"):
        record["eventID"] = message.idempotency_key
    return record


class Omnisend(HttpDestination):
    max_batch = MAX_BATCH_ITEMS

    def __init__(self, settings: DestinationSettings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        options = settings.options
        self.version = str(options.get("version") or DEFAULT_VERSION)
        self.batch_events = bool(options.get("batch_events", True))
        self.event_batch_min = max(2, int(options.get("event_batch_min", 4)))

    def make_limiter(self, settings: DestinationSettings, *, clock: Clock, sleep: Sleep) -> RateLimiter:
        return RateLimiter.per_minute(float(settings.options.get("requests_per_minute", 400.0)), clock=clock, sleep=sleep)

    def auth_headers(self, request: PreparedRequest) -> dict[str, str]:
        key = self.settings.api_key.value if self.settings.api_key else ""
        if request.path.startswith("/api/"):
            return {"Authorization": f"Omnisend-API-Key {key}", "Omnisend-Version": self.version}
        return {"X-API-KEY": key}

    # --- planning (pure) ---------------------------------------------------------------------

    def plan(self, messages: Sequence[Message]) -> tuple[list[Planned], dict[int, Outcome]]:
        refused: dict[int, Outcome] = {}
        planned: list[Planned] = []
        events = [m for m in messages if m.kind == "event"]
        if self.batch_events and len(events) >= self.event_batch_min:
            for start in range(0, len(events), MAX_BATCH_ITEMS):
                chunk = tuple(events[start : start + MAX_BATCH_ITEMS])
                body = {"method": "POST", "endpoint": "events", "items": [event_for(m) for m in chunk]}
                planned.append(Planned(self._request("POST", "/api/batches", body, chunk), chunk))
        else:
            planned += [Planned(self._request("POST", "/api/events", event_for(m), (m,)), (m,)) for m in events]
        for message in messages:
            if message.kind == "event":
                continue
            route = ROUTES.get((message.kind, message.action))
            if route is None:
                refused[message.id] = Outcome(
                    "dead", detail=f"omnisend cannot {message.action} a {message.kind!r} record"
                )
                continue
            method, template, id_field = route
            body = dict(message.record)
            path = template
            if id_field is not None:
                ident = body.get(id_field)
                if ident in (None, ""):
                    refused[message.id] = Outcome("dead", detail=f"{message.kind} {message.action} needs {id_field}")
                    continue
                path = template.format(id=quote(str(ident), safe=""))
            if (message.kind, message.action) == ("order", "update"):
                body = {k: v for k, v in body.items() if k in ORDER_STATUS_FIELDS}
            planned.append(Planned(self._request(method, path, body, (message,)), (message,)))
        return planned, refused

    def _request(self, method: str, path: str, body: Any, messages: tuple[Message, ...]) -> PreparedRequest:
        return PreparedRequest(self.name, method, path, body, tuple(m.id for m in messages))

    # --- delivery ------------------------------------------------------------------------------

    async def send_planned(self, item: Planned) -> dict[int, Outcome]:
        if item.request.path == "/api/batches":
            return await self._deliver_batch(item)
        exchange = await self.exchange(item.request)
        return self._all(item, exchange.outcome)

    async def _deliver_batch(self, item: Planned) -> dict[int, Outcome]:
        created = await self.exchange(item.request)
        if created.outcome.kind != "delivered" or created.response is None:
            return {m.id: created.outcome for m in item.messages}
        batch_id = _json(created.response).get("batchID")
        if not batch_id:
            return self._all(item, Outcome("delivered", created.outcome.status, "batch accepted without a batchID"))
        # The result is read later (follow_up), when the request budget is not needed for sending.
        return self._all(item, Outcome("submitted", created.outcome.status, f"batch {batch_id} accepted", ref=str(batch_id)))

    async def follow_up(self, ref: str, messages: Sequence[Message]) -> list[Outcome] | None:
        """The per-item result of a submitted batch, or None while Omnisend is still processing it."""
        status_path = f"/api/batches/{quote(ref, safe='')}"
        polled = await self._get(status_path)
        if polled.outcome.kind != "delivered" or polled.response is None:
            if polled.outcome.status == 404:  # batches are deleted after 7 days (apis.md 1.7)
                return [Outcome("delivered", 404, f"batch {ref} no longer exists; item results unknown")] * len(messages)
            return None
        status = str(_json(polled.response).get("status", "pending"))
        if status not in FINAL_BATCH_STATUSES:
            return None
        listed = await self._get(f"{status_path}/items")
        if listed.outcome.kind != "delivered" or listed.response is None:
            return None
        item = Planned(PreparedRequest(self.name, "POST", "/api/batches", None), tuple(messages))
        results = self._match_items(item, ref, status, _json(listed.response))
        return [results[m.id] for m in messages]

    def _match_items(self, item: Planned, batch_id: str, status: str, body: dict[str, Any]) -> dict[int, Outcome]:
        by_event_id: dict[str, dict[str, Any]] = {}
        for entry in list(body.get("responses") or []) + list(body.get("errors") or []):
            request = entry.get("request") if isinstance(entry, dict) else None
            if isinstance(request, dict) and request.get("eventID"):
                by_event_id[str(request["eventID"])] = entry
        results: dict[int, Outcome] = {}
        for message in item.messages:
            entry = by_event_id.get(event_for(message)["eventID"])
            if entry is None:
                if status == "stopped":  # Omnisend stopped the batch (too many errors) before this item
                    results[message.id] = Outcome("retry", detail=f"batch {batch_id} stopped before this item")
                else:
                    results[message.id] = Outcome("delivered", 201, f"batch {batch_id}: no item result")
                continue
            code = entry.get("responseCode")
            if not isinstance(code, int):
                results[message.id] = Outcome("delivered", 201, f"batch {batch_id}: item without responseCode")
                continue
            outcome = classify_status(code, json.dumps(entry.get("response"), ensure_ascii=False))
            if outcome.kind == "pause":  # an item-level 401/403 is about the item, not our key
                outcome = Outcome("dead", code, outcome.detail)
            results[message.id] = outcome
        return results

    async def _get(self, path: str) -> Exchange:
        return await self.exchange(PreparedRequest(self.name, "GET", path, None))

    @staticmethod
    def _all(item: Planned, outcome: Outcome) -> dict[int, Outcome]:
        return {m.id: outcome for m in item.messages}

    def state(self) -> dict[str, Any]:
        return {**super().state(), "api_version": self.version}


def _json(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
