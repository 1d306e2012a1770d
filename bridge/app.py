"""The web app: the webhook endpoint (bridge.webhooks), health, metrics and the admin API, and what they share."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.console.app import console_routes
from bridge.destinations import Destination
from bridge.log import without_folders
from bridge.mapping.process import MappingProcess
from bridge.mapping.reload import FixedRules, RunningRules
from bridge.metrics import METRICS, metrics_route
from bridge.ops.admin import admin_routes, has_admin_token
from bridge.ops.backlog import read_backlog
from bridge.ops.health import readyz_route
from bridge.pressure import Pressure
from bridge.rules.service import RulesService
from bridge.rules.sync import RulesSync
from bridge.settings import Settings, masked_url
from bridge.sources import Source
from bridge.store import Store, make_store
from bridge.webhooks import WebhookEndpoint
from bridge.when import iso
from bridge.worker import Worker

log = structlog.get_logger("bridge.app")

HEALTH_READ_SECONDS = 2.0
BACKLOG_READ_EVERY = 1.0


def ceilings(destinations: Mapping[str, Destination]) -> dict[str, float]:
    """Records a second each destination delivers at most; 0 for one that is not configured (it does not drain)."""
    return {name: d.ceiling if d.configured else 0.0 for name, d in destinations.items()}


@dataclass
class Bridge:
    """Everything one process runs, built once from Settings and shared by the routes."""

    settings: Settings
    store: Store
    sources: Mapping[str, Source]
    rules: RunningRules
    destinations: Mapping[str, Destination]
    worker: Worker | None = None
    # The published rules from the store (bridge.rules.sync); None when the rules come from the folder only.
    rules_sync: RulesSync | None = None
    started_at: float = field(default_factory=time.time)
    _database: dict[str, Any] | None = None  # what /healthz last read of the database, kept once it holds events
    _rules_service: RulesService | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)  # SIGHUP's, held until done
    _preview_process: MappingProcess | None = None  # the mapping process previews run in, once one ran
    _backlog: tuple[float, dict[str, Any]] | None = None  # (time.monotonic(), what /healthz last read of the backlog)
    stop_by: float | None = None  # time.monotonic() by which a stop signal wants the process gone
    # The event loop's lag and the last webhook: the worker of this process yields to the webhooks.
    pressure: Pressure = field(default_factory=Pressure)

    def stop_soon(self) -> None:
        """A stop signal: the process exits within settings.shutdown_seconds from now, and the worker
        takes no more work from now (webhooks still in flight are answered meanwhile)."""
        if self.stop_by is None:
            self.stop_by = time.monotonic() + self.settings.shutdown_seconds
        if self.worker is not None:
            self.worker.begin_stop()

    async def stop_worker(self) -> None:
        """Let the worker finish what it holds until the stop's deadline, less the time closing takes;
        it gives back the rest."""
        if self.worker is None:
            return
        self.stop_soon()
        assert self.stop_by is not None
        await self.worker.stop(max(0.0, self.stop_by - time.monotonic() - self.settings.closing_seconds))
        log.info("worker.stopped", seconds_left=round(self.stop_by - time.monotonic(), 1))

    @classmethod
    def build(cls, settings: Settings, **parts: Any) -> Bridge:
        """Build each part from settings unless given (tests pass their own)."""
        if "store" not in parts:
            parts["store"] = make_store(settings)
        if "sources" not in parts:
            from bridge.sources import build_sources

            parts["sources"] = build_sources(settings)
        if parts.get("rules", False) is None:  # no rules at all (tests)
            parts["rules"] = FixedRules()
        if "rules" not in parts:
            from bridge.mapping.areas import allowed_from_settings
            from bridge.mapping.reload import RulesHolder

            parts["rules"] = RulesHolder(settings.mappings_dir, allowed_areas=allowed_from_settings(settings),
                                         saved_dir=settings.last_good_rules_dir)
            if settings.rules_source == "store" and "rules_sync" not in parts:
                parts["rules_sync"] = RulesSync(parts["store"], parts["rules"], settings.mappings_dir,
                                                poll_seconds=settings.rules_poll_seconds)
        if "destinations" not in parts:
            from bridge.destinations.registry import build_destinations

            parts["destinations"] = build_destinations(settings, budget=parts["store"], sent_log=parts["store"])
        return cls(settings, **parts)

    def rules_service(self) -> RulesService:
        """Drafts, previews, publishing (bridge.rules.service); one per process, made when first asked."""
        if self._rules_service is None:
            from bridge.mapping.areas import allowed_from_settings
            from bridge.mapping.process import MappingProcess

            s = self.settings
            self._preview_process = MappingProcess(s.log_format, s.log_level, s.mapping_timeout_seconds,
                                                   s.mapping_memory_mb)
            self._rules_service = RulesService(
                self.store, allowed_from_settings(s), sync=self.rules_sync, destinations=self.destinations,
                process=self._preview_process, preview_seconds=s.rules_preview_seconds,
                payload_roots=(s.mappings_dir, s.mappings_dir.parent))
        return self._rules_service

    def reload_rules_soon(self) -> None:
        """SIGHUP: load the folder again now; with the rules in the store, import it if it is new and run
        the published version."""
        if self.rules_sync is None:
            self.rules.reload_soon()
            return
        task = asyncio.ensure_future(self.rules_sync.refresh())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start_rules(self) -> asyncio.Task[None] | None:
        """Run the published rules (after the store opened, before the worker starts) and watch for new
        ones: the watch's task, or None when the rules come from the folder only."""
        if self.rules_sync is None:
            return None
        await self.rules_sync.start()
        return asyncio.create_task(self.rules_sync.watch(), name="rules-sync")

    async def health(self, private: bool = False) -> dict[str, Any]:
        """What /healthz shows; filesystem paths only when `private` (asked with the admin token)."""
        paused = self.worker.paused if self.worker else {}
        error = self.rules.error
        if self.rules_sync is not None and self.rules_sync.folder_error is not None:  # a folder not imported
            error = "\n".join(e for e in (error, self.rules_sync.folder_error) if e)
        return {
            "status": "ok",
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "database": await self.database(),
            "not_configured": self.settings.missing(),
            "destinations": {
                name: {"configured": d.configured, "paused": name in paused, "pause_reason": paused.get(name)}
                for name, d in self.destinations.items()
            },
            "sources": {name: {"configured": s.configured} for name, s in self.sources.items()},
            "rules": {
                "loaded": self.rules.current is not None,
                "loaded_at": self.rules.loaded_at,
                "loaded_at_utc": iso(self.rules.loaded_at),
                # the files' texts and the areas allowed: instances that differ here run different rules
                "hash": self.rules.hash,
                "error": error if private or error is None else without_folders(str(error)),
                # set when a start found the rules broken and runs the last good copy (BRIDGE_LAST_GOOD_RULES_DIR)
                "running_saved_copy": _saved_copy(self.rules.running_saved, private),
                # messages this deployment refuses to send (areas not allowed), with the setting to change
                "blocked": self.rules.blocked,
                # which published version runs here (bridge.rules.sync), or {"source": "folder"}
                "published": self._published(private),
            },
            # whether the map loop keeps up (None when this process runs no worker)
            "mapping": self.worker.map_health.report(time.monotonic()) if self.worker else None,
            # what was acknowledged and is not delivered yet, its age and the expected time to drain
            "backlog": await self.backlog(),
        }

    def _published(self, private: bool) -> dict[str, Any]:
        if self.rules_sync is None:
            return {"source": "folder"}
        state = self.rules_sync.state()
        if not private and state["folder_error"] is not None:
            state["folder_error"] = without_folders(state["folder_error"])
        return state

    async def backlog(self) -> dict[str, Any]:
        """The backlog (bridge/ops/backlog.py), read at most once every BACKLOG_READ_EVERY seconds: /healthz
        is unauthenticated and each reading counts the waiting rows."""
        if self._backlog is not None and time.monotonic() - self._backlog[0] < BACKLOG_READ_EVERY:
            return self._backlog[1]
        try:
            found = await asyncio.wait_for(read_backlog(self.store, ceilings(self.destinations), time.time()),
                                           HEALTH_READ_SECONDS)
        except Exception as exc:  # /healthz answers all the same; /readyz tells whether the store works
            return {"error": type(exc).__name__}
        self._backlog = (time.monotonic(), found.as_dict())
        return self._backlog[1]

    async def database(self) -> dict[str, Any]:
        """Whether the database is new (holds no event yet), and when its schema was made: a platform
        that wiped its disk shows here. Read until the first event, then known."""
        if self._database is None or self._database["new"]:
            try:
                held, created = await asyncio.wait_for(
                    asyncio.gather(self.store.holds_events(), self.store.created_at()), HEALTH_READ_SECONDS)
            except Exception as exc:  # /healthz answers all the same; /readyz tells whether the store works
                return {"new": None, "created_at_utc": None, "error": type(exc).__name__}
            self._database = {"new": not held, "created_at_utc": iso(created)}
        return self._database


