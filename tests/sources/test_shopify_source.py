"""Shopify: base64 HMAC-SHA256 in X-Shopify-Hmac-Sha256, per-shop secrets, dedupe on shop, topic and body."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from bridge.errors import ConfigError, SignatureError
from bridge.model import Webhook
from bridge.settings import SourceSettings, secrets_from
from bridge.sources import build_source
from bridge.sources.shopify import ShopifySource
from bridge.sources.signature import LowerHeaders, lower_headers

BODY = b'{"id": 820982911946154508, "email": "jon@example.com", "total_price": "199.00"}'
SHOP = "demo.myshopify.com"


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def headers(body: bytes = BODY, /, secret: str = "s3cret", **extra: str) -> dict[str, str]:
    h = {
        "X-Shopify-Hmac-Sha256": sign(body, secret),
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-API-Version": "2026-10",
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "X-Shopify-Triggered-At": "2026-11-23T10:00:00.000Z",
        "Content-Type": "application/json",
    }
    h.update(extra)
    return h


def source(secrets: str = "s3cret", **options: object) -> ShopifySource:
    built = build_source(SourceSettings("shopify", "shopify", secrets_from(secrets), options))
    assert isinstance(built, ShopifySource)
    return built


def test_valid_delivery() -> None:
    hook = source().verify(headers(), BODY)
    assert isinstance(hook, Webhook)
    assert hook.topic == "orders/create"
    assert hook.secret_index == 0
    assert hook.payload_ok
    assert hook.body == BODY
    assert hook.dedupe_key == f"{SHOP}|orders/create|sha256:{hashlib.sha256(BODY).hexdigest()}"
    assert hook.headers["x-shopify-event-id"] == "98880550-7158-44d4-b7cd-2c97c8a091b5"  # kept for display
    assert "x-shopify-hmac-sha256" not in hook.headers
    assert hook.headers["x-shopify-api-version"] == "2026-10"
    assert set(hook.headers) >= {"x-shopify-topic", "x-shopify-shop-domain", "x-shopify-webhook-id", "x-shopify-triggered-at"}
    assert "content-type" not in hook.headers


def test_header_names_are_case_insensitive() -> None:
    lowered = {k.lower(): v for k, v in headers().items()}
    assert isinstance(source().verify(lowered, BODY), Webhook)


def test_headers_read_from_the_asgi_scope_keep_the_first_of_a_repeated_name() -> None:
    # What the endpoint passes: the scope's raw (name, value) pairs; a second, forged signature is ignored.
    raw = [(k.encode(), v.encode("latin-1")) for k, v in headers().items()]
    raw.append((b"x-shopify-hmac-sha256", sign(BODY, "forged").encode()))
    lowered = LowerHeaders.from_asgi(raw)
    assert lowered["x-shopify-hmac-sha256"] == sign(BODY, "s3cret") and lower_headers(lowered) is lowered
    hook = source().verify(lowered, BODY)
    assert isinstance(hook, Webhook) and hook.headers["x-shopify-api-version"] == "2026-10"
    forged_first = LowerHeaders.from_asgi([raw[-1], *raw[:-1]])
    with pytest.raises(SignatureError):
        source().verify(forged_first, BODY)


def test_tampered_body() -> None:
    with pytest.raises(SignatureError, match="does not match any configured secret"):
        source().verify(headers(), BODY.replace(b"199.00", b"1.00"))


def test_missing_header() -> None:
    h = headers()
    del h["X-Shopify-Hmac-Sha256"]
    with pytest.raises(SignatureError, match="missing X-Shopify-Hmac-Sha256 header"):
        source().verify(h, BODY)


def test_wrong_secret_message_reveals_nothing() -> None:
    with pytest.raises(SignatureError) as info:
        source("right-secret").verify(headers(secret="wrong"), BODY)
    message = str(info.value)
    assert "right-secret" not in message and sign(BODY, "right-secret") not in message


def test_rotated_secret_matches_at_its_position() -> None:
    hook = source("old-secret,new-secret").verify(headers(secret="new-secret"), BODY)
    assert isinstance(hook, Webhook) and hook.secret_index == 1


def test_hex_signature_is_refused() -> None:
    hexsig = hmac.new(b"s3cret", BODY, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError):
        source().verify(headers(**{"X-Shopify-Hmac-Sha256": hexsig}), BODY)


def test_no_secret_refuses_everything() -> None:
    unconfigured = source("")
    assert not unconfigured.configured
    with pytest.raises(SignatureError, match="no secret is configured"):
        unconfigured.verify(headers(), BODY)


def test_per_shop_secrets() -> None:
    multi = source("", shops={"a.myshopify.com": "a-old,a-new", "B.myshopify.com": "b"})
    assert multi.configured
    hook = multi.verify(headers(secret="a-new", **{"X-Shopify-Shop-Domain": "a.myshopify.com"}), BODY)
    assert isinstance(hook, Webhook) and hook.secret_index == 1
    assert hook.dedupe_key.startswith("a.myshopify.com|")
    assert isinstance(multi.verify(headers(secret="b", **{"X-Shopify-Shop-Domain": "b.myshopify.com"}), BODY), Webhook)
    # Shop a's secret does not verify a delivery claiming to be from shop b.
    with pytest.raises(SignatureError, match="does not match"):
        multi.verify(headers(secret="a-new", **{"X-Shopify-Shop-Domain": "b.myshopify.com"}), BODY)
    with pytest.raises(SignatureError, match="no secret is configured for shop"):
        multi.verify(headers(secret="a-new", **{"X-Shopify-Shop-Domain": "c.myshopify.com"}), BODY)


def test_unlisted_shop_falls_back_to_source_secrets() -> None:
    mixed = source("shared", shops={"a.myshopify.com": "a"})
    assert isinstance(mixed.verify(headers(secret="shared", **{"X-Shopify-Shop-Domain": "z.myshopify.com"}), BODY), Webhook)
    with pytest.raises(SignatureError):
        mixed.verify(headers(secret="shared", **{"X-Shopify-Shop-Domain": "a.myshopify.com"}), BODY)


def test_bad_shops_option() -> None:
    with pytest.raises(ConfigError, match="shops"):
        source(shops=["a.myshopify.com"])


def test_a_body_is_one_event_whatever_ids_it_comes_with_and_another_body_is_another() -> None:
    s = source()
    first = s.verify(headers(), BODY)
    resend = s.verify(headers(**{"X-Shopify-Webhook-Id": "another-delivery"}), BODY)
    # A captured body replayed under a new event id (the header is not signed) is the same event.
    replay = s.verify(headers(**{"X-Shopify-Event-Id": "another-event", "X-Shopify-Webhook-Id": "x"}), BODY)
    no_ids = headers()
    del no_ids["X-Shopify-Event-Id"], no_ids["X-Shopify-Webhook-Id"]
    bare = s.verify(no_ids, BODY)
    other_body = json.dumps(dict(json.loads(BODY), updated_at="2026-11-23T10:00:01Z")).encode()
    other = s.verify(headers(other_body), other_body)
    paid = s.verify(headers(**{"X-Shopify-Topic": "orders/paid"}), BODY)  # one body under two topics: two events
    hooks = [first, resend, replay, bare, other, paid]
    assert all(isinstance(h, Webhook) for h in hooks)
    keys = [h.dedupe_key for h in hooks if isinstance(h, Webhook)]
    assert keys[0] == keys[1] == keys[2] == keys[3]
    assert len({keys[0], keys[4], keys[5]}) == 3


def test_same_body_from_two_shops_is_two_events() -> None:
    s = source()
    a = s.verify(headers(**{"X-Shopify-Shop-Domain": "a.myshopify.com"}), BODY)
    b = s.verify(headers(**{"X-Shopify-Shop-Domain": "b.myshopify.com"}), BODY)
    assert isinstance(a, Webhook) and isinstance(b, Webhook) and a.dedupe_key != b.dedupe_key


def test_malformed_json_after_valid_signature() -> None:
    body = b'{"id": 1,'
    h = headers(body)
    del h["X-Shopify-Event-Id"], h["X-Shopify-Webhook-Id"]
    hook = source().verify(h, body)
    assert isinstance(hook, Webhook)
    assert not hook.payload_ok
    assert hook.dedupe_key.endswith(hashlib.sha256(body).hexdigest())


def test_missing_topic_is_empty() -> None:
    h = headers()
    del h["X-Shopify-Topic"]
    hook = source().verify(h, BODY)
    assert isinstance(hook, Webhook) and hook.topic == ""


def test_an_unknown_shop_is_named_cut_in_the_refusal() -> None:
    multi = source("", shops={"a.myshopify.com": "a"})
    with pytest.raises(SignatureError) as refused:
        multi.verify(headers(secret="a", **{"X-Shopify-Shop-Domain": "1-" * 5000 + "a"}), BODY)
    assert len(str(refused.value)) < 150  # the header is the sender's: it is logged and answered
