"""What both fake APIs share: request recording, failure injection, a sliding-window rate limit and
the `/_fake/*` control routes. Deliberately independent of bridge.destinations: the fakes check
the documented contracts on their own, so a bug in the adapters cannot hide behind the same bug.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

Handler = Callable[[Request, Any], Awaitable[Response]]


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw text when it is not JSON
    status: int | None  # None: the connection was dropped or timed out on purpose
    at: float  # time.monotonic() on arrival

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FailurePlan:
    """Injected trouble for the next `count` requests, or until `until` (monotonic), whichever is set.

    mode: status (answer `status`), timeout (hold the request `delay` seconds, then 504),
    reset (drop the connection mid-response), lost_answer (handle the request as usual, so it
    takes effect, then drop the connection instead of answering: the case a sender cannot tell
    from `reset`).
    """

    mode: str = "status"
    status: int = 503
    count: int | None = None
    until: float | None = None
    delay: float = 30.0
    retry_after: int | None = None

    def active(self, now: float) -> bool:
        if self.count is not None:
            return self.count > 0
        return self.until is not None and now < self.until


class SlidingWindow:
    """At most `limit` accepted requests in any `window` seconds."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._hits: deque[float] = deque()

    def check(self, now: float) -> tuple[bool, int, float]:
        """(allowed, remaining after this request, seconds until a slot frees)."""
        while self._hits and self._hits[0] <= now - self.window:
            self._hits.popleft()
        if len(self._hits) >= self.limit:
            return False, 0, self._until_free(now)
        self._hits.append(now)
        return True, self.limit - len(self._hits), self._until_free(now)

    def _until_free(self, now: float) -> float:
        # Never more than the window: (now + 60.0) - now can come out a hair over 60.0 in floating
        # point, and X-Rate-Limit-Reset (seconds left, rounded up) would then say 61.
        return min(self.window, self._hits[0] + self.window - now) if self._hits else self.window

    def clear(self) -> None:
        self._hits.clear()


@dataclass
class FakeApi:
    """The state of one fake server; the app exposes it as `app.state.fake`."""

    name: str
    api_key: str
    rate_limit: int
    rate_window: float
    clock: Callable[[], float] = time.monotonic
    requests: list[RecordedRequest] = field(default_factory=list)
    failures: list[FailurePlan] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.window = SlidingWindow(self.rate_limit, self.rate_window)
        self.lock = threading.Lock()  # tests read `requests` from another thread

    # --- control -------------------------------------------------------------------------

    def fail(
        self,
        mode: str = "status",
        *,
        status: int = 503,
        count: int | None = None,
        seconds: float | None = None,
        delay: float = 30.0,
        retry_after: int | None = None,
    ) -> None:
        if mode not in ("status", "timeout", "reset", "lost_answer"):
            raise ValueError(f"unknown failure mode {mode!r}")
        if count is None and seconds is None:
            count = 1
        until = self.clock() + seconds if seconds is not None else None
        with self.lock:
            self.failures.append(FailurePlan(mode, status, count, until, delay, retry_after))

    def set_rate_limit(self, limit: int, window: float | None = None) -> None:
        with self.lock:
            self.rate_limit = limit
            self.rate_window = window or self.rate_window
            self.window = SlidingWindow(self.rate_limit, self.rate_window)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.failures.clear()
            self.window.clear()
        self.reset_data()

    def reset_data(self) -> None:
        """Subclass hook: forget stored resources."""

    def recorded(self, *, accepted_only: bool = False, path: str | None = None) -> list[RecordedRequest]:
        with self.lock:
            items = list(self.requests)
        if accepted_only:
            items = [r for r in items if r.status is not None and 200 <= r.status < 300]
        if path is not None:
            items = [r for r in items if r.path == path]
        return items

    def accepted(self, path: str | None = None) -> list[RecordedRequest]:
        return self.recorded(accepted_only=True, path=path)

    # --- request pipeline ------------------------------------------------------------------

    def _take_failure(self, now: float) -> FailurePlan | None:
        with self.lock:
            self.failures = [f for f in self.failures if f.active(now)]
            if not self.failures:
                return None
            plan = self.failures[0]
            if plan.count is not None:
                plan.count -= 1
            return plan

    def rate_headers(self, remaining: int, reset: float) -> dict[str, str]:
        """Subclass hook: headers sent with every answer (Omnisend sends X-Rate-Limit-*)."""
        return {}

    def too_many(self, reset: float) -> Response:
        return JSONResponse({"error": "Too many requests"}, status_code=429)

    async def handle(self, request: Request, handler: Handler) -> Response:
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        now = self.clock()
        entry = RecordedRequest(
            request.method, request.url.path, request.url.query, dict(request.headers), body, None, now
        )
        with self.lock:
            self.requests.append(entry)
        failure = self._take_failure(now)
        if failure is not None and failure.mode == "lost_answer":
            applied = await handler(request, body)
            entry.status = applied.status_code  # recorded as it took effect; the sender never sees it
            return DroppedConnection()
        if failure is not None:
            if failure.mode == "timeout":
                await asyncio.sleep(failure.delay)
                entry.status = 504
                return JSONResponse({"error": "gateway timeout"}, status_code=504)
            if failure.mode == "reset":
                return DroppedConnection()
            entry.status = failure.status
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else None
            return JSONResponse({"error": f"injected {failure.status}"}, status_code=failure.status, headers=headers)
        with self.lock:
            allowed, remaining, reset = self.window.check(now)
        if not allowed:
            response = self.too_many(reset)
        else:
            response = await handler(request, body)
        for name, value in self.rate_headers(remaining, reset).items():
            response.headers[name] = value
        entry.status = response.status_code
        return response

    def routes(self) -> list[Route]:
        async def list_requests(request: Request) -> Response:
            accepted_only = request.query_params.get("accepted") in ("1", "true")
            return JSONResponse([r.to_json() for r in self.recorded(accepted_only=accepted_only)])

        async def reset(request: Request) -> Response:
            self.reset()
            return JSONResponse({"ok": True})

        async def fail(request: Request) -> Response:
            spec = await request.json()
            try:
                self.fail(
                    spec.get("mode", "status"),
                    status=int(spec.get("status", 503)),
                    count=spec.get("count"),
                    seconds=spec.get("seconds"),
                    delay=float(spec.get("delay", 30.0)),
                    retry_after=spec.get("retry_after"),
                )
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            return JSONResponse({"ok": True})

        async def limit(request: Request) -> Response:
            spec = await request.json()
            self.set_rate_limit(int(spec["limit"]), spec.get("window"))
            return JSONResponse({"ok": True})

        return [
            Route("/_fake/requests", list_requests, methods=["GET"]),
            Route("/_fake/reset", reset, methods=["POST"]),
            Route("/_fake/fail", fail, methods=["POST"]),
            Route("/_fake/limit", limit, methods=["POST"]),
        ]


def ceil_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))


class DroppedConnection(Response):
    """Promise a body, send a little, stop: the server closes the connection mid-response."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
        await send({"type": "http.response.body", "body": b"{", "more_body": False})
