"""Wake-ups between processes: LISTEN/NOTIFY as a hint, never the only way work is found.

A web instance that stored events says so on `bridge_events`, at most once per ANNOUNCE_EVERY
and outside the webhook's transaction (a transaction that notifies takes a lock at commit that
serialises such commits: scale-out.md 1.3); saving a mapping says so on `bridge_outbox` inside
its transaction (one a batch). A worker listens on a connection of its own, outside the pool
(a direct URL: PgBouncer in transaction mode breaks LISTEN, hence BRIDGE_PG_NOTIFY=false), and
polls as well: a lost connection costs latency, never work.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool

from bridge.errors import StoreUnavailable
from bridge.store.postgres.connection import Conn, connect

log = structlog.get_logger("bridge.store")

EVENTS_CHANNEL = "bridge_events"
MESSAGES_CHANNEL = "bridge_outbox"
ANNOUNCE_EVERY = 0.05  # seconds: a burst of webhooks is one notification per this
RECONNECT_SECONDS = 2.0


class Wakeups:
    def __init__(self, url: str) -> None:
        self.url = url
        self._callbacks: list[Callable[[str], None]] = []
        self._listener: asyncio.Task[None] | None = None
        self._announcing: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    def listen(self, callback: Callable[[str], None]) -> None:
        """Call `callback("events" | "messages")` on each notification, from now on."""
        self._callbacks.append(callback)
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="store-listen")

    def announce(self, pool: AsyncConnectionPool[Conn], channel: str) -> None:
        """Notify `channel` soon, once for everything announced until then."""
        if channel in self._announcing:
            return
        self._announcing.add(channel)
        task = asyncio.create_task(self._announce(pool, channel))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        tasks = [t for t in (self._listener, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._listener = None

    async def _announce(self, pool: AsyncConnectionPool[Conn], channel: str) -> None:
        await asyncio.sleep(ANNOUNCE_EVERY)
        self._announcing.discard(channel)
        with contextlib.suppress(psycopg.Error):  # a hint: the workers poll anyway
            async with pool.connection() as conn:
                await conn.execute("SELECT pg_notify(%s, '')", (channel,))

    async def _listen(self) -> None:
        while True:
            try:
                conn = await connect(self.url, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    await conn.execute(f"LISTEN {MESSAGES_CHANNEL}")
                    async for note in conn.notifies():
                        kind = "events" if note.channel == EVENTS_CHANNEL else "messages"
                        for callback in self._callbacks:
                            callback(kind)
            except (StoreUnavailable, psycopg.Error) as exc:
                log.warning("store.listen_lost", reason=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                            retry_seconds=RECONNECT_SECONDS)
            await asyncio.sleep(RECONNECT_SECONDS)
