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

Contact and order batching: likewise, `event_batch_min` or more contacts (upsert/create) or order
creates claimed together go as v3 `POST /v3/batches` (endpoint `contacts` / `orders`, method POST,
up to 1000 items, so one request per claim of up to `max_batch`). Their ref is `v3:<batchID>`;
follow_up() reads `GET /v3/batches/{id}` and `/items`. A ref without a prefix is an `/api` batch
(rows submitted before v3 batching existed carry a plain id). v3 items carry no eventID, so an item
is matched to its message by its `request`: the contact's first identifier `id` / the `orderID`
(see _pair_v3_items for the fallbacks).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import structlog

from bridge.destinations.base import Exchange, HttpDestination, Planned
from bridge.destinations.catalog import OMNISEND_CONTACT_MAX_LENGTHS, OMNISEND_CONTACT_PHONE_MAX_LENGTH
from bridge.destinations.http import classify_status, retry_after_in_body
from bridge.destinations.ratelimit import Clock, RateLimiter, Sleep
from bridge.model import Message, Outcome, PreparedRequest
from bridge.settings import DestinationSettings

log = structlog.get_logger("bridge.destinations.omnisend")

DEFAULT_VERSION = "2026-03-15"
MAX_BATCH_ITEMS = 100  # /api/batches: 1..100 items (apis.md 1.7)
MAX_V3_BATCH_ITEMS = 1000  # /v3/batches: at most 1000 operations (apis.md 1.7)
V3_REF_PREFIX = "v3:"
# (kind, action) -> v3 batch endpoint; all sent with method POST, like their single routes.
V3_BATCHED: dict[tuple[str, str], str] = {
    ("contact", "upsert"): "contacts",
    ("contact", "create"): "contacts",
    ("order", "create"): "orders",
}
# PATCH /v3/orders/{id} is "update order status": only these fields are accepted (apis.md 1.5).
ORDER_STATUS_FIELDS = (
    "paymentStatus", "fulfillmentStatus", "trackingCode", "courierTitle", "courierUrl",
    "canceledDate", "cancelReason", "cartID",
)
FINAL_BATCH_STATUSES = ("finished", "stopped")
NEUTRAL_STATUS = "nonSubscribed"  # what a contact the bridge creates without consent gets: never subscribed


@dataclass(frozen=True)
class Upsert:
    """A record written on the 2026 line by updating it where it is, and creating it when that answers 404
    (Omnisend's contacts, products and product categories OpenAPI 2026-03-15):
    - contact update: `PATCH /api/contacts?email=` (no channel status required), else `POST /api/contacts`;
    - product: `PUT /api/products/{id}` (replace), else `POST /api/products`;
    - category: `PATCH /api/product-categories/{categoryID}` (`title` only), else `POST /api/product-categories`;
    - cart (v3, apis.md 1.4): `PATCH /v3/carts/{cartID}` (the whole cart), else `POST /v3/carts`.
    """

    method: str
    path: Callable[[dict[str, Any]], str]  # the update's path, from the record
    body: Callable[[dict[str, Any]], dict[str, Any]]  # the update's body
    create_path: str
    create_body: Callable[[dict[str, Any]], dict[str, Any]]

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
    ("cart", "delete"): ("DELETE", "/v3/carts/{id}", "cartID"),
}


def contact_update(record: dict[str, Any]) -> dict[str, Any]:
    """The details a contact update writes: no identifiers, so no channel, so consent untouched. Its
    contact is found by the first identifier, an email (the engine made sure)."""
    return {name: value for name, value in record.items() if name != "identifiers"}


def contact_creation(record: dict[str, Any]) -> dict[str, Any]:
    """A contact update whose email Omnisend does not know yet becomes a creation: each identifier without a
    channel status gets `nonSubscribed` on its channel, so no one is subscribed because a status was left out."""
    identifiers = []
    for identifier in record.get("identifiers") or []:
        channel = "sms" if identifier.get("type") == "phone" else "email"
        if not identifier.get("channels"):
            identifier = {**identifier, "channels": {channel: {"status": NEUTRAL_STATUS}}}
        identifiers.append(identifier)
    return {**record, "identifiers": identifiers}


def _ident(value: Any) -> str:
    return quote(str(value), safe="")


