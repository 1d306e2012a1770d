"""Ometria: every record kind goes to `POST /v2/push` as a JSON array of one `@type` (apis.md 2.1-2.2);
an `erasure` is a GDPR anonymisation request of its own (`POST /v2/data-deletion-requests`, 6 a minute).

Limits enforced before sending: one `@type` per request, at most 100 records per request, at most
60 KB per record (a bigger record is refused on its own, the rest still go). Records upsert by
`id`, so a resend after a timeout is harmless.

Partial rejection: a 2xx answer carries `accepted` / `rejected` counts but not which record was
rejected (Ometria lists recent errors at `GET /v2/push/_errors`, by field path, not by record).
When every record of a request was rejected its messages are dead. When only some were, the
request is split in halves and each half pushed again, down to single records: records upsert by
`id`, so pushing an accepted record again only writes the same fields, and the halves narrow the
rejection down to the records that caused it. Those become dead letters, the rest are delivered
(a 100-record request with one bad record costs 14 more requests, within the rate budget).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import structlog

from bridge import jsoncodec
from bridge.destinations.base import HttpDestination, Planned
from bridge.destinations.ratelimit import Clock, RateLimiter, Sleep
from bridge.model import Message, Outcome, PreparedRequest
from bridge.settings import DestinationSettings

PUSH_PATH = "/v2/push"
KINDS = ("order", "contact", "custom_event", "product")
# GDPR data anonymisation (Ometria's "data anonymisation and deletion request API"): one request per person,
# by email, within its own limit of 6 a minute; processed by Ometria within 14 days.
ERASURE_KIND = "erasure"
ERASURE_PATH = "/v2/data-deletion-requests"
ERASURES_PER_MINUTE = 6
MAX_RECORDS = 100
# Ometria says 60 KB per record; counting 1 KB as 1000 bytes errs on the safe side.
MAX_RECORD_BYTES = 60_000

log = structlog.get_logger("bridge.destinations.ometria")


def record_for(message: Message) -> dict[str, Any]:
    """The record as pushed: `@type` from the kind; custom events get the idempotency key as `id`."""
    record = dict(message.record)
    record["@type"] = message.kind
    if message.kind == "custom_event" and not record.get("id"):
        record["id"] = message.idempotency_key
    return record


def erasure_for(message: Message) -> dict[str, Any]:
    """The anonymisation request: the person's email, and what asked for it (no other personal data)."""
    record = dict(message.record)
    return {"email": record.get("email"), "action": "anonymise",
            "comment": str(record.get("comment") or "erasure requested through the bridge")}


def record_size(record: dict[str, Any]) -> int:
    return len(jsoncodec.dumps(record))


class Ometria(HttpDestination):
    max_batch = MAX_RECORDS

    def __init__(self, settings: DestinationSettings, *, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep, **kwargs: Any) -> None:
        super().__init__(settings, clock=clock, sleep=sleep, **kwargs)
        self.max_record_bytes = int(settings.options.get("max_record_bytes", MAX_RECORD_BYTES))
        self.erasure_limiter = RateLimiter.per_minute(
            float(settings.options.get("erasures_per_minute", ERASURES_PER_MINUTE)), clock=clock, sleep=sleep)

    def make_limiter(self, settings: DestinationSettings, *, clock: Clock, sleep: Sleep) -> RateLimiter:
        return RateLimiter.per_second(float(settings.options.get("requests_per_second", 8.0)), clock=clock, sleep=sleep)

    def auth_headers(self, request: PreparedRequest) -> dict[str, str]:
        key = self.settings.api_key.value if self.settings.api_key else ""
        return {"X-Ometria-Auth": key}

    def plan(self, messages: Sequence[Message]) -> tuple[list[Planned], dict[int, Outcome]]:
        """Requests to send, and the messages refused without sending (dead, with the reason)."""
        refused: dict[int, Outcome] = {}
        planned: list[Planned] = []
        groups: dict[str, list[tuple[Message, dict[str, Any]]]] = {}
        for message in messages:
            if message.kind == ERASURE_KIND:
                request = PreparedRequest(self.name, "POST", ERASURE_PATH, erasure_for(message), (message.id,))
                planned.append(Planned(request, (message,)))
                continue
            if message.kind not in KINDS:
                refused[message.id] = Outcome("dead", detail=f"ometria has no record kind {message.kind!r}")
                continue
            record = record_for(message)
            if record.get("id") in (None, ""):
                refused[message.id] = Outcome("dead", detail=f"{message.kind} record has no id; Ometria upserts by id")
                continue
            size = record_size(record)
            if size > self.max_record_bytes:
                refused[message.id] = Outcome(
                    "dead", status=413,
                    detail=f"record is {size} bytes, over Ometria's 60 KB per-record limit; not sent",
                )
                continue
            groups.setdefault(message.kind, []).append((message, record))
        for items in groups.values():  # one @type per request
            for start in range(0, len(items), MAX_RECORDS):
                planned.append(self._push(items[start : start + MAX_RECORDS]))
        return planned, refused

    def _push(self, items: Sequence[tuple[Message, dict[str, Any]]]) -> Planned:
        request = PreparedRequest(destination=self.name, method="POST", path=PUSH_PATH,
                                  body=[record for _, record in items], message_ids=tuple(m.id for m, _ in items))
        return Planned(request, tuple(m for m, _ in items))

    async def send_planned(self, item: Planned) -> dict[int, Outcome]:
        if item.request.path == ERASURE_PATH:
            return await self._erase(item)
        exchange = await self.exchange(item.request)
        outcome = exchange.outcome
        if outcome.kind != "delivered" or exchange.response is None:
            return {m.id: outcome for m in item.messages}
        rejected, detail = self._rejected(exchange.response, len(item.messages))
        if rejected == 0:
            return {m.id: outcome for m in item.messages}
        if rejected >= len(item.messages):
            return {m.id: Outcome("dead", status=outcome.status, detail=detail) for m in item.messages}
        # Some records were refused, and the answer does not say which: push each half again.
        items = list(zip(item.messages, item.request.body))
        half = len(items) // 2
        outcomes: dict[int, Outcome] = {}
        for part in (items[:half], items[half:]):
            outcomes.update(await self.send_planned(self._push(part)))
        return outcomes

    async def _erase(self, item: Planned) -> dict[int, Outcome]:
        """One anonymisation request. Ometria knowing no one by that email (404) is done: there is nothing to
        erase, and asking again would not change that; the audit keeps the answer either way."""
        exchange = await self.exchange(item.request, self.erasure_limiter)
        outcome = exchange.outcome
        if outcome.status == 404:
            outcome = Outcome("delivered", 404, "no contact with that email: nothing to anonymise")
        return {m.id: outcome for m in item.messages}

    def state(self) -> dict[str, Any]:
        return {**super().state(), "erasure_rate_limit": self.erasure_limiter.state()}

    def _rejected(self, response: Any, sent: int) -> tuple[int, str]:
        """How many records a 2xx answer says were rejected (0 when it does not say), and the detail."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return 0, ""
        accepted, rejected = body.get("accepted"), body.get("rejected")
        if not isinstance(rejected, int) or isinstance(rejected, bool) or rejected <= 0:
            return 0, ""
        log.warning(
            "destination.partial_rejection",
            destination=self.name, accepted=accepted, rejected=rejected, records=sent,
            request_id=body.get("request_id"),
        )
        return rejected, f"rejected by Ometria after it was received (accepted {accepted}, rejected {rejected}); see GET /v2/push/_errors"
