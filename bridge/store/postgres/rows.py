"""Rows as the bridge's records, and text PostgreSQL can store."""

from __future__ import annotations

import json
from typing import Any

from bridge import jsoncodec
from bridge.model import Event, Message
from bridge.store.sqlite.rows import unpack_body

EVENT_COLUMNS = "id, source, topic, dedupe_key, received_at, headers, body, body_codec, status"
MESSAGE_COLUMNS = (
    "id, event_id, destination, kind, action, record, rule, ordering_key, idempotency_key, attempts, created_at, claim,"
    " submitted_at"
)


def storable(text: str) -> str:
    """`text` as PostgreSQL can hold it: a text value cannot contain NUL, nor a lone surrogate
    (a signed body may carry either in a field the bridge keeps, such as a dedupe key)."""
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def event_from_row(row: dict[str, Any]) -> Event:
    return Event(
        id=int(row["id"]),
        source=row["source"],
        topic=row["topic"],
        dedupe_key=row["dedupe_key"],
        received_at=row["received_at"],
        headers=json.loads(row["headers"]),
        body=unpack_body(row["body"], row["body_codec"]),
        status=row["status"],
    )


def message_from_row(row: dict[str, Any]) -> Message:
    return Message(
        id=int(row["id"]),
        event_id=int(row["event_id"]),
        destination=row["destination"],
        kind=row["kind"],
        action=row["action"],
        record=jsoncodec.loads(row["record"]),
        rule=row["rule"],
        key=row["ordering_key"],
        idempotency_key=row["idempotency_key"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        claim=row["claim"] or "",
        submitted_at=row["submitted_at"],
    )
