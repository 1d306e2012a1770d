"""Webhook sources: one module per signature scheme, built by name from settings.

A Source turns (headers, raw body) into a verified `Webhook` (or a `Ping`),
or raises `SignatureError`. It never stores anything: the app commits what
it returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from bridge.model import Ping, Webhook


class Source(Protocol):
    name: str

    @property
    def configured(self) -> bool:
        """True when at least one secret is set (otherwise every delivery is refused)."""

    def verify(self, headers: Mapping[str, str], body: bytes) -> Webhook | Ping:
        """Verify the signature over the exact raw bytes and extract topic and dedupe key.

        `headers` is case-insensitive (starlette Headers). Raises SignatureError.
        """


# Below the protocol: the registry's modules import it from here.
from bridge.sources.registry import SCHEMES, build_source, build_sources  # noqa: E402

__all__ = ["SCHEMES", "Source", "build_source", "build_sources"]
