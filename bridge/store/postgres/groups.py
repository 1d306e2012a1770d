"""Group commit of webhooks on PostgreSQL: the ingests that arrive together share one transaction.

A webhook in a transaction of its own waits for its own WAL flush, and the flushes of a few
pooled connections barely overlap: on a 2-core machine with a local disk that held one web
process to a few hundred webhooks a second, its CPU mostly idle (docs/benchmarks.md, section 5).
Here the ingests of one event-loop iteration, and those that arrive while groups are committing,
go into the next group: one transaction, one multi-row insert (inbound.ingest_group), one flush.

- A group is at most MAX_ROWS webhooks, and at most `in_flight` groups commit at once, each on a
  connection of the store's pool (so the pool's size still bounds the connections).
- Every caller gets its own result only after its group committed. A group that fails fails each
  of its callers with the store's own exception (StoreUnavailable: a 503, never a false 2xx).
- A caller waits for a connection at most `wait` seconds from its arrival, its time in the queue
  included, as an ingest of its own would: a 503 comes before a sender's timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

from bridge.errors import StoreUnavailable
from bridge.model import IngestResult
from bridge.store.sqlite.ingest import EventRow

MAX_ROWS = 256  # webhooks in one group: a 7 KB order is ~4 KB stored, ~1 MB a statement at most
MIN_WAIT = 0.25  # seconds a group waits for a connection at least, however long its first caller queued

# Commits the rows of a group in one transaction, waiting at most the given seconds for a
# connection; answers each row's result, in order.
Commit = Callable[[Sequence[EventRow], float], Awaitable[list[IngestResult]]]


class Waiting(NamedTuple):
    row: EventRow
    future: asyncio.Future[IngestResult]
    since: float  # the loop's clock at arrival


class IngestGroups:
    def __init__(self, commit: Commit, *, in_flight: int, wait: float, max_rows: int = MAX_ROWS) -> None:
        self._commit = commit
        self.in_flight = max(1, in_flight)
        self.wait = wait
        self.max_rows = max_rows
        self._waiting: list[Waiting] = []
        self._committing: set[asyncio.Task[None]] = set()
        self._scheduled = False
        self._closed = False

    async def ingest(self, row: EventRow) -> IngestResult:
        """The row's result once the group it joined has committed."""
        if self._closed:
            raise StoreUnavailable("store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[IngestResult] = loop.create_future()
        self._waiting.append(Waiting(row, future, loop.time()))
        self._schedule(loop)
        return await future

    async def close(self) -> None:
        """Commit what is waiting, then refuse more."""
        self._closed = True
        while self._committing or self._waiting:
            self._start()
            await asyncio.gather(*self._committing, return_exceptions=True)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        # At the end of this loop iteration: every webhook of the iteration joins the group.
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        while self._waiting and len(self._committing) < self.in_flight:
            group, self._waiting = self._waiting[: self.max_rows], self._waiting[self.max_rows :]
            task = asyncio.create_task(self._run(group), name="store-ingest-group")
            self._committing.add(task)

    async def _run(self, group: list[Waiting]) -> None:
        try:
            await self._answer(group)
        finally:
            self._committing.discard(asyncio.current_task())
            if self._waiting:  # the webhooks that came meanwhile: the next group
                self._schedule(asyncio.get_running_loop())

    async def _answer(self, group: list[Waiting]) -> None:
        loop = asyncio.get_running_loop()
        waited = loop.time() - group[0].since
        try:
            results = await self._commit([w.row for w in group], max(self.wait - waited, MIN_WAIT))
            answers = list(zip(group, results, strict=True))
        except Exception as exc:  # StoreUnavailable, or a defect: no caller is left waiting
            for w in group:
                if not w.future.done():
                    w.future.set_exception(exc)
            return
        except asyncio.CancelledError:
            for w in group:
                if not w.future.done():
                    w.future.set_exception(StoreUnavailable("store is closing"))
            raise
        for w, result in answers:
            if not w.future.done():  # its caller gave up (cancelled): the event is stored all the same
                w.future.set_result(result)
