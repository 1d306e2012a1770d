"""The admin API's requests: parameters and JSON bodies read with 400s that name the field, who asked
and what their role allows (403), and the wrapper every route goes through (bridge.ops.admin, the rules
routes of bridge.rules.api and the console's rules pages share it)."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.access import Permission, Principal
from bridge.errors import StoreUnavailable
from bridge.ops.openapi import MAX_ROW_ID
from bridge.store.base import Page
from bridge.when import parse_when

log = structlog.get_logger("bridge.ops.admin")

MAX_LIMIT = 1000
Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    """A parameter the caller must fix: answered 400."""


class NotFound(Exception):
    pass


def error(message: str, status: int, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


# -- parameters ---------------------------------------------------------------


def when_param(name: str, value: Any) -> float | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name}: expected a string (ISO 8601 or 2h, 3d)")
    try:
        return parse_when(value, time.time())
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}") from None


def is_row_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ROW_ID


def whole_param(name: str, value: str | None, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{name}: expected a whole number, got {value!r}") from None
    if not low <= number <= high:
        raise BadRequest(f"{name}: expected {low} to {high}, got {number}")
    return number


def limit_param(value: str | None, default: int) -> int:
    return whole_param("limit", value, default, 1, MAX_LIMIT)


def offset_param(value: str | None) -> int:
    return whole_param("offset", value, 0, 0, MAX_ROW_ID)


def page_answer(name: str, page: Page[Any], rows: list[dict[str, Any]]) -> JSONResponse:
    """A list answer: its rows, and where they sit among all that match ("N of M")."""
    return JSONResponse({name: rows, "total": page.total, "limit": page.limit, "offset": page.offset})


def flag_param(name: str, value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes"):
        return True
    if isinstance(value, str) and value.lower() in ("0", "false", "no", ""):
        return False
    raise BadRequest(f"{name}: expected true or false")


def text_param(name: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    raise BadRequest(f"{name}: expected a string")


async def json_body(request: Request, allowed: set[str]) -> dict[str, Any]:
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



class Forbidden(Exception):
    """The token's role lacks a permission: answered 403."""


def principal(request: Request) -> Principal:
    who: Principal = request.state.principal
    return who


def require(request: Request, permission: Permission) -> Principal:
    who = principal(request)
    if not who.can(permission):
        raise Forbidden(f"the {who.role.value} role may not {permission.value.replace('_', ' ')}")
    return who


def guarded(handler: Handler, permission: Permission = Permission.VIEW) -> Handler:
    async def endpoint(request: Request) -> Response:
        try:
            require(request, permission)
            return await handler(request)
        except Forbidden as exc:
            return error(str(exc), 403)
        except BadRequest as exc:
            return error(str(exc), 400)
        except NotFound as exc:
            return error(str(exc), 404)
        except StoreUnavailable as exc:
            log.error("admin.store_failed", path=request.url.path, reason=str(exc))
            return error("the store cannot answer now; retry later", 503, **{"Retry-After": "5"})

    return endpoint
