"""Build the configured destinations from settings: one adapter per known destination name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bridge.destinations import Destination
from bridge.destinations.ometria import Ometria
from bridge.destinations.omnisend import Omnisend
from bridge.errors import ConfigError
from bridge.settings import DestinationSettings, Settings

ADAPTERS: dict[str, Callable[..., Destination]] = {"omnisend": Omnisend, "ometria": Ometria}


def build_destinations(
    settings: Settings | Mapping[str, DestinationSettings], **kwargs: Any
) -> dict[str, Destination]:
    """Every destination, configured or not: one without an API key reports `configured` False
    and the worker leaves it alone. `kwargs` (transport, clock, sleep) are for tests."""
    configs = settings.destinations if isinstance(settings, Settings) else settings
    built: dict[str, Destination] = {}
    for name, config in configs.items():
        adapter = ADAPTERS.get(name)
        if adapter is None:
            raise ConfigError(f"unknown destination {name!r}; known: {', '.join(sorted(ADAPTERS))}")
        built[name] = adapter(config, **kwargs)
    return built
