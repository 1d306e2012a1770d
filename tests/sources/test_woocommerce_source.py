"""WooCommerce: base64 HMAC-SHA256, entity-decoded secret, unsigned ping, resource-based dedupe."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from bridge.errors import SignatureError
from bridge.model import Ping, Webhook
from bridge.settings import SourceSettings, secrets_from
from bridge.sources import build_source
from bridge.sources.woocommerce import WooCommerceSource, wp_specialchars_decode

ORDER = {"id": 727, "status": "processing", "date_modified": "2026-11-23T10:00:00", "billing": {"email": "a@example.com"}}
BODY = json.dumps(ORDER).encode()


def sign(body: bytes, secret: str, algorithm: str = "sha256") -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, algorithm).digest()).decode()


def headers(body: bytes = BODY, /, secret: str = "wc-secret", delivery: str = "d1", **extra: str) -> dict[str, str]:
    h = {
        "X-WC-Webhook-Source": "https://shop.example.com/",
        "X-WC-Webhook-Topic": "order.updated",
        "X-WC-Webhook-Resource": "order",
        "X-WC-Webhook-Event": "updated",
        "X-WC-Webhook-Signature": sign(body, secret),
        "X-WC-Webhook-ID": "12",
        "X-WC-Webhook-Delivery-ID": delivery,
        "User-Agent": "WooCommerce/9.4 Hookshot (WordPress/6.7)",
    }
    h.update(extra)
    return h


def source(secrets: str = "wc-secret", **options: object) -> WooCommerceSource:
    built = build_source(SourceSettings("woocommerce", "woocommerce", secrets_from(secrets), options))
    assert isinstance(built, WooCommerceSource)
    return built


def test_valid_delivery() -> None:
    hook = source().verify(headers(), BODY)
    assert isinstance(hook, Webhook)
    assert hook.topic == "order.updated"
    assert hook.secret_index == 0 and hook.payload_ok
    assert hook.dedupe_key == "order.updated|727|2026-11-23T10:00:00"
    assert "x-wc-webhook-signature" not in hook.headers and "user-agent" not in hook.headers
    assert hook.headers["x-wc-webhook-source"] == "https://shop.example.com/"


def test_tampered_body() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        source().verify(headers(), BODY.replace(b"processing", b"completed"))


def test_missing_signature_on_a_real_delivery() -> None:
    h = headers()
    del h["X-WC-Webhook-Signature"]
    with pytest.raises(SignatureError, match="missing X-WC-Webhook-Signature header"):
        source().verify(h, BODY)


def test_wrong_secret() -> None:
    with pytest.raises(SignatureError, match="does not match any configured secret"):
        source().verify(headers(secret="other"), BODY)


def test_rotated_secret() -> None:
    hook = source("old,new").verify(headers(secret="new"), BODY)
    assert isinstance(hook, Webhook) and hook.secret_index == 1


def test_hex_signature_is_refused() -> None:
    hexsig = hmac.new(b"wc-secret", BODY, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError):
        source().verify(headers(**{"X-WC-Webhook-Signature": hexsig}), BODY)


def test_ping_is_answered_and_not_stored() -> None:
    ping = source().verify({"Content-Type": "application/x-www-form-urlencoded"}, b"webhook_id=12")
    assert ping == Ping(source="woocommerce")


@pytest.mark.parametrize(
    "h, body",
    [
        ({}, b"webhook_id=12&x=1"),
        ({}, b"webhook_id=abc"),
        ({}, BODY),
        ({"X-WC-Webhook-Topic": "order.created"}, b"webhook_id=12"),
    ],
)
def test_anything_else_unsigned_is_refused(h: dict[str, str], body: bytes) -> None:
    with pytest.raises(SignatureError):
        source().verify(h, body)


def test_ping_needs_a_configured_source() -> None:
    """An unconfigured source refuses even the ping, so WooCommerce shows the problem at once."""
    with pytest.raises(SignatureError, match="no secret is configured"):
        source("").verify({}, b"webhook_id=12")


def test_secret_is_entity_decoded_like_wordpress() -> None:
    # WooCommerce signs with wp_specialchars_decode(secret, ENT_QUOTES).
    hook = source("a&amp;b&#39;c").verify(headers(secret="a&b'c"), BODY)
    assert isinstance(hook, Webhook)


@pytest.mark.parametrize(
    "entered, used",
    [
        ("plain", "plain"),
        ("a&amp;b", "a&b"),
        ("&lt;&gt;&quot;&#039;", "<>\"'"),
        ("&#0039;&#x0027;&#X22;&#38;", "''\"&"),
        ("&amp;lt;", "&lt;"),  # one pass only, as PHP strtr
        ("&copy;&nbsp;", "&copy;&nbsp;"),  # not in WordPress's table
    ],
)
def test_wp_specialchars_decode(entered: str, used: str) -> None:
    assert wp_specialchars_decode(entered) == used


def test_resend_with_new_delivery_id_has_same_key() -> None:
    s = source()
    first = s.verify(headers(delivery="d1"), BODY)
    resend = s.verify(headers(delivery="d2"), BODY)
    later = dict(ORDER, date_modified="2026-11-23T10:05:00")
    changed = s.verify(headers(json.dumps(later).encode(), delivery="d3"), json.dumps(later).encode())
    assert isinstance(first, Webhook) and isinstance(resend, Webhook) and isinstance(changed, Webhook)
    assert first.dedupe_key == resend.dedupe_key
    assert first.dedupe_key != changed.dedupe_key
    # The webhook id is not signed: the same body under another webhook id is the same event.
    replay = s.verify(headers(delivery="d4", **{"X-WC-Webhook-ID": "99"}), BODY)
    assert isinstance(replay, Webhook) and replay.dedupe_key == first.dedupe_key


def test_deleted_resources_under_two_topics_are_two_events() -> None:
    body = b'{"id": 727}'
    s = source()
    order = s.verify(headers(body, **{"X-WC-Webhook-ID": "12", "X-WC-Webhook-Topic": "order.deleted"}), body)
    product = s.verify(headers(body, **{"X-WC-Webhook-ID": "13", "X-WC-Webhook-Topic": "product.deleted"}), body)
    assert isinstance(order, Webhook) and isinstance(product, Webhook)
    assert order.dedupe_key != product.dedupe_key
    assert order.dedupe_key.endswith(hashlib.sha256(body).hexdigest())


def test_malformed_json() -> None:
    body = b"not json"
    hook = source().verify(headers(body), body)
    assert isinstance(hook, Webhook) and not hook.payload_ok and hook.dedupe_key


def test_algorithm_option_for_sites_that_filter_it() -> None:
    h = headers(**{"X-WC-Webhook-Signature": sign(BODY, "wc-secret", "sha512")})
    assert isinstance(source(algorithm="sha512").verify(h, BODY), Webhook)
    with pytest.raises(SignatureError):
        source().verify(h, BODY)
