"""The admin API: the operator commands over HTTP, under /admin.

Off unless a token is set (BRIDGE_ADMIN_TOKEN, BRIDGE_CONSOLE_TOKENS): then every
/admin path answers 404, as if it did not exist. On, every request needs
`Authorization: Bearer <token>`, compared in constant time. The guard wraps the
whole mount, so unknown paths and wrong methods are refused the same way and
reveal nothing. What a token may do is its role's (bridge.access, shared with
the console): reads need `view`, `reveal=true` needs `reveal`, changes need
`operate` and are written to the actions log (bridge.ops.actions); a token
without the permission gets 403.

Bad parameters get a JSON 400 naming the parameter; a store that cannot
answer gets 503. The OpenAPI document (bridge.ops.openapi) describes each
route and answer; tests check the answers against it.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import TYPE_CHECKING

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from bridge.access import Access, Permission, Role
from bridge.log import capped
from bridge.ops import actions, views
from bridge.ops.openapi import document
from bridge.ops.params import (
    BadRequest,
    Handler,
    NotFound,
    error,
    flag_param,
    guarded,
    is_row_id,
    json_body,
    limit_param,
    offset_param,
    page_answer,
    principal,
    require,
    text_param,
    when_param,
)
from bridge.ops.replay import replay
from bridge.ops.slowdown import FailedTries
from bridge.rules.api import named_actor, rules_routes
from bridge.settings import Secret, Settings
from bridge.store.base import EVENT_STATUSES, DeadFilter, EventFilter
from bridge.when import iso

if TYPE_CHECKING:
    from bridge.app import Bridge

log = structlog.get_logger("bridge.ops.admin")

SHOWN_PATH_CAP = 128  # a refused path is logged cut to this many characters: the sender chose it


# -- the guard ----------------------------------------------------------------


class AdminGuard:
    """404 when the admin API is off, 401 without a known bearer token, else the admin routes with the
    token's holder in `request.state.principal`."""

    def __init__(self, bridge: Bridge, app: ASGIApp) -> None:
        self.bridge = bridge
        self.app = app
        self.failed_tries = FailedTries()
        self.access = access_of(bridge.settings)

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
        holder = self.access.by_bearer(request.headers.get("authorization", ""))
        assert holder is not None
        scope.setdefault("state", {})["principal"] = holder.principal
        await self.app(scope, receive, send)

    def refuse(self, request: Request) -> Response | None:
        if not self.access.enabled:
            return error("not found", 404)
        if self.access.by_bearer(request.headers.get("authorization", "")) is None:
            log.warning("admin.unauthorized", path=capped(request.url.path, SHOWN_PATH_CAP))
            return error("a valid admin token is required", 401, **{"WWW-Authenticate": 'Bearer realm="bridge-admin"'})
        return None


def access_of(settings: Settings) -> Access:
    """The deployment's tokens (bridge.access): the console's and the admin token."""
    return Access(settings.console_tokens, settings.admin_token)


def _reveal(request: Request) -> bool:
    """`reveal=true` asks for personal data in clear: only a role that may reveal it."""
    reveal = flag_param("reveal", request.query_params.get("reveal"))
    if reveal:
        require(request, Permission.REVEAL)
    return reveal


def has_admin_token(token: Secret | None, authorization: str) -> bool:
    """Whether an Authorization header carries the admin token (compared in constant time)."""
    if token is None or not token.value:
        return False
    scheme, _, supplied = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(supplied.strip().encode(), token.value.encode())


def _actor(request: Request) -> str:
    """Who asked, for the rules' audit log: the token's name; the admin token may name a person with
    X-Bridge-Actor (automation publishing on someone's behalf)."""
    who = principal(request)
    return named_actor(request) if who.role is Role.ADMIN else who.name


# -- the routes ---------------------------------------------------------------


