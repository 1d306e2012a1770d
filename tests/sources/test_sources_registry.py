"""build_sources: one source per configured name, by scheme."""

from __future__ import annotations

import pytest

from bridge.config import settings_from_env
from bridge.errors import ConfigError
from bridge.settings import Settings, SourceSettings, secrets_from
from bridge.sources import SCHEMES, Source, build_sources
from bridge.sources.generic import HmacSource
from bridge.sources.omneo import OmneoSource
from bridge.sources.shopify import ShopifySource
from bridge.sources.standard import StandardSource
from bridge.sources.woocommerce import WooCommerceSource


def test_every_scheme_builds() -> None:
    settings = Settings(
        sources={
            "shop": SourceSettings("shop", "shopify", secrets_from("a")),
            "woo": SourceSettings("woo", "woocommerce", secrets_from("a")),
            "omneo": SourceSettings("omneo", "omneo", secrets_from("a")),
            "events": SourceSettings("events", "standard", secrets_from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")),
            "partner": SourceSettings("partner", "hmac", secrets_from("a"), {"header": "X-Sig"}),
        }
    )
    built = build_sources(settings)
    expected = {"shop": ShopifySource, "woo": WooCommerceSource, "omneo": OmneoSource, "events": StandardSource, "partner": HmacSource}
    assert {name: type(s) for name, s in built.items()} == expected
    assert all(source.name == name and source.configured for name, source in built.items())
    assert set(SCHEMES) == {"shopify", "woocommerce", "omneo", "standard", "hmac"}


def test_default_settings_build_unconfigured_sources() -> None:
    built: dict[str, Source] = build_sources(settings_from_env({}))
    assert set(built) == {"shopify", "omneo", "woocommerce"}
    assert not any(s.configured for s in built.values())


def test_unknown_scheme() -> None:
    with pytest.raises(ConfigError, match="source x: unknown scheme 'paypal'"):
        build_sources(Settings(sources={"x": SourceSettings("x", "paypal")}))


def test_bad_option_names_the_source() -> None:
    with pytest.raises(ConfigError, match="source x: unknown option 'shop' for scheme shopify"):
        build_sources(Settings(sources={"x": SourceSettings("x", "shopify", options={"shop": {}})}))
