"""What operators read, made from rows the same way by every backend: filters as SQL clauses
(in the backend's parameter mark), and rows as the records of bridge/store/base.py.

A row is anything indexed by column name: sqlite3.Row, or a dict (PostgreSQL).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from typing import Any

from bridge.sources.shape import MAX_DEPTH, nests_deeper_than
from bridge.store.base import (
    MESSAGE_STATES,
    ActivityBucket,
    AttemptEntry,
    AuditEntry,
    AuditFilter,
    ConsoleAction,
    ConsoleJob,
    DeadFilter,
    DeadLetter,
    DestinationState,
    DestinationStats,
    EventDetail,
    EventFilter,
    EventSummary,
    MessageDetail,
    ReplaySummary,
    RuleAction,
    RuleDraft,
    RuleVersion,
)
from bridge.store.sqlite.rows import Row, unpack_body

SUMMARY_COLUMNS = ("e.id, e.source, e.topic, e.dedupe_key, e.received_at, e.status, e.rules, e.errors, e.duplicates,"
                   " e.body IS NULL AS pruned")
DETAIL_COLUMNS = ("id, source, topic, dedupe_key, received_at, headers, body, body_codec, status, rules, errors,"
                  " mapped_at, duplicates")
MESSAGE_DETAIL_COLUMNS = ("id, destination, kind, action, rule, ordering_key, idempotency_key, record, areas, state,"
                          " attempts, next_at, created_at, updated_at, last_status, last_detail, batch_ref")
TRAIL_COLUMNS = "a.message_id, a.at, a.outcome, a.status, a.detail"
DEAD_COLUMNS = ("id, event_id, destination, kind, rule, idempotency_key, attempts, created_at, updated_at, last_status,"
                " last_detail")
AUDIT_COLUMNS = ("a.at, a.outcome, a.status, a.detail, m.id AS message_id, m.event_id, m.destination, m.kind,"
                 " m.action, m.rule, m.areas, m.record, e.source, e.topic")
JOB_COLUMNS = "id, actor, what, instance, started_at, heartbeat_at, done, total, finished_at, summary, error"
AUDIT_JOIN = "attempts AS a JOIN messages AS m ON m.id = a.message_id JOIN events AS e ON e.id = m.event_id"


def json_list(text: str | None) -> list[Any]:
    return list(json.loads(text)) if text else []


def areas(text: str | None) -> list[str]:
    return [a for a in (text or "").split(",") if a]


def event_where(where: EventFilter, table: str = "e", mark: str = "?") -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("source", where.source), ("topic", where.topic), ("status", where.status)):
        if value is not None:
            clauses.append(f"{table}.{column} = {mark}")
            params.append(value)
    if where.since is not None:
        clauses.append(f"{table}.received_at >= {mark}")
        params.append(where.since)
    if where.until is not None:
        clauses.append(f"{table}.received_at < {mark}")
        params.append(where.until)
    if where.event_id is not None:
        clauses.append(f"{table}.id = {mark}")
        params.append(where.event_id)
    if where.search_key is not None:
        clauses.append(f"{table}.id IN (SELECT event_id FROM event_lookup WHERE fingerprint = {mark})")
        params.append(where.search_key)
    return (" AND ".join(clauses) or "1 = 1"), params


def dead_where(where: DeadFilter, mark: str = "?") -> tuple[str, list[Any]]:
    clauses = ["state = 'dead'"]
    params: list[Any] = []
    if where.ids:
        clauses.append(f"id IN ({', '.join([mark] * len(where.ids))})")
        params.extend(where.ids)
    if where.destination is not None:
        clauses.append(f"destination = {mark}")
        params.append(where.destination)
    if where.since is not None:
        clauses.append(f"updated_at >= {mark}")  # when it died
        params.append(where.since)
    return " AND ".join(clauses), params


def audit_where(where: AuditFilter, mark: str = "?") -> tuple[str, list[Any]]:
    """Attempts (a) that wrote something or were refused, by their message's (m) destination and the
    areas it writes, and since when; FROM AUDIT_JOIN."""
    clauses: list[str] = ["a.outcome IN ('delivered', 'submitted', 'dead')"]
    params: list[Any] = []
    if where.destination:
        clauses.append(f"m.destination = {mark}")
        params.append(where.destination)
    if where.area:
        clauses.append(f"(',' || m.areas || ',') LIKE {mark}")
        params.append(f"%,{where.area},%")
    if where.since is not None:
        clauses.append(f"a.at >= {mark}")
        params.append(where.since)
    return " AND ".join(clauses), params


def event_summary(r: Row, states: Mapping[str, int]) -> EventSummary:
    return {"id": r["id"], "source": r["source"], "topic": r["topic"], "dedupe_key": r["dedupe_key"],
            "received_at": r["received_at"], "status": r["status"], "rules": json_list(r["rules"]),
            "errors": json_list(r["errors"]), "duplicates": r["duplicates"], "body_pruned": bool(r["pruned"]),
            "messages": dict(states)}


def trails(rows: list[Row]) -> dict[int, list[AttemptEntry]]:
    """message id -> its attempts, from TRAIL_COLUMNS rows in order."""
    found: dict[int, list[AttemptEntry]] = {}
    for a in rows:
        found.setdefault(a["message_id"], []).append(
            {"at": a["at"], "outcome": a["outcome"], "status": a["status"], "detail": a["detail"] or ""})
    return found


def message_detail(m: Row, trail: list[AttemptEntry]) -> MessageDetail:
    return {"id": m["id"], "destination": m["destination"], "kind": m["kind"], "action": m["action"],
            "rule": m["rule"], "ordering_key": m["ordering_key"], "idempotency_key": m["idempotency_key"],
            "areas": areas(m["areas"]), "state": m["state"], "attempts": m["attempts"], "next_at": m["next_at"],
            "created_at": m["created_at"], "updated_at": m["updated_at"], "last_status": m["last_status"],
            "last_detail": m["last_detail"], "batch": m["batch_ref"], "record": json.loads(m["record"]),
            "trail": trail}


def event_detail(row: Row, messages: list[MessageDetail]) -> EventDetail:
    """One event (DETAIL_COLUMNS) with its headers, payload and messages."""
    payload: Any = None
    if row["body"] is not None:
        body = unpack_body(row["body"], row["body_codec"])
        try:
            # JSON nested deeper than ingest takes (stored before that limit) is shown as text, as every tool can.
            payload = body.decode("utf-8", "replace") if nests_deeper_than(MAX_DEPTH, body) else json.loads(body)
        except (ValueError, RecursionError):  # invalid_json events: show the text as received
            payload = body.decode("utf-8", "replace")
    return {"id": row["id"], "source": row["source"], "topic": row["topic"], "dedupe_key": row["dedupe_key"],
            "received_at": row["received_at"], "mapped_at": row["mapped_at"], "status": row["status"],
            "rules": json_list(row["rules"]), "errors": json_list(row["errors"]), "duplicates": row["duplicates"],
            "headers": json.loads(row["headers"]), "body_pruned": row["body"] is None, "payload": payload,
            "messages": messages}


def dead_letter(r: Row) -> DeadLetter:
    return {"id": r["id"], "event_id": r["event_id"], "destination": r["destination"], "kind": r["kind"],
            "rule": r["rule"], "idempotency_key": r["idempotency_key"], "attempts": r["attempts"],
            "created_at": r["created_at"], "died_at": r["updated_at"], "last_status": r["last_status"],
            "last_detail": r["last_detail"] or ""}


def audit_entry(r: Row) -> AuditEntry:
    return {"at": r["at"], "outcome": r["outcome"], "status": r["status"], "detail": r["detail"],
            "message_id": r["message_id"], "event_id": r["event_id"], "destination": r["destination"],
            "kind": r["kind"], "action": r["action"], "rule": r["rule"], "areas": areas(r["areas"]),
            "record": json.loads(r["record"]), "source": r["source"], "topic": r["topic"]}


def outbox_stats(now: float, destinations: Sequence[str], counts: Iterable[Row], oldest: Mapping[str, float],
                 states: Iterable[DestinationState]) -> dict[str, DestinationStats]:
    """Per destination (sorted; `destinations` appear even with an empty outbox): messages in each
    state (`counts`: destination, state, n rows), the oldest pending message's age, pause state."""
    stats: dict[str, DestinationStats] = {}

    def entry(name: str) -> DestinationStats:
        return stats.setdefault(name, {"counts": dict.fromkeys(MESSAGE_STATES, 0), "oldest_pending_age_seconds": None,
                                       "paused": False, "pause_reason": None, "paused_at": None})

    for name in destinations:
        entry(name)
    for r in counts:
        entry(r["destination"])["counts"][r["state"]] = r["n"]
    for destination, created_at in oldest.items():
        entry(destination)["oldest_pending_age_seconds"] = max(now - created_at, 0.0)
    for state in states:
        e = entry(state["name"])
        e["paused"] = state["paused"]
        e["pause_reason"] = state["reason"] if state["paused"] else None
        e["paused_at"] = state["changed_at"] if state["paused"] else None
    return dict(sorted(stats.items()))


