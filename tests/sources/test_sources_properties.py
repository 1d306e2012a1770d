"""Properties: without the secret nothing verifies, and verify() raises only SignatureError."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import MalformedWebhook, SignatureError
from bridge.model import Ping, Webhook
from bridge.settings import SourceSettings, secrets_from
from bridge.sources import Source, build_source
from bridge.sources.signature import is_json, parse_json

SECRET = "the-real-secret"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOW = 1_800_000_000

SOURCES: dict[str, Source] = {
    "shopify": build_source(SourceSettings("shopify", "shopify", secrets_from(SECRET), {"shops": {"a.myshopify.com": "shop-secret"}})),
    "woocommerce": build_source(SourceSettings("woocommerce", "woocommerce", secrets_from(SECRET))),
    "omneo": build_source(SourceSettings("omneo", "omneo", secrets_from(SECRET))),
    "standard": build_source(SourceSettings("standard", "standard", secrets_from(WHSEC)), clock=lambda: NOW),
    "hmac": build_source(
        SourceSettings("hmac", "hmac", secrets_from(SECRET), {"header": "X-Sig", "prefix": "sha256=", "topic_field": "a.b"})
    ),
}

# Every header name any scheme reads, so random values reach every branch.
HEADER_NAMES = [
    "X-Shopify-Hmac-Sha256", "X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-Event-Id", "X-Shopify-Webhook-Id",
    "X-WC-Webhook-Signature", "X-WC-Webhook-Topic", "X-WC-Webhook-ID", "X-WC-Webhook-Delivery-ID",
    "X-Omneo-Hmac-SHA256", "X-Omneo-Event",
    "webhook-id", "webhook-timestamp", "webhook-signature",
    "X-Sig", "Content-Type",
]  # fmt: skip


def plausible_value() -> st.SearchStrategy[str]:
    """Random text plus values shaped like real signatures, timestamps and domains."""
    return st.one_of(
        st.text(max_size=80),
        st.binary(min_size=0, max_size=64).map(lambda b: base64.b64encode(b).decode()),
        st.binary(min_size=0, max_size=64).map(bytes.hex),
        st.binary(min_size=32, max_size=32).map(lambda b: "v1," + base64.b64encode(b).decode()),
        st.binary(min_size=32, max_size=32).map(lambda b: "sha256=" + b.hex()),
        st.integers(NOW - 400, NOW + 400).map(str),
        st.sampled_from(["a.myshopify.com", "msg_1", "order.created", "12", ""]),
    )


headers_strategy = st.dictionaries(st.sampled_from(HEADER_NAMES), plausible_value(), max_size=len(HEADER_NAMES))
bodies = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"webhook_id=12", b'{"id": 1, "date_modified": "x", "updated_at": "y", "type": "t", "a": {"b": "c"}}', b"", b"[" * 5000]),
)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(SOURCES)), headers=headers_strategy, body=bodies)
def test_random_deliveries_never_verify(name: str, headers: dict[str, str], body: bytes) -> None:
    try:
        result = SOURCES[name].verify(headers, body)
    except SignatureError:
        return
    # The only unsigned thing answered is WooCommerce's ping, and it is never stored.
    assert isinstance(result, Ping) and name == "woocommerce", result


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300), topic=st.text(max_size=40), event_id=st.text(max_size=300))
def test_signed_deliveries_always_verify_with_a_bounded_key(body: bytes, topic: str, event_id: str) -> None:
    """With the right secret any body verifies (even non-JSON) and yields a dedupe key of bounded length,
    unless it is JSON its topic cannot have (MalformedWebhook, bridge.sources.shape)."""
    sig = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    hexsig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    for name, headers in (("shopify", {"X-Shopify-Hmac-Sha256": sig, "X-Shopify-Topic": topic, "X-Shopify-Event-Id": event_id}),
                          ("omneo", {"X-Omneo-Hmac-SHA256": hexsig, "X-Omneo-Event": topic})):
        try:
            hook = SOURCES[name].verify(headers, body)
        except MalformedWebhook:
            assert parse_json(body)[1], "only a JSON body is judged by its shape"
            continue
        assert isinstance(hook, Webhook) and hook.secret_index == 0
        assert 0 < len(hook.dedupe_key) < 400


# Bodies near JSON: real JSON (also re-encoded), then damaged by a cut, a stray byte or odd escapes.
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)
_near_json = st.one_of(
    _json_values.map(lambda v: json.dumps(v).encode()),
    _json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    st.tuples(_json_values, st.integers(0, 40)).map(lambda t: json.dumps(t[0]).encode()[: t[1]]),
    st.tuples(_json_values, st.binary(min_size=1, max_size=3)).map(lambda t: json.dumps(t[0]).encode() + t[1]),
    st.sampled_from([b'{"a": "\\ud800"}', b'\xef\xbb\xbf{"a": 1}', b'{"a": "\xff"}', b'[NaN]', b'{"a": "\x01"}',
                     '{"a": "é"}'.encode("utf-16"), b"[" * 3000 + b"]" * 3000, b"", b" 1 "]),
    st.binary(max_size=64),
)


@given(body=_near_json)
@settings(max_examples=500, deadline=None)
def test_is_json_agrees_with_parse_json(body: bytes) -> None:
    """The fast check on the acknowledgement path says "JSON" exactly when the full parse does."""
    assert is_json(body) == parse_json(body)[1]
