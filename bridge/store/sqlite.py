"""The SQLite store: one writer doing group commits, WAL readers.

The writer is a thread of this process, or (`process=True`, what `bridge serve`
and `bridge worker` run) a process of its own running the same `commit_group`:
see bridge/store/process.py for why.

Why a single writer: SQLite allows one writer at a time. A commit per
request through the thread pool caps near 2,900 acknowledgements a second on
this kind of machine (performance.md), because every request pays its own
fsync. Here every write from this process is a job on one queue; the writer
takes every job that is waiting, runs them in one transaction (a savepoint
each, so one failing job does not undo the others) and commits once. Requests
that arrive together share one fsync, and no writer in this process waits on
SQLite's lock (figures in docs/benchmarks.md). We do not linger to fill a batch:
the next batch is whatever arrived while the previous commit ran (lingering
measured slower).

synchronous=FULL: in WAL mode NORMAL may lose the last commits on power loss,
and a 2xx promises the event is durable. FULL cost ~12% in the same test.

Readers (CLI, admin, the worker's reads) use their own connections; WAL lets
them run beside the writer. A second process (`bridge worker` beside
`bridge serve`) waits on the lock through busy_timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import sqlite3
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence, TypeVar

import lz4.block  # type: ignore[import-untyped]
import orjson
import structlog

from bridge import jsoncodec
from bridge.errors import StoreUnavailable
from bridge.model import Event, Message, Outcome, Outgoing, Webhook
from bridge.store.process import WriterProcess

T = TypeVar("T")

MAX_JOBS_PER_COMMIT = 512
HAND_OVER_EVERY = 16  # jobs a busy writer process is sent at a time (awrite)
HOLDING_SCAN = 1_000  # submitted messages _claim_batch looks at for one that holds back its key
BUSY_TIMEOUT_MS = 10_000
# A typical webhook body (a Shopify order is 5-8 KB) fits in one 8 KB page with its
# row; with SQLite's default 4 KB it spills into two overflow pages. Every page a
# commit touches is written to the WAL, so new databases use 8 KB pages:
# ~25% less writer time a webhook measured on this machine (docs/benchmarks.md).
PAGE_SIZE = 8192
WAL_CHECKPOINT_BYTES = 4 * 1024 * 1024


class IngestResult(NamedTuple):  # a tuple: the writer makes one per webhook
    event_id: int
    duplicate: bool


@dataclass(frozen=True)
class Decision:
    """What to do with a message after an attempt (see bridge.retry)."""

    state: str  # delivered | pending | submitted | dead
    next_at: float = 0.0
    refund_attempt: bool = False  # pause: the attempt does not count


@dataclass(frozen=True)
class Mapped:
    """The mapping of one event, ready to be saved."""

    event_id: int
    status: str
    rules: list[str]
    errors: list[str]
    messages: list[tuple[Outgoing, str]]  # (message, idempotency key)


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


@dataclass
class _Job:
    fn: Callable[..., Any]  # called as fn(conn, *args)
    args: tuple[Any, ...]
    future: Any  # concurrent.futures.Future or asyncio.Future; None in the writer process
    # An inbound webhook as its events row (event_row): the writer inserts the
    # webhooks of a group together (_ingest_many) and falls back to `fn` one by one.
    ingest: EventRow | None = None

    def run(self, conn: sqlite3.Connection) -> Any:
        return self.fn(conn, *self.args)


def connect(path: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # takes effect only on a new, empty database
    conn.execute("PRAGMA journal_mode = WAL")
    # SQLite checkpoints the WAL every 1,000 pages by default: 8 MB with 8 KB pages.
    # Keep it at the 4 MB of the default page size, whatever the file's page size.
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_BYTES // page_size}")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    # Savepoints keep their undo log in memory, not in a temporary file opened and
    # unlinked for every group commit.
    conn.execute("PRAGMA temp_store = MEMORY")
    return conn


def open_writer(path: Path) -> sqlite3.Connection:
    """The writer's connection, with the schema in place."""
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    # The writer looks up a random leaf of the dedupe index for every webhook:
    # 16 MB of cache (SQLite's default is 2 MB) keeps more of it in memory.
    conn.execute("PRAGMA cache_size = -16384")
    conn.executescript(resources.files("bridge.store").joinpath("schema.sql").read_text())
    _add_columns(conn)
    return conn