def admin_app(bridge: Bridge) -> ASGIApp:
    store = bridge.store

    async def list_events(request: Request) -> Response:
        q = request.query_params
        status = q.get("status") or None
        if status is not None and status not in EVENT_STATUSES:
            raise BadRequest(f"status: one of {', '.join(EVENT_STATUSES)}")
        where = EventFilter(q.get("source") or None, q.get("topic") or None, status,
                            when_param("since", q.get("since")), when_param("until", q.get("until")))
        limit, offset, reveal = limit_param(q.get("limit"), 50), offset_param(q.get("offset")), _reveal(request)
        page = await store.list_events(where, limit, offset)
        return page_answer("events", page, [views.event_summary(r, reveal) for r in page.items])

    async def show_event(request: Request) -> Response:
        event_id = request.path_params["event_id"]
        reveal = _reveal(request)
        if not is_row_id(event_id):
            raise NotFound(f"no event with id {event_id}")
        detail = await store.event_detail(event_id)
        if detail is None:
            raise NotFound(f"no event with id {event_id}")
        return JSONResponse(views.event_detail(detail, reveal))

    async def list_dead(request: Request) -> Response:
        q = request.query_params
        where = DeadFilter(destination=q.get("destination") or None, since=when_param("since", q.get("since")))
        limit, offset, reveal = limit_param(q.get("limit"), 100), offset_param(q.get("offset")), _reveal(request)
        page = await store.list_dead(where, limit, offset)
        return page_answer("dead", page, [views.dead_letter(r, reveal) for r in page.items])

    async def retry_dead(request: Request) -> Response:
        body = await json_body(request, {"ids", "destination", "since", "all"})
        ids = body.get("ids") or []
        if not isinstance(ids, list) or not all(is_row_id(i) for i in ids):
            raise BadRequest("ids: expected a list of message ids")
        where = DeadFilter(tuple(ids), text_param("destination", body.get("destination")),
                           when_param("since", body.get("since")))
        if where.empty and not flag_param("all", body.get("all")):
            raise BadRequest("give ids, destination or since; \"all\": true retries every dead letter")
        now = time.time()
        count = await store.retry_dead(where, now)
        log.info("admin.dead_retried", messages=count)
        await actions.record(store, principal(request), "retry_dead", _dead_target(where), f"{count} retried", now)
        return JSONResponse({"retried": count})

    async def replay_events(request: Request) -> Response:
        body = await json_body(request, {"since", "until", "source", "topic", "status", "dry_run", "force"})
        since = when_param("since", body.get("since"))
        if since is None:
            raise BadRequest("since: required (ISO 8601 or 2h, 3d)")
        status = text_param("status", body.get("status"))
        if status is not None and status not in EVENT_STATUSES:
            raise BadRequest(f"status: one of {', '.join(EVENT_STATUSES)}")
        where = EventFilter(text_param("source", body.get("source")), text_param("topic", body.get("topic")), status,
                            since, when_param("until", body.get("until")))
        force, dry_run = flag_param("force", body.get("force")), flag_param("dry_run", body.get("dry_run"))
        rules = bridge.rules.current
        if rules is None:
            return error("no valid rules are loaded; fix mappings/ first (see /healthz)", 503)
        summary = await replay(store, rules, where, time.time(), force=force, dry_run=dry_run)
        log.info("admin.replayed", **summary.as_dict())
        if not dry_run:
            await actions.record(store, principal(request), "replay", describe_filter(where),
                                 f"{summary.events} events, {summary.queued} messages queued")
        return JSONResponse(summary.as_dict())

    def pause_or_resume(paused: bool) -> Handler:
        async def handler(request: Request) -> Response:
            name = request.path_params["name"]
            if name not in bridge.destinations:
                raise NotFound(f"no destination named {name!r}; known: {', '.join(sorted(bridge.destinations))}")
            body = await json_body(request, {"reason"} if paused else set())
            reason = (text_param("reason", body.get("reason")) or "paused by an operator") if paused \
                else "resumed by an operator"
            # No key fingerprint: an operator's pause holds until resumed.
            await store.set_paused(name, paused, reason, None, time.time())
            if bridge.worker is not None:  # same process: take effect now rather than at the next refresh
                await bridge.worker.refresh_pauses()
            log.info("admin.destination_paused" if paused else "admin.destination_resumed", destination=name)
            await actions.record(store, principal(request), "pause" if paused else "resume", name,
                                 reason if paused else "")
            return JSONResponse({"destination": name, "paused": paused, "reason": reason if paused else None})

        return handler

    async def outbox_stats(request: Request) -> Response:
        now = time.time()
        stats = await store.outbox_stats(now, list(bridge.destinations))
        return JSONResponse(views.outbox_stats(stats))

    async def list_actions(request: Request) -> Response:
        q = request.query_params
        page = await store.list_actions(limit_param(q.get("limit"), 100), offset_param(q.get("offset")))
        return page_answer("actions", page, [views.console_action(a) for a in page.items])

    async def openapi(request: Request) -> Response:
        return JSONResponse(document())

    routes = [
        Route("/events", guarded(list_events), methods=["GET"]),
        Route("/events/{event_id:int}", guarded(show_event), methods=["GET"]),
        Route("/dead", guarded(list_dead), methods=["GET"]),
        Route("/dead/retry", guarded(retry_dead, Permission.OPERATE), methods=["POST"]),
        Route("/replay", guarded(replay_events, Permission.OPERATE), methods=["POST"]),
        Route("/destinations/{name}/pause", guarded(pause_or_resume(True), Permission.OPERATE), methods=["POST"]),
        Route("/destinations/{name}/resume", guarded(pause_or_resume(False), Permission.OPERATE), methods=["POST"]),
        Route("/actions", guarded(list_actions, Permission.READ_ACTIONS), methods=["GET"]),
        Route("/outbox/stats", guarded(outbox_stats), methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *rules_routes(bridge.rules_service(), guarded, lambda handler: guarded(handler, Permission.EDIT_RULES),
                      actor=_actor),
    ]
    return AdminGuard(bridge, Router(routes=routes, default=_not_found))


def _dead_target(where: DeadFilter) -> str:
    """What a retry of dead letters was about, for the actions log."""
    parts = []
    if where.ids:
        parts.append("messages " + ", ".join(str(i) for i in where.ids[:20]) + (" ..." if len(where.ids) > 20 else ""))
    if where.destination:
        parts.append(f"destination {where.destination}")
    if where.since is not None:
        parts.append(f"since {iso(where.since)}")
    return "; ".join(parts) or "every dead letter"


def describe_filter(where: EventFilter) -> str:
    """A search as the actions log shows it (an e-mail or an order number only as its fingerprint)."""
    parts = [f"{name} {value}" for name, value in (("event", where.event_id), ("source", where.source),
                                                   ("topic", where.topic), ("status", where.status),
                                                   ("matching", where.search_key)) if value]
    parts += [f"{name} {iso(value)}" for name, value in (("since", where.since), ("until", where.until)) if value]
    return "; ".join(parts) or "every event"


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await error("not found", 404)(scope, receive, send)


def admin_routes(bridge: Bridge) -> list[BaseRoute]:
    """The admin API to add to the app's routes: `routes=[..., *admin_routes(bridge)]`."""
    return [Mount("/admin", app=admin_app(bridge))]
