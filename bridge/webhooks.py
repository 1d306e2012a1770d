"""POST /webhooks/{source}: verify, commit, acknowledge.

This is the bridge's hot path, so it is a plain ASGI app rather than a
Starlette endpoint: no Request object, no response classes, and one place
that decides the answer, counts it and logs it. Everything after the commit
happens in the worker.

Each answer is one of the outcomes counted by `bridge_webhooks_received_total`:

    accepted            200  new event committed
    duplicate           200  the dedupe key was seen: nothing new stored
    ping                200  a provider's test delivery: nothing stored
    invalid_json        400  signature good, body not JSON: stored for inspection (a resend too gets 400)
    rejected_signature  401  missing, malformed or wrong signature, or a timestamp outside the window
    unknown_source      404  no source of that name
    too_large           413  body over BRIDGE_MAX_BODY_BYTES (refused before it is read whole)
    rejected_other      4xx  anything else a source refused, such as a signed body no genuine delivery
                             looks like (bridge.sources.shape): too deep, a topic it cannot have
    store_failed        503  the store could not commit: the sender retries (Retry-After)
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
import structlog

from bridge.errors import PayloadTooLarge, RejectedWebhook, StoreUnavailable, UnknownSource
from bridge.log import capped, emit
from bridge.metrics import METRICS, Metrics
from bridge.model import Ping
from bridge.sources.shape import check_depth_and_topic
from bridge.sources.signature import LowerHeaders

if TYPE_CHECKING:
    from bridge.app import Bridge

log = structlog.get_logger("bridge.webhooks")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# An unverified name from the path is logged and answered cut to this many characters.
SHOWN_NAME_CAP = 64
JSON_HEADERS = [(b"content-type", b"application/json")]
RETRY_HEADERS = [*JSON_HEADERS, (b"retry-after", b"5")]


class Answer(NamedTuple):  # a tuple: one is made for every request
    outcome: str
    status: int
    body: dict[str, Any]
    log: tuple[str, str, dict[str, Any]]  # level, event, fields besides the source: written once the answer is sent
    topic: str = ""  # only a verified topic becomes a metrics label
    headers: list[tuple[bytes, bytes]] = JSON_HEADERS  # never changed in place


async def read_body(receive: Receive, headers: LowerHeaders, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed `limit`."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the {limit} byte limit")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            raise PayloadTooLarge("the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the {limit} byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class WebhookEndpoint:
    """The ASGI app behind `Route("/webhooks/{source}", ..., methods=["POST"])`."""

    def __init__(self, bridge: Bridge, metrics: Metrics = METRICS) -> None:
        self.bridge = bridge
        self.metrics = metrics
        # Bound once, with the logging configured by now: a lazy logger would rebuild itself on every line.
        self.log = log.bind()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        self.bridge.pressure.webhook()
        name = scope["path_params"]["source"]
        try:
            answer = await self.answer(name, scope, receive)
        except Exception:
            self.metrics.webhook(name, "", "error")
            raise
        body = orjson.dumps(answer.body)
        headers = [*answer.headers, (b"content-length", b"%d" % len(body))]  # without it the answer would be chunked
        try:
            await send({"type": "http.response.start", "status": answer.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            # Counted and logged after the answer left: neither delays the sender.
            answered = time.perf_counter() - started
            self.bridge.pressure.answered(answered)
            self.metrics.webhook(name, answer.topic, answer.outcome, answered)
            level, event, fields = answer.log
            emit(self.log, level, event, {"source": capped(name, SHOWN_NAME_CAP), **fields})

    async def answer(self, name: str, scope: Scope, receive: Receive) -> Answer:
        bridge = self.bridge
        headers = LowerHeaders.from_asgi(scope["headers"])  # read once: what Source.verify takes
        try:
            source = bridge.sources.get(name)
            if source is None:
                raise UnknownSource(f"no source named {capped(name, SHOWN_NAME_CAP)!r}")
            body = await read_body(receive, headers, bridge.settings.max_body_bytes)
            verified = source.verify(headers, body)
            if not isinstance(verified, Ping):
                check_depth_and_topic(verified.topic, body, verified.payload_ok)
        except RejectedWebhook as exc:
            return Answer(exc.outcome, exc.status_code, {"error": str(exc)},
                          ("warning", "webhook.rejected", {"status": exc.status_code, "reason": str(exc)}))

        if isinstance(verified, Ping):
            return Answer("ping", 200, {"status": "ok"}, ("info", "webhook.ping", {}))
        topic = verified.topic
        try:
            result = await bridge.store.ingest(verified)
        except StoreUnavailable as exc:
            return Answer("store_failed", 503, {"error": "could not store the event; retry later"},
                          ("error", "webhook.store_failed", {"topic": topic, "reason": str(exc)}),
                          topic, RETRY_HEADERS)

        event_id = result.event_id
        if not verified.payload_ok:  # before the duplicate check: a resend of it gets the same 400
            stored = "already stored" if result.duplicate else "stored"
            return Answer("invalid_json", 400,
                          {"error": f"body is not valid JSON; {stored} for inspection", "event_id": event_id},
                          ("warning", "webhook.invalid_json",
                           {"event_id": event_id, "topic": topic, "duplicate": result.duplicate}),
                          topic)
        if result.duplicate:
            return Answer("duplicate", 200, {"status": "duplicate", "event_id": event_id},
                          ("info", "webhook.duplicate",
                           {"event_id": event_id, "topic": topic, "dedupe_key": verified.dedupe_key}),
                          topic)
        if bridge.worker is not None:
            bridge.worker.notify_event()
        return Answer("accepted", 200, {"status": "accepted", "event_id": event_id},
                      ("info", "webhook.accepted",
                       {"event_id": event_id, "topic": topic, "secret_index": verified.secret_index}),
                      topic)
