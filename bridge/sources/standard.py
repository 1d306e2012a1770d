"""Standard Webhooks (standardwebhooks.com): signatures over "{id}.{timestamp}.{body}".

Two schemes, told apart by the configured key, as the spec serialises them:
`whsec_<base64>` is a shared secret for `v1` (HMAC-SHA256), `whpk_<base64>` the
sender's ed25519 public key for `v1a`. A source may list both kinds, in any
order (rotation, or a move from one scheme to the other); the header may carry
several signatures, and the first configured key that one of them matches wins.

The reference `standardwebhooks` library decodes the body as text, fixes the
window at five minutes, reads the wall clock, lets malformed signature entries
escape as ValueError and knows no `v1a`. This module implements the schemes
over the exact raw bytes, with a configurable window and an injected clock
(tests check `v1` against the library and the spec's published vector).
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable, Mapping, Sequence

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bridge.errors import ConfigError, SignatureError
from bridge.model import Ping, Webhook
from bridge.settings import Secret, SourceSettings
from bridge.sources.options import Option, check_options, positive_seconds
from bridge.sources.signature import (
    decode_signature,
    dedupe_key,
    kept,
    lower_headers,
    matching_secret,
    not_configured,
    parse_json,
)

log = structlog.get_logger("bridge.sources")

SECRET_PREFIX = "whsec_"
PUBLIC_KEY_PREFIX = "whpk_"
PRIVATE_KEY_PREFIX = "whsk_"
MAX_SIGNATURES = 8  # entries of webhook-signature read; senders send one, two while they rotate
DEFAULT_TOLERANCE_SECONDS = 300.0
KEPT_HEADERS = ("webhook-id", "webhook-timestamp")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")

OPTIONS = {
    "tolerance_seconds": Option(
        "tolerance_seconds", "how far webhook-timestamp may be from now, either way (default 300)", check=positive_seconds
    ),
}


def _base64(encoded: str) -> bytes:
    try:
        # Some senders show keys without base64 padding.
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (ValueError, binascii.Error):
        return b""


def signing_key(secret: str) -> bytes | Ed25519PublicKey:
    """The HMAC key of a `whsec_<base64>` secret (the prefix is optional), or the public key of a `whpk_<base64>` one."""
    if secret.startswith(PUBLIC_KEY_PREFIX):
        raw = _base64(secret[len(PUBLIC_KEY_PREFIX) :])
        if len(raw) != 32:
            raise ValueError("is not a whpk_ public key (whpk_ followed by the base64 of a 32-byte ed25519 key)")
        return Ed25519PublicKey.from_public_bytes(raw)
    if secret.startswith(PRIVATE_KEY_PREFIX):
        raise ValueError("is the sender's private key (whsk_): configure its public key (whpk_) instead,"
                         " and treat this one as leaked")
    key = _base64(secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret)
    if not key:
        raise ValueError("is not a whsec_ secret (whsec_ followed by base64) nor a whpk_ public key")
    return key


def matching_key(keys: Sequence[bytes | Ed25519PublicKey], message: bytes, v1: list[bytes], v1a: list[bytes]) -> int | None:
    """Index of the first key that one of the claimed signatures of its kind matches."""
    for index, key in enumerate(keys):
        if isinstance(key, bytes):
            if v1 and matching_secret([key], message, v1) is not None:
                return index
            continue
        for signature in v1a:
            try:
                key.verify(signature, message)
            except InvalidSignature:
                continue
            return index
    return None


class StandardSource:
    scheme = "standard"

    def __init__(
        self,
        name: str,
        secrets: Sequence[Secret] = (),
        tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        keys = []
        for position, secret in enumerate(secrets, start=1):
            try:
                keys.append(signing_key(secret.value))
            except ValueError as exc:
                # Which one, never its value.
                raise ConfigError(f"source {name}: secret #{position} {exc}") from None
            if not secret.value.startswith((SECRET_PREFIX, PUBLIC_KEY_PREFIX)):
                # A public key pasted without whpk_ would become a shared secret that anyone
                # holding the key could sign v1 with: say which reading was taken.
                log.warning("source.secret_without_prefix", source=name, position=position,
                            read_as="whsec_ (v1 shared secret)",
                            fix="prefix it with whsec_, or with whpk_ if it is the sender's ed25519 public key")
        self._keys = tuple(keys)
        self._tolerance = tolerance_seconds
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: SourceSettings, clock: Callable[[], float] = time.time) -> StandardSource:
        options = check_options(cls.scheme, OPTIONS, settings.options)
        tolerance = options.get("tolerance_seconds", DEFAULT_TOLERANCE_SECONDS)
        return cls(settings.name, settings.secrets, tolerance, clock)

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def verify(self, headers: Mapping[str, str], body: bytes) -> Webhook | Ping:
        if not self._keys:
            raise not_configured(self.name)
        h = lower_headers(headers)
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
            if not h.get(name, "").strip():
                raise SignatureError(f"missing {name} header")
        msg_id, stamp = h["webhook-id"].strip(), h["webhook-timestamp"].strip()
        if "." in msg_id or not msg_id.isascii():
            raise SignatureError("webhook-id must be ASCII without full stops")
        if not _TIMESTAMP.fullmatch(stamp):
            if stamp.isdigit() and len(stamp) in (13, 14):  # a sender's common slip
                raise SignatureError("webhook-timestamp looks like milliseconds; it must be whole seconds since 1970")
            raise SignatureError("webhook-timestamp is not a whole number of seconds")
        skew = self._clock() - int(stamp)
        if abs(skew) > self._tolerance:
            direction = "too old" if skew > 0 else "in the future"
            raise SignatureError(f"timestamp outside the {self._tolerance:g} s window ({direction})")
        # "v1,<base64>" and "v1a,<base64>" entries separated by spaces; other versions are skipped.
        claimed: dict[str, list[bytes]] = {"v1": [], "v1a": []}
        # At most MAX_SIGNATURES entries are read: an ed25519 check costs ~70 us, and a forged
        # header of thousands of entries must not buy that many.
        for entry in h["webhook-signature"].split()[:MAX_SIGNATURES]:
            version, _, value = entry.partition(",")
            decoded = decode_signature(value, "base64") if version in claimed else None
            if decoded is not None:
                claimed[version].append(decoded)
        if not claimed["v1"] and not claimed["v1a"]:
            raise SignatureError("webhook-signature has no v1,<base64> or v1a,<base64> signature")
        message = msg_id.encode() + b"." + stamp.encode() + b"." + body
        index = matching_key(self._keys, message, claimed["v1"], claimed["v1a"])
        if index is None:
            raise SignatureError("signature does not match any configured secret")
        payload, ok = parse_json(body)
        topic = payload.get("type") if isinstance(payload, dict) else None
        return Webhook(
            source=self.name,
            topic=topic if isinstance(topic, str) else "",
            # The spec's idempotency key: the same id on every retry of one message.
            dedupe_key=dedupe_key(msg_id),
            body=body,
            headers=kept(h, KEPT_HEADERS),
            payload_ok=ok,
            secret_index=index,
        )
