"""Destinations: one module per API, sharing HTTP, rate limiting and error classes.

A Destination owns one `httpx.AsyncClient`, its rate limiter and its batching
rules. The worker claims up to `max_batch` due messages for it and calls
`deliver`, which sends as few requests as the API allows and returns one
Outcome per message, in order.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

from bridge.model import Message, Outcome, PreparedRequest


class Destination(Protocol):
    name: str
    max_batch: int

    @property
    def configured(self) -> bool: ...

    @property
    def ceiling(self) -> float:
        """Records a second its rate limit lets through at most (requests a second times `max_batch`): the
        pace a backlog drains at (bridge/ops/backlog.py)."""

    def prepare(self, messages: Sequence[Message]) -> list[PreparedRequest]:
        """The exact requests `deliver` would send (pure: used by `mappings try`)."""

    async def deliver(self, messages: Sequence[Message]) -> list[Outcome]:
        """Send; one Outcome per message, same order. Never raises for HTTP trouble."""

    def state(self) -> dict[str, Any]:
        """Rate-limit state for stats and /healthz."""

    async def aclose(self) -> None: ...

from bridge.destinations.registry import build_destinations as build_destinations  # noqa: E402