UPSERTS: dict[tuple[str, str], Upsert] = {
    ("contact", "update"): Upsert(
        "PATCH", lambda r: f"/api/contacts?email={quote(str(r['identifiers'][0]['id']), safe='@')}", contact_update,
        "/api/contacts", contact_creation),
    ("product", "upsert"): Upsert(
        "PUT", lambda r: f"/api/products/{_ident(r['id'])}", dict, "/api/products", dict),
    ("cart", "upsert"): Upsert(
        "PATCH", lambda r: f"/v3/carts/{_ident(r['cartID'])}", dict, "/v3/carts", dict),
    ("category", "upsert"): Upsert(
        "PATCH", lambda r: f"/api/product-categories/{_ident(r['categoryID'])}", lambda r: {"title": r.get("title")},
        "/api/product-categories", dict),
}


def event_for(message: Message) -> dict[str, Any]:
    """The event as sent: the idempotency key becomes `eventID` unless the rule set one, and contact
    text over Omnisend's maximum length is shortened rather than have the whole event refused.

    A phone is never cut (a cut number is someone else's). One over `phone`'s maxLength 15 - a valid
    E.164 number of 15 digits is 16 characters with its `+` - is left out when an email or id names
    the contact, for the same reason: Omnisend would refuse the whole event for it. A contact known
    by that phone alone keeps it, and the refusal says why."""
    record = dict(message.record)
    if not record.get("eventID"):
        record["eventID"] = message.idempotency_key
    contact = record.get("contact")
    if isinstance(contact, dict):
        limits = OMNISEND_CONTACT_MAX_LENGTHS
        shortened = {name: value[:limits[name]] for name, value in contact.items()
                     if isinstance(value, str) and len(value) > limits.get(name, len(value))}
        phone = contact.get("phone")
        if (isinstance(phone, str) and len(phone) > OMNISEND_CONTACT_PHONE_MAX_LENGTH
                and any(contact.get(name) not in (None, "") for name in ("email", "id"))):
            record["contact"] = {name: value for name, value in {**contact, **shortened}.items() if name != "phone"}
        elif shortened:
            record["contact"] = {**contact, **shortened}
    return record


