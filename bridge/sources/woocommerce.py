"""WooCommerce: base64 HMAC-SHA256 of the raw body in X-WC-Webhook-Signature.

WooCommerce signs with `wp_specialchars_decode($secret, ENT_QUOTES)`, so the
configured secret goes through the same decoding: the operator pastes the
secret exactly as typed into WooCommerce. When a webhook is saved as active,
WooCommerce posts an unsigned form body `webhook_id=<id>` and will not
activate the webhook unless it gets a 200: that ping is answered, never stored.

X-WC-Webhook-Delivery-ID changes on every resend, so the dedupe key is the
topic plus the resource's `id` and `date_modified`, from the signed body: the
headers are not signed, and a captured body sent again under another webhook
or delivery id is a duplicate (two webhooks on one topic deliver one event).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from bridge.errors import SignatureError
from bridge.model import Ping, Webhook
from bridge.settings import Secret, SourceSettings
from bridge.sources.options import Option, check_options, one_of
from bridge.sources.shape import check_woocommerce
from bridge.sources.signature import (
    ALGORITHMS,
    body_hash,
    dedupe_key,
    field,
    kept,
    lower_headers,
    not_configured,
    parse_json,
    verify_header_hmac,
)

SIGNATURE_HEADER = "X-WC-Webhook-Signature"
KEPT_HEADERS = (
    "x-wc-webhook-topic",
    "x-wc-webhook-resource",
    "x-wc-webhook-event",
    "x-wc-webhook-id",
    "x-wc-webhook-delivery-id",
    "x-wc-webhook-source",
)
_PING = re.compile(rb"webhook_id=[0-9]+")

OPTIONS = {
    # Only for sites that change it with the woocommerce_webhook_hash_algorithm filter.
    "algorithm": Option("algorithm", "HMAC hash: sha256 (WooCommerce default), sha1 or sha512", check=one_of(*ALGORITHMS)),
}

# wp_specialchars_decode(..., ENT_QUOTES): zero-padded numeric entities are
# normalised first, then one pass over this table (PHP strtr, longest first).
_PADDED = (
    (re.compile(r"&#0*39;"), "&#039;"),
    (re.compile(r"&#x0*27;", re.IGNORECASE), "&#x27;"),
    (re.compile(r"&#0*34;"), "&#034;"),
    (re.compile(r"&#x0*22;", re.IGNORECASE), "&#x22;"),
    (re.compile(r"&#0*60;"), "&#060;"),
    (re.compile(r"&#0*62;"), "&#062;"),
    (re.compile(r"&#0*38;"), "&#038;"),
    (re.compile(r"&#x0*26;", re.IGNORECASE), "&#x26;"),
)
_ENTITIES = {
    "&#039;": "'", "&#x27;": "'",
    "&quot;": '"', "&#034;": '"', "&#x22;": '"',
    "&lt;": "<", "&#060;": "<", "&gt;": ">", "&#062;": ">",
    "&amp;": "&", "&#038;": "&", "&#x26;": "&",
}  # fmt: skip
_ENTITY = re.compile("|".join(re.escape(e) for e in sorted(_ENTITIES, key=len, reverse=True)))


def wp_specialchars_decode(text: str) -> str:
    """The secret WooCommerce actually signs with, from the secret as entered."""
    if "&" not in text:
        return text
    for pattern, replacement in _PADDED:
        text = pattern.sub(replacement, text)
    return _ENTITY.sub(lambda m: _ENTITIES[m.group(0)], text)


class WooCommerceSource:
    scheme = "woocommerce"

    def __init__(self, name: str, secrets: Sequence[Secret] = (), algorithm: str = "sha256") -> None:
        self.name = name
        self._keys = tuple(wp_specialchars_decode(s.value).encode() for s in secrets)
        self._algorithm = algorithm

    @classmethod
    def from_settings(cls, settings: SourceSettings) -> WooCommerceSource:
        options = check_options(cls.scheme, OPTIONS, settings.options)
        return cls(settings.name, settings.secrets, options.get("algorithm", "sha256"))

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def verify(self, headers: Mapping[str, str], body: bytes) -> Webhook | Ping:
        h = lower_headers(headers)
        if not self._keys:
            raise not_configured(self.name)
        if "x-wc-webhook-signature" not in h:
            if _PING.fullmatch(body.strip()) and not any(name.startswith("x-wc-webhook-") for name in h):
                return Ping(source=self.name)
            raise SignatureError(f"missing {SIGNATURE_HEADER} header")
        index = verify_header_hmac(
            self.name, h, body, self._keys, header=SIGNATURE_HEADER, algorithm=self._algorithm, encoding="base64"
        )
        payload, ok = parse_json(body)
        topic = h.get("x-wc-webhook-topic", "").strip()
        if ok:
            check_woocommerce(topic, payload)
        resource_id, modified = field(payload, "id"), field(payload, "date_modified")
        if resource_id is not None and modified is not None:
            key = dedupe_key(topic, resource_id, modified)
        else:
            # Deleted resources arrive as {"id": N}: the same body under another topic is another event.
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
