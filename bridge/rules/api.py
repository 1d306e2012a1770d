"""The rules' admin API, under /admin/rules (bridge.ops.admin: the same tokens, permissions, errors and
OpenAPI document). Reading needs the view permission, every change edit_rules, and a preview with personal
data in clear reveal (bridge.access).

Who did something is the signed-in token's name; the admin token may name the person it acts for in
the `X-Bridge-Actor` header, which the audit log records beside it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bridge.access import Permission
from bridge.ops.openapi import MAX_ROW_ID
from bridge.ops.params import (
    BadRequest,
    NotFound,
    flag_param,
    json_body,
    limit_param,
    offset_param,
    page_answer,
    require,
    whole_param,
)
from bridge.rules.preview import DEFAULT_EVENTS, MAX_EVENTS
from bridge.rules.service import Missing, Refused, RulesService, action_view, draft_view, version_view

ACTOR_HEADER = "x-bridge-actor"
MAX_ACTOR = 80
Handler = Callable[[Request], Awaitable[Response]]


def named_actor(request: Request) -> str:
    named = request.headers.get(ACTOR_HEADER, "").strip()
    named = "".join(c for c in named if c.isprintable())[:MAX_ACTOR]
    return f"admin ({named})" if named else "admin"


def _files(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise BadRequest("files: expected an object of file name -> text")
    return dict(value)


def _id(request: Request, name: str) -> int:
    value = request.path_params[name]
    if not isinstance(value, int) or not 1 <= value <= MAX_ROW_ID:
        raise NotFound(f"no {name.replace('_', ' ')} {value}")
    return value


def _guarded(handler: Handler) -> Handler:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except Missing as exc:
            raise NotFound(str(exc)) from None
        except Refused as exc:
            return JSONResponse({"error": str(exc), **exc.details}, status_code=exc.status)

    return run


def rules_routes(service: RulesService, read: Callable[[Handler], Handler],
                 change: Callable[[Handler], Handler] | None = None,
                 actor: Callable[[Request], str] = named_actor) -> list[BaseRoute]:
    """The routes, each wrapped by the admin API's endpoint (400, 404, 503 as everywhere): `read` for what
    only reads, `change` (by default `read`) for drafts, checks, previews, publishing and rollback, so that
    a permission model can tell them apart. `actor` names who asked, for the audit log."""
    change = change or read

    async def published(request: Request) -> Response:
        head = await service.published()
        running = service.sync.state() if service.sync is not None else {"source": "folder"}
        return JSONResponse({"published": version_view(head, with_files=True) if head else None, "instance": running})

    async def versions(request: Request) -> Response:
        q = request.query_params
        page = await service.history(limit_param(q.get("limit"), 50), offset_param(q.get("offset")))
        return page_answer("versions", page, [version_view(v) for v in page.items])

    async def one_version(request: Request) -> Response:
        found, diff = await service.version(_id(request, "version"))
        return JSONResponse({**version_view(found, with_files=True), "diff": diff})

    async def rollback(request: Request) -> Response:
        body = await json_body(request, {"version", "message"})
        target = body.get("version")
        if not isinstance(target, int) or isinstance(target, bool) or not 1 <= target <= MAX_ROW_ID:
            raise BadRequest("version: expected the number of the version to run again")
        message = body.get("message") or ""
        if not isinstance(message, str):
            raise BadRequest("message: expected a string")
        return JSONResponse(version_view(await service.rollback(actor(request), target, message)))

    async def actions(request: Request) -> Response:
        q = request.query_params
        page = await service.actions(limit_param(q.get("limit"), 50), offset_param(q.get("offset")))
        return page_answer("actions", page, [action_view(a) for a in page.items])

    async def drafts(request: Request) -> Response:
        q = request.query_params
        page = await service.drafts(limit_param(q.get("limit"), 50), offset_param(q.get("offset")))
        return page_answer("drafts", page, [draft_view(d) for d in page.items])

    async def new_draft(request: Request) -> Response:
        body = await json_body(request, {"files"})
        files = _files(body["files"]) if "files" in body else None
        draft = await service.create_draft(actor(request), files)
        return JSONResponse(draft_view(draft, with_files=True), status_code=201)

    async def show_draft(request: Request) -> Response:
        return JSONResponse(draft_view(await service.draft(_id(request, "draft_id")), with_files=True))

    async def replace_draft(request: Request) -> Response:
        body = await json_body(request, {"files"})
        if "files" not in body:
            raise BadRequest("files: required")
        draft = await service.save_draft(actor(request), _id(request, "draft_id"), _files(body["files"]))
        return JSONResponse(draft_view(draft, with_files=True))

    async def delete_draft(request: Request) -> Response:
        await service.delete_draft(actor(request), _id(request, "draft_id"))
        return JSONResponse({"deleted": True})

    async def put_file(request: Request) -> Response:
        body = await json_body(request, {"text"})
        text = body.get("text")
        if not isinstance(text, str):
            raise BadRequest("text: expected the file's text")
        draft = await service.save_file(actor(request), _id(request, "draft_id"), request.path_params["name"], text)
        return JSONResponse(draft_view(draft, with_files=True))

    async def delete_file(request: Request) -> Response:
        draft = await service.save_file(actor(request), _id(request, "draft_id"), request.path_params["name"], None)
        return JSONResponse(draft_view(draft, with_files=True))

    async def check_draft(request: Request) -> Response:
        draft = await service.draft(_id(request, "draft_id"))
        return JSONResponse((await service.check(draft.files)).as_dict())

    async def check_files(request: Request) -> Response:
        body = await json_body(request, {"files"})
        return JSONResponse((await service.check(_files(body.get("files")))).as_dict())

    async def run_examples(request: Request) -> Response:
        body = await json_body(request, {"file"})
        file = body.get("file")
        if file is not None and not isinstance(file, str):
            raise BadRequest("file: expected a file name")
        draft = await service.draft(_id(request, "draft_id"))
        return JSONResponse(await service.examples(draft.files, file))

    async def preview(request: Request) -> Response:
        body = await json_body(request, {"limit", "reveal"})
        raw = body.get("limit")
        limit = whole_param("limit", None if raw is None else str(raw), DEFAULT_EVENTS, 1, MAX_EVENTS)
        reveal = flag_param("reveal", body.get("reveal"))
        if reveal:  # a rules editor previews without personal data; an operator or the admin may see it
            require(request, Permission.REVEAL)
        answer = await service.preview(actor(request), _id(request, "draft_id"), limit, reveal)
        return JSONResponse(answer)

    async def publish(request: Request) -> Response:
        body = await json_body(request, {"message", "force"})
        message = body.get("message") or ""
        if not isinstance(message, str):
            raise BadRequest("message: expected a string")
        version = await service.publish_draft(actor(request), _id(request, "draft_id"), message,
                                              flag_param("force", body.get("force")))
        return JSONResponse(version_view(version), status_code=201)

    def route(path: str, handler: Handler, method: str) -> Route:
        wrap = read if method == "GET" else change
        assert wrap is not None
        return Route(path, wrap(_guarded(handler)), methods=[method])

    return [
        route("/rules", published, "GET"),
        route("/rules/versions", versions, "GET"),
        route("/rules/versions/{version:int}", one_version, "GET"),
        route("/rules/rollback", rollback, "POST"),
        route("/rules/actions", actions, "GET"),
        route("/rules/check", check_files, "POST"),
        route("/rules/drafts", drafts, "GET"),
        route("/rules/drafts", new_draft, "POST"),
        route("/rules/drafts/{draft_id:int}", show_draft, "GET"),
        route("/rules/drafts/{draft_id:int}", replace_draft, "PUT"),
        route("/rules/drafts/{draft_id:int}", delete_draft, "DELETE"),
        route("/rules/drafts/{draft_id:int}/files/{name}", put_file, "PUT"),
        route("/rules/drafts/{draft_id:int}/files/{name}", delete_file, "DELETE"),
        route("/rules/drafts/{draft_id:int}/check", check_draft, "POST"),
        route("/rules/drafts/{draft_id:int}/examples", run_examples, "POST"),
        route("/rules/drafts/{draft_id:int}/preview", preview, "POST"),
        route("/rules/drafts/{draft_id:int}/publish", publish, "POST"),
    ]


__all__ = ["named_actor", "rules_routes"]
