"""The admin API: the operator commands over HTTP, under /admin.

Off unless BRIDGE_ADMIN_TOKEN is set: then every /admin path answers 404, as
if it did not exist. On, every request needs `Authorization: Bearer <token>`,
compared in constant time. The guard wraps the whole mount, so unknown paths
and wrong methods are refused the same way and reveal nothing.

Bad parameters get a JSON 400 naming the parameter; a store that cannot
answer gets 503. The OpenAPI document (bridge.ops.openapi) describes each
route and answer; tests check the answers against it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from bridge.errors import StoreUnavailable
from bridge.log import capped
from bridge.ops import views
from bridge.ops.openapi import MAX_ROW_ID, document
from bridge.ops.replay import replay
from bridge.ops.slowdown import FailedTries
from bridge.settings import Secret
from bridge.store.base import EVENT_STATUSES, DeadFilter, EventFilter, Page
from bridge.when import parse_when

log = structlog.get_logger("bridge.ops.admin")

MAX_LIMIT = 1000
SHOWN_PATH_CAP = 128  # a refused path is logged cut to this many characters: the sender chose it
Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    """A parameter the caller must fix: answered 400."""


class NotFound(Exception):
    pass


def error(message: str, status: int, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


# -- parameters ---------------------------------------------------------------


def _when(name: str, value: Any) -> float | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name}: expected a string (ISO 8601 or 2h, 3d)")
    try:
        return parse_when(value, time.time())
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}") from None


def _is_row_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ROW_ID


def _whole(name: str, value: str | None, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{name}: expected a whole number, got {value!r}") from None
    if not low <= number <= high:
        raise BadRequest(f"{name}: expected {low} to {high}, got {number}")
    return number


def _limit(value: str | None, default: int) -> int:
    return _whole("limit", value, default, 1, MAX_LIMIT)


def _offset(value: str | None) -> int:
    return _whole("offset", value, 0, 0, MAX_ROW_ID)


def _page(name: str, page: Page[Any], rows: list[dict[str, Any]]) -> JSONResponse:
    """A list answer: its rows, and where they sit among all that match ("N of M")."""
    return JSONResponse({name: rows, "total": page.total, "limit": page.limit, "offset": page.offset})


def _flag(name: str, value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes"):
        return True
    if isinstance(value, str) and value.lower() in ("0", "false", "no", ""):
        return False
    raise BadRequest(f"{name}: expected true or false")


def _text(name: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    raise BadRequest(f"{name}: expected a string")


async def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return body


# -- the guard ----------------------------------------------------------------


class AdminGuard:
    """404 when the admin API is off, 401 without the right bearer token, else the admin routes."""

    def __init__(self, bridge: Any, app: ASGIApp) -> None:
        self.bridge = bridge
        self.app = app
        self.failed_tries = FailedTries()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self.refuse(request)
        if refusal is not None:
            if refusal.status_code == 401:  # a wrong token: each further failure of this client waits longer
                await asyncio.sleep(self.failed_tries.failed(request.client.host if request.client else ""))
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refuse(self, request: Request) -> Response | None:
        token = getattr(self.bridge.settings, "admin_token", None)
        if token is None or not token.value:
            return error("not found", 404)
        if not has_admin_token(token, request.headers.get("authorization", "")):
            log.warning("admin.unauthorized", path=capped(request.url.path, SHOWN_PATH_CAP))
            return error("a valid admin token is required", 401, **{"WWW-Authenticate": 'Bearer realm="bridge-admin"'})
        return None


def has_admin_token(token: Secret | None, authorization: str) -> bool:
    """Whether an Authorization header carries the admin token (compared in constant time)."""
    if token is None or not token.value:
        return False
    scheme, _, supplied = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(supplied.strip().encode(), token.value.encode())


def _endpoint(handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except BadRequest as exc:
            return error(str(exc), 400)
        except NotFound as exc:
            return error(str(exc), 404)
        except StoreUnavailable as exc:
            log.error("admin.store_failed", path=request.url.path, reason=str(exc))
            return error("the store cannot answer now; retry later", 503, **{"Retry-After": "5"})

    return endpoint


# -- the routes ---------------------------------------------------------------


def admin_app(bridge: Any) -> ASGIApp:
    store = bridge.store

    async def list_events(request: Request) -> Response:
        q = request.query_params
        status = q.get("status") or None
        if status is not None and status not in EVENT_STATUSES:
            raise BadRequest(f"status: one of {', '.join(EVENT_STATUSES)}")
        where = EventFilter(q.get("source") or None, q.get("topic") or None, status,
                            _when("since", q.get("since")), _when("until", q.get("until")))
        limit, offset, reveal = _limit(q.get("limit"), 50), _offset(q.get("offset")), _flag("reveal", q.get("reveal"))
        page = await store.list_events(where, limit, offset)
        return _page("events", page, [views.event_summary(r, reveal) for r in page.items])

    async def show_event(request: Request) -> Response:
        event_id = request.path_params["event_id"]
        reveal = _flag("reveal", request.query_params.get("reveal"))
        if not _is_row_id(event_id):
            raise NotFound(f"no event with id {event_id}")
        detail = await store.event_detail(event_id)
        if detail is None:
            raise NotFound(f"no event with id {event_id}")
        return JSONResponse(views.event_detail(detail, reveal))

    async def list_dead(request: Request) -> Response:
        q = request.query_params
        where = DeadFilter(destination=q.get("destination") or None, since=_when("since", q.get("since")))
        limit, offset, reveal = _limit(q.get("limit"), 100), _offset(q.get("offset")), _flag("reveal", q.get("reveal"))
        page = await store.list_dead(where, limit, offset)
        return _page("dead", page, [views.dead_letter(r, reveal) for r in page.items])

    async def retry_dead(request: Request) -> Response:
        body = await _body(request, {"ids", "destination", "since", "all"})
        ids = body.get("ids") or []
        if not isinstance(ids, list) or not all(_is_row_id(i) for i in ids):
            raise BadRequest("ids: expected a list of message ids")
        where = DeadFilter(tuple(ids), _text("destination", body.get("destination")),
                           _when("since", body.get("since")))
        if where.empty and not _flag("all", body.get("all")):
            raise BadRequest("give ids, destination or since; \"all\": true retries every dead letter")
        now = time.time()
        count = await store.retry_dead(where, now)
        log.info("admin.dead_retried", messages=count)
        return JSONResponse({"retried": count})

    async def replay_events(request: Request) -> Response:
        body = await _body(request, {"since", "until", "source", "topic", "dry_run", "force"})
        since = _when("since", body.get("since"))
        if since is None:
            raise BadRequest("since: required (ISO 8601 or 2h, 3d)")
        where = EventFilter(_text("source", body.get("source")), _text("topic", body.get("topic")), None,
                            since, _when("until", body.get("until")))
        force, dry_run = _flag("force", body.get("force")), _flag("dry_run", body.get("dry_run"))
        rules = getattr(bridge.rules, "current", None)
        if rules is None:
            return error("no valid rules are loaded; fix mappings/ first (see /healthz)", 503)
        summary = await replay(store, rules, where, time.time(), force=force, dry_run=dry_run)
        log.info("admin.replayed", **summary.as_dict())
        return JSONResponse(summary.as_dict())

    def pause_or_resume(paused: bool) -> Handler:
        async def handler(request: Request) -> Response:
            name = request.path_params["name"]
            if name not in bridge.destinations:
                raise NotFound(f"no destination named {name!r}; known: {', '.join(sorted(bridge.destinations))}")
            body = await _body(request, {"reason"} if paused else set())
            reason = (_text("reason", body.get("reason")) or "paused by an operator") if paused \
                else "resumed by an operator"
            # No key fingerprint: an operator's pause holds until resumed.
            await store.set_paused(name, paused, reason, None, time.time())
            if bridge.worker is not None:  # same process: take effect now rather than at the next refresh
                await bridge.worker.refresh_pauses()
            log.info("admin.destination_paused" if paused else "admin.destination_resumed", destination=name)
            return JSONResponse({"destination": name, "paused": paused, "reason": reason if paused else None})

        return handler

    async def outbox_stats(request: Request) -> Response:
        now = time.time()
        stats = await store.outbox_stats(now, list(bridge.destinations))
        return JSONResponse(views.outbox_stats(stats))

    async def openapi(request: Request) -> Response:
        return JSONResponse(document())

    routes = [
        Route("/events", _endpoint(list_events), methods=["GET"]),
        Route("/events/{event_id:int}", _endpoint(show_event), methods=["GET"]),
        Route("/dead", _endpoint(list_dead), methods=["GET"]),
        Route("/dead/retry", _endpoint(retry_dead), methods=["POST"]),
        Route("/replay", _endpoint(replay_events), methods=["POST"]),
        Route("/destinations/{name}/pause", _endpoint(pause_or_resume(True)), methods=["POST"]),
        Route("/destinations/{name}/resume", _endpoint(pause_or_resume(False)), methods=["POST"]),
        Route("/outbox/stats", _endpoint(outbox_stats), methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    return AdminGuard(bridge, Router(routes=routes, default=_not_found))


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await error("not found", 404)(scope, receive, send)


def admin_routes(bridge: Any) -> list[BaseRoute]:
    """The admin API to add to the app's routes: `routes=[..., *admin_routes(bridge)]`."""
    return [Mount("/admin", app=admin_app(bridge))]
