"""Shopify: base64 HMAC-SHA256 of the raw body in X-Shopify-Hmac-Sha256.

Several shops may post to one source. Option `shops` maps a shop domain to
its own secrets (comma-separated, for rotation); a shop not listed there is
verified with the source's secrets. The topic, shop and id headers are not
covered by the signature, so the dedupe key is the shop, the topic and a hash
of the body: Shopify resends an event with its original body (apis.md 4.3), and a
captured body sent again under a new X-Shopify-Event-Id is a duplicate. The event
and delivery ids are kept with the event's headers, for display.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bridge.errors import SignatureError
from bridge.log import capped
from bridge.model import Ping, Webhook
from bridge.settings import Secret, SourceSettings, secrets_from
from bridge.sources.options import Option, check_options
from bridge.sources.shape import check_shopify
from bridge.sources.signature import (
    body_hash,
    dedupe_key,
    is_json,
    kept,
    lower_headers,
    not_configured,
    verify_header_hmac,
)

SIGNATURE_HEADER = "X-Shopify-Hmac-Sha256"
KEPT_HEADERS = (
    "x-shopify-topic",
    "x-shopify-shop-domain",
    "x-shopify-event-id",
    "x-shopify-webhook-id",
    "x-shopify-api-version",
    "x-shopify-triggered-at",
    "x-shopify-name",
    "x-shopify-sub-topic",
)


def _shops(value: Any) -> dict[str, tuple[Secret, ...]]:
    if not isinstance(value, Mapping):
        raise ValueError("must map shop domains (example.myshopify.com) to their secrets")
    shops: dict[str, tuple[Secret, ...]] = {}
    for domain, secrets in value.items():
        if not isinstance(domain, str) or not domain.strip():
            raise ValueError(f"shop domain {domain!r} is not a domain name")
        if isinstance(secrets, str):
            parsed = secrets_from(secrets)
        elif isinstance(secrets, Sequence) and all(isinstance(s, Secret) for s in secrets):
            parsed = tuple(secrets)
        else:
            # Never echo the value: it is a secret.
            raise ValueError(f"the secrets of shop {domain!r} must be a comma-separated string")
        shops[domain.strip().lower()] = parsed
    return shops


OPTIONS = {
    "shops": Option("shops", "per-shop secrets: {shop.myshopify.com: 'secret1,secret2'}", check=_shops),
}


class ShopifySource:
    scheme = "shopify"

    def __init__(self, name: str, secrets: Sequence[Secret] = (), shops: Mapping[str, Sequence[Secret]] | None = None) -> None:
        self.name = name
        self._keys = tuple(s.value.encode() for s in secrets)
        self._shop_keys = {domain.lower(): tuple(s.value.encode() for s in keys) for domain, keys in (shops or {}).items()}

    @classmethod
    def from_settings(cls, settings: SourceSettings) -> ShopifySource:
        options = check_options(cls.scheme, OPTIONS, settings.options)
        return cls(settings.name, settings.secrets, options.get("shops"))

    @property
    def configured(self) -> bool:
        return bool(self._keys) or any(self._shop_keys.values())

    def verify(self, headers: Mapping[str, str], body: bytes) -> Webhook | Ping:
        h = lower_headers(headers)
        shop = h.get("x-shopify-shop-domain", "").strip().lower()
        keys = self._shop_keys.get(shop) or self._keys
        if not keys:
            if self.configured:
                raise SignatureError(f"no secret is configured for shop {capped(shop, 64)!r}" if shop  # an unsigned header
                                     else "missing X-Shopify-Shop-Domain header")
            raise not_configured(self.name)
        index = verify_header_hmac(self.name, h, body, keys, header=SIGNATURE_HEADER, encoding="base64")
        ok = is_json(body)  # the dedupe key is a hash of the body: the payload is parsed only to check a topic
        topic = h.get("x-shopify-topic", "").strip()
        if ok:
            check_shopify(topic, body)
        return Webhook(
            source=self.name,
            topic=topic,
            dedupe_key=dedupe_key(shop, topic, body_hash(body)),
            body=body,
            headers=kept(h, KEPT_HEADERS),
            payload_ok=ok,
            secret_index=index,
        )
