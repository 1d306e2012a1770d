"""Helpers for the ops tests: a store filled through its own API, a rule-set double."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.mapping import MapResult
from bridge.model import Event, Outcome, Outgoing, Webhook
from bridge.store import Decision, Mapped, SQLiteStore

NOW = 1_795_000_000.0  # 2026-11-19: fixtures are written relative to this
DAY = 86400.0


@dataclass
class Outbox:
    """A real store in tmp_path, filled through the store's own API."""

    store: SQLiteStore
    path: Path

    def ingest(self, key: str, *, source: str = "shopify", topic: str = "orders/create", at: float = NOW,
               body: dict[str, Any] | None = None) -> int:
        payload = body if body is not None else {"id": 1, "email": "jane@example.com"}
        hook = Webhook(source, topic, key, json.dumps(payload).encode(), {"x-shopify-topic": topic})
        return asyncio.run(self.store.ingest(hook, now=at)).event_id

    def map(self, event_id: int, messages: list[tuple[str, str]], *, at: float = NOW, rule: str = "orders",
            errors: list[str] | None = None) -> None:
        """Map an event to messages given as (destination, idempotency key)."""
        out = [(Outgoing(dest, "event", {"email": "jane@example.com", "n": n}, rule=rule, index=n), key)
               for n, (dest, key) in enumerate(messages)]
        status = "partial" if errors else "mapped"
        asyncio.run(self.store.save_mappings([Mapped(event_id, status, [rule], errors or [], out)], now=at))

    def deliver(self, destination: str, kind: str, status: int, *, at: float = NOW, detail: str = "ok") -> list[int]:
        """Claim every due message for `destination` and record one outcome for all of them."""
        async def go() -> list[int]:
            msgs = await self.store.claim(destination, 100, lease_seconds=60, now=at)
            state = {"delivered": "delivered", "dead": "dead", "retry": "pending"}[kind]
            await self.store.complete(
                [(m, Outcome(kind, status, detail), Decision(state, at + 30)) for m in msgs], now=at)  # type: ignore[arg-type]
            return [m.id for m in msgs]
        return asyncio.run(go())

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.store.reader().execute(sql, params)]


@dataclass
class FixedRules:
    """A RuleSet double: every event of a topic becomes the given (destination, rule) messages."""

    by_topic: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    seen: list[int] = field(default_factory=list)

    def map(self, event: Event) -> MapResult:
        self.seen.append(event.id)
        specs = self.by_topic.get(event.topic, [])
        payload = event.payload()
        messages = [Outgoing(dest, "event", {"email": payload.get("email"), "v": 2}, rule=rule, index=0)
                    for dest, rule in specs]
        return MapResult(messages=messages, rules=sorted({rule for _, rule in specs}))


def idem(dedupe_key: str, rule: str = "orders", source: str = "shopify", index: int = 0) -> str:
    """The idempotency key the worker (and a replay) gives a rule's message for an event."""
    return Outgoing("any", "event", {}, rule=rule, index=index).idempotency_key(source, dedupe_key)