# Columns added after databases were created: schema.sql has them for new databases.
ADDED_COLUMNS = (("messages", "submitted_at", "REAL"), ("events", "body_codec", "TEXT"))


def _add_columns(conn: sqlite3.Connection) -> None:
    for table, column, declaration in ADDED_COLUMNS:
        if column in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
            continue
        try:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        except sqlite3.OperationalError as exc:  # another process (web, worker) added it first
            if "duplicate column" not in str(exc):
                raise


class SQLiteStore:
    """The store. Its writer runs in a thread, or with `process=True` in a process of its own
    (bridge/store/process.py), which then belongs to the event loop that opened the store."""

    def __init__(self, path: Path | str, *, process: bool = False) -> None:
        self.path = Path(path)
        self._process = WriterProcess(self.path) if process else None
        self._open = False
        # The writer's queue carries lists of jobs: awrite gathers what one
        # event-loop iteration asks for and hands it over in one put.
        self._jobs: queue.SimpleQueue[list[_Job] | None] = queue.SimpleQueue()
        self._gathering: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        self._thread: threading.Thread | None = None
        self._local = threading.local()
        self._writer: sqlite3.Connection | None = None
        # When open() made the file, or None when it was there: a new database on a platform
        # that wiped its disk is announced, not silently used (/healthz, store.new_database).
        self.created_at: float | None = None

    # -- life cycle ---------------------------------------------------------

    def open(self) -> None:
        if self._open:
            return
        if not self.path.exists():
            self.created_at = time.time()
            structlog.get_logger("bridge.store").warning("store.new_database", path=str(self.path.resolve()))
        if self._process is not None:
            loop = _running_loop()
            if loop is None:
                raise RuntimeError("a store with a writer process is opened on the event loop that uses it")
            open_writer(self.path).close()  # a database that cannot be opened fails here, not in the child
            self._process.start(loop)
        else:
            self._writer = open_writer(self.path)
            self._thread = threading.Thread(target=self._write_loop, name="store-writer", daemon=True)
            self._thread.start()
        self._open = True

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        if self._process is not None:
            self._process.close()
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout=10)
            self._thread = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> SQLiteStore:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writer ---------------------------------------------------------

    def _write_loop(self) -> None:
        assert self._writer is not None
        conn = self._writer
        while True:
            first = self._jobs.get()
            if first is None:
                return
            jobs = list(first)
            stop = False
            while len(jobs) < MAX_JOBS_PER_COMMIT:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                jobs.extend(more)
            _settle(commit_group(conn, jobs))
            if stop:
                return

    def write(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue the write `fn(conn, *args)`; the future resolves after its transaction committed."""
        if not self._open:
            raise StoreUnavailable("store is not open")
        if self._process is not None:
            assert self._process.loop is not None
            return asyncio.run_coroutine_threadsafe(self.awrite(fn, *args), self._process.loop)
        future: Future[T] = Future()
        self._jobs.put([_Job(fn, args, future)])
        return future

    async def awrite(self, fn: Callable[..., T], *args: Any, ingest: EventRow | None = None) -> T:
        """Queue a write from the event loop; returns after its transaction committed.

        The jobs of one loop iteration (the webhooks that arrived together) go to the
        writer as one list, at the end of the iteration: one hand-off and one writer
        wake-up for the group instead of one each. A writer process gets them sooner:
        at once while it has nothing to do, and in slices of HAND_OVER_EVERY while it
        commits, so its commits overlap the loop's work instead of waiting for the end
        of an iteration that handled every connection (docs/benchmarks.md).
        """
        if not self._open:
            raise StoreUnavailable("store is not open")
        loop = asyncio.get_running_loop()
        if self._process is not None:
            if loop is not self._process.loop:  # the writer process talks to the loop that opened the store
                return await asyncio.wrap_future(self.write(fn, *args))
            await self._process.ready()
        future: asyncio.Future[T] = loop.create_future()
        gathering = self._gathering.get(loop)
        if gathering is None:
            gathering = self._gathering[loop] = []
            loop.call_soon(self._hand_over, loop)
        gathering.append(_Job(fn, args, future, ingest))
        if self._process is not None and (self._process.idle or len(gathering) >= HAND_OVER_EVERY):
            self._hand_over(loop)
        return await future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs = self._gathering.pop(loop, None)
        if not jobs:
            return
        if not self._open:  # closed since: nobody will run them
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(StoreUnavailable("store is not open"))
            return
        if self._process is not None:
            self._process.send(jobs)
        else:
            self._jobs.put(jobs)

    def write_sync(self, fn: Callable[..., T], *args: Any) -> T:
        if self._process is not None and _running_loop() is self._process.loop:
            raise RuntimeError("write_sync would block the event loop the writer answers on: use awrite")
        return self.write(fn, *args).result()

    # -- readers ------------------------------------------------------------

    def reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
        return conn

    async def aread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(lambda: fn(self.reader()))

    # -- ingest -------------------------------------------------------------

    async def ingest(self, webhook: Webhook, now: float | None = None) -> IngestResult:
        """Commit an inbound event unless its dedupe key was seen; resolves after the commit."""
        row = event_row(webhook, time.time() if now is None else now)
        return await self.awrite(_ingest, row, ingest=row)

    async def holds_events(self) -> bool:
        """Whether any event was ever stored (a new database holds none)."""
        return await self.aread(lambda conn: bool(conn.execute("SELECT EXISTS (SELECT 1 FROM events)").fetchone()[0]))

    # -- mapping ------------------------------------------------------------

    async def waiting_events(self, limit: int, after: int = 0) -> list[Event]:
        """Up to `limit` events waiting to be mapped, oldest first, with ids above `after`."""
        return await self.aread(lambda conn: _waiting_events(conn, limit, after))

    async def save_mappings(self, mapped: Sequence[Mapped], now: float) -> int:
        """Store each event's messages and status; returns how many messages were queued."""
        return await self.awrite(_save_mappings, mapped, now)

    # -- delivery -----------------------------------------------------------

    async def claim(self, destination: str, limit: int, lease_seconds: float, now: float) -> list[Message]:
        return await self.awrite(_claim, destination, limit, now + lease_seconds, now)

    async def release_expired(self, now: float) -> int:
        """Leases of dead workers run out: their messages are due again."""
        return await self.awrite(_release_expired, now)

    async def release(self, messages: Iterable[Message], now: float) -> int:
        """Give back claimed messages without counting an attempt (shutdown)."""
        claimed = list(messages)
        return await self.awrite(_release, claimed, now)

    async def claim_batch(self, destination: str, due_before: float, lease_until: float,
                          holding_due_before: float | None = None) -> tuple[str, list[Message]] | None:
        """The submitted batch whose result check is the most overdue, if one was due before `due_before`.

        With `holding_due_before`, also a batch due before that time that holds back a later
        message of one of its keys (the worker checks those at once even while it is busy).
        """
        return await self.awrite(_claim_batch, destination, due_before, lease_until, holding_due_before)

    async def extend(self, messages: Sequence[Message], lease_until: float) -> int:
        """Renew the lease of messages still being delivered."""
        return await self.awrite(_extend, messages, lease_until)

    async def complete(self, results: Sequence[tuple[Message, Outcome, Decision]], now: float) -> None:
        await self.awrite(_complete, results, now)

    async def set_paused(self, name: str, paused: bool, reason: str, key_fingerprint: str | None, now: float) -> None:
        await self.awrite(set_paused, name, paused, reason, key_fingerprint, now)

    async def destination_states(self) -> dict[str, dict[str, Any]]:
        return await self.aread(destination_states)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def execute(conn: sqlite3.Connection, sql: str, *params: Any) -> int:
    """A write job of one SQL statement, for `write(execute, sql, *params)`: its row count."""
    return conn.execute(sql, params).rowcount


def _unavailable(exc: Exception) -> Exception:
    return StoreUnavailable(str(exc)) if isinstance(exc, sqlite3.Error) else exc


def commit_group(conn: sqlite3.Connection, jobs: list[_Job]) -> list[tuple[_Job, bool, Any]]:
    """Run `jobs` in one transaction, a savepoint each, and commit once.

    Returns (job, ok, value or exception) for every job, in order, and never raises:
    whatever goes wrong becomes every job's StoreUnavailable, so no waiter hangs.
    """
    try:
        return _commit(conn, jobs)
    except Exception as exc:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        return [(job, False, StoreUnavailable(f"write failed: {exc}")) for job in jobs]


def _commit(conn: sqlite3.Connection, jobs: list[_Job]) -> list[tuple[_Job, bool, Any]]:
    together = True  # the webhooks in the transaction below: tried as one insert first
    if len(jobs) <= INGEST_ROWS_PER_STATEMENT and all(job.ingest is not None for job in jobs):
        # Only webhooks, as under load: their insert is one statement, which SQLite
        # commits by itself. No BEGIN and COMMIT around it: two statements less
        # (see _ingest_many for why the count of statements matters).
        try:
            values = _ingest_many(conn, [job.ingest for job in jobs if job.ingest is not None])
        except Exception:  # the statement inserted nothing, or its rows are committed:
            together = False  # one by one below, in a transaction, each webhook gets its own answer
        else:
            return [(job, True, value) for job, value in zip(jobs, values)]
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        return [(job, False, StoreUnavailable(f"cannot begin a transaction: {exc}")) for job in jobs]
    results: list[tuple[_Job, bool, Any]] = []
    ingests: list[_Job] = []
    for job in jobs:
        if job.ingest is not None:
            ingests.append(job)
            continue
        if ingests:  # keep the order of the queue: the webhooks before this job first
            _run_ingests(conn, ingests, results, together)
            ingests = []
        conn.execute("SAVEPOINT job")
        try:
            value = job.run(conn)
        except Exception as exc:  # the job's own failure: undo it alone
            _still_in_transaction(conn)
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            results.append((job, False, _unavailable(exc)))
        else:
            conn.execute("RELEASE job")
            results.append((job, True, value))
    if ingests:
        _run_ingests(conn, ingests, results, together)
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        return [(job, False, StoreUnavailable(f"commit failed: {exc}")) for job in jobs]
    return results


def _settle(results: list[tuple[_Job, bool, Any]]) -> None:
    """Hand each job its result: thread futures directly, event-loop futures in one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for job, ok, value in results:
        future = job.future
        if isinstance(future, asyncio.Future):
            by_loop.setdefault(future.get_loop(), []).append((future, ok, value))
        elif ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_in_loop, items)
        except RuntimeError:  # that loop is closed: nobody waits any more
            pass


def _settle_in_loop(items: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in items:
        if future.done():  # the awaiting request was cancelled (client went away)
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


# -- SQL, one function per statement group; each runs inside the writer's transaction --


def _run_ingests(conn: sqlite3.Connection, jobs: list[_Job], results: list[tuple[_Job, bool, Any]],
                 together: bool = True) -> None:
    """The webhooks of a group in as few statements as possible (unless `together` is False: that
    was tried and failed); if that fails, one by one, so each gets its own answer. (A failed
    statement inserts nothing; a group of more than INGEST_ROWS_PER_STATEMENT may have inserted
    its first rows, which one by one then answer as duplicates of themselves: stored once,
    acknowledged 2xx.)"""
    if together:
        try:
            values = _ingest_many(conn, [job.ingest for job in jobs if job.ingest is not None])
        except Exception:
            _still_in_transaction(conn)
        else:
            results.extend((job, True, value) for job, value in zip(jobs, values))
            return
    for job in jobs:
        try:
            results.append((job, True, job.run(conn)))
        except Exception as exc:
            _still_in_transaction(conn)
            results.append((job, False, _unavailable(exc)))


def _still_in_transaction(conn: sqlite3.Connection) -> None:
    """Called while handling a job's exception: re-raises it when SQLite rolled the whole transaction
    back (a full disk, an I/O error), so that every job of the group fails with that reason."""
    if not conn.in_transaction:
        raise


# Rows per INSERT statement in _ingest_many: 8 parameters a row, under the 999 of SQLite before 3.32.
INGEST_ROWS_PER_STATEMENT = 120
INSERT_EVENT = "INSERT INTO events (source, topic, dedupe_key, received_at, headers, body, body_codec, status) VALUES "
EVENT_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?)"


def pack_body(body: bytes) -> tuple[bytes, str | None]:
    """(stored bytes, codec): a body as the writer stores it.

    An LZ4 block when that is smaller: a 7.3 KB Shopify order becomes ~3.1 KB in ~8 us of the
    writer's CPU. Every byte of a row is written twice (to the WAL, then to the database at the
    checkpoint) and copied by the kernel each time, so the writer's time follows the bytes:
    ingest +9% in side-by-side runs, and the store holds bodies in ~42% of the space.
    """
    packed = lz4.block.compress(body)
    return (packed, "lz4") if len(packed) < len(body) else (body, None)


def unpack_body(stored: bytes | None, codec: str | None) -> bytes:
    """The body as it was signed, from its stored bytes (b"" once pruned)."""
    if stored is None:
        return b""
    if codec == "lz4":
        try:
            return lz4.block.decompress(stored)
        except (lz4.block.LZ4BlockError, ValueError) as exc:  # a bad block, or a bad size before it
            raise StoreUnavailable(f"a stored body cannot be unpacked: {exc}") from exc
    if codec is not None:
        raise StoreUnavailable(f"a body is stored with the codec {codec!r}, which this version cannot read")
    return bytes(stored)


def _event_params(row: EventRow) -> tuple[Any, ...]:
    source, topic, dedupe_key, received_at, headers, body, status = row
    return (source, topic, dedupe_key, received_at, headers, *pack_body(body), status)


def _ingest_many(conn: sqlite3.Connection, rows: list[EventRow]) -> list[IngestResult]:
    """Insert webhooks that arrived together: the same results as _ingest for each, in order.

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
            params += _event_params(rows[index])
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
        found = _event_ids(conn, [keys[index] for index in chunk])
        newest = set(sorted(found.values())[len(found) - inserted :]) if inserted else set()
        for index in chunk:
            ids[index] = found[keys[index]]
            if ids[index] in newest:
                new.add(index)

    results: list[IngestResult] = []
    repeats: list[tuple[int]] = []
    for index, key in enumerate(keys):
        event_id = ids[first[key]]
        duplicate = index not in new
        if duplicate:
            repeats.append((event_id,))
        results.append(IngestResult(event_id, duplicate=duplicate))
    if repeats:
        conn.executemany("UPDATE events SET duplicates = duplicates + 1 WHERE id = ?", repeats)
    return results


