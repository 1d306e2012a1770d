"""Omneo: lowercase hex HMAC-SHA256 in X-Omneo-Hmac-SHA256, dedupe on event + id + updated_at."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from bridge.errors import SignatureError
from bridge.model import Webhook
from bridge.settings import SourceSettings, secrets_from
from bridge.sources import build_source
from bridge.sources.omneo import OmneoSource

PROFILE = {"id": "8e6f1c2a-7b1d-4c55-9a0e-3f2b1c4d5e6f", "first_name": "Ana", "updated_at": "2026-11-23 10:00:00"}
BODY = json.dumps(PROFILE).encode()


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers(body: bytes = BODY, secret: str = "omneo-secret", event: str = "profile.updated") -> dict[str, str]:
    return {"X-Omneo-Hmac-SHA256": sign(body, secret), "X-Omneo-Event": event, "Content-Type": "application/json"}


def source(secrets: str = "omneo-secret") -> OmneoSource:
    built = build_source(SourceSettings("omneo", "omneo", secrets_from(secrets)))
    assert isinstance(built, OmneoSource)
    return built


def test_valid_delivery() -> None:
    hook = source().verify(headers(), BODY)
    assert isinstance(hook, Webhook)
    assert hook.topic == "profile.updated"
    assert hook.dedupe_key == (f"profile.updated|{PROFILE['id']}|2026-11-23 10:00:00|"
                               f"sha256:{hashlib.sha256(BODY).hexdigest()}")
    assert hook.headers == {"x-omneo-event": "profile.updated"}
    assert hook.secret_index == 0


def test_tampered_body() -> None:
    with pytest.raises(SignatureError):
        source().verify(headers(), BODY.replace(b"Ana", b"Eve"))


def test_missing_header() -> None:
    with pytest.raises(SignatureError, match="missing X-Omneo-Hmac-SHA256 header"):
        source().verify({"X-Omneo-Event": "profile.updated"}, BODY)


def test_wrong_secret() -> None:
    with pytest.raises(SignatureError, match="does not match any configured secret"):
        source().verify(headers(secret="nope"), BODY)


def test_rotated_secret() -> None:
    hook = source("old,omneo-secret").verify(headers(), BODY)
    assert isinstance(hook, Webhook) and hook.secret_index == 1


def test_base64_signature_is_refused() -> None:
    b64 = base64.b64encode(hmac.new(b"omneo-secret", BODY, hashlib.sha256).digest()).decode()
    with pytest.raises(SignatureError, match="not hex"):
        source().verify({"X-Omneo-Hmac-SHA256": b64, "X-Omneo-Event": "profile.updated"}, BODY)


def test_dedupe() -> None:
    s = source()
    first, again = s.verify(headers(), BODY), s.verify(headers(), BODY)
    tier = s.verify(headers(event="tier.achieved"), BODY)
    newer_body = json.dumps(dict(PROFILE, updated_at="2026-11-23 10:01:00")).encode()
    newer = s.verify(headers(newer_body), newer_body)
    # another change in the same second (updated_at counts whole seconds): another webhook, kept
    same_second_body = json.dumps(dict(PROFILE, point_balance=999)).encode()
    same_second = s.verify(headers(same_second_body), same_second_body)
    keys = [h.dedupe_key for h in (first, again, tier, newer, same_second) if isinstance(h, Webhook)]
    assert len(keys) == 5
    assert keys[0] == keys[1]
    assert len({keys[0], keys[2], keys[3], keys[4]}) == 4


def test_dedupe_falls_back_to_body_hash() -> None:
    body = b'{"id": 5, "points": 10}'
    hook = source().verify(headers(body, event="point.created"), body)
    assert isinstance(hook, Webhook)
    assert hook.dedupe_key == f"point.created|sha256:{hashlib.sha256(body).hexdigest()}"


def test_malformed_json_and_missing_event() -> None:
    body = b"\xff\xfe not json"
    h = headers(body)
    del h["X-Omneo-Event"]
    hook = source().verify(h, body)
    assert isinstance(hook, Webhook)
    assert not hook.payload_ok and hook.topic == "" and hook.dedupe_key.endswith(hashlib.sha256(body).hexdigest())
