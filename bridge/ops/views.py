"""What operators see of stored rows: times in ISO 8601, personal data masked unless revealed.

Shared by the CLI (`--json` prints exactly these) and the admin API, so both show the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.ops.masking import mask_record, mask_text, mask_value
from bridge.when import iso


def _text(value: str | None, reveal: bool) -> str | None:
    return value if reveal or value is None else mask_text(value)


def event_summary(row: Mapping[str, Any], reveal: bool = False) -> dict[str, Any]:
    return {
        "id": row["id"],
        "source": row["source"],
        "topic": row["topic"],
        "received_at": iso(row["received_at"]),
        "dedupe_key": _text(row["dedupe_key"], reveal),
        "status": row["status"],
        "rules": list(row["rules"]),
        "errors": [_text(e, reveal) for e in row["errors"]],
        "duplicates": row["duplicates"],
        "body_pruned": row["body_pruned"],
        "messages": dict(row["messages"]),
    }


def event_detail(detail: Mapping[str, Any], reveal: bool = False) -> dict[str, Any]:
    view = event_summary(dict(detail, messages={}), reveal)
    view["mapped_at"] = iso(detail["mapped_at"])
    view["headers"] = dict(detail["headers"]) if reveal else mask_record(detail["headers"])
    view["payload"] = detail["payload"] if reveal else mask_value(detail["payload"])
    view["messages"] = [message(m, reveal) for m in detail["messages"]]
    return view


def message(m: Mapping[str, Any], reveal: bool = False) -> dict[str, Any]:
    return {
        "id": m["id"],
        "destination": m["destination"],
        "kind": m["kind"],
        "action": m["action"],
        "rule": m["rule"],
        "ordering_key": _text(m["ordering_key"], reveal),
        "idempotency_key": m["idempotency_key"],
        "areas": list(m["areas"]),
        "state": m["state"],
        "attempts": m["attempts"],
        "next_at": iso(m["next_at"]) if m["state"] == "pending" else None,
        "created_at": iso(m["created_at"]),
        "updated_at": iso(m["updated_at"]),
        "last_status": m["last_status"],
        "last_detail": _text(m["last_detail"], reveal),
        "batch": m["batch"],
        "record": m["record"] if reveal else mask_record(m["record"]),
        "trail": [
            {"at": iso(a["at"]), "outcome": a["outcome"], "status": a["status"], "detail": _text(a["detail"], reveal)}
            for a in m["trail"]
        ],
    }


def dead_letter(row: Mapping[str, Any], reveal: bool = False) -> dict[str, Any]:
    return {
        "id": row["id"],
        "event_id": row["event_id"],
        "destination": row["destination"],
        "kind": row["kind"],
        "rule": row["rule"],
        "idempotency_key": row["idempotency_key"],
        "attempts": row["attempts"],
        "created_at": iso(row["created_at"]),
        "died_at": iso(row["died_at"]),
        "last_status": row["last_status"],
        "last_detail": _text(row["last_detail"], reveal),
    }


def audit_row(row: Mapping[str, Any], reveal: bool = False) -> dict[str, Any]:
    return {
        "at": iso(row["at"]),
        "outcome": row["outcome"],
        "status": row["status"],
        "destination": row["destination"],
        "kind": row["kind"],
        "action": row["action"],
        "areas": list(row["areas"]),
        "event_id": row["event_id"],
        "source": row["source"],
        "topic": row["topic"],
        "rule": row["rule"],
        "message_id": row["message_id"],
        "record": row["record"] if reveal else mask_record(row["record"]),
        "detail": _text(row["detail"], reveal),
    }


def outbox_stats(stats: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "destinations": {
            name: {
                "counts": dict(s["counts"]),
                "oldest_pending_age_seconds": (
                    None if s["oldest_pending_age_seconds"] is None else round(s["oldest_pending_age_seconds"], 3)
                ),
                "paused": s["paused"],
                "pause_reason": s["pause_reason"],
                "paused_at": iso(s["paused_at"]),
            }
            for name, s in stats.items()
        }
    }


def console_action(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "at": iso(row["at"]), "actor": row["actor"], "role": row["role"],
            "action": row["action"], "target": row["target"], "detail": row["detail"]}
