"""Build the configured sources by scheme name: the one place that knows every scheme."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge.errors import ConfigError
from bridge.settings import Settings, SourceSettings
from bridge.sources import generic, omneo, shopify, standard, woocommerce
from bridge.sources.options import Option

if TYPE_CHECKING:
    from bridge.sources import Source

Clock = Callable[[], float]


@dataclass(frozen=True)
class Scheme:
    """A signature scheme: its options table and how to build a source from settings."""

    name: str
    options: Mapping[str, Option]
    build: Callable[[SourceSettings, Clock], Source]


SCHEMES: Mapping[str, Scheme] = {
    "shopify": Scheme("shopify", shopify.OPTIONS, lambda s, clock: shopify.ShopifySource.from_settings(s)),
    "woocommerce": Scheme("woocommerce", woocommerce.OPTIONS, lambda s, clock: woocommerce.WooCommerceSource.from_settings(s)),
    "omneo": Scheme("omneo", omneo.OPTIONS, lambda s, clock: omneo.OmneoSource.from_settings(s)),
    "standard": Scheme("standard", standard.OPTIONS, lambda s, clock: standard.StandardSource.from_settings(s, clock)),
    "hmac": Scheme("hmac", generic.OPTIONS, lambda s, clock: generic.HmacSource.from_settings(s)),
}


def build_source(settings: SourceSettings, *, clock: Clock = time.time) -> Source:
    """One source from its settings. Raises ConfigError for an unknown scheme or bad options."""
    scheme = SCHEMES.get(settings.scheme)
    if scheme is None:
        raise ConfigError(f"source {settings.name}: unknown scheme {settings.scheme!r}; use one of {', '.join(SCHEMES)}")
    try:
        return scheme.build(settings, clock)
    except ConfigError as exc:
        if str(exc).startswith(f"source {settings.name}:"):
            raise
        # Name the source: the operator may have several of one scheme.
        raise ConfigError(f"source {settings.name}: {exc}") from exc


def build_sources(settings: Settings, *, clock: Clock = time.time) -> dict[str, Source]:
    """Every configured source by name (its `/webhooks/{name}` path segment).

    `clock` (Unix seconds) is the seam for the Standard Webhooks replay window.
    A source without a secret is still built: it refuses every delivery.
    """
    return {name: build_source(source, clock=clock) for name, source in settings.sources.items()}
