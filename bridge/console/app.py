"""The console: web pages under /console where people run the bridge (docs/operations.md, "The console").

Server-rendered Jinja2 templates (autoescaped: every stored value is shown as text) with one small
script (static/console.js) that refreshes the live parts of a page from HTML fragments the server
renders the same way. Nothing is fetched from elsewhere; the assets ship in the package.

Security: a session cookie (bridge.console.session) set after a sign-in with a token posted in a
form (never in a URL), HttpOnly, SameSite=Strict, Secure behind HTTPS; a CSRF token on every change;
a Content-Security-Policy that allows only this origin's script and style; failed sign-ins answered
later and later (bridge.ops.slowdown). What each role may do is bridge.access's, as for the admin API,
and every change is written to the actions log (bridge.ops.actions).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import structlog
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.access import Access, ConsoleToken, Permission, Principal
from bridge.console import charts, session
from bridge.console.activity import ActivityCache
from bridge.console.jobs import KEEP_JOBS, Jobs, percent
from bridge.console.refusal import Refused
from bridge.console.rules import RulesPages
from bridge.errors import StoreUnavailable
from bridge.log import without_folders
from bridge.ops import actions, views
from bridge.ops.admin import access_of, describe_filter
from bridge.ops.replay import Progress, replay
from bridge.ops.slowdown import FailedTries
from bridge.search import search_fingerprint
from bridge.store.base import EVENT_STATUSES, DeadFilter, EventFilter, ReplaySummary
from bridge.when import iso, parse_when

if TYPE_CHECKING:
    from bridge.app import Bridge
    from bridge.mapping.result import RuleSet

log = structlog.get_logger("bridge.console")

PAGE_SIZE = 50
REFRESH_SECONDS = 5
MAX_FORM_BYTES = 64 * 1024
MAX_IDS = 1000
MAX_SEARCH = 320

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",  # no-referrer would make the browser send `Origin: null` with forms
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
}

Handler = Callable[[Request], Awaitable[Response]]


def templates() -> Environment:
    env = Environment(loader=PackageLoader("bridge.console", "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["iso"] = lambda ts: iso(ts) or ""
    env.filters["age"] = age
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return env


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


class SecurityHeaders:
    """Every console answer carries the CSP and the headers beside it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *[(k.encode(), v.encode()) for k, v in HEADERS.items() if k.encode() not in present]]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Console:
    """The console's routes and what they share: the tokens, the templates, failed sign-ins, jobs."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.store = bridge.store
        self.access: Access = access_of(bridge.settings)
        self.env = templates()
        self.failed_tries = FailedTries()
        self.jobs = Jobs(self.store)
        self.activity = ActivityCache(self.store)

    # -- plumbing -------------------------------------------------------------

    def holder(self, request: Request) -> ConsoleToken | None:
        return session.read(self.access, request.cookies.get(session.COOKIE, ""), time.time())

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        token: ConsoleToken | None = request.state.holder
        who = token.principal if token else None
        cookie = request.cookies.get(session.COOKIE, "")
        html = self.env.get_template(name).render(
            who=who, csrf=session.csrf_token(token, cookie) if token else "", can=_can(who), path=request.url.path,
            refresh=REFRESH_SECONDS, **context)
        return HTMLResponse(html, status_code=status)

    def guarded(self, handler: Handler, permission: Permission = Permission.VIEW, change: bool = False) -> Handler:
        """Signed in, with the permission; a change carries the session's CSRF token."""
        async def endpoint(request: Request) -> Response:
            token = self.holder(request)
            if token is None:
                if request.method == "GET" and "fragment" not in request.url.path:
                    return RedirectResponse("/console/sign-in", status_code=303)
                return self.plain(401, "Your session has ended: sign in again.")
            request.state.holder = token
            try:
                if change:
                    form = await self.form(request)
                    if not session.csrf_ok(token, request.cookies.get(session.COOKIE, ""), str(form.get("csrf", ""))):
                        log.warning("console.csrf_refused", actor=token.name)
                        raise Refused(403, "This form has expired or did not come from the console: reload the page "
                                           "and try again.")
                if not token.principal.can(permission):
                    raise Refused(403, f"The {token.role.value.replace('_', ' ')} role may not do this.")
                return await handler(request)
            except Refused as exc:
                return self.render(request, "message.html", exc.status, title="Not allowed", message=str(exc))
            except StoreUnavailable as exc:
                log.error("console.store_failed", path=request.url.path, reason=str(exc))
                return self.render(request, "message.html", 503, title="The store cannot answer",
                                   message="The database cannot answer now; retry in a moment.")

        return endpoint

    async def form(self, request: Request) -> FormData:
        if request.state.form is None:
            length = int(request.headers.get("content-length") or 0)
            if length > MAX_FORM_BYTES:
                raise Refused(413, "The form is too large.")
            origin = request.headers.get("origin")
            if origin and origin != f"{request.url.scheme}://{request.url.netloc}" and not _same_host(origin, request):
                raise Refused(403, "This form did not come from the console.")
            request.state.form = FormData(await _urlencoded(request))
        form: FormData = request.state.form
        return form

    def plain(self, status: int, message: str) -> Response:
        return Response(message, status_code=status, media_type="text/plain")

    async def record(self, request: Request, action: str, target: str = "", detail: str = "") -> None:
        await actions.record(self.store, request.state.holder.principal, action, target, detail)

    # -- signing in -------------------------------------------------------------

    async def sign_in_page(self, request: Request) -> Response:
        if self.holder(request) is not None:
            return RedirectResponse("/console/", status_code=303)
        return self.render(request, "sign_in.html")

    async def sign_in(self, request: Request) -> Response:
        try:
            form = await self.form(request)
        except Refused as exc:
            return self.render(request, "sign_in.html", exc.status, error=str(exc))
        token = self.access.by_token(str(form.get("token", "")).strip())
        if token is None:
            await asyncio.sleep(self.failed_tries.failed(request.client.host if request.client else ""))
            log.warning("console.sign_in_failed")
            return self.render(request, "sign_in.html", 401, error="That token is not known. Check it and try again.")
        now = time.time()
        response = RedirectResponse("/console/", status_code=303)
        response.set_cookie(session.COOKIE, session.issue(token, now), max_age=int(session.LIFETIME_SECONDS),
                            path="/console", httponly=True, samesite="strict", secure=_https(request))
        await actions.record(self.store, token.principal, "sign_in", "", "", now)
        return response

    async def sign_out(self, request: Request) -> Response:
        await self.record(request, "sign_out")
        response = RedirectResponse("/console/sign-in", status_code=303)
        response.delete_cookie(session.COOKIE, path="/console", httponly=True, samesite="strict",
                               secure=_https(request))
        return response

    # -- overview ---------------------------------------------------------------

    async def overview_data(self) -> dict[str, Any]:
        now = time.time()
        names = sorted(self.bridge.destinations)
        counts, oldest, states, activity = await asyncio.gather(
            self.store.open_counts(), self.store.oldest_pending(), self.store.destination_states(),
            self.activity.read(now))
        day = activity.day
        names = sorted(set(names) | {d for d, _ in counts})
        delivered_hour = activity.last_hour["delivered"]
        destinations = []
        for name in names:
            state = states.get(name)
            destinations.append({
                "name": name, "waiting": counts.get((name, "pending"), 0),
                "in_flight": counts.get((name, "inflight"), 0) + counts.get((name, "submitted"), 0),
                "dead": counts.get((name, "dead"), 0),
                "oldest_age": None if name not in oldest else max(0.0, now - oldest[name]),
                "paused": bool(state and state["paused"]), "pause_reason": state["reason"] if state else None,
                "delivered_hour": delivered_hour.get(name, 0), "known": name in self.bridge.destinations,
            })
        starts = [b["start"] for b in day]
        sources = sorted(set(self.bridge.sources) | {s for b in day for s in b["received"]})
        seen = [{"name": s, "day": sum(b["received"].get(s, 0) for b in day),
                 "hour": activity.last_hour["received"].get(s, 0),
                 "last": next((b["start"] for b in reversed(day) if b["received"].get(s)), None)} for s in sources]
        return {
            "now": now, "destinations": destinations, "sources": seen, "rules": self.rules_state(),
            "counting": activity.counting,
            "charts": [
                charts.bars("Events received", starts, [sum(b["received"].values()) for b in day]),
                charts.bars("Messages delivered", starts, [sum(b["delivered"].values()) for b in day]),
                charts.bars("Messages dead", starts, [sum(b["dead"].values()) for b in day]),
            ],
        }

    def rules_state(self) -> dict[str, Any]:
        holder = self.bridge.rules
        current = holder.current
        return {"loaded": current is not None, "count": len(current.rules) if current is not None else 0,
                "loaded_at": holder.loaded_at, "error": _no_folders(holder.error),
                "blocked": [_no_folders(b) or "" for b in holder.blocked],
                "saved_copy": holder.running_saved is not None}

    async def overview(self, request: Request) -> Response:
        return self.render(request, "overview.html", **await self.overview_data())

    async def overview_fragment(self, request: Request) -> Response:
        return self.render(request, "_overview.html", **await self.overview_data())

    async def overview_json(self, request: Request) -> Response:
        data = await self.overview_data()
        data["charts"] = [{"title": c.title, "total": c.total, "hours": [b.value for b in c.bars]}
                          for c in data["charts"]]
        return JSONResponse(data)

    async def pause_or_resume(self, request: Request) -> Response:
        name, change = request.path_params["name"], request.path_params["change"]
        paused = change == "pause"
        if change not in ("pause", "resume"):
            raise Refused(404, "Pause or resume: nothing else.")
        if name not in self.bridge.destinations:
            raise Refused(404, f"No destination named {name}.")
        form = await self.form(request)
        reason = (str(form.get("reason", "")).strip()[:200] or "paused by an operator") if paused \
            else "resumed by an operator"
        await self.store.set_paused(name, paused, reason, None, time.time())
        if self.bridge.worker is not None:
            await self.bridge.worker.refresh_pauses()
        await self.record(request, "pause" if paused else "resume", name, reason if paused else "")
        return RedirectResponse("/console/", status_code=303)

    # -- events -----------------------------------------------------------------

    def search(self, params: Mapping[str, str]) -> tuple[EventFilter, dict[str, str], list[str]]:
        """The filter a search form asks for, its fields as given, and what is wrong with them."""
        fields = {k: str(params.get(k, "")).strip()[:MAX_SEARCH] for k in
                  ("source", "topic", "status", "since", "until", "q")}
        problems = []
        status = fields["status"] or None
        if status is not None and status not in EVENT_STATUSES:
            problems.append(f"status: one of {', '.join(EVENT_STATUSES)}")
            status = None
        times: dict[str, float | None] = {}
        for name in ("since", "until"):
            try:
                times[name] = parse_when(fields[name], time.time()) if fields[name] else None
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
                times[name] = None
        search_key = search_fingerprint(fields["q"]) if fields["q"] else None
        if fields["q"] and search_key is None:
            problems.append("order number or e-mail: not one")
        where = EventFilter(fields["source"] or None, fields["topic"] or None, status, times["since"], times["until"],
                            search_key)
        return where, fields, problems

    def reveal(self, request: Request) -> bool:
        who: Principal = request.state.holder.principal
        return request.query_params.get("reveal") == "1" and who.can(Permission.REVEAL)

    async def events_data(self, request: Request) -> dict[str, Any]:
        where, fields, problems = self.search(request.query_params)
        offset = _whole(request.query_params.get("offset"), 0)
        reveal = self.reveal(request)
        page = await self.store.list_events(where, PAGE_SIZE, offset)
        query = {k: v for k, v in fields.items() if v}
        return {"events": [views.event_summary(e, reveal) for e in page.items], "page": page, "fields": fields,
                "problems": problems, "reveal": reveal, "query": urlencode(query),
                "prev": urlencode({**query, "offset": max(0, offset - PAGE_SIZE)}) if offset else None,
                "next": urlencode({**query, "offset": offset + PAGE_SIZE})
                if offset + PAGE_SIZE < page.total else None,
                "statuses": EVENT_STATUSES, "sources": sorted(self.bridge.sources),
                "first": offset + 1 if page.items else 0, "last": offset + len(page.items),
                "live": offset == 0}

    async def events(self, request: Request) -> Response:
        data = await self.events_data(request)
        if data["reveal"]:
            await self.record(request, "reveal", "events list", describe_filter(self.search(request.query_params)[0]))
        return self.render(request, "events.html", **data)

    async def events_fragment(self, request: Request) -> Response:
        return self.render(request, "_events.html", **await self.events_data(request))

    async def event(self, request: Request) -> Response:
        event_id = request.path_params["event_id"]
        detail = await self.store.event_detail(event_id) if 0 < event_id < 2**63 else None
        if detail is None:
            raise Refused(404, f"No event with id {event_id}.")
        reveal = self.reveal(request)
        if reveal:
            await self.record(request, "reveal", f"event {event_id}")
        return self.render(request, "event.html", event=views.event_detail(detail, reveal), reveal=reveal)

    async def replay_event(self, request: Request) -> Response:
        event_id = request.path_params["event_id"]
        rules = self.running_rules()
        summary = await replay(self.store, rules, EventFilter(event_id=event_id), time.time(),
                               force=(await self.form(request)).get("force") == "1")
        await self.record(request, "replay", f"event {event_id}", _summary(summary))
        return self.render(request, "message.html", title=f"Event {event_id} replayed", message=_summary(summary),
                           back=f"/console/events/{event_id}")

    def running_rules(self) -> RuleSet:
        rules = self.bridge.rules.current
        if rules is None:
            raise Refused(503, "No valid rules are loaded: fix the rules first (see the Rules page).")
        return rules

    async def replay_search(self, request: Request) -> Response:
        form = await self.form(request)
        where, _, problems = self.search({k: str(v) for k, v in form.items()})
        if problems:
            raise Refused(400, "; ".join(problems))
        if where == EventFilter():
            raise Refused(400, "Narrow the search first (a source, a topic, a time...): a replay of every event "
                               "is the admin API's or the CLI's to do.")
        rules = self.running_rules()
        who: Principal = request.state.holder.principal
        what = describe_filter(where)

        async def work(progress: Progress) -> ReplaySummary:
            summary = await replay(self.store, rules, where, time.time(), progress=progress)
            await actions.record(self.store, who, "replay_finished", what, _summary(summary))
            return summary

        job_id = await self.jobs.start(who.name, what, work)
        await self.record(request, "replay", what, f"job {job_id}")
        return RedirectResponse(f"/console/jobs/{job_id}", status_code=303)

    async def job_list(self, request: Request) -> Response:
        page = await self.jobs.recent()
        rows = [{"job": job, "state": self.jobs.state(job), "percent": percent(job)} for job in page.items]
        return self.render(request, "jobs.html", rows=rows, total=page.total, keep=KEEP_JOBS)

    async def job(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        job = await self.jobs.get(job_id) if 0 < job_id < 2**63 else None
        if job is None:
            raise Refused(404, f"No replay job {job_id}: the console keeps the latest {KEEP_JOBS} and every one "
                               "still running.")
        template = "_job.html" if request.url.path.endswith("/fragment") else "job.html"
        return self.render(request, template, job=job, state=self.jobs.state(job), percent=percent(job),
                           summary=_summary(job.summary))

    # -- dead letters -----------------------------------------------------------

    async def dead(self, request: Request) -> Response:
        destination = request.query_params.get("destination") or None
        offset = _whole(request.query_params.get("offset"), 0)
        page = await self.store.list_dead(DeadFilter(destination=destination), PAGE_SIZE, offset)
        return self.render(request, "dead.html", dead=[views.dead_letter(d) for d in page.items], page=page,
                           destination=destination or "", destinations=sorted(self.bridge.destinations),
                           first=offset + 1 if page.items else 0, last=offset + len(page.items),
                           prev=offset - PAGE_SIZE if offset else None,
                           next=offset + PAGE_SIZE if offset + PAGE_SIZE < page.total else None)

    async def retry_dead(self, request: Request) -> Response:
        form = await self.form(request)
        ids = tuple(_whole(str(i), 0) for i in form.getlist("id"))[:MAX_IDS]
        destination = str(form.get("destination", "")).strip() or None
        where = DeadFilter(tuple(i for i in ids if i > 0), destination)
        if where.empty and form.get("all") != "1":
            raise Refused(400, "Choose dead letters to retry, or retry all of them.")
        count = await self.store.retry_dead(where, time.time())
        target = ", ".join(f"message {i}" for i in where.ids) or (f"destination {destination}" if destination
                                                                  else "every dead letter")
        await self.record(request, "retry_dead", target, f"{count} retried")
        back = str(form.get("back", "")) or "/console/dead"
        return RedirectResponse(back if back.startswith("/console/") else "/console/dead", status_code=303)

    # -- actions ------------------------------------------------------

    async def actions_log(self, request: Request) -> Response:
        offset = _whole(request.query_params.get("offset"), 0)
        page = await self.store.list_actions(PAGE_SIZE, offset)
        rule_changes = await self.store.rule_actions(PAGE_SIZE, 0)  # drafts, previews, publishes, rollbacks
        return self.render(request, "actions.html", actions=page.items, page=page, rule_changes=rule_changes,
                           first=offset + 1 if page.items else 0, last=offset + len(page.items),
                           prev=offset - PAGE_SIZE if offset else None,
                           next=offset + PAGE_SIZE if offset + PAGE_SIZE < page.total else None)

    # -- the routes ---------------------------------------------------------------

    def app(self) -> ASGIApp:
        g = self.guarded
        op = Permission.OPERATE
        routes = [
            Route("/", g(self.overview), methods=["GET"]),
            Route("/sign-in", self.sign_in_page, methods=["GET"]),
            Route("/sign-in", self.sign_in, methods=["POST"]),
            Route("/sign-out", g(self.sign_out, change=True), methods=["POST"]),
            Route("/overview/fragment", g(self.overview_fragment), methods=["GET"]),
            Route("/overview.json", g(self.overview_json), methods=["GET"]),
            Route("/destinations/{name}/{change:str}", g(self.pause_or_resume, op, change=True), methods=["POST"]),
            Route("/events", g(self.events), methods=["GET"]),
            Route("/events/fragment", g(self.events_fragment), methods=["GET"]),
            Route("/events/{event_id:int}", g(self.event), methods=["GET"]),
            Route("/events/{event_id:int}/replay", g(self.replay_event, op, change=True), methods=["POST"]),
            Route("/replay", g(self.replay_search, op, change=True), methods=["POST"]),
            Route("/jobs", g(self.job_list), methods=["GET"]),
            Route("/jobs/{job_id:int}", g(self.job), methods=["GET"]),
            Route("/jobs/{job_id:int}/fragment", g(self.job), methods=["GET"]),
            Route("/dead", g(self.dead), methods=["GET"]),
            Route("/dead/retry", g(self.retry_dead, op, change=True), methods=["POST"]),
            *RulesPages(self).routes(),
            Route("/actions", g(self.actions_log, Permission.READ_ACTIONS), methods=["GET"]),
            Mount("/static", app=StaticFiles(packages=[("bridge.console", "static")])),
        ]
        router = Router(routes=routes)
        router.redirect_slashes = False
        return SecurityHeaders(ConsoleGate(self, router))


class ConsoleGate:
    """404 for the whole console while no token is set (as the admin API); else the request's state
    starts with no token holder and no form read."""

    def __init__(self, console: Console, app: ASGIApp) -> None:
        self.console = console
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.console.access.enabled:
            await Response("not found", status_code=404, media_type="text/plain")(scope, receive, send)
            return
        if scope["type"] == "http":
            # What a request's handling learns, on request.state: the signed-in token once `guarded`
            # has read it, and the form once `Console.form` has read it (a body is read once).
            state = scope.setdefault("state", {})
            state["holder"] = None
            state["form"] = None
        await self.app(scope, receive, send)


async def _urlencoded(request: Request) -> list[tuple[str, str | UploadFile]]:
    """The fields of a urlencoded form (the console's forms are nothing else), read to MAX_FORM_BYTES."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise Refused(415, "The console takes forms only.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise Refused(413, "The form is too large.")
    try:
        return list(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=MAX_IDS + 20))
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "The form cannot be read.") from None


def _can(who: Principal | None) -> dict[str, bool]:
    return {p.value: bool(who and who.can(p)) for p in Permission}


def _https(request: Request) -> bool:
    """Behind HTTPS: the request came over it, or the proxy in front says it did."""
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"


def _same_host(origin: str, request: Request) -> bool:
    return origin.split("://", 1)[-1] == request.headers.get("host", "")


def _whole(value: str | None, default: int) -> int:
    try:
        number = int(value) if value else default
    except ValueError:
        return default
    return min(max(number, 0), 2**62)


def _summary(summary: ReplaySummary | None) -> str:
    if summary is None:
        return ""
    return (f"{summary.events} events replayed: {summary.queued} messages queued ({summary.requeued_dead} dead letters "
            f"brought back), {summary.skipped_delivered} already delivered, {summary.skipped_open} still open, "
            f"{summary.events_with_errors} with mapping errors")


def _no_folders(error: object) -> str | None:
    if error is None:
        return None
    return without_folders(str(error))


def console_routes(bridge: Bridge) -> list[BaseRoute]:
    """The console to add to the app's routes; `/console` itself leads to `/console/`."""
    console = Console(bridge)

    async def to_slash(request: Request) -> Response:
        return RedirectResponse("/console/", status_code=307)

    return [Route("/console", to_slash, methods=["GET"]), Mount("/console", app=console.app())]
