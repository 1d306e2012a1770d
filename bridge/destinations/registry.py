"""Build the configured destinations from settings: one adapter per known destination name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bridge.destinations import Destination
from bridge.destinations.ometria import Ometria
from bridge.destinations.omneo import Omneo, SentLog
from bridge.destinations.omnisend import Omnisend
from bridge.errors import ConfigError
from bridge.settings import DestinationSettings, Settings

ADAPTERS: dict[str, Callable[..., Destination]] = {"omnisend": Omnisend, "ometria": Ometria, "omneo": Omneo}


def build_destinations(
    settings: Settings | Mapping[str, DestinationSettings], *, sent_log: SentLog | None = None, **kwargs: Any
) -> dict[str, Destination]:
    """Every destination, configured or not: one without an API key reports `configured` False
    and the worker leaves it alone. `sent_log` keeps what is written to Omneo profiles (the store), for
    recognising their echo; `kwargs` (budget, and transport, clock, sleep in tests) go to every adapter."""
    configs = settings.destinations if isinstance(settings, Settings) else settings
    built: dict[str, Destination] = {}
    for name, config in configs.items():
        adapter = ADAPTERS.get(name)
        if adapter is None:
            raise ConfigError(f"unknown destination {name!r}; known: {', '.join(sorted(ADAPTERS))}")
        built[name] = Omneo(config, sent_log=sent_log, **kwargs) if adapter is Omneo else adapter(config, **kwargs)
    return built