class Omnisend(HttpDestination):
    max_batch = MAX_BATCH_ITEMS

    @property
    def follows_up(self) -> bool:
        return True  # its batches are accepted first and processed later (/api/batches, /v3/batches)

    def __init__(self, settings: DestinationSettings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        options = settings.options
        self.version = str(options.get("version") or DEFAULT_VERSION)
        self.batch_events = bool(options.get("batch_events", True))
        self.event_batch_min = max(2, int(options.get("event_batch_min", 4)))
        self.batch_v3 = bool(options.get("batch_v3", True))
        self.route_limiters = {prefix: RateLimiter.per_minute(float(per_minute), clock=self._clock, sleep=self._sleep)
                               for prefix, per_minute in dict(options.get("route_limits") or {}).items()}

    def make_limiter(self, settings: DestinationSettings, *, clock: Clock, sleep: Sleep) -> RateLimiter:
        return RateLimiter.per_minute(float(settings.options.get("requests_per_minute", 400.0)), clock=clock, sleep=sleep)

    def route_limiter(self, path: str) -> tuple[str, RateLimiter] | None:
        """The budget of its own a request's route has (`OMNISEND_ROUTE_LIMITS`, longest prefix), if any."""
        route = path.split("?", 1)[0]
        matches = [prefix for prefix in self.route_limiters if route == prefix or route.startswith(prefix.rstrip("/") + "/")]
        if not matches:
            return None
        prefix = max(matches, key=len)
        return prefix, self.route_limiters[prefix]

    async def exchange(self, request: PreparedRequest, limiter: RateLimiter | None = None) -> Exchange:
        """A route with a limit of its own (the 2026 line's per-operation limits: its reference names 15 a
        minute for some writes where the OpenAPI documents say 400) waits its turn there too, and learns from
        each answer (a 429's `Retry-After` or `retryAfter` blocks that route); the brand-wide budget still
        applies to every request."""
        routed = self.route_limiter(request.path) if limiter is None else None
        if routed is None:
            return await super().exchange(request, limiter)
        prefix, route = routed
        if not await route.acquire(max_wait=self.max_wait):
            wait = route.wait_time()
            return Exchange(Outcome("deferred", detail=f"{prefix} rate limited locally for {wait:.1f}s",
                                    retry_after=wait))
        result = await super().exchange(request)
        if result.response is not None:
            route.observe(result.response.status_code, result.response.headers, retry_after_in_body(result.response))
        return result

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
        batched: set[int] = set()
        if self.batch_v3:
            for endpoint in ("contacts", "orders"):
                # Sorted by id: the order follow_up() receives them in, for the positional fallback.
                group = sorted((m for m in messages if V3_BATCHED.get((m.kind, m.action)) == endpoint),
                               key=lambda m: m.id)
                if len(group) < self.event_batch_min:
                    continue
                batched.update(m.id for m in group)
                for start in range(0, len(group), MAX_V3_BATCH_ITEMS):
                    chunk = tuple(group[start : start + MAX_V3_BATCH_ITEMS])
                    body = {"method": "POST", "endpoint": endpoint, "items": [dict(m.record) for m in chunk]}
                    planned.append(Planned(self._request("POST", "/v3/batches", body, chunk), chunk))
        for message in messages:
            if message.kind == "event" or message.id in batched:
                continue
            upsert = UPSERTS.get((message.kind, message.action))
            if upsert is not None:
                record = dict(message.record)
                request = self._request(upsert.method, upsert.path(record), upsert.body(record), (message,))
                planned.append(Planned(request, (message,)))
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
            planned.append(Planned(self._request(method, path, None if method == "DELETE" else body, (message,)),
                                   (message,)))
        return planned, refused

    def _request(self, method: str, path: str, body: Any, messages: tuple[Message, ...]) -> PreparedRequest:
        return PreparedRequest(self.name, method, path, body, tuple(m.id for m in messages))

    # --- delivery ------------------------------------------------------------------------------

    async def send_planned(self, item: Planned) -> dict[int, Outcome]:
        if item.request.path == "/api/batches":
            return await self._deliver_batch(item)
        if item.request.path == "/v3/batches":
            return await self._deliver_batch(item, V3_REF_PREFIX)
        exchange = await self.exchange(item.request)
        if item.request.method == "DELETE" and exchange.outcome.status == 404:
            # Already gone (or never sent: a checkout without an email): closed all the same.
            return self._all(item, Outcome("delivered", 404, f"{item.messages[0].kind} was not there to close"))
        upsert = UPSERTS.get((item.messages[0].kind, item.messages[0].action))
        if upsert is not None and exchange.outcome.status == 404:
            # Not there yet: create it (a contact without subscribing anyone).
            record = dict(item.messages[0].record)
            exchange = await self.exchange(self._request("POST", upsert.create_path, upsert.create_body(record),
                                                         item.messages))
        return self._all(item, exchange.outcome)

    async def _deliver_batch(self, item: Planned, ref_prefix: str = "") -> dict[int, Outcome]:
        created = await self.exchange(item.request)
        if created.outcome.kind != "delivered" or created.response is None:
            return {m.id: created.outcome for m in item.messages}
        batch_id = _json(created.response).get("batchID")
        if not batch_id:
            return self._all(item, Outcome("delivered", created.outcome.status, "batch accepted without a batchID"))
        # The result is read later (follow_up), when the request budget is not needed for sending.
        return self._all(item, Outcome("submitted", created.outcome.status, f"batch {batch_id} accepted",
                                       ref=f"{ref_prefix}{batch_id}"))

    async def follow_up(self, ref: str, messages: Sequence[Message]) -> list[Outcome] | None:
        """The per-item result of a submitted batch, or None while Omnisend is still processing it
        (a `pause` outcome for each when Omnisend refused our key for the reading: `_unread`)."""
        v3 = ref.startswith(V3_REF_PREFIX)
        batch_id = ref[len(V3_REF_PREFIX):] if v3 else ref  # no prefix: an /api batch (older rows too)
        status_path = f"/{'v3' if v3 else 'api'}/batches/{quote(batch_id, safe='')}"
        polled = await self._get(status_path)
        if polled.outcome.kind != "delivered" or polled.response is None:
            return self._unread(ref, polled.outcome, messages)
        polled_body = _json(polled.response)
        status = str(polled_body.get("status", "pending"))
        if status not in FINAL_BATCH_STATUSES:
            return None
        listed = await self._get(f"{status_path}/items")
        if listed.outcome.kind != "delivered" or listed.response is None:
            return self._unread(ref, listed.outcome, messages)
        body = _json(listed.response)
        entries = [e for e in list(body.get("responses") or []) + list(body.get("errors") or []) if isinstance(e, dict)]
        if v3:
            endpoint = str(polled_body.get("endpoint") or "")
            if endpoint not in ("contacts", "orders"):  # the status answer should say; else the messages do
                endpoint = V3_BATCHED.get((messages[0].kind, messages[0].action), "contacts") if messages else ""
            pairs = _pair_v3_items(endpoint, messages, entries)
        else:
            pairs = _pair_event_items(messages, entries)
        results = self._match_items(messages, batch_id, status, pairs)
        return [results[m.id] for m in messages]

    @staticmethod
    def _unread(ref: str, outcome: Outcome, messages: Sequence[Message]) -> list[Outcome] | None:
        """A read of a batch's result that failed: None to look again later, except for these.

        404: the batch is gone (Omnisend deletes batches after 7 days, apis.md 1.7): taken as
        delivered, its item results unknown. 401 is our key: a `pause` for each, and the worker pauses the destination (the items stay
        submitted). 403 is this batch: Omnisend accepted it, so it ran, but this key may not read it
        (the key was replaced by another store's since). Taken as delivered with its item results
        unknown, as a deleted batch is: pausing would stop delivery for a batch no key here can
        read, and reading again would spend the rate limit until the batch's 24 hours ran out.
        """
        if outcome.status == 404:
            return [Outcome("delivered", 404, f"batch {ref} no longer exists; item results unknown")] * len(messages)
        if outcome.kind != "pause":
            return None
        if outcome.status == 403:
            log.warning("omnisend.batch_result_unreadable", batch=ref, status=403, messages=len(messages),
                        hint="if every batch gets this, give the API key permission to read batches")
            return [Outcome("delivered", 403, f"batch {ref} result cannot be read with this key (403); "
                                              "item results unknown")] * len(messages)
        return [outcome] * len(messages)

    def _match_items(self, messages: Sequence[Message], batch_id: str, status: str,
                     pairs: dict[int, dict[str, Any]]) -> dict[int, Outcome]:
        results: dict[int, Outcome] = {}
        for message in messages:
            entry = pairs.get(message.id)
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
        routes = {prefix: limiter.state() for prefix, limiter in self.route_limiters.items()}
        return {**super().state(), "api_version": self.version, "route_rate_limits": routes}


def _pair_event_items(messages: Sequence[Message], entries: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """/api event batch items, matched to their messages by `eventID`."""
    by_event_id: dict[str, dict[str, Any]] = {}
    for entry in entries:
        request = entry.get("request")
        if isinstance(request, dict) and request.get("eventID"):
            by_event_id[str(request["eventID"])] = entry
    pairs: dict[int, dict[str, Any]] = {}
    for message in messages:
        found = by_event_id.get(event_for(message)["eventID"])
        if found is not None:
            pairs[message.id] = found
    return pairs


def v3_item_key(endpoint: str, record: Any) -> str | None:
    """What identifies a v3 batch item: a contact's first identifier `id`, an order's `orderID`."""
    if not isinstance(record, dict):
        return None
    if endpoint == "contacts":
        identifiers = record.get("identifiers")
        first = identifiers[0] if isinstance(identifiers, list) and identifiers else None
        value = first.get("id") if isinstance(first, dict) else None
    else:
        value = record.get("orderID")
    return str(value) if value not in (None, "") else None


def _pair_v3_items(endpoint: str, messages: Sequence[Message],
                   entries: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """v3 batch items matched to their messages.

    v3 items carry no eventID (that field is the legacy custom-event trigger), and the item list is
    split into `responses`/`errors`, so an item's position in the batch as sent is not given either.
    1. By key (first identifier id / orderID) where exactly one message and one item carry it.
    2. What is left - a key missing (e.g. a contact without identifiers) or shared by two messages of
       one batch - by the item's `request` equal to the record as sent, taking the messages in the
       order they were sent (by id, as plan() sorted them): identical requests pair in order.
    3. Still left (Omnisend echoed a request we cannot recognise): position order of the remaining
       items against the remaining messages of the same key (keyless with keyless); with one
       message and one item per key this cannot mix two records up. Messages with no item at all
       are handled by the caller (no item result).
    """
    pairs: dict[int, dict[str, Any]] = {}
    message_keys = {m.id: v3_item_key(endpoint, m.record) for m in messages}
    entry_keys = [v3_item_key(endpoint, e.get("request")) for e in entries]
    used: set[int] = set()
    for message in messages:
        key = message_keys[message.id]
        if key is None or list(message_keys.values()).count(key) != 1 or entry_keys.count(key) != 1:
            continue
        index = entry_keys.index(key)
        pairs[message.id] = entries[index]
        used.add(index)
    for message in messages:
        if message.id in pairs:
            continue
        sent = dict(message.record)
        same = next((i for i, e in enumerate(entries) if i not in used and e.get("request") == sent), None)
        if same is not None:
            pairs[message.id] = entries[same]
            used.add(same)
    for message in messages:
        if message.id in pairs:
            continue
        key = message_keys[message.id]
        keyed = next((i for i, k in enumerate(entry_keys) if i not in used and k == key), None)
        if keyed is not None:
            pairs[message.id] = entries[keyed]
            used.add(keyed)
    return pairs


def _json(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
