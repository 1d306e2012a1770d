"""Scheme `hmac`: any sender that puts an HMAC of the raw body in one header.

Everything provider-specific is an option: which header, which hash, hex or
base64, an optional prefix such as `sha256=` (GitHub style), where the topic
is (a header or a dotted path into the JSON body) and which header, if any,
carries a delivery id stable across resends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bridge.model import Ping, Webhook
from bridge.settings import Secret, SourceSettings
from bridge.sources.options import Option, OptionError, check_options, header_name, one_of, text
from bridge.sources.signature import (
    ALGORITHMS,
    ENCODINGS,
    body_hash,
    dedupe_key,
    kept,
    lower_headers,
    parse_json,
    verify_header_hmac,
)


def _prefix(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string such as 'sha256=', got {value!r}")
    return value


OPTIONS = {
    "header": Option("header", "the header carrying the signature, e.g. X-Signature", required=True, check=header_name),
    "algorithm": Option("algorithm", "sha256 (default), sha1 or sha512", check=one_of(*ALGORITHMS)),
    "encoding": Option("encoding", "hex (default) or base64", check=one_of(*ENCODINGS)),
    "prefix": Option("prefix", "text before the signature, e.g. 'sha256='", check=_prefix),
    "topic_header": Option("topic_header", "the header carrying the event name", check=header_name),
    "topic_field": Option("topic_field", "dotted path to the event name in the JSON body, e.g. data.type", check=text),
    "id_header": Option("id_header", "the header carrying an id stable across resends", check=header_name),
}


def dotted(payload: Any, path: str) -> Any:
    """`payload["a"]["b"]` for "a.b"; a numeric part indexes a list. None when absent."""
    value = payload
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


class HmacSource:
    scheme = "hmac"

    def __init__(
        self,
        name: str,
        secrets: Sequence[Secret] = (),
        *,
        header: str,
        algorithm: str = "sha256",
        encoding: str = "hex",
        prefix: str = "",
        topic_header: str | None = None,
        topic_field: str | None = None,
        id_header: str | None = None,
    ) -> None:
        if topic_header and topic_field:
            raise OptionError("topic_field", "give topic_header or topic_field, not both")
        for option, value in (("topic_header", topic_header), ("id_header", id_header)):
            # These headers are stored with the event; the signature must never be.
            if value and value.lower() == header.lower():
                raise OptionError(option, f"{option} must not be the signature header {header}")
        self.name = name
        self._keys = tuple(s.value.encode() for s in secrets)
        self._header = header
        self._algorithm = algorithm
        self._encoding = encoding
        self._prefix = prefix
        self._topic_header = topic_header.lower() if topic_header else None
        self._topic_field = topic_field
        self._id_header = id_header.lower() if id_header else None

    @classmethod
    def from_settings(cls, settings: SourceSettings) -> HmacSource:
        options = check_options(cls.scheme, OPTIONS, settings.options)
        return cls(settings.name, settings.secrets, **options)

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def verify(self, headers: Mapping[str, str], body: bytes) -> Webhook | Ping:
        h = lower_headers(headers)
        index = verify_header_hmac(
            self.name,
            h,
            body,
            self._keys,
            header=self._header,
            algorithm=self._algorithm,
            encoding=self._encoding,
            prefix=self._prefix,
        )
        payload, ok = parse_json(body)
        topic: Any = ""
        if self._topic_header:
            topic = h.get(self._topic_header, "").strip()
        elif self._topic_field:
            topic = dotted(payload, self._topic_field)
        topic = topic if isinstance(topic, str) else ""
        delivery_id = h.get(self._id_header, "").strip() if self._id_header else ""
        key = dedupe_key(delivery_id) if delivery_id else dedupe_key(topic, body_hash(body))
        return Webhook(
            source=self.name,
            topic=topic,
            dedupe_key=key,
            body=body,
            headers=kept(h, [n for n in (self._topic_header, self._id_header) if n]),
            payload_ok=ok,
            secret_index=index,
        )
