"""Replays of a whole search that the console runs in the background, kept in the store so that every
instance shows them: the job page polls whichever instance the load balancer picks.

The instance that starts a job runs it, and writes how far it got to the store at most every
PROGRESS_SECONDS, at least every HEARTBEAT_SECONDS (its heartbeat), and at the end. A job unfinished
with no heartbeat for STALE_SECONDS lost its instance (a crash, a restart, a scale-down): it reads as
stopped. What it queued stays queued, and a replay is idempotent (each message keeps its idempotency
key), so running the replay again finishes it. Starting a job prunes the old ones that ended: the
newest KEEP_JOBS are kept, and every job still running.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from bridge.errors import StoreUnavailable
from bridge.log import capped, mask_text
from bridge.ops.replay import Progress
from bridge.store.base import ConsoleJob, Page, ReplaySummary, Store

log = structlog.get_logger("bridge.console")

KEEP_JOBS = 50
PROGRESS_SECONDS = 0.5
HEARTBEAT_SECONDS = 10.0
STALE_SECONDS = 30.0
FINISH_TRIES = 4  # a store that cannot record the end is asked again, 1, 2 then 4 s later
ERROR_CAP = 500

Work = Callable[[Progress], Awaitable[ReplaySummary]]
Clock = Callable[[], float]


def this_instance() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def state(job: ConsoleJob, now: float) -> str:
    """'running', 'finished', 'failed' (its replay raised) or 'stopped' (its instance went away)."""
    if job.finished_at is not None:
        return "failed" if job.error is not None else "finished"
    return "stopped" if now - job.heartbeat_at > STALE_SECONDS else "running"


def percent(job: ConsoleJob) -> int:
    if job.total:
        return int(100 * job.done / job.total)
    return 0 if job.finished_at is None else 100


@dataclass
class Reached:
    """How far a running job got, as the replay last said (it calls this after each batch)."""

    done: int = 0
    total: int = 0

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total


class Jobs:
    def __init__(self, store: Store, clock: Clock = time.time, instance: str | None = None) -> None:
        self.store = store
        self.clock = clock
        self.instance = instance or this_instance()
        self._running: set[asyncio.Task[None]] = set()

    async def get(self, job_id: int) -> ConsoleJob | None:
        return await self.store.job(job_id)

    async def recent(self) -> Page[ConsoleJob]:
        """The newest KEEP_JOBS, newest first."""
        return await self.store.list_jobs(KEEP_JOBS)

    def state(self, job: ConsoleJob) -> str:
        return state(job, self.clock())

    async def start(self, actor: str, what: str, work: Work) -> int:
        """Record the job and run `work` in the background of this instance; the job's id."""
        now = self.clock()
        job_id = await self.store.start_job(actor, what, self.instance, now)
        task = asyncio.create_task(self._run(job_id, work))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        try:
            await self.store.prune_jobs(KEEP_JOBS, now - STALE_SECONDS)
        except StoreUnavailable as exc:  # the next start prunes them
            log.warning("console.jobs_prune_failed", reason=str(exc))
        return job_id

    async def _run(self, job_id: int, work: Work) -> None:
        reached, ended = Reached(), asyncio.Event()
        recorder = asyncio.create_task(self._record(job_id, reached, ended))
        summary: ReplaySummary | None = None
        error: str | None = None
        try:
            summary = await work(reached)
        except Exception as exc:  # shown on the job's page; the store keeps what was already queued
            error = capped(mask_text(f"{type(exc).__name__}: {exc}"), ERROR_CAP)
            log.error("console.job_failed", job=job_id, error=type(exc).__name__)
        finally:
            ended.set()
            await recorder  # its last write lands before the end's, never after it
        await self._finish(job_id, reached, summary, error)

    async def _record(self, job_id: int, reached: Reached, ended: asyncio.Event) -> None:
        """Until the job ends: write how far it got when that changed, or when the heartbeat is due."""
        written, written_at = (0, 0), self.clock()
        while not await _within(ended, PROGRESS_SECONDS):
            now, progress = self.clock(), (reached.done, reached.total)
            if progress == written and now - written_at < HEARTBEAT_SECONDS:
                continue
            try:
                await self.store.job_progress(job_id, *progress, now)
            except StoreUnavailable as exc:  # the next turn writes it again
                log.warning("console.job_progress_failed", job=job_id, reason=str(exc))
                continue
            written, written_at = progress, now

    async def _finish(self, job_id: int, reached: Reached, summary: ReplaySummary | None, error: str | None) -> None:
        for attempt in range(FINISH_TRIES):
            try:
                await self.store.finish_job(job_id, reached.done, reached.total, self.clock(), summary, error)
                return
            except StoreUnavailable as exc:
                log.warning("console.job_finish_failed", job=job_id, reason=str(exc), attempt=attempt + 1)
                if attempt + 1 < FINISH_TRIES:
                    await asyncio.sleep(2**attempt)
        # Its heartbeat stops here: the job reads as stopped, and its page says to run the replay again.


async def _within(event: asyncio.Event, seconds: float) -> bool:
    """Whether `event` is set within `seconds`."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True
