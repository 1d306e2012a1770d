"""The console's Rules pages (docs/operations.md, "The console"; mappings/README.md for the marketer's path).

Server-rendered: the running rules with their problems, the history with its diffs and a one-click
rollback, the drafts. The editor page (static/rules-editor.js, CodeMirror 5 shipped in static/) talks to
the rules' own API (bridge.rules.api) mounted under /console/api: the same drafts, check, examples,
preview and publish as /admin/rules, with the session instead of a bearer token, the session's CSRF
token in the X-CSRF-Token header of every change, and the role's permissions (bridge.access): view to
read, edit_rules to change, reveal for personal data in a preview. Every change lands in the rules'
audit log (bridge.rules.service).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router

from bridge.access import Permission
from bridge.console import session
from bridge.console.refusal import Refused
from bridge.ops.params import guarded
from bridge.rules import files as ruleset
from bridge.rules.api import rules_routes
from bridge.rules.check import CheckResult, check_files
from bridge.rules.service import Missing, RulesService, diff_sets
from bridge.rules.service import Refused as NotDone

if TYPE_CHECKING:
    from bridge.console.app import Console, Handler

log = structlog.get_logger("bridge.console")

T = TypeVar("T")

CSRF_HEADER = "x-csrf-token"
MAX_API_BODY = 2 * ruleset.MAX_SET_BYTES + 64 * 1024  # a whole set as JSON, escapes included
HISTORY_SHOWN = 20


class RulesPages:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.bridge = console.bridge
        self._check: tuple[str, CheckResult] | None = None

    @property
    def service(self) -> RulesService:
        service: RulesService = self.bridge.rules_service()
        return service

    # -- the list ---------------------------------------------------------------------------------

    async def listing(self, request: Request) -> Response:
        current = self.bridge.rules.current
        blocked = self.bridge.rules.blocked
        published = await self.service.published()
        check = await self._checked(published.digest, published.files) if published is not None else None
        problems = [*(check.problems if check else []), *(check.example_problems if check else [])]
        listed = []
        for rule in current.rules if current is not None else []:
            file = rule.file.rsplit("/", 1)[-1]
            held = [m for m in rule.messages if any(_names_line(b, file, m.line) for b in blocked)]
            state = "ignores" if rule.ignore else ("runs" if not held else
                                                   "held back" if len(held) == len(rule.messages) else
                                                   "partly held back")
            listed.append({"name": rule.name, "file": file, "line": rule.line, "source": rule.source,
                           "topics": list(rule.topics), "ignore": rule.ignore, "state": state,
                           "when": rule.when is not None,
                           "sends": _counted([m.label for m in rule.messages]),
                           "areas": sorted({a for m in rule.messages for a in m.areas}),
                           "problems": [p for p in problems if p.file == file],
                           "held": [{"line": m.line, "why": b.split(": note: ", 1)[-1]} for m in held for b in blocked
                                    if _names_line(b, file, m.line)]})
        files = {r["file"] for r in listed}
        history = await self.service.history(HISTORY_SHOWN) if self.service.sync is not None else None
        drafts = await self.service.drafts(50) if self.service.sync is not None else None
        return self.console.render(
            request, "rules.html", rules=listed, state=self.console.rules_state(), published=published,
            problems=[p for p in problems if p.file not in files], check=check,
            history=history.items if history else [], history_total=history.total if history else 0,
            drafts=drafts.items if drafts else [], store_source=self.service.sync is not None,
            just_published=_number(request.query_params.get("published", "")))

    async def _checked(self, digest: str, files: dict[str, str]) -> CheckResult:
        """The published set's check, made once per version (it loads the whole set, in a thread)."""
        if self._check is None or self._check[0] != digest:
            result, _ = await asyncio.to_thread(check_files, files, self.service.allowed, self.service.payload_roots)
            self._check = (digest, result)
        return self._check[1]

    # -- drafts -----------------------------------------------------------------------------------

    async def new_draft(self, request: Request) -> Response:
        draft = await self._do(self.service.create_draft(self._actor(request)))
        return RedirectResponse(f"/console/rules/drafts/{draft.id}", status_code=303)

    async def editor(self, request: Request) -> Response:
        draft = await self._do(self.service.draft(self._id(request, "draft_id")))
        names = sorted(draft.files)
        chosen = request.query_params.get("file") or (names[0] if names else "")
        if chosen not in draft.files:
            chosen = names[0] if names else ""
        head = await self.service.store.rule_head()
        return self.console.render(request, "rules_editor.html", draft=draft, names=names, chosen=chosen,
                                   text=draft.files.get(chosen, ""),
                                   stale=head is not None and head.version != draft.base_version,
                                   head=head.version if head else None)

    async def save_file(self, request: Request) -> Response:
        """The form the editor page posts without script: one file's text."""
        draft_id = self._id(request, "draft_id")
        form = await self.console.form(request)
        name = str(form.get("name", ""))
        await self._do(self.service.save_file(self._actor(request), draft_id, name, str(form.get("text", ""))))
        return RedirectResponse(f"/console/rules/drafts/{draft_id}?file={name}", status_code=303)

    async def delete_draft(self, request: Request) -> Response:
        await self._do(self.service.delete_draft(self._actor(request), self._id(request, "draft_id")))
        return RedirectResponse("/console/rules", status_code=303)

    # -- history ----------------------------------------------------------------------------------

    async def version(self, request: Request) -> Response:
        found, diff = await self._do(self.service.version(self._id(request, "version")))
        head = await self.service.store.rule_head()
        return self.console.render(request, "rules_version.html", version=found, diff=diff_lines(diff),
                                   running=head is not None and head.version == found.version)

    async def rollback(self, request: Request) -> Response:
        form = await self.console.form(request)
        target = _number(str(form.get("version", "")))
        version = await self._do(self.service.rollback(self._actor(request), target))
        return RedirectResponse(f"/console/rules?published={version.version}", status_code=303)

    # -- plumbing ---------------------------------------------------------------------------------

    def _actor(self, request: Request) -> str:
        name: str = request.state.holder.principal.name
        return name

    def _id(self, request: Request, name: str) -> int:
        value = request.path_params[name]
        if not isinstance(value, int) or not 1 <= value < 2**62:
            raise Refused(404, f"No {name.replace('_', ' ')} {value}.")
        return value

    async def _do(self, work: Awaitable[T]) -> T:
        """The service's refusals as the console's pages show them."""
        try:
            return await work
        except Missing as exc:
            raise Refused(404, _sentence(str(exc))) from None
        except NotDone as exc:
            problems = exc.details.get("problems") or []
            lines = [f"{p['file']}:{p['line']}: {p['message']}" + (f"; {p['fix']}" if p["fix"] else "")
                     for p in problems]
            raise Refused(exc.status, "\n".join([_sentence(str(exc)), *lines])) from None

    # -- the JSON API for the editor ------------------------------------------------------------------

    def api_guard(self, permission: Permission) -> Callable[[Handler], Handler]:
        def wrap(handler: Handler) -> Handler:
            inner = guarded(handler, permission)

            async def endpoint(request: Request) -> Response:
                token = self.console.holder(request)
                if token is None:
                    return JSONResponse({"error": "your session has ended: sign in again"}, status_code=401)
                request.state.holder = token
                request.state.principal = token.principal
                if request.method != "GET":
                    cookie = request.cookies.get(session.COOKIE, "")
                    if not session.csrf_ok(token, cookie, request.headers.get(CSRF_HEADER, "")):
                        log.warning("console.csrf_refused", actor=token.name)
                        return JSONResponse({"error": "this page has expired: reload it"}, status_code=403)
                    if request.headers.get("content-type", "").split(";")[0].strip().lower() not in \
                            ("application/json", ""):
                        return JSONResponse({"error": "send JSON"}, status_code=415)
                    if not await _bounded_body(request):
                        return JSONResponse({"error": "the request is too large"}, status_code=413)
                return await inner(request)

            return endpoint

        return wrap

    def routes(self) -> list[BaseRoute]:
        g = self.console.guarded
        edit = Permission.EDIT_RULES
        api = rules_routes(self.service, self.api_guard(Permission.VIEW), self.api_guard(edit),
                           actor=lambda request: str(request.state.principal.name))
        api.append(Route("/rules/drafts/{draft_id:int}/diff", self.api_guard(Permission.VIEW)(self.api_compare),
                         methods=["GET"]))
        return [
            Route("/rules", g(self.listing), methods=["GET"]),
            Route("/rules/drafts", g(self.new_draft, edit, change=True), methods=["POST"]),
            Route("/rules/drafts/{draft_id:int}", g(self.editor), methods=["GET"]),
            Route("/rules/drafts/{draft_id:int}/save", g(self.save_file, edit, change=True), methods=["POST"]),
            Route("/rules/drafts/{draft_id:int}/delete", g(self.delete_draft, edit, change=True), methods=["POST"]),
            Route("/rules/versions/{version:int}", g(self.version), methods=["GET"]),
            Route("/rules/rollback", g(self.rollback, edit, change=True), methods=["POST"]),
            Mount("/api", app=Router(routes=api)),
        ]

    async def api_compare(self, request: Request) -> Response:
        try:
            draft = await self.service.draft(self._api_id(request))
        except Missing as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        published = await self.service.published()
        return JSONResponse({"diff": diff_sets(published.files if published else {}, draft.files)})

    def _api_id(self, request: Request) -> int:
        value = request.path_params["draft_id"]
        return value if isinstance(value, int) and 1 <= value < 2**62 else 0


async def _bounded_body(request: Request) -> bool:
    """Read the body to MAX_API_BODY; the API's handlers then read it from the request as usual."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_API_BODY:
            return False
    request._body = bytes(body)  # starlette's Request.body() answers this from now on
    return True


def _counted(labels: list[str]) -> list[str]:
    """Each label once, in order, with how many messages carry it when more than one."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return [f"{label} ×{n}" if n > 1 else label for label, n in counts.items()]


def _names_line(note: str, file: str, line: int) -> bool:
    """Whether a loader note is about `file` at `line` (it starts with the file's path, line and column)."""
    head = note.split(": ", 1)[0]
    return head.rsplit("/", 1)[-1].startswith(f"{file}:{line}:")


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """A unified diff as (kind, line) pairs for the page: add, del, hunk, file or same."""
    out = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        out.append((kind, line))
    return out


def _number(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        return 0
    return number if 1 <= number < 2**62 else 0


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


__all__ = ["RulesPages", "diff_lines"]
