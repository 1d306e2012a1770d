"""SQLite's write lock, waited for by the store's writer itself.

Two writers on one file (`bridge serve --no-worker`'s and `bridge worker`'s, each a writer process)
take turns at SQLite's one write lock. SQLite's own wait (busy_timeout) sleeps 1, 2, 5, 10, 15, 20,
25, 25, 25, 50, 50 and then 100 ms between its tries, so a writer may sleep on long after the lock
is free, and the acknowledgements of its webhooks with it.

The writer's connection has no busy timeout: `retry_busy` tries again after a pause that starts at
0.1 ms and doubles up to 1 ms, with jitter, until the same overall deadline (WAIT_SECONDS). And a
writer that has never committed webhooks (`bridge worker`'s), while it meets another, leaves the
lock free between its transactions for three times as long as its last one held it (at least
GAP_SECONDS): a writer of webhooks waiting for the lock takes it in that gap, and the worker, whose
loops wait for their writes, slows down with its writer. Acknowledgements first; without another
writer nothing waits (bench/NOTES.md, Bursts).
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

FIRST_PAUSE_SECONDS = 0.0001
MAX_PAUSE_SECONDS = 0.001
WAIT_SECONDS = 10.0  # how long a write waits for the lock before it fails (StoreUnavailable: a 503 for a webhook)
GAP_SECONDS = 0.002  # longer than MAX_PAUSE_SECONDS: a writer waiting for the lock tries within it
GAP_PER_HELD = 3.0  # and this many times as long as the last transaction held the lock: at most a quarter of the time
CONTENDED_SECONDS = 1.0  # how long after meeting the other writer this writer leaves it gaps


def is_busy(exc: BaseException) -> bool:
    """Whether `exc` is SQLite's SQLITE_BUSY (another connection holds the lock), extended codes included."""
    # sqlite_errorcode is set on errors raised by SQLite, not on one made in Python
    code = getattr(exc, "sqlite_errorcode", 0) if isinstance(exc, sqlite3.OperationalError) else 0
    return code & 0xFF == sqlite3.SQLITE_BUSY


def retry_busy(attempt: Callable[[], T], seconds: float | None = None, *,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
               jitter: Callable[[], float] = random.random) -> T:
    """`attempt()`, tried again while it fails with SQLITE_BUSY, for up to `seconds` in all (WAIT_SECONDS
    unless given); then its error. Only for an attempt that changes nothing when it fails busy (one statement, a BEGIN).

    The pauses between tries start at FIRST_PAUSE_SECONDS and double up to MAX_PAUSE_SECONDS, each
    between half and all of that (so two waiting writers do not try in step)."""
    deadline = clock() + (WAIT_SECONDS if seconds is None else seconds)
    pause = FIRST_PAUSE_SECONDS
    while True:
        try:
            return attempt()
        except sqlite3.OperationalError as exc:
            left = deadline - clock()
            if not is_busy(exc) or left <= 0:
                raise
        sleep(min(pause * (0.5 + jitter() / 2), left))
        pause = min(pause * 2, MAX_PAUSE_SECONDS)


@dataclass
class WriteLock:
    """One writer connection's turns at the write lock (the connection has busy_timeout 0)."""

    conn: sqlite3.Connection
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _began_at: float | None = None  # when this writer's transaction under way took the lock
    _held: float = 0.0  # how long this writer's last transaction held it
    _released_at: float = -1e9  # when that transaction ended
    _met_at: float = -1e9  # when this writer last found the lock taken
    _webhooks: bool = False  # whether this writer has committed webhooks: then it never leaves gaps

    def begin(self, webhooks: bool) -> None:
        """BEGIN IMMEDIATE, waiting for another connection's transaction to end (raises SQLITE_BUSY after
        WAIT_SECONDS). A writer that has never committed `webhooks` (`bridge worker`'s), while it has met
        another lately, first leaves the lock free for GAP_PER_HELD times as long as its last transaction
        held it, and at least GAP_SECONDS. (A writer that has, `bridge serve`'s, would hold up its own
        webhooks with such a wait.)"""
        self._webhooks = self._webhooks or webhooks
        now = self.clock()
        if not self._webhooks and now - self._met_at < CONTENDED_SECONDS:
            gap = self._released_at + max(self._held * GAP_PER_HELD, GAP_SECONDS) - now
            if gap > 0:
                self.sleep(gap)
        retry_busy(self._try_begin, clock=self.clock, sleep=self.sleep)
        self._began_at = self.clock()

    def _try_begin(self) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                self.met()
            raise

    def met(self) -> None:
        """The lock was taken by another connection."""
        self._met_at = self.clock()

    def released(self, webhooks: bool = False) -> None:
        """This writer's transaction ended (committed or rolled back), or a statement committed by itself
        (`webhooks`: ingest's)."""
        self._webhooks = self._webhooks or webhooks
        self._released_at = self.clock()
        self._held = 0.0 if self._began_at is None else self._released_at - self._began_at
        self._began_at = None
