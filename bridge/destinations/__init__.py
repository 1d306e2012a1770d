"""Destinations: one module per API, sharing HTTP, rate limiting and error classes.

A Destination owns one `httpx.AsyncClient`, its rate limiter and its batching
rules. The worker claims up to `max_batch` due messages for it and calls
`deliver`, which sends as few requests as the API allows and returns one
Outcome per message, in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

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

    @property
    def key_fingerprint(self) -> str | None:
        """Which credentials it sends with (a hash of the key; None without one): a pause for refused
        credentials ends when they change."""

    @property
    def batch_linger_seconds(self) -> float:
        """After a quiet spell, how long to let a burst gather into a fuller batch (0: at once)."""

    @property
    def follows_up(self) -> bool:
        """Whether a batch the API accepted is read back later (`follow_up`) for each item's fate."""

    async def follow_up(self, ref: str, messages: Sequence[Message]) -> list[Outcome] | None:
        """The fates of `messages`, sent in the batch `ref`, once the API has processed it (one per
        message, in order); None while it has not. Only called when `follows_up`."""

    async def aclose(self) -> None: ...
