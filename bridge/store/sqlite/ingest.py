"""SQLite: committing inbound webhooks, the hot path (bridge/store/sqlite/writer.py runs it in groups)."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from functools import partial
from typing import Any

import orjson

from bridge.model import IngestResult, Webhook
from bridge.store.sqlite.lock import retry_busy
from bridge.store.sqlite.rows import pack_body

# (source, topic, dedupe_key, received_at, headers JSON, body, status): the columns ingest writes.
EventRow = tuple[str, str, str, float, str, bytes, str]


def event_row(wh: Webhook, received_at: float) -> EventRow:
    """The events row of a webhook, made on the event loop so the writer thread only inserts it."""
    try:
        headers = orjson.dumps(dict(wh.headers)).decode()
    except TypeError:  # a value orjson refuses (a lone surrogate): the json module escapes it
        headers = json.dumps(dict(wh.headers))
    return (wh.source, wh.topic, wh.dedupe_key, received_at, headers, wh.body,
            "received" if wh.payload_ok else "invalid_json")


# Rows per INSERT statement in ingest_many: 8 parameters a row, under the 999 of SQLite before 3.32.
INGEST_ROWS_PER_STATEMENT = 120
INSERT_EVENT = "INSERT INTO events (source, topic, dedupe_key, received_at, headers, body, body_codec, status) VALUES "
EVENT_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?)"


def event_params(row: EventRow) -> tuple[Any, ...]:
    source, topic, dedupe_key, received_at, headers, body, status = row
    return (source, topic, dedupe_key, received_at, headers, *pack_body(body), status)


def ingest_many(conn: sqlite3.Connection, rows: list[EventRow]) -> list[IngestResult]:
    """Insert webhooks that arrived together: the same results as ingest_one for each, in order.

    Usually one statement. A writer thread gives the GIL back for every statement
    it runs and must win it again from the event loop each time, so fewer
    statements is what lets the loop and the writer overlap; a writer process
    saves the Python and SQLite work of each statement. With an INTEGER
    PRIMARY KEY every new row gets the largest rowid plus one, in order, so the
    ids of a fully inserted chunk follow from the last one. When some keys were
    already stored (a resend), their rows are looked up: the rows inserted now are
    the ones with the highest ids. A key seen twice in the group is a duplicate of
    its first occurrence.
    """
    keys = [(row[0], row[2]) for row in rows]
    first: dict[tuple[str, str], int] = {}
    fresh: list[int] = []  # indexes of the first occurrence of each key
    for index, key in enumerate(keys):
        if key not in first:
            first[key] = index
            fresh.append(index)
    ids: dict[int, int] = {}  # index -> event id, for every fresh index
    new: set[int] = set()  # the fresh indexes inserted now
    for start in range(0, len(fresh), INGEST_ROWS_PER_STATEMENT):
        chunk = fresh[start : start + INGEST_ROWS_PER_STATEMENT]
        params: list[Any] = []
        for index in chunk:
            params += event_params(rows[index])
        cur = conn.execute(
            INSERT_EVENT + ",".join([EVENT_VALUES] * len(chunk)) + " ON CONFLICT (source, dedupe_key) DO NOTHING",
            params,
        )
        inserted = cur.rowcount
        if inserted == len(chunk):
            last = int(cur.lastrowid or 0)
            ids.update({index: last - inserted + 1 + n for n, index in enumerate(chunk)})
            new.update(chunk)
            continue
        found = event_ids(conn, [keys[index] for index in chunk])
        newest = set(sorted(found.values())[len(found) - inserted :]) if inserted else set()
        for index in chunk:
            ids[index] = found[keys[index]]
            if ids[index] in newest:
                new.add(index)

    results: list[IngestResult] = []
    repeats: Counter[int] = Counter()
    for index, key in enumerate(keys):
        event_id = ids[first[key]]
        duplicate = index not in new
        if duplicate:
            repeats[event_id] += 1
        results.append(IngestResult(event_id, duplicate=duplicate))
    count_repeats(conn, repeats)
    return results


def count_repeats(conn: sqlite3.Connection, repeats: Counter[int]) -> None:
    """Add each event's repeats to its `duplicates`: one statement for each number of repeats (usually
    one). Outside a transaction (ingest_many's rows committed by themselves) each statement commits by
    itself, and one that found the lock taken is tried again (it changed nothing)."""
    by_times: dict[int, list[int]] = {}
    for event_id, times in repeats.items():
        by_times.setdefault(times, []).append(event_id)
    for times, event_ids in by_times.items():
        for start in range(0, len(event_ids), INGEST_ROWS_PER_STATEMENT):
            chunk = event_ids[start : start + INGEST_ROWS_PER_STATEMENT]
            update = partial(conn.execute, "UPDATE events SET duplicates = duplicates + ? WHERE id IN ("
                             + ",".join("?" * len(chunk)) + ")", [times, *chunk])
            if conn.in_transaction:
                update()
            else:
                retry_busy(update)


def event_ids(conn: sqlite3.Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The event id stored for each (source, dedupe key)."""
    found: dict[tuple[str, str], int] = {}
    by_source: dict[str, list[str]] = {}
    for source, key in keys:
        by_source.setdefault(source, []).append(key)
    for source, source_keys in by_source.items():  # `source = ? AND dedupe_key IN (...)` searches the unique index
        rows = conn.execute(
            "SELECT dedupe_key, id FROM events WHERE source = ? AND dedupe_key IN (" + ",".join("?" * len(source_keys)) + ")",
            [source, *source_keys],
        ).fetchall()
        found.update({(source, row[0]): int(row[1]) for row in rows})
    return found


def ingest_one(conn: sqlite3.Connection, row: EventRow) -> IngestResult:
    # One statement on the common path: the unique (source, dedupe_key) index
    # is the dedupe guard, so a new event costs a single insert.
    cur = conn.execute(INSERT_EVENT + EVENT_VALUES + " ON CONFLICT (source, dedupe_key) DO NOTHING",
                       event_params(row))
    if cur.rowcount == 1:
        return IngestResult(int(cur.lastrowid or 0), duplicate=False)
    found = conn.execute(
        "UPDATE events SET duplicates = duplicates + 1 WHERE source = ? AND dedupe_key = ? RETURNING id",
        (row[0], row[2]),
    ).fetchone()
    return IngestResult(int(found[0]), duplicate=True)


