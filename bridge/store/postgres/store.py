"""The PostgreSQL store: several web instances and workers on one database.

Each method is one short transaction on a pooled connection (bridge/store/postgres/connection.py);
the SQL lives beside it: inbound.py (ingest, mapping), outbox.py (claims, leases, completions),
queries.py (what operators read and write), migrate.py (the schema).
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable, Iterable, Sequence, TypeVar

import structlog
from psycopg_pool import AsyncConnectionPool

from bridge.consent import ConsentRecord
from bridge.errors import StoreUnavailable
from bridge.model import Decision, Event, IngestResult, Mapped, Message, Outcome, Webhook
from bridge.store.base import (
    AuditEntry,
    AuditFilter,
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
    SentPrint,
    Unmapped,
)
from bridge.store.migrations import unapplied_error
from bridge.store.postgres import consent, echo, inbound, migrate, outbox, queries, replay, retention
from bridge.settings import masked_url
from bridge.store.postgres.connection import Conn, connect, in_transaction, make_pool
from bridge.store.postgres.wakeups import EVENTS_CHANNEL, Wakeups
from bridge.store.sqlite.ingest import event_row

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

    async def close(self) -> None:
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
        # Each statement of an ingest commits by itself: the insert (the common path) is one round trip.
        result = await self._run(inbound.ingest, event_row(webhook, time.time() if now is None else now), single=True)
        if self.notify and not result.duplicate and self._pool is not None:
            self._wake.announce(self._pool, EVENTS_CHANNEL)
        return result

    async def waiting_events(self, limit: int, after: int = 0) -> list[Event]:
        horizon = await self._run(inbound.mapping_horizon)
        return await self._run(inbound.waiting_events, limit, after, horizon)

    async def save_mappings(self, mapped: Sequence[Mapped], now: float) -> int:
        return await self._run(inbound.save_mappings, mapped, now, self.notify)

    async def consent_records(self, contact: str) -> list[ConsentRecord]:
        return await self._run(consent.records, contact, single=True)

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

    async def take_budget(self, destination: str, per_second: float) -> float:
        return await self._run(outbox.take_budget, destination, per_second)

    async def block_budget(self, destination: str, per_second: float, seconds: float) -> None:
        await self._run(outbox.block_budget, destination, per_second, seconds)

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

    async def unmapped(self) -> Unmapped:
        return await self._run(queries.unmapped)

    async def list_dead(self, where: DeadFilter, limit: int, offset: int = 0) -> Page[DeadLetter]:
        return await self._run(queries.list_dead, where, limit, offset)

    async def retry_dead(self, where: DeadFilter, now: float) -> int:
        return await self._run(queries.retry_dead, where, now)

    async def audit(self, where: AuditFilter, limit: int, offset: int = 0) -> Page[AuditEntry]:
        return await self._run(queries.audit, where, limit, offset)

    # -- replay ---------------------------------------------------------------

    async def count_replayable(self, where: EventFilter) -> int:
        return await self._run(replay.count_replayable, where)

    async def replayable_events(self, where: EventFilter, after_id: int, limit: int) -> list[Event]:
        return await self._run(replay.replayable_events, where, after_id, limit)

    async def apply_mappings(self, mapped: Sequence[Mapped], now: float, *, force: bool,
                             dry_run: bool) -> ReplaySummary:
        return await self._run(replay.apply_mappings, mapped, now, force, dry_run)

    # -- retention ------------------------------------------------------------

    async def prune_delivered(self, before: float, limit: int) -> tuple[int, int]:
        return await self._run(retention.delete_delivered, before, limit)

    async def prune_bodies(self, before: float, limit: int) -> int:
        return await self._run(retention.null_bodies, before, limit)

    async def prune_dedupe(self, before: float, limit: int) -> int:
        return await self._run(retention.delete_dedupe, before, limit)

    async def prune_preview(self, cutoffs: PruneCutoffs) -> PruneResult:
        return await self._run(retention.preview, cutoffs)
