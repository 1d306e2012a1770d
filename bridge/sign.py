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

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat


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
    """Standard Webhooks: `v1` with a `whsec_` secret, `v1a` with a `whsk_` ed25519 private key."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = int(time.time()) if timestamp is None else timestamp
    content = f"{msg_id}.{ts}.".encode() + body
    if secret.startswith("whsk_"):
        seed = base64.b64decode(secret.removeprefix("whsk_"))[:32]  # a 32-byte seed, or NaCl's seed + public key
        entry = "v1a," + base64.b64encode(Ed25519PrivateKey.from_private_bytes(seed).sign(content)).decode()
    else:
        entry = "v1," + base64.b64encode(_hmac(base64.b64decode(secret.removeprefix("whsec_")), content)).decode()
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": entry,
    }


def standard_key_pair() -> tuple[str, str]:
    """A new ed25519 key pair as Standard Webhooks serialises it: (whsk_ private, whpk_ public)."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "whsk_" + base64.b64encode(seed).decode(), "whpk_" + base64.b64encode(public).decode()
