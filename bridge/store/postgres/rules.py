"""PostgreSQL: rule sets kept in the store (published versions, drafts, the rules' audit log), and the
newest events of some topics that a preview runs on."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.model import Event
from bridge.store import records
from bridge.store.base import Page, RuleAction, RuleDraft, RuleVersion
from bridge.store.postgres.connection import Conn
from bridge.store.postgres.queries import count
from bridge.store.postgres.text import storable
from bridge.store.records import RULE_DRAFT_COLUMNS, RULE_VERSION_COLUMNS
from bridge.store.sqlite.rows import EVENT_COLUMNS, event_from_row


async def rule_head(conn: Conn, origin: str | None, digest: str | None) -> RuleVersion | None:
    clauses, params = ["TRUE"], []
    for column, value in (("origin", origin), ("digest", digest)):
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    cur = await conn.execute(f"SELECT {RULE_VERSION_COLUMNS} FROM rule_versions WHERE {' AND '.join(clauses)}"
                             " ORDER BY version DESC LIMIT 1", params)
    row = await cur.fetchone()
    return None if row is None else records.rule_version(row)


async def rule_version(conn: Conn, version: int) -> RuleVersion | None:
    cur = await conn.execute(f"SELECT {RULE_VERSION_COLUMNS}, files FROM rule_versions WHERE version = %s", (version,))
    row = await cur.fetchone()
    return None if row is None else records.rule_version(row, with_files=True)


async def rule_history(conn: Conn, limit: int, offset: int) -> Page[RuleVersion]:
    cur = await conn.execute(f"SELECT {RULE_VERSION_COLUMNS} FROM rule_versions ORDER BY version DESC"
                             " LIMIT %s OFFSET %s", (limit, offset))
    rows = await cur.fetchall()
    return Page([records.rule_version(r) for r in rows], await count(conn, "rule_versions", ()), limit, offset)


async def publish_rules(conn: Conn, v: RuleVersion) -> bool:
    """head + 1 or nothing: the primary key refuses a number another instance took first."""
    cur = await conn.execute(
        "INSERT INTO rule_versions (version, created_at, author, message, origin, based_on, digest, files)"
        " SELECT %s, %s, %s, %s, %s, %s, %s, %s"
        " WHERE (SELECT coalesce(max(version), 0) FROM rule_versions) = %s - 1"
        " ON CONFLICT (version) DO NOTHING",
        (v.version, v.created_at, storable(v.author), storable(v.message), v.origin, v.based_on, v.digest,
         storable(records.files_text(v.files)), v.version))
    return cur.rowcount == 1


async def save_rule_draft(conn: Conn, draft_id: int | None, files: dict[str, str], base_version: int | None,
                          author: str, now: float) -> RuleDraft | None:
    text = storable(records.files_text(files))
    if draft_id is None:
        cur = await conn.execute("INSERT INTO rule_drafts (created_at, updated_at, author, base_version, files)"
                                 " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                                 (now, now, storable(author), base_version, text))
        row = await cur.fetchone()
        assert row is not None
        draft_id = int(row["id"])
    else:
        cur = await conn.execute("UPDATE rule_drafts SET updated_at = %s, author = %s, base_version = %s, files = %s"
                                 " WHERE id = %s", (now, storable(author), base_version, text, draft_id))
        if cur.rowcount == 0:
            return None
    return await rule_draft(conn, draft_id)


async def rule_draft(conn: Conn, draft_id: int) -> RuleDraft | None:
    cur = await conn.execute(f"SELECT {RULE_DRAFT_COLUMNS}, files FROM rule_drafts WHERE id = %s", (draft_id,))
    row = await cur.fetchone()
    return None if row is None else records.rule_draft(row, with_files=True)


async def rule_drafts(conn: Conn, limit: int, offset: int) -> Page[RuleDraft]:
    cur = await conn.execute(f"SELECT {RULE_DRAFT_COLUMNS} FROM rule_drafts ORDER BY updated_at DESC, id DESC"
                             " LIMIT %s OFFSET %s", (limit, offset))
    rows = await cur.fetchall()
    return Page([records.rule_draft(r) for r in rows], await count(conn, "rule_drafts", ()), limit, offset)


async def delete_rule_draft(conn: Conn, draft_id: int) -> bool:
    cur = await conn.execute("DELETE FROM rule_drafts WHERE id = %s", (draft_id,))
    return cur.rowcount > 0


async def record_rule_action(conn: Conn, entry: RuleAction) -> None:
    await conn.execute("INSERT INTO rule_actions (at, actor, action, version, draft, detail)"
                       " VALUES (%s, %s, %s, %s, %s, %s)",
                       (entry["at"], storable(entry["actor"]), entry["action"], entry["version"], entry["draft"],
                        storable(entry["detail"])))


async def rule_actions(conn: Conn, limit: int, offset: int) -> Page[RuleAction]:
    cur = await conn.execute("SELECT at, actor, action, version, draft, detail FROM rule_actions ORDER BY id DESC"
                             " LIMIT %s OFFSET %s", (limit, offset))
    rows = await cur.fetchall()
    return Page([records.rule_action(r) for r in rows], await count(conn, "rule_actions", ()), limit, offset)


async def latest_events(conn: Conn, source: str, topics: Sequence[str], limit: int) -> list[Event]:
    if not topics:
        return []
    cur = await conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE source = %s AND topic = ANY(%s)"
        " AND body IS NOT NULL AND status <> 'invalid_json' ORDER BY id DESC LIMIT %s",
        (source, list(topics), limit))
    return [event_from_row(r) for r in await cur.fetchall()]
