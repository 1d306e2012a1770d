"""The web app: verify, commit, acknowledge. Everything after the commit happens in the worker."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Mapping

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.destinations import Destination
from bridge.errors import PayloadTooLarge, RejectedWebhook, StoreUnavailable, UnknownSource
from bridge.model import Ping
from bridge.ops.admin import admin_routes
from bridge.ops.health import readyz_route
from bridge.ops.metrics import METRICS, instrumented, metrics_route
from bridge.settings import Settings
from bridge.sources import Source
from bridge.store import SQLiteStore
from bridge.worker import Worker

log = structlog.get_logger("bridge.app")


@dataclass
class Bridge:
    """Everything one process runs, built once from Settings and shared by the routes."""

    settings: Settings
    store: SQLiteStore
    sources: Mapping[str, Source]
    rules: Any  # bridge.mapping.reload.RulesHolder: .current, .error, .loaded_at, .watch()
    destinations: Mapping[str, Destination]
    worker: Worker | None = None
    started_at: float = field(default_factory=time.time)

    @classmethod
    def build(cls, settings: Settings, **parts: Any) -> Bridge:
        """Build each part from settings unless given (tests pass their own)."""
        if "store" not in parts:
            parts["store"] = SQLiteStore(settings.database_path)
        if "sources" not in parts:
            from bridge.sources import build_sources

            parts["sources"] = build_sources(settings)
        if "rules" not in parts:
            from bridge.mapping.areas import allowed_from_settings
            from bridge.mapping.reload import RulesHolder

            parts["rules"] = RulesHolder(settings.mappings_dir, allowed_areas=allowed_from_settings(settings))
        if "destinations" not in parts:
            from bridge.destinations.registry import build_destinations

            parts["destinations"] = build_destinations(settings)
        return cls(settings, **parts)

    def health(self) -> dict[str, Any]:
        paused = self.worker.paused if self.worker else {}
        return {
            "status": "ok",
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "not_configured": self.settings.missing(),
            "destinations": {
                name: {"configured": d.configured, "paused": name in paused, "pause_reason": paused.get(name)}
                for name, d in self.destinations.items()
            },
            "sources": {name: {"configured": s.configured} for name, s in self.sources.items()},
            "rules": {
                "loaded": getattr(self.rules, "current", None) is not None,
                "loaded_at": getattr(self.rules, "loaded_at", None),
                "error": getattr(self.rules, "error", None),
                # messages this deployment refuses to send (areas not allowed), with the setting to change
                "blocked": list(getattr(self.rules, "blocked", []) or []),
            },
        }


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the {limit} byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def receive_webhook(request: Request) -> Response:
    bridge: Bridge = request.app.state.bridge
    name = request.path_params["source"]
    try:
        source = bridge.sources.get(name)
        if source is None:
            raise UnknownSource(f"no source named {name!r}")
        body = await read_body(request, bridge.settings.max_body_bytes)
        verified = source.verify(request.headers, body)
    except RejectedWebhook as exc:
        log.warning("webhook.rejected", source=name, status=exc.status_code, reason=str(exc))
        return JSONResponse({"error": str(exc)}, status_code=exc.status_code)

    if isinstance(verified, Ping):
        log.info("webhook.ping", source=name)
        return JSONResponse({"status": "ok"})
    request.state.webhook_topic = verified.topic  # for the metrics: only verified topics become labels

    try:
        result = await bridge.store.ingest(verified)
    except StoreUnavailable as exc:
        log.error("webhook.store_failed", source=name, topic=verified.topic, reason=str(exc))
        return JSONResponse({"error": "could not store the event; retry later"}, status_code=503,
                            headers={"Retry-After": "5"})

    with structlog.contextvars.bound_contextvars(event_id=result.event_id, source=name, topic=verified.topic):
        if result.duplicate:
            log.info("webhook.duplicate", dedupe_key=verified.dedupe_key)
            return JSONResponse({"status": "duplicate", "event_id": result.event_id})
        if not verified.payload_ok:
            log.warning("webhook.invalid_json")
            return JSONResponse({"error": "body is not valid JSON; stored for inspection", "event_id": result.event_id},
                                status_code=400)
        log.info("webhook.accepted", secret_index=verified.secret_index)
    if bridge.worker is not None:
        bridge.worker.notify_event()
    return JSONResponse({"status": "accepted", "event_id": result.event_id})


async def healthz(request: Request) -> Response:
    return JSONResponse(request.app.state.bridge.health())


def create_app(settings: Settings, *, run_worker: bool | None = None, **parts: Any) -> Starlette:
    """The ASGI app. `parts` may replace the store, sources, rules or destinations (tests)."""
    bridge = Bridge.build(settings, **parts)
    with_worker = settings.run_worker if run_worker is None else run_worker

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        bridge.store.open()
        METRICS.watch_store(bridge.store, bridge.destinations)
        watch = None
        if hasattr(bridge.rules, "watch"):
            watch = asyncio.create_task(bridge.rules.watch())
            # `kill -HUP` reloads the rules at once, as well as the polling watch.
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # not the main thread
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, bridge.rules.reload)
        for gap in settings.missing():
            log.warning("config.not_configured", what=gap)
        if with_worker:
            bridge.worker = Worker(settings, bridge.store, bridge.rules, bridge.destinations)
            await bridge.worker.start()
        log.info("bridge.started", worker=with_worker, database=str(settings.database_path),
                 mappings=str(settings.mappings_dir))
        try:
            yield
        finally:
            if bridge.worker is not None:
                await bridge.worker.stop()
            if watch is not None:
                watch.cancel()
            for destination in bridge.destinations.values():
                await destination.aclose()
            bridge.store.close()
            log.info("bridge.stopped")

    app = Starlette(
        routes=[
            Route("/webhooks/{source}", instrumented(receive_webhook), methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            readyz_route(),
            metrics_route(),
            *admin_routes(bridge),
        ],
        lifespan=lifespan,
    )
    app.state.bridge = bridge
    return app
