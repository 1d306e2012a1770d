"""Shared HTTP pieces: one client per destination, and the response/exception -> Outcome rules.

Classification (the worker acts on it, see bridge.model.Outcome):

    2xx                                  delivered
    network error, timeout, 408, 429, 5xx retry   (Retry-After / X-Rate-Limit-Reset honoured)
    401, 403                             pause   (credentials refused: retrying each message is pointless)
    any other 4xx                        dead    (with a short, PII-masked excerpt of the body)
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import re
import ssl
import time
from collections.abc import Mapping

import httpx

from bridge.log import mask_text
from bridge.model import Outcome

CONNECT_TIMEOUT = 5.0
# Omnisend advises a 10 s client timeout (apis.md 1.8); the total cap bounds slow-drip bodies too.
READ_TIMEOUT = 10.0
TOTAL_TIMEOUT = 15.0
# httpx slows down with many requests in flight on one client (performance.md): keep the pool small.
MAX_CONNECTIONS = 8
MAX_KEEPALIVE = 4
DETAIL_LIMIT = 300
# Never trust a server to park us for hours: the worker reschedules anyway.
MAX_RETRY_AFTER = 3600.0

USER_AGENT = "bridge/0.1 (+webhook event bridge)"


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default context (its CA bundle, or SSL_CERT_FILE / SSL_CERT_DIR when set), made once for
    every destination's client: reading the CA bundle costs ~20 ms of CPU a client."""
    return httpx.create_ssl_context()


def build_client(
    base_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    read_timeout: float = READ_TIMEOUT,
) -> httpx.AsyncClient:
    """A pooled client for one destination; auth headers are added per request by the adapter."""
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        timeout=httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT),
        limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE),
        transport=transport,
        follow_redirects=False,
        verify=tls_context(),
    )


async def send(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    total_timeout: float = TOTAL_TIMEOUT,
) -> httpx.Response:
    """One request with a wall-clock cap: httpx timeouts are per operation, not per request.

    `content` is a JSON body already encoded (bridge.jsoncodec.dumps), or None for no body.
    """
    headers = dict(headers or {})
    if content is not None:
        headers.setdefault("Content-Type", "application/json")
    async with asyncio.timeout(total_timeout):
        return await client.request(method, path, content=content, headers=headers)


# --- Retry-After -----------------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value: delta-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def retry_after_in_body(response: httpx.Response) -> float | None:
    """Omnisend's 2026 line says how long to wait in its 429 problem body, `retryAfter` (seconds; the
    `RateLimitProblem` schema of its OpenAPI documents 2026-03-15), with or without a `Retry-After`."""
    if response.status_code != 429 or "json" not in response.headers.get("content-type", ""):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    value = body.get("retryAfter") if isinstance(body, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return min(max(float(value), 0.0), MAX_RETRY_AFTER)


def retry_after_from(response: httpx.Response, *, now: float | None = None) -> float | None:
    """The wait a response asks for: `Retry-After`, else a 429 body's `retryAfter`, else Omnisend's
    `X-Rate-Limit-Reset` on 429.

    `X-Rate-Limit-Reset` is seconds left in the current period, not an epoch (apis.md 1.8).
    """
    seconds = parse_retry_after(response.headers.get("Retry-After"), now=now)
    if seconds is None:
        seconds = retry_after_in_body(response)
    if seconds is None and response.status_code == 429:
        seconds = parse_retry_after(response.headers.get("X-Rate-Limit-Reset"), now=now)
    return seconds


# --- classification ----------------------------------------------------------------------------

RETRY_STATUSES = frozenset({408, 429})
PAUSE_STATUSES = frozenset({401, 403})


def classify_status(status: int, body: str = "", *, retry_after: float | None = None) -> Outcome:
    """The Outcome for an HTTP status and body text (also used for Omnisend batch items)."""
    if 200 <= status < 300:
        return Outcome("delivered", status=status)
    detail = excerpt(summarize(body))
    if status in RETRY_STATUSES or status >= 500:
        return Outcome("retry", status=status, detail=detail, retry_after=retry_after)
    if status in PAUSE_STATUSES:
        return Outcome("pause", status=status, detail=detail)
    # 1xx/3xx are not expected from these APIs (redirects are not followed): treat as permanent.
    return Outcome("dead", status=status, detail=detail)


def classify_response(response: httpx.Response, *, now: float | None = None) -> Outcome:
    return classify_status(response.status_code, _text(response), retry_after=retry_after_from(response, now=now))


def classify_exception(exc: BaseException) -> Outcome:
    """Transport trouble is always transient. The detail says whether the request can have arrived:
    a connection that never opened cannot have delivered anything, while a request that timed out
    or was cut off after it was sent may have been applied (a resend may duplicate it where the
    destination does not dedupe: Omnisend's real-time events, docs/destinations.md)."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return Outcome("retry", detail=excerpt(f"not sent, no connection: {type(exc).__name__}: {exc}"))
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return Outcome("retry", detail=f"timeout: {type(exc).__name__} (the request may have arrived)")
    if isinstance(exc, httpx.TransportError):
        return Outcome("retry", detail=excerpt(f"network error: {type(exc).__name__}: {exc} "
                                               "(the request may have arrived)"))
    return Outcome("retry", detail=excerpt(f"unexpected error: {type(exc).__name__}: {exc}"))


def _text(response: httpx.Response) -> str:
    try:
        return response.text
    except (UnicodeDecodeError, httpx.ResponseNotRead):
        return ""


def summarize(body: str) -> str:
    """The useful part of an error body, so the 300-character excerpt is not spent on boilerplate.

    Knows RFC 9457 problems with `errors[{field, message}]` (Omnisend 2026), `{error, fields}`
    (Omnisend v3) and `{message}`; anything else is returned as is.
    """
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict):
        return body
    parts: list[str] = []
    head = data.get("error") or data.get("title") or data.get("message")
    if isinstance(head, str):
        parts.append(head)
    if isinstance(data.get("detail"), str):
        parts.append(data["detail"])
    errors = data.get("errors")
    if isinstance(errors, list):
        parts += [f"{e.get('field', '')}: {e.get('message', e.get('code', ''))}" for e in errors if isinstance(e, dict)]
    fields = data.get("fields")
    if isinstance(fields, dict):
        parts += [f"{name}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for name, v in fields.items()]
    return "; ".join(parts) if parts else body


# --- PII-safe excerpts -------------------------------------------------------------------------

_SPACES = re.compile(r"\s+")


def excerpt(text: str, limit: int = DETAIL_LIMIT) -> str:
    """A one-line, masked excerpt of at most `limit` characters."""
    masked = mask_text(_SPACES.sub(" ", text).strip(), strict=True)  # a destination's words: any 7+ digits
    if len(masked) <= limit:
        return masked
    return masked[: limit - 1] + "…"