def _saved_copy(copy: Any, private: bool) -> dict[str, Any] | None:
    if copy is None:
        return None
    if not private:
        return {"saved_at_utc": iso(copy.saved_at)}
    return {"directory": str(copy.path), "saved_at_utc": iso(copy.saved_at), "copied_from": copy.source}


async def healthz(request: Request) -> Response:
    bridge = request.app.state.bridge
    private = has_admin_token(bridge.settings.admin_token, request.headers.get("authorization", ""))
    return JSONResponse(await bridge.health(private))


class BridgeApp(Starlette):
    """Starlette, with POST /webhooks/{source} sent straight to its endpoint.

    Webhooks are nearly all the traffic and each one is answered on the event loop,
    so they skip Starlette's middleware stack and router (about a tenth of the time
    a webhook takes); `/webhooks/shopify/` is `/webhooks/shopify`. Anything else,
    including a webhook path with another method, goes through Starlette as usual,
    which redirects nothing: a redirect would be built from the Host header.
    """

    def __init__(self, webhooks: WebhookEndpoint, **kwargs: Any) -> None:
        super().__init__(routes=[Route("/webhooks/{source}", webhooks, methods=["POST"]), *kwargs.pop("routes")], **kwargs)
        self.router.redirect_slashes = False
        self.webhooks = webhooks

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith("/webhooks/"):
            name = scope["path"][len("/webhooks/"):].removesuffix("/")  # one trailing slash: the same source
            if name and "/" not in name:
                scope["app"] = self
                scope["path_params"] = {"source": name}
                await self.webhooks(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, run_worker: bool | None = None, **parts: Any) -> Starlette:
    """The ASGI app. `parts` may replace the store, sources, rules or destinations (tests)."""
    bridge = Bridge.build(settings, **parts)
    with_worker = settings.run_worker if run_worker is None else run_worker

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await bridge.store.open()
        METRICS.watch_store(bridge.store, bridge.destinations, ceilings(bridge.destinations))
        rules_watch = await bridge.start_rules()
        watch = asyncio.create_task(bridge.rules.watch())
        # `kill -HUP` reloads the rules at once, as well as the polling watch.
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # not the main thread
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, bridge.reload_rules_soon)
        for gap in settings.missing():
            log.warning("config.not_configured", what=gap)
        bridge.pressure.lag_limit = settings.yield_lag_ms / 1000
        lag = asyncio.create_task(bridge.pressure.watch())
        METRICS.watch_loop_lag(lambda: bridge.pressure.lag)
        if with_worker:
            bridge.worker = Worker(settings, bridge.store, bridge.rules, bridge.destinations,
                                   pressure=bridge.pressure if settings.yield_lag_ms > 0 else None)
            await bridge.worker.start()
        log.info("bridge.started", worker=with_worker, database=masked_url(settings.store_url),
                 mappings=str(settings.mappings_dir))
        try:
            yield
        finally:
            await bridge.stop_worker()
            lag.cancel()
            if bridge._preview_process is not None:
                bridge._preview_process.close()
            for task in (watch, rules_watch):
                if task is not None:
                    task.cancel()
            for destination in bridge.destinations.values():
                await destination.aclose()
            await bridge.store.close()
            log.info("bridge.stopped")

    app = BridgeApp(
        WebhookEndpoint(bridge),
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            readyz_route(),
            metrics_route(),
            *admin_routes(bridge),
            *console_routes(bridge),
        ],
        lifespan=lifespan,
    )
    app.state.bridge = bridge
    return app
