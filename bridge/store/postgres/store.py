"""The PostgreSQL store: several web instances and workers on one database.

Each method is one short transaction on a pooled connection (bridge/store/postgres/connection.py);
webhooks are committed in groups (groups.py). The SQL lives beside it: inbound.py (ingest,
mapping), outbox.py (claims, leases, completions), queries.py (what operators read and write),
jobs.py (the console's replay jobs), migrate.py (the schema).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import structlog
from psycopg_pool import AsyncConnectionPool

from bridge.consent import ConsentRecord
from bridge.errors import StoreUnavailable
from bridge.model import BudgetSlot, Decision, Event, IngestResult, Mapped, Message, Outcome, Webhook
from bridge.settings import masked_url
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
from bridge.store.postgres import consent, echo, inbound, jobs, migrate, outbox, queries, replay, retention, rules
from bridge.store.postgres import resources as kept
from bridge.store.postgres.connection import POOL_TIMEOUT, Conn, connect, in_transaction, make_pool
from bridge.store.postgres.groups import IngestGroups
from bridge.store.postgres.wakeups import EVENTS_CHANNEL, Wakeups
from bridge.store.records import summary_text
from bridge.store.sqlite.ingest import EventRow, event_row

T = TypeVar("T")

log = structlog.get_logger("bridge.store")

DEFAULT_POOL_SIZE = 4  # per process: 2 web + 1 worker + a one-off stay within Heroku's 20 (scale-out.md 6.8)


class PostgresStore:
    def __init__(self, url: str, *, pool_size: int = DEFAULT_POOL_SIZE, notify: bool = True,
                 migrate: bool = True) -> None:
        self.url = url  # as libpq takes it (bridge.store.postgres.connection.libpq_url)
        self.pool_size = pool_size
        self.notify = notify
        self._migrate_on_open = migrate
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._wake = Wakeups(url)
        self._groups = self._ingest_groups()

    def _ingest_groups(self) -> IngestGroups:
        # Half the pool commits webhooks at most: the rest stays for the worker, /healthz and the notifications.
        return IngestGroups(self._commit_group, in_flight=self.pool_size // 2, wait=POOL_TIMEOUT)

    # -- life cycle -----------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        if self._migrate_on_open:
            await self.migrate()
        else:
            conn = await connect(self.url)
            try:
                lacking = await migrate.missing(conn)
            finally:
                await conn.close()
            if lacking:
                raise unapplied_error(lacking)
        pool = make_pool(self.url, self.pool_size)
        await pool.open()
        self._pool = pool
        self._groups = self._ingest_groups()

    async def close(self) -> None:
        await self._groups.close()  # the webhooks waiting for a commit get it before the pool goes
        await self._wake.stop()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def on_wake(self, callback: Callable[[str], None]) -> None:
        if self.notify:
            self._wake.listen(callback)

    async def migrate(self) -> MigrationStatus:
        status = await migrate.migrate(self.url)
        if status.created:  # the schema made from nothing: a new database, said as SQLite says it
            log.warning("store.new_database", url=masked_url(self.url))
        return status

    async def probe(self) -> None:
        await self._run(outbox.probe, time.time())

    async def created_at(self) -> float | None:
        return await self._run(migrate.created_at, single=True)

    async def holds_events(self) -> bool:
        return await self._run(queries.holds_events, single=True)

    async def _run(self, fn: Callable[..., Awaitable[T]], *args: Any, single: bool = False) -> T:
        if self._pool is None:
            raise StoreUnavailable("store is not open")
        return await in_transaction(self._pool, self.url, fn, *args, single=single)

    # -- inbound events -------------------------------------------------------

    async def ingest(self, webhook: Webhook, now: float | None = None) -> IngestResult:
        return await self._groups.ingest(event_row(webhook, time.time() if now is None else now))

    async def _commit_group(self, rows: Sequence[EventRow], wait: float) -> list[IngestResult]:
        if self._pool is None:
            raise StoreUnavailable("store is not open")
        # One transaction: a group whose later statement meets a deadlock (two groups, or a mapping, updating
        # the same events in another order) is retried whole, never after its insert committed (its new
        # events would then answer as duplicates of themselves).
        results = await in_transaction(self._pool, self.url, inbound.ingest_group, rows, wait=wait)
        if self.notify and not all(r.duplicate for r in results):
            self._wake.announce(self._pool, EVENTS_CHANNEL)
        return results

    async def waiting_events(self, limit: int, after: int = 0) -> list[Event]:
        horizon = await self._run(inbound.mapping_horizon)
        return await self._run(inbound.waiting_events, limit, after, horizon)

    async def newest_event_id(self) -> int:
        return await self._run(inbound.newest_event_id, single=True)

    async def save_mappings(self, mapped: Sequence[Mapped], now: float) -> int:
        return await self._run(inbound.save_mappings, mapped, now, self.notify)

    async def consent_records(self, contact: str) -> list[ConsentRecord]:
        return await self._run(consent.records, contact, single=True)

    async def resources(self, source: str, kind: str, refs: Sequence[str]) -> dict[str, bytes]:
        return await self._run(kept.find, source, kind, refs) if refs else {}

    async def mapping_turn(self, holder: str, seconds: float, now: float) -> bool:
        return await self._run(inbound.mapping_turn, holder, now + seconds, now, single=True)

    # -- delivery -------------------------------------------------------------

    async def claim(self, destination: str, limit: int, lease_seconds: float, now: float) -> list[Message]:
        return await self._run(outbox.claim, destination, limit, now + lease_seconds, now)

    async def release_expired(self, now: float) -> int:
        return await self._run(outbox.release_expired, now)

    async def release(self, messages: Iterable[Message], now: float) -> int:
        return await self._run(outbox.release, list(messages), now)

    async def extend(self, messages: Sequence[Message], lease_until: float) -> int:
        return await self._run(outbox.extend, messages, lease_until)

    async def claim_batch(self, destination: str, due_before: float, lease_until: float,
                          holding_due_before: float | None = None) -> tuple[str, list[Message]] | None:
        return await self._run(outbox.claim_batch, destination, due_before, lease_until, holding_due_before)

    async def complete(self, results: Sequence[tuple[Message, Outcome, Decision]], now: float) -> None:
        await self._run(outbox.complete, results, now)

    async def set_paused(self, name: str, paused: bool, reason: str, key_fingerprint: str | None,
                         now: float) -> None:
        await self._run(outbox.set_paused, name, paused, reason, key_fingerprint, now)

    async def destination_states(self) -> dict[str, DestinationState]:
        return await self._run(outbox.destination_states)

    async def take_budget(self, destination: str, per_second: float, max_wait: float | None = None) -> BudgetSlot:
        # one statement, its own transaction (no BEGIN and COMMIT round trips)
        return await self._run(outbox.take_budget, destination, per_second, max_wait, single=True)

    async def block_budget(self, destination: str, per_second: float, seconds: float) -> None:
        await self._run(outbox.block_budget, destination, seconds, single=True)

    async def hold_budget(self, destination: str, number: int, not_before: float) -> None:
        await self._run(outbox.hold_budget, destination, number, not_before, single=True)

    async def remember_sent(self, prints: Sequence[SentPrint]) -> None:
        if prints:
            await self._run(echo.remember_sent, list(prints))

    async def sent_prints(self, keys: Sequence[str]) -> dict[str, SentPrint]:
        if not keys:
            return {}
        return await self._run(echo.sent_prints, list(keys))

    # -- what operators and metrics read --------------------------------------

    async def list_events(self, where: EventFilter, limit: int, offset: int = 0) -> Page[EventSummary]:
        return await self._run(queries.list_events, where, limit, offset)

    async def event_detail(self, event_id: int) -> EventDetail | None:
        return await self._run(queries.event_detail, event_id)

    async def outbox_stats(self, now: float, destinations: Sequence[str] = ()) -> dict[str, DestinationStats]:
        return await self._run(queries.outbox_stats, now, destinations)

    async def open_counts(self) -> dict[tuple[str, str], int]:
        return await self._run(queries.open_counts)

    async def oldest_pending(self) -> dict[str, float]:
        return await self._run(queries.oldest_pending)

    async def activity(self, since: float, until: float, bucket_seconds: float) -> list[ActivityBucket]:
        return await self._run(queries.activity, since, until, bucket_seconds)

    async def unmapped(self) -> Unmapped:
        return await self._run(queries.unmapped)

    async def list_dead(self, where: DeadFilter, limit: int, offset: int = 0) -> Page[DeadLetter]:
        return await self._run(queries.list_dead, where, limit, offset)

    async def retry_dead(self, where: DeadFilter, now: float) -> int:
        return await self._run(queries.retry_dead, where, now)

    async def audit(self, where: AuditFilter, limit: int, offset: int = 0) -> Page[AuditEntry]:
        return await self._run(queries.audit, where, limit, offset)

    async def record_action(self, at: float, actor: str, role: str, action: str, target: str, detail: str) -> None:
        await self._run(queries.record_action, at, actor, role, action, target, detail)

    async def list_actions(self, limit: int, offset: int = 0) -> Page[ConsoleAction]:
        return await self._run(queries.list_actions, limit, offset)

    # -- the console's replay jobs --------------------------------------------

    async def start_job(self, actor: str, what: str, instance: str, now: float) -> int:
        return await self._run(jobs.start_job, actor, what, instance, now, single=True)

    async def job_progress(self, job_id: int, done: int, total: int, now: float) -> None:
        await self._run(jobs.job_progress, job_id, done, total, now, single=True)

    async def finish_job(self, job_id: int, done: int, total: int, now: float, summary: ReplaySummary | None,
                         error: str | None) -> None:
        await self._run(jobs.finish_job, job_id, done, total, now, summary_text(summary), error, single=True)

    async def job(self, job_id: int) -> ConsoleJob | None:
        return await self._run(jobs.job, job_id, single=True)

    async def list_jobs(self, limit: int, offset: int = 0) -> Page[ConsoleJob]:
        return await self._run(jobs.list_jobs, limit, offset)

    async def prune_jobs(self, keep: int, stale_before: float) -> int:
        return await self._run(jobs.prune_jobs, keep, stale_before, single=True)

    # -- replay ---------------------------------------------------------------

    async def count_replayable(self, where: EventFilter) -> int:
        return await self._run(replay.count_replayable, where)

    async def replayable_events(self, where: EventFilter, after_id: int, limit: int) -> list[Event]:
        return await self._run(replay.replayable_events, where, after_id, limit)

    async def apply_mappings(self, mapped: Sequence[Mapped], now: float, *, force: bool,
                             dry_run: bool) -> ReplaySummary:
        return await self._run(replay.apply_mappings, mapped, now, force, dry_run)

    # -- rule sets --------------------------------------------------------------

    async def rule_head(self, origin: str | None = None, digest: str | None = None) -> RuleVersion | None:
        return await self._run(rules.rule_head, origin, digest)

    async def rule_version(self, version: int) -> RuleVersion | None:
        return await self._run(rules.rule_version, version)

    async def rule_history(self, limit: int, offset: int = 0) -> Page[RuleVersion]:
        return await self._run(rules.rule_history, limit, offset)

    async def publish_rules(self, version: RuleVersion) -> bool:
        return await self._run(rules.publish_rules, version)

    async def save_rule_draft(self, draft_id: int | None, files: dict[str, str], base_version: int | None,
                              author: str, now: float) -> RuleDraft | None:
        return await self._run(rules.save_rule_draft, draft_id, files, base_version, author, now)

    async def rule_draft(self, draft_id: int) -> RuleDraft | None:
        return await self._run(rules.rule_draft, draft_id)

    async def rule_drafts(self, limit: int, offset: int = 0) -> Page[RuleDraft]:
        return await self._run(rules.rule_drafts, limit, offset)

    async def delete_rule_draft(self, draft_id: int) -> bool:
        return await self._run(rules.delete_rule_draft, draft_id)

    async def record_rule_action(self, entry: RuleAction) -> None:
        await self._run(rules.record_rule_action, entry)

    async def rule_actions(self, limit: int, offset: int = 0) -> Page[RuleAction]:
        return await self._run(rules.rule_actions, limit, offset)

    async def latest_events(self, source: str, topics: Sequence[str], limit: int) -> list[Event]:
        return await self._run(rules.latest_events, source, list(topics), limit)

    # -- retention ------------------------------------------------------------

    async def prune_delivered(self, before: float, limit: int) -> tuple[int, int]:
        return await self._run(retention.delete_delivered, before, limit)

    async def prune_bodies(self, before: float, limit: int) -> int:
        return await self._run(retention.null_bodies, before, limit)

    async def prune_dedupe(self, before: float, limit: int) -> int:
        return await self._run(retention.delete_dedupe, before, limit)

    async def prune_resources(self, before: float, limit: int) -> int:
        return await self._run(kept.prune, before, limit)

    async def prune_sent_prints(self, before: float, limit: int) -> int:
        return await self._run(retention.delete_sent_prints, before, limit)

    async def prune_preview(self, cutoffs: PruneCutoffs) -> PruneResult:
        return await self._run(retention.preview, cutoffs)
