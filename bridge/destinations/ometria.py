"""Ometria: every kind goes to `POST /v2/push` as a JSON array of one `@type` (apis.md 2.1-2.2).

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

from typing import Any, Sequence

import structlog

from bridge import jsoncodec
from bridge.destinations.base import HttpDestination, Planned
from bridge.destinations.ratelimit import Clock, RateLimiter, Sleep
from bridge.model import Message, Outcome, PreparedRequest
from bridge.settings import DestinationSettings

PUSH_PATH = "/v2/push"
KINDS = ("order", "contact", "custom_event", "product")
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


def record_size(record: dict[str, Any]) -> int:
    return len(jsoncodec.dumps(record))


class Ometria(HttpDestination):
    max_batch = MAX_RECORDS

    def __init__(self, settings: DestinationSettings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.max_record_bytes = int(settings.options.get("max_record_bytes", MAX_RECORD_BYTES))

    def make_limiter(self, settings: DestinationSettings, *, clock: Clock, sleep: Sleep) -> RateLimiter:
        return RateLimiter.per_second(float(settings.options.get("requests_per_second", 8.0)), clock=clock, sleep=sleep)

    def auth_headers(self, request: PreparedRequest) -> dict[str, str]:
        key = self.settings.api_key.value if self.settings.api_key else ""
        return {"X-Ometria-Auth": key}

    def plan(self, messages: Sequence[Message]) -> tuple[list[Planned], dict[int, Outcome]]:
        """Requests to send, and the messages refused without sending (dead, with the reason)."""
        refused: dict[int, Outcome] = {}
        groups: dict[str, list[tuple[Message, dict[str, Any]]]] = {}
        for message in messages:
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
        planned: list[Planned] = []
        for items in groups.values():  # one @type per request
            for start in range(0, len(items), MAX_RECORDS):
                planned.append(self._push(items[start : start + MAX_RECORDS]))
        return planned, refused

    def _push(self, items: Sequence[tuple[Message, dict[str, Any]]]) -> Planned:
        request = PreparedRequest(destination=self.name, method="POST", path=PUSH_PATH,
                                  body=[record for _, record in items], message_ids=tuple(m.id for m, _ in items))
        return Planned(request, tuple(m for m, _ in items))

    async def send_planned(self, item: Planned) -> dict[int, Outcome]:
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
