"""Scheme `hmac`: header, algorithm, encoding, prefix, topic and id options."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from bridge.errors import ConfigError, SignatureError
from bridge.model import Webhook
from bridge.settings import SourceSettings, secrets_from
from bridge.sources import build_source
from bridge.sources.generic import HmacSource, dotted

BODY = b'{"event": {"type": "member.joined"}, "id": 9}'


def sign(secret: str, body: bytes = BODY, algorithm: str = "sha256", encoding: str = "hex") -> str:
    mac = hmac.new(secret.encode(), body, algorithm).digest()
    return mac.hex() if encoding == "hex" else base64.b64encode(mac).decode()


def source(secrets: str = "k", /, **options: object) -> HmacSource:
    built = build_source(SourceSettings("partner", "hmac", secrets_from(secrets), {"header": "X-Signature", **options}))
    assert isinstance(built, HmacSource)
    return built


def test_defaults_hex_sha256() -> None:
    hook = source().verify({"X-Signature": sign("k")}, BODY)
    assert isinstance(hook, Webhook)
    assert hook.topic == "" and hook.secret_index == 0 and hook.headers == {}
    assert hook.dedupe_key == "|sha256:" + hashlib.sha256(BODY).hexdigest()


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_algorithms_and_encodings(algorithm: str, encoding: str) -> None:
    s = source(algorithm=algorithm, encoding=encoding)
    assert isinstance(s.verify({"X-Signature": sign("k", algorithm=algorithm, encoding=encoding)}, BODY), Webhook)
    other = "base64" if encoding == "hex" else "hex"
    with pytest.raises(SignatureError):
        s.verify({"X-Signature": sign("k", algorithm=algorithm, encoding=other)}, BODY)


def test_prefix() -> None:
    s = source(prefix="sha256=")
    assert isinstance(s.verify({"X-Signature": "sha256=" + sign("k")}, BODY), Webhook)
    with pytest.raises(SignatureError, match="does not start with 'sha256='"):
        s.verify({"X-Signature": sign("k")}, BODY)


def test_tampered_missing_wrong_rotated() -> None:
    s = source("old,new")
    with pytest.raises(SignatureError, match="does not match"):
        s.verify({"X-Signature": sign("new")}, BODY + b" ")
    with pytest.raises(SignatureError, match="missing X-Signature header"):
        s.verify({}, BODY)
    with pytest.raises(SignatureError, match="does not match any configured secret"):
        s.verify({"X-Signature": sign("other")}, BODY)
    hook = s.verify({"X-Signature": sign("new")}, BODY)
    assert isinstance(hook, Webhook) and hook.secret_index == 1


def test_base64_where_hex_expected() -> None:
    with pytest.raises(SignatureError, match="not hex"):
        source().verify({"X-Signature": sign("k", encoding="base64")}, BODY)


def test_topic_header_and_id_header() -> None:
    s = source(topic_header="X-Event", id_header="X-Delivery")
    h = {"X-Signature": sign("k"), "X-Event": "member.joined", "X-Delivery": "d-1"}
    hook = s.verify(h, BODY)
    assert isinstance(hook, Webhook)
    assert hook.topic == "member.joined" and hook.dedupe_key == "d-1"
    assert hook.headers == {"x-event": "member.joined", "x-delivery": "d-1"}


def test_topic_field() -> None:
    hook = source(topic_field="event.type").verify({"X-Signature": sign("k")}, BODY)
    assert isinstance(hook, Webhook) and hook.topic == "member.joined"


def test_dotted() -> None:
    assert dotted({"a": [{"b": "x"}]}, "a.0.b") == "x"
    assert dotted({"a": 1}, "a.b") is None
    assert dotted(None, "a") is None


def test_different_topics_same_body_are_different_events() -> None:
    s = source(topic_header="X-Event")
    a = s.verify({"X-Signature": sign("k"), "X-Event": "a"}, BODY)
    b = s.verify({"X-Signature": sign("k"), "X-Event": "b"}, BODY)
    assert isinstance(a, Webhook) and isinstance(b, Webhook) and a.dedupe_key != b.dedupe_key


@pytest.mark.parametrize(
    "options, message",
    [
        ({"header": None}, "requires option 'header'"),
        ({"algorithm": "md5"}, "must be one of sha256, sha1, sha512"),
        ({"encoding": "base32"}, "must be one of hex, base64"),
        ({"colour": "red"}, "unknown option 'colour'"),
        ({"topic_header": "X-A", "topic_field": "a"}, "not both"),
        ({"id_header": "x-signature"}, "must not be the signature header"),
        ({"header": "X Signature"}, "not an HTTP header name"),
    ],
)
def test_bad_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        source(**options)
    assert str(info.value).startswith("source partner:")


def test_no_secret() -> None:
    with pytest.raises(SignatureError, match="no secret is configured"):
        source("").verify({"X-Signature": sign("k")}, BODY)