def _event_ids(conn: sqlite3.Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
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


def _ingest(conn: sqlite3.Connection, row: EventRow) -> IngestResult:
    # One statement on the common path: the unique (source, dedupe_key) index
    # is the dedupe guard, so a new event costs a single insert.
    cur = conn.execute(INSERT_EVENT + EVENT_VALUES + " ON CONFLICT (source, dedupe_key) DO NOTHING",
                       _event_params(row))
    if cur.rowcount == 1:
        return IngestResult(int(cur.lastrowid or 0), duplicate=False)
    found = conn.execute(
        "UPDATE events SET duplicates = duplicates + 1 WHERE source = ? AND dedupe_key = ? RETURNING id",
        (row[0], row[2]),
    ).fetchone()
    return IngestResult(int(found[0]), duplicate=True)


EVENT_COLUMNS = "id, source, topic, dedupe_key, received_at, headers, body, body_codec, status"


def event_from_row(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"],
        source=row["source"],
        topic=row["topic"],
        dedupe_key=row["dedupe_key"],
        received_at=row["received_at"],
        headers=json.loads(row["headers"]),
        body=unpack_body(row["body"], row["body_codec"]),
        status=row["status"],
    )


def _waiting_events(conn: sqlite3.Connection, limit: int, after: int = 0) -> list[Event]:
    rows = conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE status = 'received' AND id > ? ORDER BY id LIMIT ?", (after, limit)
    ).fetchall()
    return [event_from_row(r) for r in rows]


