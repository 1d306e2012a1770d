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

Several workers share one account's budget: `share(take, block, hold)` adds, after this process's
own schedule, a numbered slot on a schedule every worker reserves from (the store's `take_budget`:
slots `(window + shared slack) / limit` apart by the database's clock), and the request waits for its
slot; so together they stay under the limit. A slot is reserved, not polled for, so no time is lost
between workers taking turns. The shared slack is a small time (SHARED_SLACK), not a share of the
window: what it covers is how late a request reaches the destination after its slot, which does not
grow with the window. A request may be later than half of it (a process the machine did not run for
a while, a busy event loop, a slow way to the server): how late is counted when it leaves (after its
slot) and again when its answer comes (slower than the quickest answer: the most it can have arrived
later still). Beyond half the slack, the slot `limit` numbers on is held back to a window and half
the slack after the request (`hold`), and the slots between keep their place: a late request never
narrows the spacing, and several late requests within a window cost the budget the lateness of the
latest, not their sum. A 429 one of them gets moves that schedule past the wait it
names (`block`), so the others wait too.

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
from dataclasses import dataclass
from typing import Any

import structlog

from bridge.destinations.http import parse_retry_after
from bridge.model import BudgetSlot

log = structlog.get_logger("bridge.ratelimit")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
# (requests per second, most seconds to wait or None) -> the wait until the reserved slot and the slot on
# the store's clock (reserved only when within the most)
TakeShared = Callable[[float, float | None], Awaitable[BudgetSlot]]
BlockShared = Callable[[float, float], Awaitable[None]]  # (requests per second, seconds): nobody sends for that long
HoldShared = Callable[[int, float], Awaitable[None]]  # (a slot's number, the store's clock): that slot no earlier


@dataclass(slots=True)
class _Sent:
    """A request this limiter let go."""

    at: float  # when it left (our clock)
    rtt: float = 0.0  # seconds to its answer (0 until observed)
    slot: BudgetSlot | None = None  # its slot on the shared schedule
    late: float = 0.0  # how late after that slot it may have left


# Our clock reads before a request leaves, the server's when it has arrived: the slack absorbs the
# difference in that delay between two requests `limit` apart. Even spacing keeps the delay steady,
# so 2% of the window (20 ms for Ometria's second, 0.25 s at most) is enough.
SLACK_FRACTION = 0.02
MAX_SLACK = 0.25
# The shared schedule's slack (at least the limiter's own): half of it is how late a request may reach
# the destination after its slot without holding a later slot back, the other half what no clock here
# sees. 30 ms is 3% of Ometria's second and 0.05% of Omnisend's minute (whose own slack, 0.25 s, is
# larger); 10% of the window, 6 s a minute on Omnisend, capped two workers at 0.91 of the ceiling
# (bench/NOTES.md).
SHARED_SLACK = 0.03
# How fast the database's clock may drift from ours (both kept by NTP, which slews a clock by at most
# 500 ppm): the bounds on how far it is ahead of ours widen by this much a second since they were seen.
CLOCK_DRIFT = 5e-4


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
        self._sent: deque[_Sent] = deque()
        self._in_flight: deque[_Sent] = deque(maxlen=limit)  # sent, answer not yet observed
        self._rtt_floor = math.inf
        self._blocked_until = 0.0
        self._server_remaining: int | None = None
        self._server_reset_at = 0.0
        self._lock = asyncio.Lock()
        self._shared: TakeShared | None = None
        self._shared_block: BlockShared | None = None
        self._shared_hold: HoldShared | None = None
        self._blocking: set[asyncio.Task[None]] = set()
        self.acquired_total = 0
        self.throttled_total = 0  # 429s seen
        self.late_sends = 0  # requests late enough to their shared slot to hold a later one back
        self._store_ahead: tuple[float, float] | None = None  # the database's clock minus ours: (least, most)
        self._store_ahead_at = 0.0
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

    def share(self, take: TakeShared, block: BlockShared, hold: HoldShared) -> None:
        """Also take each request from a budget shared with other processes, and block it for all of
        them on a 429 (see the module's docstring)."""
        self._shared = take
        self._shared_block = block
        self._shared_hold = hold

    @property
    def shared_slack(self) -> float:
        """What the shared schedule adds to the window: SHARED_SLACK, at least this limiter's own slack."""
        return max(self.slack, SHARED_SLACK)

    @property
    def shared_rate(self) -> float:
        """Slots a second on the schedule every worker shares: the limit over the window and the shared slack."""
        return self.limit / (self.window + self.shared_slack)

    @property
    def shared_late(self) -> float:
        """How late after its shared slot a request may reach the destination without moving the later
        slots: half the shared slack (the other half is for what no clock here sees)."""
        return self.shared_slack / 2

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
            entry = _Sent(0.0)
            if self._shared is not None:
                taken = await self._take_shared(max_wait)
                if taken is None:
                    return False
                entry.slot, entry.late = taken
            now = entry.at = self._clock()
            # Waking a little after the due time is the timer's lateness and is forgiven; a caller that
            # came late (a pause, a slow batch, a block) does not get the lost time back.
            on_time = slept and now - self._due <= self._late
            self._due = (self._due if on_time else max(self._due, now)) + self.interval
            self._sent.append(entry)
            self._in_flight.append(entry)
            if self._server_remaining is not None:
                self._server_remaining -= 1
            self.acquired_total += 1
            return True

    async def _take_shared(self, max_wait: float | None) -> tuple[BudgetSlot | None, float] | None:
        """Reserve this request's slot on the shared schedule and wait for it: the slot, and how late after
        it the request may go (None: the slot is further than max_wait, nothing reserved).

        The slot is on the database's clock, whose distance ahead of ours is known within bounds
        (`_store_ahead_by`): the request waits for the latest the slot can be on our clock, so it never
        goes early, and counts as late from the earliest. Both bounds close in as answers come, so a
        slow answer costs nothing once the distance is known, unless the slot was nearer than the
        answer was slow. A late wake-up (a process the machine did not run for a while) makes the
        request late; beyond `shared_late`, a later slot is held back (`_hold`). A store with nothing
        to share (one worker) answers no slot: it is not asked again."""
        assert self._shared is not None
        asked = self._clock()
        slot = await self._shared(self.shared_rate, max_wait)
        answered = self._clock()
        if max_wait is not None and slot.wait > max_wait:
            return None
        if slot.at is None:
            self._shared = None
            return None, 0.0
        least, most = self._store_ahead_by(slot.at - slot.wait, asked, answered)
        wait = slot.at - least - self._clock()
        if wait > 0:
            self.waited_seconds += wait
            await self._sleep(wait)
        late = max(0.0, self._clock() - (slot.at - most))
        self._hold(slot, late, "sent")
        return slot, late

    def _store_ahead_by(self, store_now: float, asked: float, answered: float) -> tuple[float, float]:
        """How far the store's clock is ahead of ours, at least and at most: it read `store_now` after we
        asked and before we had its answer. The bounds of every answer so far hold, widened by
        CLOCK_DRIFT a second since; bounds that no longer meet (a clock was set) start again."""
        least, most = store_now - answered, store_now - asked
        if self._store_ahead is not None:
            drift = CLOCK_DRIFT * (answered - self._store_ahead_at)
            kept_least, kept_most = self._store_ahead[0] - drift, self._store_ahead[1] + drift
            if kept_least <= most and least <= kept_most:
                least, most = max(least, kept_least), min(most, kept_most)
        self._store_ahead, self._store_ahead_at = (least, most), answered
        return least, most

    def _hold(self, slot: BudgetSlot, late: float, when: str) -> None:
        """A request `late` after its `slot`: beyond `shared_late`, the slot `limit` numbers on goes no
        earlier than a window and the rest of the slack after it may have reached the server."""
        if late <= self.shared_late or slot.at is None or self._shared_hold is None:
            return
        self.late_sends += 1
        log.info("rate_limit.late", late_ms=round(late * 1000, 1), when=when, limit=self.limit, window=self.window)
        not_before = slot.at + late + self.window + self.shared_slack - self.shared_late
        self._background(self._shared_hold(slot.number + self.limit, not_before))

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
            entry.rtt = now - entry.at
            self._rtt_floor = min(self._rtt_floor, entry.rtt)
            if entry.slot is not None and entry.rtt > self._rtt_floor:  # it may have arrived as late as its answer is slow
                self._hold(entry.slot, entry.late + entry.rtt - self._rtt_floor, "answered")
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
            "sent_in_window": sum(1 for entry in self._sent if entry.at > now - self.window),
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

    def _counts_from(self, entry: _Sent) -> float:
        """When a request may have reached the server: later than sent by what its answer took beyond the quickest."""
        return entry.at + max(0.0, entry.rtt - self._rtt_floor - self.slack / 2)

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