# -- rule sets ----------------------------------------------------------------

RULE_VERSION_COLUMNS = "version, created_at, author, message, origin, based_on, digest"
RULE_DRAFT_COLUMNS = "id, created_at, updated_at, author, base_version"


def rule_version(r: Row, with_files: bool = False) -> RuleVersion:
    return RuleVersion(int(r["version"]), float(r["created_at"]), r["author"], r["message"], r["origin"], r["digest"],
                       None if r["based_on"] is None else int(r["based_on"]),
                       _files(r["files"]) if with_files else {})


def rule_draft(r: Row, with_files: bool = False) -> RuleDraft:
    return RuleDraft(int(r["id"]), float(r["created_at"]), float(r["updated_at"]), r["author"],
                     None if r["base_version"] is None else int(r["base_version"]),
                     _files(r["files"]) if with_files else {})


def rule_action(r: Row) -> RuleAction:
    return {"at": float(r["at"]), "actor": r["actor"], "action": r["action"],
            "version": None if r["version"] is None else int(r["version"]),
            "draft": None if r["draft"] is None else int(r["draft"]), "detail": r["detail"]}


def files_text(files: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(files.items())), ensure_ascii=False)


def _files(text: str) -> dict[str, str]:
    files = json.loads(text)
    return {str(name): str(body) for name, body in files.items()}