def record_text(record: Mapping[str, Any]) -> str:
    """A message record as stored: compact JSON (its text as json.dumps wrote it, or the same value)."""
    return jsoncodec.dumps(record, ensure_ascii=True).decode()


def insert_message(conn: sqlite3.Connection, event_id: int, msg: Outgoing, idempotency_key: str, now: float) -> int:
    cur = conn.execute(
        "INSERT INTO messages (event_id, destination, kind, action, rule, ordering_key, idempotency_key, record,"
        " areas, state, attempts, next_at, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
        (event_id, msg.destination, msg.kind, msg.action, msg.rule, msg.key, idempotency_key,
         record_text(msg.record), ",".join(msg.areas), now, now, now),
    )
    return int(cur.lastrowid or 0)


def _save_mappings(conn: sqlite3.Connection, mapped: Sequence[Mapped], now: float) -> int:
    return sum(_save_mapping(conn, m, now) for m in mapped)


def _save_mapping(conn: sqlite3.Connection, m: Mapped, now: float) -> int:
    # Only the first mapper to get here wins: a second process mapping the same
    # event finds its status changed and queues nothing.
    cur = conn.execute(
        "UPDATE events SET status = ?, rules = ?, errors = ?, mapped_at = ? WHERE id = ? AND status = 'received'",
        (m.status, json.dumps(m.rules), json.dumps(m.errors) if m.errors else None, now, m.event_id),
    )
    if cur.rowcount == 0:
        return 0
    for msg, key in m.messages:
        insert_message(conn, m.event_id, msg, key, now)
    return len(m.messages)


