"""SQLite: rule sets kept in the store (published versions, drafts, the rules' audit log), and the
newest events of some topics that a preview runs on."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from bridge.model import Event
from bridge.store import records
from bridge.store.base import Page, RuleAction, RuleDraft, RuleVersion
from bridge.store.records import RULE_DRAFT_COLUMNS, RULE_VERSION_COLUMNS
from bridge.store.sqlite.rows import EVENT_COLUMNS, event_from_row


def rule_head(conn: sqlite3.Connection, origin: str | None, digest: str | None) -> RuleVersion | None:
    clause, params = _version_where(origin, digest)
    row = conn.execute(f"SELECT {RULE_VERSION_COLUMNS} FROM rule_versions WHERE {clause}"
                       " ORDER BY version DESC LIMIT 1", params).fetchone()
    return None if row is None else records.rule_version(row)


def _version_where(origin: str | None, digest: str | None) -> tuple[str, list[str]]:
    clauses, params = ["1 = 1"], []
    for column, value in (("origin", origin), ("digest", digest)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return " AND ".join(clauses), params


def rule_version(conn: sqlite3.Connection, version: int) -> RuleVersion | None:
    row = conn.execute(f"SELECT {RULE_VERSION_COLUMNS}, files FROM rule_versions WHERE version = ?",
                       (version,)).fetchone()
    return None if row is None else records.rule_version(row, with_files=True)


def rule_history(conn: sqlite3.Connection, limit: int, offset: int) -> Page[RuleVersion]:
    rows = conn.execute(f"SELECT {RULE_VERSION_COLUMNS} FROM rule_versions ORDER BY version DESC LIMIT ? OFFSET ?",
                        (limit, offset)).fetchall()
    total = int(conn.execute("SELECT count(*) FROM rule_versions").fetchone()[0])
    return Page([records.rule_version(r) for r in rows], total, limit, offset)


def publish_rules(conn: sqlite3.Connection, v: RuleVersion) -> bool:
    """In the writer's transaction: the head is read and the next version written under one lock."""
    head = conn.execute("SELECT coalesce(max(version), 0) FROM rule_versions").fetchone()[0]
    if v.version != int(head) + 1:
        return False
    conn.execute("INSERT INTO rule_versions (version, created_at, author, message, origin, based_on, digest, files)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 (v.version, v.created_at, v.author, v.message, v.origin, v.based_on, v.digest,
                  records.files_text(v.files)))
    return True


def save_rule_draft(conn: sqlite3.Connection, draft_id: int | None, files: dict[str, str], base_version: int | None,
                    author: str, now: float) -> RuleDraft | None:
    text = records.files_text(files)
    if draft_id is None:
        cur = conn.execute("INSERT INTO rule_drafts (created_at, updated_at, author, base_version, files)"
                           " VALUES (?, ?, ?, ?, ?)", (now, now, author, base_version, text))
        draft_id = int(cur.lastrowid or 0)
    elif conn.execute("UPDATE rule_drafts SET updated_at = ?, author = ?, base_version = ?, files = ? WHERE id = ?",
                      (now, author, base_version, text, draft_id)).rowcount == 0:
        return None
    return rule_draft(conn, draft_id)


def rule_draft(conn: sqlite3.Connection, draft_id: int) -> RuleDraft | None:
    row = conn.execute(f"SELECT {RULE_DRAFT_COLUMNS}, files FROM rule_drafts WHERE id = ?", (draft_id,)).fetchone()
    return None if row is None else records.rule_draft(row, with_files=True)


def rule_drafts(conn: sqlite3.Connection, limit: int, offset: int) -> Page[RuleDraft]:
    rows = conn.execute(f"SELECT {RULE_DRAFT_COLUMNS} FROM rule_drafts ORDER BY updated_at DESC, id DESC"
                        " LIMIT ? OFFSET ?", (limit, offset)).fetchall()
    total = int(conn.execute("SELECT count(*) FROM rule_drafts").fetchone()[0])
    return Page([records.rule_draft(r) for r in rows], total, limit, offset)


def delete_rule_draft(conn: sqlite3.Connection, draft_id: int) -> bool:
    return conn.execute("DELETE FROM rule_drafts WHERE id = ?", (draft_id,)).rowcount > 0


def record_rule_action(conn: sqlite3.Connection, entry: RuleAction) -> None:
    conn.execute("INSERT INTO rule_actions (at, actor, action, version, draft, detail) VALUES (?, ?, ?, ?, ?, ?)",
                 (entry["at"], entry["actor"], entry["action"], entry["version"], entry["draft"], entry["detail"]))


def rule_actions(conn: sqlite3.Connection, limit: int, offset: int) -> Page[RuleAction]:
    rows = conn.execute("SELECT at, actor, action, version, draft, detail FROM rule_actions ORDER BY id DESC"
                        " LIMIT ? OFFSET ?", (limit, offset)).fetchall()
    total = int(conn.execute("SELECT count(*) FROM rule_actions").fetchone()[0])
    return Page([records.rule_action(r) for r in rows], total, limit, offset)


def latest_events(conn: sqlite3.Connection, source: str, topics: Sequence[str], limit: int) -> list[Event]:
    if not topics:
        return []
    marks = ", ".join("?" for _ in topics)
    rows = conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE source = ? AND topic IN ({marks})"
        " AND body IS NOT NULL AND status != 'invalid_json' ORDER BY id DESC LIMIT ?",
        (source, *topics, limit)).fetchall()
    return [event_from_row(r) for r in rows]
