"""The fake Omnisend's two error shapes: RFC 9457 problem JSON on `/api`, `{error, fields}` on `/v3`."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import JSONResponse

Problems = list[dict[str, str]]


def problem(
    status: int,
    title: str,
    detail: str,
    errors: Problems | None = None,
    *,
    kind: str = "problem",
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        **(extra or {}),
        "type": f"https://problems.omnisend.com/{kind}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": f"urn:omnisend:request:{uuid.uuid4()}",
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


def v3_error(status: int, message: str, fields: dict[str, list[str]] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "fields": fields or {}}, status_code=status)