MESSAGE_COLUMNS = (
    "id, event_id, destination, kind, action, record, rule, ordering_key, idempotency_key, attempts, created_at, claim,"
    " submitted_at"
)


def message_from_row(row: sqlite3.Row) -> Message:
    return Message(
        id=row["id"],
        event_id=row["event_id"],
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


def _claim(conn: sqlite3.Connection, destination: str, limit: int, lease_until: float, now: float) -> list[Message]:
    token = uuid.uuid4().hex
    # Per-key order: a message is due only when no earlier message with the
    # same ordering key is still open (pending, in flight, or in a batch the
    # destination is still processing), so a failing message holds back its
    # own key and nothing else.
    rows = conn.execute(
        f"""
        UPDATE messages SET state = 'inflight', lease_until = :lease, claim = :claim, attempts = attempts + 1,
            updated_at = :now
        WHERE id IN (
            SELECT m.id FROM messages AS m
            WHERE m.destination = :dest AND m.state = 'pending' AND m.next_at <= :now
              AND (m.ordering_key = '' OR NOT EXISTS (
                    SELECT 1 FROM messages AS p
                    WHERE p.destination = m.destination AND p.ordering_key = m.ordering_key
                      AND p.state IN ('pending', 'inflight', 'submitted') AND p.id < m.id))
            ORDER BY m.id LIMIT :limit)
        RETURNING {MESSAGE_COLUMNS}
        """,
        {"dest": destination, "lease": lease_until, "now": now, "limit": limit, "claim": token},
    ).fetchall()
    return sorted((message_from_row(r) for r in rows), key=lambda m: m.id)


def _release_expired(conn: sqlite3.Connection, now: float) -> int:
    return conn.execute(
        "UPDATE messages SET state = 'pending', next_at = :now, lease_until = NULL, claim = NULL, updated_at = :now"
        " WHERE state = 'inflight' AND lease_until < :now",
        {"now": now},
    ).rowcount


def _release(conn: sqlite3.Connection, messages: Sequence[Message], now: float) -> int:
    count = 0
    for m in messages:
        count += conn.execute(
            "UPDATE messages SET state = 'pending', attempts = MAX(attempts - 1, 0), next_at = ?, lease_until = NULL,"
            " claim = NULL, updated_at = ? WHERE id = ? AND state = 'inflight' AND claim = ?",
            (now, now, m.id, m.claim),
        ).rowcount
    return count


def _claim_batch(conn: sqlite3.Connection, destination: str, due_before: float, lease_until: float,
                 holding_due_before: float | None = None) -> tuple[str, list[Message]] | None:
    # One batch at a time: its messages keep their 'submitted' state (a lost
    # claim must never send them again); next_at doubles as the claim's lease.
    # A later message of a submitted message's key waits for it (_claim), so such a
    # batch is worth checking sooner. Its later messages are all still pending: the
    # check reads messages_open_by_key, whose states it names. Only the longest-due
    # HOLDING_SCAN submitted messages are looked at: this runs in the writer, between
    # webhook commits (10,000 submitted messages took ~6 ms; 1,000 take under 1 ms).
    holding = holding_due_before if holding_due_before is not None else due_before
    row = conn.execute(
        """
        WITH due AS (
            SELECT id, batch_ref, ordering_key, next_at FROM messages
            WHERE destination = :dest AND state = 'submitted' AND next_at <= MAX(:due, :holding)
            ORDER BY next_at LIMIT :scan)
        SELECT s.batch_ref FROM due AS s
        WHERE s.next_at <= :due OR (s.ordering_key != '' AND EXISTS (
                SELECT 1 FROM messages AS p
                WHERE p.destination = :dest AND p.ordering_key = s.ordering_key
                  AND p.state IN ('pending', 'inflight', 'submitted') AND p.id > s.id))
        ORDER BY s.next_at LIMIT 1
        """,
        {"dest": destination, "due": due_before, "holding": holding, "scan": HOLDING_SCAN},
    ).fetchone()
    if row is None:
        return None
    rows = conn.execute(
        f"UPDATE messages SET next_at = ?, claim = ? WHERE batch_ref = ? AND state = 'submitted'"
        f" RETURNING {MESSAGE_COLUMNS}",
        (lease_until, uuid.uuid4().hex, row[0]),
    ).fetchall()
    return row[0], sorted((message_from_row(r) for r in rows), key=lambda m: m.id)


def _extend(conn: sqlite3.Connection, messages: Sequence[Message], lease_until: float) -> int:
    count = 0
    for m in messages:
        count += conn.execute(
            "UPDATE messages SET lease_until = ? WHERE id = ? AND state = 'inflight' AND claim = ?",
            (lease_until, m.id, m.claim),
        ).rowcount
    return count


def _complete(conn: sqlite3.Connection, results: Sequence[tuple[Message, Outcome, Decision]], now: float) -> None:
    for msg, outcome, decision in results:
        if outcome.kind == "deferred":  # nothing was sent: no attempt to account for
            conn.execute(
                "UPDATE messages SET state = 'pending', next_at = ?, lease_until = NULL, claim = NULL, updated_at = ?,"
                " attempts = MAX(attempts - 1, 0) WHERE id = ? AND state = 'inflight' AND claim = ?",
                (decision.next_at, now, msg.id, msg.claim),
            )
            continue
        conn.execute(
            "INSERT INTO attempts (message_id, at, outcome, status, detail) VALUES (?, ?, ?, ?, ?)",
            (msg.id, now, outcome.kind, outcome.status, outcome.detail[:500]),
        )
        # The claim token guards against a late answer for a message whose lease
        # ran out and which another worker claimed again: only the current
        # holder's answer moves it on (the late one is still in the audit trail).
        submitted = decision.state == "submitted"
        conn.execute(
            "UPDATE messages SET state = ?, next_at = ?, lease_until = NULL, claim = NULL, updated_at = ?,"
            " last_status = ?, last_detail = ?, attempts = attempts - ?, batch_ref = ?,"
            " submitted_at = CASE WHEN ? THEN COALESCE(submitted_at, ?) END"
            " WHERE id = ? AND state IN ('inflight', 'submitted') AND claim = ?",
            (decision.state, decision.next_at, now, outcome.status, outcome.detail[:500],
             1 if decision.refund_attempt else 0, outcome.ref if submitted else None, submitted, now,
             msg.id, msg.claim),
        )


def set_paused(conn: sqlite3.Connection, name: str, paused: bool, reason: str, key_fingerprint: str | None, now: float) -> None:
    conn.execute(
        "INSERT INTO destination_state (name, paused, reason, changed_at, key_fingerprint) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, reason = excluded.reason,"
        " changed_at = excluded.changed_at, key_fingerprint = excluded.key_fingerprint",
        (name, int(paused), reason, now, key_fingerprint),
    )


def destination_states(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    rows = conn.execute("SELECT name, paused, reason, changed_at, key_fingerprint FROM destination_state").fetchall()
    return {r["name"]: dict(r) | {"paused": bool(r["paused"])} for r in rows}
