"""Acknowledgements first: the worker's loops yield while the event loop is busy answering webhooks.

In `bridge serve` the worker shares one event loop with the webhooks it maps and delivers. Each of
its rounds (a batch read, handed to the mapping process and saved; a claim, a request, its
completion) holds the loop for milliseconds, and during a burst they queue the acknowledgements
behind them: a profile of `bridge serve` at 800 webhooks/s spent more of its loop on delivery and
mapping than on the webhooks (bench/NOTES.md, Bursts).

`Pressure` measures what the acknowledgements meet, while webhooks have arrived in the last
BUSY_WINDOW_SECONDS: how late the loop runs a timer set every TICK_SECONDS (its lag), and how long
the webhooks took to be answered (which includes their wait for the store's commit, where the worker's
saves and completions take their turns). Each is held at its recent peak and halved every
HALF_LIFE_SECONDS. While webhooks arrive and either is over its limit, the map loop and the delivery loops
wait before their next round (`yield_to_webhooks`), at most MAX_WAIT_SECONDS at a time: under any
load each loop still takes one round a second, so a burst that never ends (or a loop slowed by
something other than webhooks) slows mapping and delivery without stopping them. Once the
webhooks stop, nothing waits: the backlog drains at the destinations' pace.

Without webhooks (`bridge worker`) the loop's lag is the worker's own work and is not a reason to
wait. That process yields the CPU to the web process by its OS priority (bridge/cli.py), and its
`Arrivals` sees the webhooks of the other processes arrive by the store's newest event id (read every
ARRIVALS_POLL_SECONDS): while they arrive at ARRIVALS_BUSY_PER_SECOND or more and the worker is
behind (its last read of events to map was a full batch), its loops wait as above. OS priority alone
leaves the database to the worker: its transactions take the SQLite file's one write lock in turn
with the web's, and its PostgreSQL statements run in backends at the web's priority; at 2,000
webhooks a second the answers waited seconds behind them (bench/NOTES.md, Bursts). A worker that
keeps up (short reads) never waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.store.base import Store

TICK_SECONDS = 0.01
LAG_LIMIT_SECONDS = 0.005
ANSWER_LIMIT_SECONDS = 0.02  # a webhook answered at 1,000/s with nothing else to do takes 2-13 ms
HALF_LIFE_SECONDS = 0.1
BUSY_WINDOW_SECONDS = 1.0
MAX_WAIT_SECONDS = 1.0
POLL_SECONDS = 0.02
ARRIVALS_POLL_SECONDS = 0.25
ARRIVALS_BUSY_PER_SECOND = 200.0  # a web process answers that many with ~0.06 of a core: no reason to wait


@dataclass
class Pressure:
    """The event loop's recent lag and the last webhook's time, and the wait they ask of the worker."""

    lag_limit: float = LAG_LIMIT_SECONDS
    answer_limit: float = ANSWER_LIMIT_SECONDS
    max_wait: float = MAX_WAIT_SECONDS
    clock: Callable[[], float] = time.monotonic
    last_webhook: float = -1e9
    yielded_seconds: float = 0.0  # in all, for the metrics
    behind: bool = False  # the worker's last read of events to map was a full batch (Arrivals)
    _lag: float = 0.0
    _lag_at: float = field(default=0.0)
    _answer: float = 0.0
    _answer_at: float = field(default=0.0)

    def webhook(self) -> None:
        """A webhook arrived (the endpoint calls this for each)."""
        self.last_webhook = self.clock()

    def record_lag(self, lag: float) -> None:
        """A timer ran `lag` seconds late: the held peak, decayed since the last sample, or this one."""
        now = self.clock()
        self._lag, self._lag_at = max(lag, _decayed(self._lag, now - self._lag_at)), now

    def answered(self, seconds: float) -> None:
        """A webhook was answered `seconds` after it reached the app."""
        now = self.clock()
        self._answer, self._answer_at = max(seconds, _decayed(self._answer, now - self._answer_at)), now

    @property
    def lag(self) -> float:
        """The loop's recent lag in seconds: its peak, halved every HALF_LIFE_SECONDS since."""
        return _decayed(self._lag, self.clock() - self._lag_at)

    @property
    def answer(self) -> float:
        """The webhooks' recent time to an answer in seconds, held as the lag is."""
        return _decayed(self._answer, self.clock() - self._answer_at)

    def arriving(self) -> bool:
        """Whether webhooks arrived in the last BUSY_WINDOW_SECONDS."""
        return self.clock() - self.last_webhook < BUSY_WINDOW_SECONDS

    def busy(self) -> bool:
        """Whether webhooks are arriving and wait, for the loop or for their commit: the worker's rounds
        should wait."""
        return self.arriving() and (self.lag > self.lag_limit or self.answer > self.answer_limit)

    async def watch(self) -> None:
        """Sample the loop's lag for ever (a task of the process that runs the loop)."""
        while True:
            started = time.monotonic()
            await asyncio.sleep(TICK_SECONDS)
            self.record_lag(max(time.monotonic() - started - TICK_SECONDS, 0.0))

    async def yield_to_webhooks(self, stopping: asyncio.Event | None = None) -> float:
        """Wait while busy, at most `max_wait` seconds (or until `stopping` is set); the seconds waited."""
        if not self.busy():
            return 0.0
        started = self.clock()
        while self.busy() and self.clock() - started < self.max_wait:
            if stopping is not None and stopping.is_set():
                break
            await asyncio.sleep(POLL_SECONDS)
        waited = self.clock() - started
        self.yielded_seconds += waited
        return waited


@dataclass
class Arrivals(Pressure):
    """The pressure of a worker in a process of its own: webhooks arrive at another process, seen by the
    store's newest event id, and the worker's rounds wait while they arrive and it is behind."""

    busy_rate: float = ARRIVALS_BUSY_PER_SECOND
    newest: int = -1
    _seen_at: float = 0.0

    def busy(self) -> bool:
        return self.arriving() and self.behind

    def saw(self, newest: int) -> None:
        """The store's newest event id now. New events at `busy_rate` a second or more since the last reading
        are a burst arriving (the first reading is not): a trickle is no reason to wait, or a worker that is
        behind would map no faster than 50 events a second for as long as the trickle lasts."""
        now = self.clock()
        if self.newest >= 0 and now > self._seen_at and (newest - self.newest) / (now - self._seen_at) >= self.busy_rate:
            self.webhook()
        self.newest, self._seen_at = max(self.newest, newest), now

    async def watch_store(self, store: Store) -> None:
        """Read the newest event id for ever (a task of the worker's process); a failed read is skipped."""
        while True:
            with contextlib.suppress(Exception):  # the store is away: the worker's own loops say so
                self.saw(await store.newest_event_id())
            await asyncio.sleep(ARRIVALS_POLL_SECONDS)


def _decayed(peak: float, elapsed: float) -> float:
    return peak * math.pow(0.5, elapsed / HALF_LIFE_SECONDS)
