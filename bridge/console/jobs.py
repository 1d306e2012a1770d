"""Replays of a whole search, run in the background of the instance that started them, with progress.

A job's progress lives in this process (the job page polls it); the messages it queues are in the
store like any replay's. At most MAX_JOBS are remembered; a finished one is forgotten first.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from bridge.store.base import ReplaySummary

log = structlog.get_logger("bridge.console")

MAX_JOBS = 50


@dataclass
class Job:
    id: int
    actor: str
    what: str
    started_at: float
    done: int = 0
    total: int = 0
    finished_at: float | None = None
    summary: ReplaySummary | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.finished_at is None

    @property
    def percent(self) -> int:
        return 100 if self.total == 0 and not self.running else int(100 * self.done / self.total) if self.total else 0

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total


Work = Callable[[Job], Awaitable[ReplaySummary]]


class Jobs:
    def __init__(self) -> None:
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)

    def get(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def start(self, actor: str, what: str, work: Work) -> Job:
        job = Job(next(self._ids), actor, what, time.time())
        finished = [j for j in self._jobs.values() if not j.running]
        while len(self._jobs) >= MAX_JOBS and finished:
            del self._jobs[finished.pop(0).id]
        self._jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job, work))
        return job

    async def _run(self, job: Job, work: Work) -> None:
        try:
            job.summary = await work(job)
        except Exception as exc:  # shown on the job's page; the store keeps what was already queued
            job.error = f"{type(exc).__name__}: {exc}"
            log.error("console.job_failed", job=job.id, error=type(exc).__name__)
        finally:
            job.finished_at = time.time()
