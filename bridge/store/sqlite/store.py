"""The SQLite store: one writer doing group commits (bridge/store/sqlite/writer.py), WAL readers.

`SQLiteStore` implements `bridge.store.base.Store`. Its writer runs in a thread, or
with `process=True` in a process of its own (bridge/store/sqlite/process.py). Each
method hands a function of a connection to the writer (`awrite`) or runs it on a
reader in a thread (`aread`); the SQL is in the modules beside this one, one idea each:
ingest, outbox (mapping and delivery), queries (what operators read), replay, jobs
(the console's replay jobs), retention, migrate.

`write`, `write_sync`, `awrite`, `aread` and `reader` are SQLite's own: tests and
benchmarks of this backend use them, the rest of the bridge uses only `Store`.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import structlog

from bridge.consent import ConsentRecord
from bridge.errors import StoreUnavailable
from bridge.model import BudgetSlot, Decision, Event, IngestResult, Mapped, Message, Outcome, Webhook
from bridge.store.base import (
    ActivityBucket,
    AuditEntry,
    AuditFilter,
    ConsoleAction,
    ConsoleJob,
    DeadFilter,
    DeadLetter,
    DestinationState,
    DestinationStats,
    EventDetail,
    EventFilter,
    EventSummary,
    MigrationStatus,
    Page,
    PruneCutoffs,
    PruneResult,
    ReplaySummary,
    RuleAction,
    RuleDraft,
    RuleVersion,
    SentPrint,
    Unmapped,
)
from bridge.store.migrations import unapplied_error
from bridge.store.records import summary_text
from bridge.store.sqlite import consent, echo, jobs, outbox, queries, replay, retention, rules
from bridge.store.sqlite import resources as kept
from bridge.store.sqlite.ingest import EventRow, event_row, ingest_one
from bridge.store.sqlite.lock import WriteLock
from bridge.store.sqlite.migrate import created_at as schema_created_at
from bridge.store.sqlite.migrate import migrate as apply_migrations
from bridge.store.sqlite.migrate import missing as missing_migrations
from bridge.store.sqlite.process import WriterProcess
from bridge.store.sqlite.writer import MAX_JOBS_PER_COMMIT, _Job, _settle, commit_group, connect, open_writer

T = TypeVar("T")

log = structlog.get_logger("bridge.store")

HAND_OVER_EVERY = 16  # jobs a busy writer process is sent at a time (awrite)
SAVE_PART = 50  # events saved in one transaction (save_mappings): ~5 ms of the writer, against ~20 ms for 200


class SQLiteStore:
    """The store on one SQLite file. With `process=True` the writer process belongs to the event loop
    that opened the store. With `migrate=False`, opening a database that lacks migrations fails; with
    `create=False`, opening a file that does not exist does."""

    def __init__(self, path: Path | str, *, process: bool = False, migrate: bool = True, create: bool = True) -> None:
        self.path = Path(path)
        self.migrate_on_open = migrate
        self.create = create
        self._process = WriterProcess(self.path) if process else None
        self._open = False
        # The writer's queue carries lists of jobs: awrite gathers what one
        # event-loop iteration asks for and hands it over in one put.
        self._jobs: queue.SimpleQueue[list[_Job] | None] = queue.SimpleQueue()
        self._gathering: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        self._thread: threading.Thread | None = None
        self._local = threading.local()
        self._writer: sqlite3.Connection | None = None

    # -- life cycle ---------------------------------------------------------

    async def open(self) -> None:
        self.open_sync()

    async def close(self) -> None:
        self.close_sync()

    def on_wake(self, callback: Callable[[str], None]) -> None:
        """Nothing to hear: one web process, which wakes its own worker."""

    def open_sync(self) -> None:
        """`open` for code without an event loop (tests, `with SQLiteStore(path)`); a writer process
        still needs one running."""
        if self._open:
            return
        self._prepare()
        try:
            if self._process is not None:
                loop = _running_loop()
                if loop is None:
                    raise RuntimeError("a store with a writer process is opened on the event loop that uses it")
                open_writer(self.path).close()  # a database that cannot be opened fails here, not in the child
                self._process.start(loop)
            else:
                self._writer = open_writer(self.path)
                self._thread = threading.Thread(target=self._write_loop, name="store-writer", daemon=True)
                self._thread.start()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open the database {self.path}: {exc}") from exc
        self._open = True

    def _prepare(self) -> None:
        """The schema brought up to date, or (migrate=False) checked to be."""
        if not self.create and not self.path.exists():
            # Opening would create an empty database: almost always a wrong BRIDGE_DATABASE_URL.
            raise StoreUnavailable(f"no database at {self.path} (set BRIDGE_DATABASE_URL)")
        conn = self._schema_connection()
        try:
            if self.migrate_on_open:
                self._announce(apply_migrations(conn))
            elif missing := missing_migrations(conn):
                raise unapplied_error(missing)
        finally:
            conn.close()

    def _schema_connection(self) -> sqlite3.Connection:
        """A connection of its own for migrations, the database's folder made first."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return connect(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open the database {self.path}: {exc}") from exc

    def close_sync(self) -> None:
        if not self._open:
            return
        self._open = False
        if self._process is not None:
            self._process.close()
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout=10)
            self._thread = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> SQLiteStore:
        self.open_sync()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_sync()

    async def migrate(self) -> MigrationStatus:
        def run() -> MigrationStatus:
            conn = self._schema_connection()
            try:
                return apply_migrations(conn)
            finally:
                conn.close()

        try:
            return self._announce(await asyncio.to_thread(run))
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open the database {self.path}: {exc}") from exc

    def _announce(self, status: MigrationStatus) -> MigrationStatus:
        """A new database is said so: on a platform that wiped its disk, this is where the data went."""
        if status.created:
            log.warning("store.new_database", path=str(self.path.resolve()))
        return status

    async def probe(self) -> None:
        await self.awrite(queries.probe, time.time())

    async def created_at(self) -> float | None:
        return await self.aread(schema_created_at)

    async def holds_events(self) -> bool:
        return await self.aread(queries.holds_events)

    # -- the writer ---------------------------------------------------------

    def _write_loop(self) -> None:
        assert self._writer is not None
        lock = WriteLock(self._writer)
        while True:
            first = self._jobs.get()
            if first is None:
                return
            jobs = list(first)
            stop = False
            while len(jobs) < MAX_JOBS_PER_COMMIT:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                jobs.extend(more)
            _settle(commit_group(lock, jobs))
            if stop:
                return

    def write(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue the write `fn(conn, *args)`; the future resolves after its transaction committed."""
        if not self._open:
            raise StoreUnavailable("store is not open")
        if self._process is not None:
            assert self._process.loop is not None
            return asyncio.run_coroutine_threadsafe(self.awrite(fn, *args), self._process.loop)
        future: Future[T] = Future()
        self._jobs.put([_Job(fn, args, future)])
        return future

    async def awrite(self, fn: Callable[..., T], *args: Any, ingest: EventRow | None = None) -> T:
        """Queue a write from the event loop; returns after its transaction committed.

        The jobs of one loop iteration (the webhooks that arrived together) go to the
        writer as one list, at the end of the iteration: one hand-off and one writer
        wake-up for the group instead of one each. A writer process gets them sooner:
        at once while it has nothing to do, and in slices of HAND_OVER_EVERY while it
        commits, so its commits overlap the loop's work instead of waiting for the end
        of an iteration that handled every connection (docs/benchmarks.md).
        """
        if not self._open:
            raise StoreUnavailable("store is not open")
        loop = asyncio.get_running_loop()
        if self._process is not None:
            if loop is not self._process.loop:  # the writer process talks to the loop that opened the store
                return await asyncio.wrap_future(self.write(fn, *args))
            await self._process.ready()
        future: asyncio.Future[T] = loop.create_future()
        gathering = self._gathering.get(loop)
        if gathering is None:
            gathering = self._gathering[loop] = []
            loop.call_soon(self._hand_over, loop)
        gathering.append(_Job(fn, args, future, ingest))
        if self._process is not None and (self._process.idle or len(gathering) >= HAND_OVER_EVERY):
            self._hand_over(loop)
        return await future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs = self._gathering.pop(loop, None)
        if not jobs:
            return
        if not self._open:  # closed since: nobody will run them
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(StoreUnavailable("store is not open"))
            return
        if self._process is not None:
            self._process.send(jobs)
        else:
            self._jobs.put(jobs)

    def write_sync(self, fn: Callable[..., T], *args: Any) -> T:
        if self._process is not None and _running_loop() is self._process.loop:
            raise RuntimeError("write_sync would block the event loop the writer answers on: use awrite")
        return self.write(fn, *args).result()

    # -- readers ------------------------------------------------------------

    def reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
        return conn

    async def aread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run the read `fn(conn)` on a reader connection in a thread; SQLite's errors become StoreUnavailable."""
        def run() -> T:
            try:
                return fn(self.reader())
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"read failed: {exc}") from exc

        return await asyncio.to_thread(run)

    # -- ingest and mapping -------------------------------------------------

    async def ingest(self, webhook: Webhook, now: float | None = None) -> IngestResult:
        row = event_row(webhook, time.time() if now is None else now)
        return await self.awrite(ingest_one, row, ingest=row)

    async def waiting_events(self, limit: int, after: int = 0) -> list[Event]:
        return await self.aread(lambda conn: outbox.waiting_events(conn, limit, after))

    async def newest_event_id(self) -> int:
        return await self.aread(outbox.newest_event_id)

    async def save_mappings(self, mapped: Sequence[Mapped], now: float) -> int:
        """In parts of SAVE_PART events, a transaction each, in order: each holds the write lock briefly
        (another process's writer of webhooks waits at most one part)."""
        queued = 0
        for start in range(0, len(mapped), SAVE_PART):
            queued += await self.awrite(outbox.save_mappings, mapped[start : start + SAVE_PART], now)
        return queued

    async def consent_records(self, contact: str) -> list[ConsentRecord]:
        return await self.aread(lambda conn: consent.records(conn, contact))

    async def resources(self, source: str, kind: str, refs: Sequence[str]) -> dict[str, bytes]:
        return await self.aread(lambda conn: kept.find(conn, source, kind, refs))

    async def mapping_turn(self, holder: str, seconds: float, now: float) -> bool:
        return True  # one worker: its turn always

    # -- delivery -----------------------------------------------------------

    async def claim(self, destination: str, limit: int, lease_seconds: float, now: float) -> list[Message]:
        return await self.awrite(outbox.claim, destination, limit, now + lease_seconds, now)

    async def release_expired(self, now: float) -> int:
        return await self.awrite(outbox.release_expired, now)

    async def release(self, messages: Iterable[Message], now: float) -> int:
        return await self.awrite(outbox.release, list(messages), now)

    async def claim_batch(self, destination: str, due_before: float, lease_until: float,
                          holding_due_before: float | None = None) -> tuple[str, list[Message]] | None:
        return await self.awrite(outbox.claim_batch, destination, due_before, lease_until, holding_due_before)

    async def extend(self, messages: Sequence[Message], lease_until: float) -> int:
        return await self.awrite(outbox.extend, messages, lease_until)

    async def complete(self, results: Sequence[tuple[Message, Outcome, Decision]], now: float) -> None:
        await self.awrite(outbox.complete, results, now)

    async def set_paused(self, name: str, paused: bool, reason: str, key_fingerprint: str | None,
                         now: float) -> None:
        await self.awrite(queries.set_paused, name, paused, reason, key_fingerprint, now)

    async def destination_states(self) -> dict[str, DestinationState]:
        return await self.aread(queries.destination_states)

    async def take_budget(self, destination: str, per_second: float, max_wait: float | None = None) -> BudgetSlot:
        return BudgetSlot(0.0, None)  # one worker: its own rate limiter is the whole budget

    async def block_budget(self, destination: str, per_second: float, seconds: float) -> None:
        """One worker: its own rate limiter blocks itself."""

    async def remember_sent(self, prints: Sequence[SentPrint]) -> None:
        if prints:
            await self.awrite(echo.remember_sent, list(prints))

    async def sent_prints(self, keys: Sequence[str]) -> dict[str, SentPrint]:
        if not keys:
            return {}
        return await self.aread(lambda conn: echo.sent_prints(conn, keys))

    async def hold_budget(self, destination: str, number: int, not_before: float) -> None:
        """One worker: its own rate limiter is the whole budget."""

    # -- what operators and metrics read --------------------------------------

    async def list_events(self, where: EventFilter, limit: int, offset: int = 0) -> Page[EventSummary]:
        return await self.aread(lambda conn: queries.list_events(conn, where, limit, offset))

    async def event_detail(self, event_id: int) -> EventDetail | None:
        return await self.aread(lambda conn: queries.event_detail(conn, event_id))

    async def outbox_stats(self, now: float, destinations: Sequence[str] = ()) -> dict[str, DestinationStats]:
        return await self.aread(lambda conn: queries.outbox_stats(conn, now, destinations))

    async def open_counts(self) -> dict[tuple[str, str], int]:
        return await self.aread(queries.open_counts)

    async def oldest_pending(self) -> dict[str, float]:
        return await self.aread(queries.oldest_pending)

    async def activity(self, since: float, until: float, bucket_seconds: float) -> list[ActivityBucket]:
        return await self.aread(lambda conn: queries.activity(conn, since, until, bucket_seconds))

    async def unmapped(self) -> Unmapped:
        return await self.aread(queries.unmapped)

    async def list_dead(self, where: DeadFilter, limit: int, offset: int = 0) -> Page[DeadLetter]:
        return await self.aread(lambda conn: queries.list_dead(conn, where, limit, offset))

    async def retry_dead(self, where: DeadFilter, now: float) -> int:
        return await self.awrite(queries.retry_dead, where, now)

    async def audit(self, where: AuditFilter, limit: int, offset: int = 0) -> Page[AuditEntry]:
        return await self.aread(lambda conn: queries.audit(conn, where, limit, offset))

    async def record_action(self, at: float, actor: str, role: str, action: str, target: str, detail: str) -> None:
        await self.awrite(queries.record_action, at, actor, role, action, target, detail)

    async def list_actions(self, limit: int, offset: int = 0) -> Page[ConsoleAction]:
        return await self.aread(lambda conn: queries.list_actions(conn, limit, offset))

    # -- the console's replay jobs --------------------------------------------

    async def start_job(self, actor: str, what: str, instance: str, now: float) -> int:
        return await self.awrite(jobs.start_job, actor, what, instance, now)

    async def job_progress(self, job_id: int, done: int, total: int, now: float) -> None:
        await self.awrite(jobs.job_progress, job_id, done, total, now)

    async def finish_job(self, job_id: int, done: int, total: int, now: float, summary: ReplaySummary | None,
                         error: str | None) -> None:
        await self.awrite(jobs.finish_job, job_id, done, total, now, summary_text(summary), error)

    async def job(self, job_id: int) -> ConsoleJob | None:
        return await self.aread(lambda conn: jobs.job(conn, job_id))

    async def list_jobs(self, limit: int, offset: int = 0) -> Page[ConsoleJob]:
        return await self.aread(lambda conn: jobs.list_jobs(conn, limit, offset))

    async def prune_jobs(self, keep: int, stale_before: float) -> int:
        return await self.awrite(jobs.prune_jobs, keep, stale_before)

    # -- replay ---------------------------------------------------------------

    async def count_replayable(self, where: EventFilter) -> int:
        return await self.aread(lambda conn: replay.count_replayable(conn, where))

    async def replayable_events(self, where: EventFilter, after_id: int, limit: int) -> list[Event]:
        return await self.aread(lambda conn: replay.replayable_events(conn, where, after_id, limit))

    async def apply_mappings(self, mapped: Sequence[Mapped], now: float, *, force: bool,
                             dry_run: bool) -> ReplaySummary:
        if dry_run:  # counts only: a reader does, beside the writer
            return await self.aread(lambda conn: replay.apply_mappings(conn, mapped, now, force, True))
        return await self.awrite(replay.apply_mappings, mapped, now, force, False)

    # -- rule sets --------------------------------------------------------------

    async def rule_head(self, origin: str | None = None, digest: str | None = None) -> RuleVersion | None:
        return await self.aread(lambda conn: rules.rule_head(conn, origin, digest))

    async def rule_version(self, version: int) -> RuleVersion | None:
        return await self.aread(lambda conn: rules.rule_version(conn, version))

    async def rule_history(self, limit: int, offset: int = 0) -> Page[RuleVersion]:
        return await self.aread(lambda conn: rules.rule_history(conn, limit, offset))

    async def publish_rules(self, version: RuleVersion) -> bool:
        return await self.awrite(rules.publish_rules, version)

    async def save_rule_draft(self, draft_id: int | None, files: dict[str, str], base_version: int | None,
                              author: str, now: float) -> RuleDraft | None:
        return await self.awrite(rules.save_rule_draft, draft_id, files, base_version, author, now)

    async def rule_draft(self, draft_id: int) -> RuleDraft | None:
        return await self.aread(lambda conn: rules.rule_draft(conn, draft_id))

    async def rule_drafts(self, limit: int, offset: int = 0) -> Page[RuleDraft]:
        return await self.aread(lambda conn: rules.rule_drafts(conn, limit, offset))

    async def delete_rule_draft(self, draft_id: int) -> bool:
        return await self.awrite(rules.delete_rule_draft, draft_id)

    async def record_rule_action(self, entry: RuleAction) -> None:
        await self.awrite(rules.record_rule_action, entry)

    async def rule_actions(self, limit: int, offset: int = 0) -> Page[RuleAction]:
        return await self.aread(lambda conn: rules.rule_actions(conn, limit, offset))

    async def latest_events(self, source: str, topics: Sequence[str], limit: int) -> list[Event]:
        return await self.aread(lambda conn: rules.latest_events(conn, source, list(topics), limit))

    # -- retention ------------------------------------------------------------

    async def prune_delivered(self, before: float, limit: int) -> tuple[int, int]:
        return await self.awrite(retention.delete_delivered, before, limit)

    async def prune_bodies(self, before: float, limit: int) -> int:
        return await self.awrite(retention.null_bodies, before, limit)

    async def prune_dedupe(self, before: float, limit: int) -> int:
        return await self.awrite(retention.delete_dedupe, before, limit)

    async def prune_resources(self, before: float, limit: int) -> int:
        return await self.awrite(kept.prune, before, limit)

    async def prune_sent_prints(self, before: float, limit: int) -> int:
        return await self.awrite(retention.delete_sent_prints, before, limit)

    async def prune_preview(self, cutoffs: PruneCutoffs) -> PruneResult:
        return await self.aread(lambda conn: retention.preview(conn, cutoffs))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


