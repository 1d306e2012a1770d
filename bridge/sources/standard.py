"""Standard Webhooks (standardwebhooks.com): `v1` HMAC-SHA256 over "{id}.{timestamp}.{body}".

The reference `standardwebhooks` library decodes the body as text, fixes the
window at five minutes, reads the wall clock and lets malformed signature
entries escape as ValueError. This module implements the same `v1` scheme
over the exact raw bytes, with a configurable window and an injected clock
(tests check it against the library and the spec's published vector).
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from typing import Callable, Mapping, Sequence

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

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_SECONDS = 300.0
KEPT_HEADERS = ("webhook-id", "webhook-timestamp")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")

OPTIONS = {
    "tolerance_seconds": Option(
        "tolerance_seconds", "how far webhook-timestamp may be from now, either way (default 300)", check=positive_seconds
    ),
}


def signing_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (the prefix is optional)."""
    encoded = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        # Some senders show the secret without base64 padding.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (ValueError, binascii.Error):
        key = b""
    if not key:
        raise ValueError("is not a whsec_ secret (whsec_ followed by base64)")
    return key


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
            raise SignatureError("webhook-timestamp is not a whole number of seconds")
        skew = self._clock() - int(stamp)
        if abs(skew) > self._tolerance:
            direction = "too old" if skew > 0 else "in the future"
            raise SignatureError(f"timestamp outside the {self._tolerance:g} s window ({direction})")
        # "v1,<base64>" entries separated by spaces; other versions (v1a) are skipped.
        claimed = []
        for entry in h["webhook-signature"].split():
            version, _, value = entry.partition(",")
            decoded = decode_signature(value, "base64") if version == "v1" else None
            if decoded is not None:
                claimed.append(decoded)
        if not claimed:
            raise SignatureError("webhook-signature has no v1,<base64> signature")
        message = msg_id.encode() + b"." + stamp.encode() + b"." + body
        index = matching_secret(self._keys, message, claimed)
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
