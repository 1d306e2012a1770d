"""Omneo: lowercase hex HMAC-SHA256 of the raw body in X-Omneo-Hmac-SHA256.

Omneo sends no delivery id and no timestamp (apis.md 3.4), and the body is
the event context itself (a profile, a transaction) without an envelope, so
the dedupe key is the trigger name plus the context's `id`, its `updated_at`
and a hash of the body, or the trigger and the hash when either is missing.
`updated_at` counts whole seconds: two changes of one profile in one second (a
member's choice in the preference centre just as the bridge's own write comes
back, points and a tier at once) are two webhooks with different bodies, and
both are kept; the same delivery again is the same bytes. X-Omneo-Event is not signed: the
key's other parts come from the signed body, so a captured body sent again under
the same trigger is a duplicate, and bridge.sources.shape refuses a body the
trigger cannot have.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bridge.model import Ping, Webhook
from bridge.settings import Secret, SourceSettings
from bridge.sources.options import Option, check_options
from bridge.sources.shape import check_omneo
from bridge.sources.signature import (
    body_hash,
    dedupe_key,
    field,
    kept,
    lower_headers,
    parse_json,
    verify_header_hmac,
)

SIGNATURE_HEADER = "X-Omneo-Hmac-SHA256"
KEPT_HEADERS = ("x-omneo-event",)
OPTIONS: dict[str, Option] = {}


class OmneoSource:
    scheme = "omneo"

    def __init__(self, name: str, secrets: Sequence[Secret] = ()) -> None:
        self.name = name
        self._keys = tuple(s.value.encode() for s in secrets)

    @classmethod
    def from_settings(cls, settings: SourceSettings) -> OmneoSource:
        check_options(cls.scheme, OPTIONS, settings.options)
        return cls(settings.name, settings.secrets)

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def verify(self, headers: Mapping[str, str], body: bytes) -> Webhook | Ping:
        h = lower_headers(headers)
        index = verify_header_hmac(self.name, h, body, self._keys, header=SIGNATURE_HEADER, encoding="hex")
        payload, ok = parse_json(body)
        topic = h.get("x-omneo-event", "").strip()
        if ok:
            check_omneo(topic, payload)
        record_id, updated_at = field(payload, "id"), field(payload, "updated_at")
        if record_id is not None and updated_at is not None:
            key = dedupe_key(topic, record_id, updated_at, body_hash(body))
        else:
            key = dedupe_key(topic, body_hash(body))
        return Webhook(
            source=self.name,
            topic=topic,
            dedupe_key=key,
            body=body,
            headers=kept(h, KEPT_HEADERS),
            payload_ok=ok,
            secret_index=index,
        )
