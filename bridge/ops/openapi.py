"""The admin API's OpenAPI 3.1 document, written by hand to match bridge.ops.views.

Kept beside the routes and checked by the tests: every route is listed and
every answer the tests get validates against the schema given here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge import __version__
from bridge.store.base import EVENT_STATUSES, MESSAGE_STATES, RULE_ORIGINS


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema["type"]
    return dict(schema, type=[kind, "null"] if isinstance(kind, str) else [*kind, "null"])


MAX_ROW_ID = 2**63 - 1  # a 64-bit row id (SQLite's INTEGER, PostgreSQL's bigint): a larger one names no row

STRING = {"type": "string"}
INTEGER = {"type": "integer"}
TIME = {"type": "string", "format": "date-time"}
STATES = {"type": "string", "enum": list(MESSAGE_STATES)}
EVENT_STATUS = {"type": "string", "enum": list(EVENT_STATUSES)}
STATE_COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


EVENT_SUMMARY = {
    "id": INTEGER,
    "source": STRING,
    "topic": STRING,
    "received_at": TIME,
    "dedupe_key": STRING,
    "status": EVENT_STATUS,
    "rules": {"type": "array", "items": STRING},
    "errors": {"type": "array", "items": STRING},
    "duplicates": INTEGER,
    "body_pruned": {"type": "boolean"},
}

# Where a list's rows sit among all that match: "rows offset+1 to offset+len of total".
PAGE = {
    "total": {**INTEGER, "description": "how many match the filter in all"},
    "limit": INTEGER,
    "offset": {**INTEGER, "description": "how many matching rows come before these"},
}

SCHEMAS: dict[str, Any] = {
    "Error": _object({"error": STRING}),
    "EventSummary": _object(dict(EVENT_SUMMARY, messages={**STATE_COUNTS, "description": "messages per state"})),
    "EventList": _object({"events": {"type": "array", "items": _ref("EventSummary")}, **PAGE}),
    "Attempt": _object({
        "at": TIME,
        "outcome": {"type": "string", "enum": ["delivered", "retry", "dead", "pause"]},
        "status": _nullable(INTEGER),
        "detail": _nullable(STRING),
    }),
    "Message": _object({
        "id": INTEGER,
        "destination": STRING,
        "kind": STRING,
        "action": STRING,
        "rule": STRING,
        "ordering_key": STRING,
        "idempotency_key": STRING,
        "areas": {"type": "array", "items": STRING,
                  "description": "what it writes: events, contacts, consent, orders, carts, products, deletions"},
        "state": STATES,
        "attempts": INTEGER,
        "next_at": {**_nullable(TIME), "description": "when a pending message is due"},
        "created_at": TIME,
        "updated_at": TIME,
        "last_status": _nullable(INTEGER),
        "last_detail": _nullable(STRING),
        "batch": {**_nullable(STRING), "description": "the destination's batch id (an Omnisend batch, an Omneo "
                                                      "batch_id), once the message went in one"},
        "record": {"type": "object", "description": "the record sent (masked unless reveal)"},
        "trail": {"type": "array", "items": _ref("Attempt")},
    }),
    "EventDetail": _object(dict(
        EVENT_SUMMARY,
        mapped_at=_nullable(TIME),
        headers={"type": "object", "additionalProperties": STRING},
        payload={"description": "the body as JSON (text when invalid, null when pruned); masked unless reveal"},
        messages={"type": "array", "items": _ref("Message")},
    )),
    "DeadLetter": _object({
        "id": INTEGER,
        "event_id": INTEGER,
        "destination": STRING,
        "kind": STRING,
        "rule": STRING,
        "idempotency_key": STRING,
        "attempts": INTEGER,
        "created_at": TIME,
        "died_at": TIME,
        "last_status": _nullable(INTEGER),
        "last_detail": _nullable(STRING),
    }),
    "DeadList": _object({"dead": {"type": "array", "items": _ref("DeadLetter")}, **PAGE}),
    "RetryRequest": _object({
        "ids": {"type": "array", "items": INTEGER},
        "destination": STRING,
        "since": {**STRING, "description": "died since: ISO 8601 or relative (2h, 3d)"},
        "all": {"type": "boolean", "description": "required when no other filter is given"},
    }, required=[]),
    "RetryResult": _object({"retried": INTEGER}),
    "ReplayRequest": _object({
        "since": {**STRING, "description": "ISO 8601 or relative (2h, 3d)"},
        "until": STRING,
        "source": STRING,
        "topic": STRING,
        "status": {**EVENT_STATUS, "description": "only events in this status (mapping_error: once the rule is fixed)"},
        "dry_run": {"type": "boolean"},
        "force": {"type": "boolean", "description": "queue again even what was delivered or is waiting"},
    }, required=["since"]),
    "ReplaySummary": _object({
        "events": INTEGER,
        "queued": INTEGER,
        "requeued_dead": INTEGER,
        "skipped_delivered": INTEGER,
        "skipped_open": INTEGER,
        "events_with_errors": INTEGER,
        "dry_run": {"type": "boolean"},
    }),
    "PauseRequest": _object({"reason": STRING}, required=[]),
    "DestinationPause": _object({"destination": STRING, "paused": {"type": "boolean"}, "reason": _nullable(STRING)}),
    "DestinationStats": _object({
        "counts": _object(dict.fromkeys(("pending", "inflight", "submitted", "delivered", "dead"), INTEGER)),
        "oldest_pending_age_seconds": _nullable({"type": "number"}),
        "paused": {"type": "boolean"},
        "pause_reason": _nullable(STRING),
        "paused_at": _nullable(TIME),
    }),
    "RuleFiles": {"type": "object", "additionalProperties": STRING, "description": "file name -> text"},
    "RuleVersion": _object({
        "version": INTEGER, "created_at": TIME, "author": STRING, "message": STRING,
        "origin": {"type": "string", "enum": list(RULE_ORIGINS)},
        "based_on": _nullable(INTEGER), "digest": STRING,
        "files": _ref("RuleFiles"), "diff": {**STRING, "description": "unified diff from the version before"},
    }, required=["version", "created_at", "author", "message", "origin", "based_on", "digest"]),
    "RuleVersionList": _object({"versions": {"type": "array", "items": _ref("RuleVersion")}, **PAGE}),
    "RulesPublished": _object({
        "published": {"oneOf": [_ref("RuleVersion"), {"type": "null"}]},
        "instance": {"type": "object", "description": "the version this instance runs, or {source: folder}"},
    }),
    "RuleDraft": _object({
        "id": INTEGER, "created_at": TIME, "updated_at": TIME, "author": STRING, "base_version": _nullable(INTEGER),
        "files": _ref("RuleFiles"),
    }, required=["id", "created_at", "updated_at", "author", "base_version"]),
    "RuleDraftList": _object({"drafts": {"type": "array", "items": _ref("RuleDraft")}, **PAGE}),
    "RuleDraftRequest": _object({"files": _ref("RuleFiles")}, required=[]),
    "RuleFileRequest": _object({"text": STRING}),
    "RuleProblem": _object({"file": STRING, "line": INTEGER, "column": INTEGER, "message": STRING,
                            "fix": {**STRING, "description": "how to fix it, when the message does not say"}}),
    "RuleCheck": _object({
        "ok": {"type": "boolean", "description": "false: the set cannot run and is not published"},
        "rules": INTEGER, "files": INTEGER,
        "problems": {"type": "array", "items": _ref("RuleProblem")},
        "example_problems": {"type": "array", "items": _ref("RuleProblem")},
        "notes": {"type": "array", "items": STRING}, "blocked": {"type": "array", "items": STRING},
    }),
    "RuleRefusal": {"type": "object", "required": ["error"], "properties": {"error": STRING},
                    "description": "why; a failed check adds the RuleCheck fields"},
    "RuleExamplesRequest": _object({"file": STRING}, required=[]),
    "RuleExamples": _object({"ok": {"type": "boolean"}, "problems": {"type": "array", "items": _ref("RuleProblem")},
                             "examples": {"type": "array", "items": {"type": "object"}}}),
    "RulePreviewRequest": _object({
        "limit": {"type": "integer", "minimum": 1, "maximum": 500, "description": "newest stored events (100)"},
        "reveal": {"type": "boolean"}}, required=[]),
    "RulePreview": _object({
        "summary": _object(dict.fromkeys(("events", "previewed", "changed", "unchanged", "new_errors", "not_previewed"), INTEGER)),
        "events": {"type": "array", "items": {"type": "object", "description": "event_id, source, topic, changed, "
                   "becomes_error, before and after (status, rules, errors, requests), diff"}},
        "topics": {"type": "object", "additionalProperties": {"type": "array", "items": STRING}},
        "running_version": _nullable(INTEGER),
    }),
    "RulePublishRequest": _object({"message": STRING, "force": {
        "type": "boolean", "description": "publish although another version was published since the draft began"}},
        required=[]),
    "RuleRollbackRequest": _object({"version": {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID}, "message": STRING},
                                   required=["version"]),
    "RuleAction": _object({"at": TIME, "actor": STRING, "action": STRING, "version": _nullable(INTEGER),
                           "draft": _nullable(INTEGER), "detail": STRING}),
    "RuleActionList": _object({"actions": {"type": "array", "items": _ref("RuleAction")}, **PAGE}),
    "Deleted": _object({"deleted": {"type": "boolean"}}),
    "OutboxStats": _object({"destinations": {"type": "object", "additionalProperties": _ref("DestinationStats")}}),
    "Action": _object({
        "id": INTEGER,
        "at": TIME,
        "actor": {**STRING, "description": "the token's name (BRIDGE_CONSOLE_TOKENS; `admin` for BRIDGE_ADMIN_TOKEN)"},
        "role": {"type": "string", "enum": ["viewer", "operator", "rules_editor", "admin"]},
        "action": STRING,
        "target": STRING,
        "detail": STRING,
    }),
    "ActionList": _object({"actions": {"type": "array", "items": _ref("Action")}, **PAGE}),
}


def _param(name: str, where: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": schema, "description": description}


def _answer(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


ERRORS = {
    "400": _answer("a parameter is wrong; `error` names it", "Error"),
    "401": _answer("missing or wrong bearer token", "Error"),
    "403": _answer("the token's role may not do this (reveal and changes need the operator role)", "Error"),
    "404": _answer("not found, or the admin API is off (no BRIDGE_ADMIN_TOKEN nor BRIDGE_CONSOLE_TOKENS)", "Error"),
    "503": _answer("the store cannot answer now", "Error"),
}
SINCE = _param("since", "query", STRING, "ISO 8601 or relative (2h, 3d)")
REVEAL = _param("reveal", "query", {"type": "boolean"}, "show personal data instead of masking it")
LIMIT = _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}, "at most this many rows")
OFFSET = _param("offset", "query", {"type": "integer", "minimum": 0, "maximum": MAX_ROW_ID},
                "skip this many matching rows (paging)")
NAME = _param("name", "path", STRING, "destination name (omnisend, ometria)", required=True)


def _op(summary: str, ok: dict[str, Any], *, parameters: Sequence[dict[str, Any]] = (), body: str | None = None,
        errors: tuple[str, ...] = ("400", "401", "403", "404", "503")) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": list(parameters), "responses": {"200": ok}}
    op["responses"].update({code: ERRORS[code] for code in errors})
    if body is not None:
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": _ref(body)}}}
    return op


DRAFT = _param("draft_id", "path", INTEGER, "draft id", True)
REFUSED = {"409": _answer("refused as things stand: the rules come from the folder, or a newer version was "
                          "published since the draft began", "RuleRefusal"),
           "422": _answer("the set fails the check (its problems are listed), or a preview was stopped", "RuleRefusal")}


def _rules_op(summary: str, ok: dict[str, Any], *, status: str = "200", refusals: tuple[str, ...] = (),
              **kwargs: Any) -> dict[str, Any]:
    op = _op(summary, ok, **kwargs)
    if status != "200":
        op["responses"] = {status: op["responses"].pop("200"), **op["responses"]}
    op["responses"].update({code: REFUSED[code] for code in refusals})
    return op


def rules_paths() -> dict[str, Any]:
    """/rules...: published versions, drafts, check, preview, publish, rollback, audit (bridge.rules.api)."""
    page = [LIMIT, OFFSET]
    return {
        "/rules": {"get": _rules_op("the published rules with their files, and the version this instance runs",
                                    _answer("published", "RulesPublished"), errors=("401", "404", "503"))},
        "/rules/versions": {"get": _rules_op("published versions, newest first", _answer("versions", "RuleVersionList"),
                                             parameters=page)},
        "/rules/versions/{version}": {"get": _rules_op(
            "one version with its files and its diff from the one before", _answer("version", "RuleVersion"),
            parameters=[_param("version", "path", INTEGER, "version number", True)])},
        "/rules/rollback": {"post": _rules_op("publish an earlier version's files again, as a new version",
                                              _answer("the new version", "RuleVersion"), body="RuleRollbackRequest",
                                              refusals=("409", "422"))},
        "/rules/actions": {"get": _rules_op("the rules' audit log: who did what, when", _answer("actions", "RuleActionList"),
                                            parameters=page)},
        "/rules/check": {"post": _rules_op("check a set of files without saving it (as a marketer types)",
                                           _answer("check", "RuleCheck"), body="RuleDraftRequest")},
        "/rules/drafts": {
            "get": _rules_op("drafts, most recently changed first", _answer("drafts", "RuleDraftList"), parameters=page),
            "post": _rules_op("start a draft from the published rules (or from the files given)",
                              _answer("the draft", "RuleDraft"), status="201", body="RuleDraftRequest"),
        },
        "/rules/drafts/{draft_id}": {
            "get": _rules_op("one draft with its files", _answer("draft", "RuleDraft"), parameters=[DRAFT]),
            "put": _rules_op("replace a draft's files", _answer("draft", "RuleDraft"), parameters=[DRAFT],
                             body="RuleDraftRequest"),
            "delete": _rules_op("delete a draft", _answer("deleted", "Deleted"), parameters=[DRAFT]),
        },
        "/rules/drafts/{draft_id}/files/{name}": {
            "put": _rules_op("save one file of a draft", _answer("draft", "RuleDraft"), body="RuleFileRequest",
                             parameters=[DRAFT, _param("name", "path", STRING, "file name (*.yaml)", True)]),
            "delete": _rules_op("take one file out of a draft", _answer("draft", "RuleDraft"),
                                parameters=[DRAFT, _param("name", "path", STRING, "file name", True)]),
        },
        "/rules/drafts/{draft_id}/check": {"post": _rules_op(
            "check a draft: each problem with its file, line and fix", _answer("check", "RuleCheck"), parameters=[DRAFT])},
        "/rules/drafts/{draft_id}/examples": {"post": _rules_op(
            "run the examples of a draft's files (or of one file)", _answer("examples", "RuleExamples"),
            parameters=[DRAFT], body="RuleExamplesRequest")},
        "/rules/drafts/{draft_id}/preview": {"post": _rules_op(
            "map the newest stored events of the topics the draft changes with the running rules and with the "
            "draft, in the mapping process: the requests each would send, their diff and a summary",
            _answer("preview", "RulePreview"), parameters=[DRAFT], body="RulePreviewRequest", refusals=("422",))},
        "/rules/drafts/{draft_id}/publish": {"post": _rules_op(
            "publish a draft that passes the check: every instance runs it within seconds",
            _answer("the new version", "RuleVersion"), status="201", parameters=[DRAFT], body="RulePublishRequest",
            refusals=("409", "422"))},
    }


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "bridge admin API",
            "version": __version__,
            "description": "Inspect events, the outbox and dead letters; retry, replay, pause. "
                           "Every route needs `Authorization: Bearer <token>`: BRIDGE_ADMIN_TOKEN (an operator) or "
                           "a token of BRIDGE_CONSOLE_TOKENS, within its role: any role reads, `reveal` and "
                           "every change need the operator role, and every change is in the actions log.",
        },
        "servers": [{"url": "/admin"}],
        "security": [{"bearer": []}],
        "paths": {
            "/events": {"get": _op("inbound events, newest first", _answer("events", "EventList"), parameters=[
                _param("source", "query", STRING, "only this source"),
                _param("topic", "query", STRING, "only this topic"),
                _param("status", "query", EVENT_STATUS, "only events in this status"),
                SINCE, _param("until", "query", STRING, "before this time"), LIMIT, OFFSET, REVEAL])},
            "/events/{event_id}": {"get": _op("one event with its messages and attempts", _answer("event", "EventDetail"),
                                              parameters=[_param("event_id", "path", INTEGER, "event id", True), REVEAL])},
            "/dead": {"get": _op("dead letters, most recent first", _answer("dead letters", "DeadList"), parameters=[
                _param("destination", "query", STRING, "only this destination"),
                _param("since", "query", STRING, "died since: ISO 8601 or relative"), LIMIT, OFFSET, REVEAL])},
            "/dead/retry": {"post": _op("put dead letters back in the outbox, due now",
                                        _answer("how many", "RetryResult"), body="RetryRequest")},
            "/replay": {"post": _op("run stored events again through the current rules",
                                    _answer("what was queued and skipped", "ReplaySummary"), body="ReplayRequest")},
            "/destinations/{name}/pause": {"post": _op("stop delivering to a destination",
                                                       _answer("new state", "DestinationPause"),
                                                       parameters=[NAME], body="PauseRequest")},
            "/destinations/{name}/resume": {"post": _op("deliver to a destination again",
                                                        _answer("new state", "DestinationPause"), parameters=[NAME])},
            "/outbox/stats": {"get": _op("messages per destination and state, oldest pending, pauses",
                                         _answer("stats", "OutboxStats"), errors=("401", "404", "503"))},
            **rules_paths(),
            "/actions": {"get": _op("the actions log: who changed what through the console or this API, newest first",
                                    _answer("actions", "ActionList"), parameters=[LIMIT, OFFSET])},
            "/openapi.json": {"get": {"summary": "this document", "responses": {
                "200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}},
                "401": ERRORS["401"], "404": ERRORS["404"]}}},
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
