"""An async rate limiter per destination account that spaces requests evenly, steered by the server's own hints.

Why even spacing: both vendors count an exact sliding window (Omnisend per brand, apis.md 1.8;
Ometria per second, 2.1), stamped when a request *arrives*. A limiter that lets `limit` requests go
at once and then waits for the window puts a whole burst in flight together: the last of them
arrives late, so the next burst must wait for a wide safety margin or be refused. Here each request
is scheduled `interval = (window + slack) / limit` after the previous one (a GCRA, or leaky-bucket,
schedule), so only one request is usually in flight, jitter stays small and so can the slack.
The schedule advances from where the previous request was due, not from when it went, so a sleep
that wakes a little late costs nothing; a caller that comes back after a pause does not get the
pause back as a burst (beyond `burst - 1` extra requests, none by default).
A log of send times is the safety net: never more than `limit` in any `window + slack / 2`. A request
whose answer took longer than the quickest seen may have arrived that much later, so it counts from
then: a stalled request cannot put `limit + 1` arrivals in the server's window. Answers are matched
to requests in order (even spacing keeps about one in flight).

Several workers share one account's budget: `share(take, block)` adds, after this process's own
schedule, a slot on a schedule every worker reserves from (the store's `take_budget`: slots
`(window + shared slack) / limit` apart by the database's clock), and the request waits for its slot;
so together they stay under the limit. A slot is reserved, not polled for, so no time is lost between
workers taking turns. A 429 one of them gets moves that schedule past the wait it names
(`block_budget`), so the others wait too.

On top of our own schedule the limiter follows what the server says:
- `X-Rate-Limit-Remaining: 0` with `X-Rate-Limit-Reset: <seconds>` -> wait for the reset;
- a 429 -> nothing at all is sent until `Retry-After` (or the `retryAfter` of Omnisend's 429 body, or the
  reset, or a default pause) has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from bridge.destinations.http import parse_retry_after

log = structlog.get_logger("bridge.ratelimit")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
# (requests per second, most seconds to wait or None) -> seconds until the reserved slot (reserved only
# when within the most)
TakeShared = Callable[[float, float | None], Awaitable[float]]
BlockShared = Callable[[float, float], Awaitable[None]]  # (requests per second, seconds): nobody sends for that long
DelayShared = Callable[[float], Awaitable[None]]  # (seconds): every later slot that much later

# Our clock reads before a request leaves, the server's when it has arrived: the slack absorbs the
# difference in that delay between two requests `limit` apart. Even spacing keeps the delay steady,
# so 2% of the window (20 ms for Ometria's second, 0.25 s at most) is enough.
SLACK_FRACTION = 0.02
MAX_SLACK = 0.25
# Requests of several workers reach the destination with more spread than one process's: each sleeps
# to its slot on its own timer, and no answer-time correction spans processes. The shared schedule
# leaves 10% of the window (at least the slack): on a 2-core machine loaded ~6 times over, two workers
# sent Ometria's 9 requests 83 ms closer than a schedule of 1.03 s (bench/NOTES.md), and with 3% a
# full test run met two 429s in a minute. A request later than half of that slack after its slot
# moves the later slots on by the rest (_take_shared).
SHARED_SLACK_FRACTION = 0.10


class RateLimiter:
    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        default_block: float | None = None,
        burst: int = 1,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("rate limit needs limit >= 1 and window > 0")
        if not 1 <= burst <= limit:
            raise ValueError("burst must be between 1 and the limit")
        self.limit = limit
        self.window = window
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        # A 429 that names no wait: pause a tenth of the window (6 s for 400/min, 0.1 s for 8/s), at least 1 s.
        self.default_block = default_block if default_block is not None else max(1.0, window / 10)
        self.slack = min(SLACK_FRACTION * window, MAX_SLACK)
        self.interval = (window + self.slack) / limit
        # A wake-up up to this late keeps the schedule (lost otherwise at every sleep); within half the
        # slack, so with burst 1 the schedule alone keeps `limit` requests a window apart.
        self._late = min(self.interval / 4, self.slack / 2)
        self._lead = (burst - 1) * self.interval  # how early a request of a burst may go
        self._span = window + self.slack / 2
        self._due = -math.inf  # when the next request is due on the even schedule
        self._sent: deque[list[float]] = deque()  # [sent at, seconds to its answer (0 until observed)]
        self._in_flight: deque[list[float]] = deque(maxlen=limit)  # sent, answer not yet observed
        self._rtt_floor = math.inf
        self._blocked_until = 0.0
        self._server_remaining: int | None = None
        self._server_reset_at = 0.0
        self._lock = asyncio.Lock()
        self._shared: TakeShared | None = None
        self._shared_block: BlockShared | None = None
        self._shared_delay: DelayShared | None = None
        self._blocking: set[asyncio.Task[None]] = set()
        self.acquired_total = 0
        self.throttled_total = 0  # 429s seen
        self.late_sends = 0  # requests that came to their shared slot too late and moved the later ones
        self._shared_rtt_floor = math.inf  # the quickest answer of the shared schedule
        self.waited_seconds = 0.0

    @classmethod
    def per_minute(cls, requests: float, **kwargs: Any) -> RateLimiter:
        return cls(max(1, int(requests)), 60.0, **kwargs)

    @classmethod
    def per_second(cls, requests: float, **kwargs: Any) -> RateLimiter:
        # 2.5/s becomes 25 per 10 s rather than rounding the rate away.
        if requests >= 1 and float(requests).is_integer():
            return cls(int(requests), 1.0, **kwargs)
        return cls(max(1, round(requests * 10)), 10.0, **kwargs)

    def share(self, take: TakeShared, block: BlockShared, delay: DelayShared | None = None) -> None:
        """Also take each request from a budget shared with other processes, and block it for all of
        them on a 429 (see the module's docstring)."""
        self._shared = take
        self._shared_block = block
        self._shared_delay = delay

    @property
    def shared_rate(self) -> float:
        """Slots a second on the schedule every worker shares: the limit over the window and the shared
        slack (SHARED_SLACK_FRACTION of the window, at least this limiter's own slack)."""
        return self.limit / (self.window + max(self.slack, SHARED_SLACK_FRACTION * self.window))

    @property
    def shared_late(self) -> float:
        """How late after its shared slot a request may still go: half the shared slack (the other half
        is for the way from here to the destination)."""
        return max(self.slack, SHARED_SLACK_FRACTION * self.window) / 2

    def wait_time(self) -> float:
        """Seconds until a request could be sent now (0 when free)."""
        now = self._clock()
        self._prune(now)
        waits = [self._blocked_until - now, self._due - self._lead - now]
        if len(self._sent) >= self.limit:
            waits.append(self._counts_from(self._sent[-self.limit]) + self._span - now)
        if self._server_remaining is not None and self._server_remaining <= 0:
            waits.append(self._server_reset_at - now)
        return max(0.0, *waits)

    async def acquire(self, max_wait: float | None = None) -> bool:
        """Wait for this request's turn and take it. With `max_wait`, give up (False) rather than wait longer."""
        async with self._lock:
            slept = False
            while True:
                wait = self.wait_time()
                if wait <= 0:
                    break
                if max_wait is not None and wait > max_wait:
                    return False
                self.waited_seconds += wait
                await self._sleep(wait)
                slept = True
            if self._shared is not None and not await self._take_shared(max_wait):
                return False
            now = self._clock()
            # Waking a little after the due time is the timer's lateness and is forgiven; a caller that
            # came late (a pause, a slow batch, a block) does not get the lost time back.
            on_time = slept and now - self._due <= self._late
            self._due = (self._due if on_time else max(self._due, now)) + self.interval
            entry = [now, 0.0]
            self._sent.append(entry)
            self._in_flight.append(entry)
            if self._server_remaining is not None:
                self._server_remaining -= 1
            self.acquired_total += 1
            return True

    async def _take_shared(self, max_wait: float | None) -> bool:
        """Reserve this request's slot on the shared schedule and wait for it (False: further than max_wait,
        nothing reserved).

        The request never goes before its slot: the wait counts from the answer, which came after the
        database reserved it. It may go late: a round trip slower than the quickest seen, and a late
        wake-up (a process the machine did not run for a while), are how late as far as this process
        can tell. Up to `shared_late` is covered by the shared slack; beyond it, every later slot is
        moved on by the rest, so that the request `limit` slots on is still a window and the slack after
        this one."""
        assert self._shared is not None
        asked = self._clock()
        wait = await self._shared(self.shared_rate, max_wait)
        answered = self._clock()
        if max_wait is not None and wait > max_wait:
            return False
        self._shared_rtt_floor = min(self._shared_rtt_floor, answered - asked)
        if wait > 0:
            self.waited_seconds += wait
            await self._sleep(wait)
        slow_answer = answered - asked - self._shared_rtt_floor
        late = slow_answer + (self._clock() - answered - wait)
        if late > self.shared_late and self._shared_delay is not None:
            self.late_sends += 1
            log.info("rate_limit.late", late_ms=round(late * 1000, 1), slow_answer_ms=round(slow_answer * 1000, 1),
                     limit=self.limit, window=self.window)
            self._background(self._shared_delay(late - self.shared_late))
        return True

    def _background(self, call: Awaitable[None]) -> None:
        """Run a call to the shared schedule without waiting for it (a courtesy: failing, it changes nothing)."""
        async def run() -> None:
            with contextlib.suppress(Exception):
                await call

        task = asyncio.get_running_loop().create_task(run())
        self._blocking.add(task)
        task.add_done_callback(self._blocking.discard)

    def observe(self, status: int, headers: Mapping[str, str], body_retry_after: float | None = None) -> None:
        """Learn from a response: rate-limit headers, and a 429 blocks everything until it may resume
        (`Retry-After`, else the wait the 429's body names, else the reset, else a default pause)."""
        now = self._clock()
        if self._in_flight:
            entry = self._in_flight.popleft()
            entry[1] = now - entry[0]
            self._rtt_floor = min(self._rtt_floor, entry[1])
        remaining = _number(headers.get("X-Rate-Limit-Remaining"))
        reset = _number(headers.get("X-Rate-Limit-Reset"))
        if remaining is not None:
            self._server_remaining = int(remaining)
            self._server_reset_at = now + (reset if reset is not None else self.window)
        if status == 429:
            self.throttled_total += 1
            wait = parse_retry_after(headers.get("Retry-After"))
            if wait is None:
                wait = body_retry_after
            if wait is None:
                wait = reset
            if wait is None:
                wait = self.default_block
            self.block(wait)
            if self._shared_block is not None:  # the other workers wait as well (a task: observe is not async)
                self._background(self._shared_block(self.shared_rate, wait))

    def block(self, seconds: float) -> None:
        """Send nothing for `seconds` (keeps the later of two blocks)."""
        self._blocked_until = max(self._blocked_until, self._clock() + max(0.0, seconds))

    def state(self) -> dict[str, Any]:
        now = self._clock()
        self._prune(now)
        return {
            "limit": self.limit,
            "window_seconds": self.window,
            "interval_seconds": round(self.interval, 6),
            "burst": self.burst,
            "sent_in_window": sum(1 for sent, _ in self._sent if sent > now - self.window),
            "blocked_for_seconds": round(max(0.0, self._blocked_until - now), 3),
            "server_remaining": self._server_remaining,
            "server_reset_in_seconds": round(max(0.0, self._server_reset_at - now), 3)
            if self._server_remaining is not None
            else None,
            "wait_seconds": round(self.wait_time(), 3),
            "acquired_total": self.acquired_total,
            "throttled_total": self.throttled_total,
            "shared_late_total": self.late_sends,
            "waited_seconds_total": round(self.waited_seconds, 3),
        }

    def _counts_from(self, entry: list[float]) -> float:
        """When a request may have reached the server: later than sent by what its answer took beyond the quickest."""
        sent, rtt = entry
        return sent + max(0.0, rtt - self._rtt_floor - self.slack / 2)

    def _prune(self, now: float) -> None:
        horizon = now - self._span
        while self._sent and self._counts_from(self._sent[0]) <= horizon:
            self._sent.popleft()
        if self._server_remaining is not None and now >= self._server_reset_at:
            self._server_remaining = None  # the server's period is over: trust our own count again


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None
