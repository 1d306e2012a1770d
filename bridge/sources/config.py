"""Which sources exist, from the environment (and later a YAML file)."""

from __future__ import annotations

from typing import Mapping

from bridge.settings import SourceSettings, secrets_from


def sources_from_env(env: Mapping[str, str]) -> dict[str, SourceSettings]:
    return {
        "shopify": SourceSettings("shopify", "shopify", secrets_from(env.get("SHOPIFY_WEBHOOK_SECRET"))),
        "omneo": SourceSettings("omneo", "omneo", secrets_from(env.get("OMNEO_WEBHOOK_SECRET"))),
        "woocommerce": SourceSettings("woocommerce", "woocommerce", secrets_from(env.get("WOOCOMMERCE_WEBHOOK_SECRET"))),
    }
