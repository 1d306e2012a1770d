"""Sign a body the way each provider does: for tests, benchmarks and a local sandbox.

Written from the providers' documented schemes (apis.md), independently of the
verifiers in bridge.sources, so that a test signing with these and verifying
with those checks one against the other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid


def _hmac(secret: str | bytes, body: bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, body, hashlib.sha256).digest()


def shopify_headers(body: bytes, secret: str, topic: str, *, event_id: str | None = None,
                    shop: str = "example.myshopify.com") -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": base64.b64encode(_hmac(secret, body)).decode(),
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-API-Version": "2026-10",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def omneo_headers(body: bytes, secret: str, event: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Omneo-Event": event,
        "X-Omneo-Hmac-SHA256": _hmac(secret, body).hex(),
    }


def woocommerce_headers(body: bytes, secret: str, topic: str, *, webhook_id: int = 1,
                        site: str = "https://shop.example.com/") -> dict[str, str]:
    resource, _, event = topic.partition(".")
    return {
        "Content-Type": "application/json",
        "User-Agent": "WooCommerce/9.4.0 Hookshot (WordPress/6.7)",
        "X-WC-Webhook-Source": site,
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": base64.b64encode(_hmac(secret, body)).decode(),
        "X-WC-Webhook-ID": str(webhook_id),
        "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex,
    }


def standard_headers(body: bytes, secret: str, *, msg_id: str | None = None, timestamp: int | None = None) -> dict[str, str]:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = int(time.time()) if timestamp is None else timestamp
    signature = base64.b64encode(_hmac(key, f"{msg_id}.{ts}.".encode() + body)).decode()
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": f"v1,{signature}",
    }
