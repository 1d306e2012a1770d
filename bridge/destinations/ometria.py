"""Ometria: every kind goes to `POST /v2/push` as a JSON array of one `@type` (apis.md 2.1-2.2).

Limits enforced before sending: one `@type` per request, at most 100 records per request, at most
60 KB per record (a bigger record is refused on its own, the rest still go). Records upsert by
`id`, so a resend after a timeout is harmless.

Partial rejection: a 2xx answer carries `accepted` / `rejected` counts but not which record was
rejected. When every record was rejected the messages are dead; when only some were, they are all
marked delivered with "accepted N, rejected M" in each detail and a warning is logged, because
resending the lot could not tell them apart either (Ometria lists recent errors at
`GET /v2/push/_errors`, by field path, not by record).
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
        for kind, items in groups.items():  # one @type per request
            for start in range(0, len(items), MAX_RECORDS):
                chunk = items[start : start + MAX_RECORDS]
                planned.append(
                    Planned(
                        PreparedRequest(
                            destination=self.name,
                            method="POST",
                            path=PUSH_PATH,
                            body=[record for _, record in chunk],
                            message_ids=tuple(m.id for m, _ in chunk),
                        ),
                        tuple(m for m, _ in chunk),
                    )
                )
        return planned, refused

    async def send_planned(self, item: Planned) -> dict[int, Outcome]:
        exchange = await self.exchange(item.request)
        outcome = exchange.outcome
        if outcome.kind == "delivered" and exchange.response is not None:
            outcome = self._read_counts(exchange.response.status_code, exchange.response, len(item.messages))
        return {m.id: outcome for m in item.messages}

    def _read_counts(self, status: int, response: Any, sent: int) -> Outcome:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return Outcome("delivered", status=status)
        accepted, rejected = body.get("accepted"), body.get("rejected")
        if not isinstance(rejected, int) or rejected <= 0:
            return Outcome("delivered", status=status)
        detail = f"accepted {accepted}, rejected {rejected}; see GET /v2/push/_errors"
        log.warning(
            "destination.partial_rejection",
            destination=self.name, accepted=accepted, rejected=rejected, records=sent,
            request_id=body.get("request_id"),
        )
        if rejected >= sent:
            return Outcome("dead", status=status, detail=detail)
        return Outcome("delivered", status=status, detail=detail)