def activity(since: float, until: float, bucket_seconds: float,
             rows: Iterable[tuple[str, int, str, int]]) -> list[ActivityBucket]:
    """Buckets from rows of (what: received | delivered | dead, bucket number, source or destination, count)."""
    count = max(0, int((until - since + bucket_seconds - 1e-9) // bucket_seconds))
    buckets: list[ActivityBucket] = [
        {"start": since + n * bucket_seconds, "received": {}, "delivered": {}, "dead": {}} for n in range(count)]
    for what, number, name, n in rows:
        if 0 <= number < count:
            bucket = buckets[number]
            counts = bucket["received"] if what == "received" else bucket["delivered"] if what == "delivered" \
                else bucket["dead"]
            counts[name] = int(n)
    return buckets


def console_action(row: Row) -> ConsoleAction:
    return {"id": int(row["id"]), "at": float(row["at"]), "actor": row["actor"], "role": row["role"],
            "action": row["action"], "target": row["target"], "detail": row["detail"]}


def summary_text(summary: ReplaySummary | None) -> str | None:
    """A job's replay summary as stored (JSON)."""
    return None if summary is None else json.dumps(summary.as_dict(), sort_keys=True)


def console_job(row: Row) -> ConsoleJob:
    summary = None
    if row["summary"]:
        known = {f.name for f in fields(ReplaySummary)}  # a field a newer version adds is left out
        summary = ReplaySummary(**{k: v for k, v in json.loads(row["summary"]).items() if k in known})
    return ConsoleJob(int(row["id"]), row["actor"], row["what"], row["instance"], float(row["started_at"]),
                      float(row["heartbeat_at"]), int(row["done"]), int(row["total"]),
                      None if row["finished_at"] is None else float(row["finished_at"]), summary, row["error"])
