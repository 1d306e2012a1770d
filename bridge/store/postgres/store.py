"""The PostgreSQL store: several web instances and workers on one database.

Each method is one short transaction on a pooled connection (bridge/store/postgres/connection.py);
the SQL lives beside it: inbound.py (ingest, mapping), outbox.py (claims, leases, completions),
queries.py (what operators read and write), migrate.py (the schema).
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable, Iterable, Sequence, TypeVar

from psycopg_pool import AsyncConnectionPool

from bridge.errors import MigrationError, StoreUnavailable
from bridge.model import Decision, Event, IngestResult, Mapped, Message, Outcome, Webhook
from bridge.store.base import DestinationState, MigrationStatus
from bridge.store.postgres import inbound, migrate, outbox
from bridge.store.postgres.connection import Conn, connect, in_transaction, make_pool
from bridge.store.sqlite import event_row

T = TypeVar("T")

DEFAULT_POOL_SIZE = 4  # per process: 2 web + 1 worker + a one-off stay within Heroku's 20 (scale-out.md 6.8)


class PostgresStore:
    def __init__(self, url: str, *, pool_size: int = DEFAULT_POOL_SIZE, notify: bool = True,
                 migrate: bool = True) -> None:
        self.url = url  # as libpq takes it (bridge.store.postgres.connection.libpq_url)
        self.pool_size = pool_size
        self.notify = notify
        self._migrate_on_open = migrate
        self._pool: AsyncConnectionPool[Conn] | None = None

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
                names = ", ".join(m.name for m in lacking)
                raise MigrationError(f"the database lacks migrations {names}: run `bridge migrate`")
        pool = make_pool(self.url, self.pool_size)
        await pool.open()
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def migrate(self) -> MigrationStatus:
        return await migrate.migrate(self.url)

    async def probe(self) -> None:
        await self._run(outbox.probe, time.time())

    async def _run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        if self._pool is None:
            raise StoreUnavailable("store is not open")
        return await in_transaction(self._pool, self.url, fn, *args)

    # -- inbound events -------------------------------------------------------

    async def ingest(self, webhook: Webhook, now: float | None = None) -> IngestResult:
        return await self._run(inbound.ingest, event_row(webhook, time.time() if now is None else now))

    async def waiting_events(self, limit: int, after: int = 0) -> list[Event]:
        horizon = await self._run(inbound.mapping_horizon)
        return await self._run(inbound.waiting_events, limit, after, horizon)

    async def save_mappings(self, mapped: Sequence[Mapped], now: float) -> int:
        return await self._run(inbound.save_mappings, mapped, now, self.notify)

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
