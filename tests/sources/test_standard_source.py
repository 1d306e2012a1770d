"""Standard Webhooks: the spec's test vector, the replay window, several signatures, rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import datetime, timezone

import pytest
import standardwebhooks

from bridge.errors import ConfigError, SignatureError
from bridge.model import Webhook
from bridge.settings import SourceSettings, secrets_from
from bridge.sources import build_source
from bridge.sources.standard import StandardSource

# Published in the Standard Webhooks spec and its reference libraries' tests.
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
OTHER_SECRET = "whsec_" + base64.b64encode(b"another key of thirty-two bytes!").decode()


def source(secrets: str = VECTOR_SECRET, now: float = VECTOR_TS, **options: object) -> StandardSource:
    built = build_source(SourceSettings("partner", "standard", secrets_from(secrets), options), clock=lambda: now)
    assert isinstance(built, StandardSource)
    return built


def headers(signature: str = VECTOR_SIGNATURE, msg_id: str = VECTOR_ID, ts: int = VECTOR_TS) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def sign(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def test_spec_test_vector() -> None:
    hook = source().verify(headers(), VECTOR_BODY)
    assert isinstance(hook, Webhook)
    assert hook.dedupe_key == VECTOR_ID
    assert hook.secret_index == 0
    assert hook.topic == ""  # the vector's payload has no `type`
    assert hook.headers == {"webhook-id": VECTOR_ID, "webhook-timestamp": str(VECTOR_TS)}


def test_agrees_with_the_reference_library() -> None:
    now = datetime.now(tz=timezone.utc)
    body = '{"type": "contact.created", "data": {"id": 1}}'
    signature = standardwebhooks.Webhook(VECTOR_SECRET).sign("msg_1", now, body)
    h = headers(signature, "msg_1", int(now.timestamp()))
    hook = source(now=time.time()).verify(h, body.encode())
    assert isinstance(hook, Webhook) and hook.topic == "contact.created"
    standardwebhooks.Webhook(VECTOR_SECRET).verify(body.encode(), h)


def test_tampered_body() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        source().verify(headers(), b'{"test": 2432232315}')


def test_tampered_id_or_timestamp() -> None:
    with pytest.raises(SignatureError):
        source().verify(headers(msg_id="msg_other"), VECTOR_BODY)
    with pytest.raises(SignatureError):
        source(now=VECTOR_TS + 1).verify(headers(ts=VECTOR_TS + 1), VECTOR_BODY)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header(missing: str) -> None:
    h = headers()
    del h[missing]
    with pytest.raises(SignatureError, match=f"missing {missing} header"):
        source().verify(h, VECTOR_BODY)


def test_wrong_secret() -> None:
    with pytest.raises(SignatureError, match="does not match any configured secret"):
        source(OTHER_SECRET).verify(headers(), VECTOR_BODY)


def test_rotated_secret() -> None:
    hook = source(f"{OTHER_SECRET},{VECTOR_SECRET}").verify(headers(), VECTOR_BODY)
    assert isinstance(hook, Webhook) and hook.secret_index == 1


def test_hex_signature_is_refused() -> None:
    raw = base64.b64decode(VECTOR_SIGNATURE.split(",")[1])
    # 64 hex digits are also base64 (of 48 bytes): refused as a mismatch, not as bad encoding.
    with pytest.raises(SignatureError, match="does not match"):
        source().verify(headers("v1," + raw.hex()), VECTOR_BODY)


@pytest.mark.parametrize(
    "offset, words",
    [(-301, "too old"), (301, "in the future")],
)
def test_stale_and_future_timestamps(offset: int, words: str) -> None:
    ts = VECTOR_TS + offset
    h = headers(sign(VECTOR_SECRET, VECTOR_ID, ts, VECTOR_BODY), ts=ts)
    with pytest.raises(SignatureError, match=f"timestamp outside the 300 s window \\({words}\\)"):
        source().verify(h, VECTOR_BODY)


def test_edge_of_window_and_custom_tolerance() -> None:
    ts = VECTOR_TS - 300
    h = headers(sign(VECTOR_SECRET, VECTOR_ID, ts, VECTOR_BODY), ts=ts)
    assert isinstance(source().verify(h, VECTOR_BODY), Webhook)
    with pytest.raises(SignatureError, match="60 s window"):
        source(tolerance_seconds=60).verify(h, VECTOR_BODY)


@pytest.mark.parametrize("ts", ["1614265330.5", "-1", "abc", "1e9", " "])
def test_malformed_timestamp(ts: str) -> None:
    with pytest.raises(SignatureError):
        source().verify({**headers(), "webhook-timestamp": ts}, VECTOR_BODY)


def test_several_signatures_in_one_header() -> None:
    other = sign(OTHER_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY)
    for value in (
        f"{other} {VECTOR_SIGNATURE}",
        f"v1a,bm90IGVkMjU1MTk= {VECTOR_SIGNATURE}",
        f"garbage v2,abc= {VECTOR_SIGNATURE}",
    ):
        assert isinstance(source().verify(headers(value), VECTOR_BODY), Webhook)
    with pytest.raises(SignatureError, match="does not match"):
        source().verify(headers(f"{other} v1,AAAA"), VECTOR_BODY)


def test_topic_from_payload_type_and_malformed_json() -> None:
    body = b'{"type": "order.paid", "data": {}}'
    hook = source().verify(headers(sign(VECTOR_SECRET, "m1", VECTOR_TS, body), "m1"), body)
    assert isinstance(hook, Webhook) and hook.topic == "order.paid" and hook.payload_ok
    bad = b"{not json"
    hook = source().verify(headers(sign(VECTOR_SECRET, "m2", VECTOR_TS, bad), "m2"), bad)
    assert isinstance(hook, Webhook) and not hook.payload_ok and hook.dedupe_key == "m2" and hook.topic == ""


def test_dedupe_key_is_the_message_id_across_retries() -> None:
    retry_ts = VECTOR_TS + 5
    retry = headers(sign(VECTOR_SECRET, VECTOR_ID, retry_ts, VECTOR_BODY), ts=retry_ts)
    first = source().verify(headers(), VECTOR_BODY)
    again = source(now=retry_ts).verify(retry, VECTOR_BODY)
    assert isinstance(first, Webhook) and isinstance(again, Webhook) and first.dedupe_key == again.dedupe_key


def test_no_secret_and_bad_secret() -> None:
    with pytest.raises(SignatureError, match="no secret is configured"):
        source("").verify(headers(), VECTOR_BODY)
    with pytest.raises(ConfigError, match="secret #1") as info:
        source("whsec_!!!not-base64")
    assert "not-base64" not in str(info.value)


def test_secret_without_prefix_or_padding() -> None:
    bare = VECTOR_SECRET.removeprefix("whsec_").rstrip("=")
    assert isinstance(source(bare).verify(headers(), VECTOR_BODY), Webhook)
