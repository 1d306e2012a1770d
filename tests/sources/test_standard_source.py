"""Standard Webhooks: the spec's test vector, the replay window, several signatures, rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bridge.errors import ConfigError, SignatureError
from bridge.model import Webhook
from bridge.settings import SourceSettings, secrets_from
from bridge.sign import standard_headers, standard_key_pair
from bridge.sources import build_source
from bridge.sources.standard import MAX_SIGNATURES, StandardSource, signing_key

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
    now = datetime.now(tz=UTC)
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


def test_a_timestamp_in_milliseconds_is_refused_with_a_hint() -> None:
    ts = VECTOR_TS * 1000
    h = headers(sign(VECTOR_SECRET, VECTOR_ID, ts, VECTOR_BODY), ts=ts)
    with pytest.raises(SignatureError, match="looks like milliseconds; it must be whole seconds"):
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
    with structlog.testing.capture_logs() as logs:
        assert isinstance(source(f"{VECTOR_SECRET},{bare}").verify(headers(), VECTOR_BODY), Webhook)
    # Read as a shared secret, and said so: it might be a public key pasted without whpk_.
    [warning] = [line for line in logs if line["event"] == "source.secret_without_prefix"]
    assert warning["position"] == 2 and "whpk_" in warning["fix"] and bare not in str(warning)


# -- v1a: ed25519 ----------------------------------------------------------------------------------

# RFC 8032, section 7.1, TEST 2: a raw ed25519 key pair, a one-byte message and its signature.
RFC8032_PUBLIC = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
RFC8032_MESSAGE = bytes.fromhex("72")
RFC8032_SIGNATURE = bytes.fromhex(
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")


def test_a_whpk_key_is_the_raw_ed25519_public_key() -> None:
    key = signing_key("whpk_" + base64.b64encode(RFC8032_PUBLIC).decode())
    assert isinstance(key, Ed25519PublicKey)
    key.verify(RFC8032_SIGNATURE, RFC8032_MESSAGE)  # raises if the key were decoded any other way


def test_v1a_signature_from_the_senders_private_key() -> None:
    private, public = standard_key_pair()
    h = standard_headers(VECTOR_BODY, private, msg_id=VECTOR_ID, timestamp=VECTOR_TS)
    assert h["webhook-signature"].startswith("v1a,")
    hook = source(public).verify(h, VECTOR_BODY)
    assert isinstance(hook, Webhook) and hook.secret_index == 0 and hook.dedupe_key == VECTOR_ID
    with pytest.raises(SignatureError, match="does not match"):
        source(public).verify(h, VECTOR_BODY + b" ")
    with pytest.raises(SignatureError, match="does not match"):
        source(public).verify({**h, "webhook-timestamp": str(VECTOR_TS + 1)}, VECTOR_BODY)
    with pytest.raises(SignatureError, match="does not match"):
        source(standard_key_pair()[1]).verify(h, VECTOR_BODY)  # another sender's key


def test_symmetric_and_asymmetric_keys_side_by_side() -> None:
    # Moving a sender from v1 to v1a: both keys configured, the header may carry either or both.
    private, public = standard_key_pair()
    both = source(f"{VECTOR_SECRET},{public}")
    v1a = standard_headers(VECTOR_BODY, private, msg_id=VECTOR_ID, timestamp=VECTOR_TS)["webhook-signature"]
    assert both.verify(headers(), VECTOR_BODY).secret_index == 0  # type: ignore[union-attr]
    assert both.verify(headers(v1a), VECTOR_BODY).secret_index == 1  # type: ignore[union-attr]
    forged_v1 = sign(OTHER_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY)
    assert both.verify(headers(f"{forged_v1} {v1a}"), VECTOR_BODY).secret_index == 1  # type: ignore[union-attr]
    # A v1 signature is never checked against a public key, nor a v1a one against a secret.
    with pytest.raises(SignatureError):
        source(public).verify(headers(), VECTOR_BODY)
    with pytest.raises(SignatureError):
        source(VECTOR_SECRET).verify(headers(v1a), VECTOR_BODY)


def test_a_header_of_many_signatures_is_read_only_up_to_its_first_entries() -> None:
    private, public = standard_key_pair()
    good = standard_headers(VECTOR_BODY, private, msg_id=VECTOR_ID, timestamp=VECTOR_TS)["webhook-signature"]
    bogus = "v1a," + base64.b64encode(bytes(64)).decode()
    assert isinstance(source(public).verify(headers(" ".join([bogus] * (MAX_SIGNATURES - 1) + [good])), VECTOR_BODY),
                      Webhook)
    with pytest.raises(SignatureError):
        source(public).verify(headers(" ".join([bogus] * MAX_SIGNATURES + [good])), VECTOR_BODY)


@pytest.mark.parametrize("secret, words", [
    ("whsk_" + base64.b64encode(bytes(range(32))).decode(), "private key"),
    ("whpk_" + base64.b64encode(bytes(31)).decode(), "32-byte ed25519 key"),
    ("whpk_not base64!", "32-byte ed25519 key"),
])
def test_a_wrong_key_is_refused_at_start_without_echoing_it(secret: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as refused:
        source(f"{VECTOR_SECRET},{secret}")
    assert "secret #2" in str(refused.value) and secret[5:] not in str(refused.value)
