"""What the contract tests share: webhooks, mapped events and attempts made through the interface only."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.model import Decision, Mapped, Message, Outcome, OutcomeKind, Outgoing, Webhook
from bridge.store.base import Store

T0 = 1_795_000_000.0  # the tests' clock starts here (2026-11-19)
LEASE = 60.0


def hook(key: str, *, source: str = "shopify", topic: str = "orders/create", body: bytes = b'{"id": 1}',
         payload_ok: bool = True) -> Webhook:
    return Webhook(source, topic, key, body, {"x-shopify-topic": topic}, payload_ok=payload_ok)


def outgoing(destination: str, key: str = "", *, n: int = 0, rule: str = "orders", kind: str = "event",
             areas: tuple[str, ...] = ("events",), record: dict[str, object] | None = None) -> Outgoing:
    return Outgoing(destination, kind, record if record is not None else {"email": "jane@example.com", "n": n},
                    rule=rule, key=key, index=n, areas=areas)


async def event_with(store: Store, dedupe_key: str, messages: Sequence[Outgoing], now: float = T0, *,
                     source: str = "shopify", topic: str = "orders/create", errors: Sequence[str] = ()) -> int:
    """Ingest an event and save its mapping to `messages` (keyed as the worker keys them); its id."""
    event_id = (await store.ingest(hook(dedupe_key, source=source, topic=topic), now=now)).event_id
    mapped = Mapped(event_id, "partial" if errors else "mapped", sorted({m.rule for m in messages}) or ["orders"],
                    list(errors), [(m, m.idempotency_key(source, dedupe_key)) for m in messages])
    await store.save_mappings([mapped], now)
    return event_id


async def record(store: Store, messages: Sequence[Message], kind: OutcomeKind, now: float, *,
                 state: str | None = None, next_at: float | None = None, status: int | None = None,
                 detail: str = "", ref: str | None = None) -> None:
    """One attempt for each of `messages` with the same outcome; the decision as the retry policy would take it."""
    decided = state or {"delivered": "delivered", "dead": "dead", "retry": "pending", "submitted": "submitted",
                        "deferred": "pending", "pause": "pending"}[kind]
    decision = Decision(decided, now if next_at is None else next_at, refund_attempt=kind == "pause")
    await store.complete([(m, Outcome(kind, status, detail, ref=ref), decision) for m in messages], now)
