"""Numbered migrations: a database of the schema before them upgrades in place, runs are idempotent,
two processes starting at once apply each migration once, and a store told not to migrate refuses
a database that lacks one."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import build_parser, main
from bridge.config import settings_from_env
from bridge.errors import MigrationError
from bridge.model import Webhook
from bridge.store import SQLiteStore, make_store
from bridge.store.base import DeadFilter, EventFilter
from bridge.store.migrations import migrations
from bridge.store.sqlite.migrate import migrate
from bridge.store.sqlite.writer import connect

FIXTURES = Path(__file__).parent / "fixtures"
SHIPPED = [(m.version, m.name) for m in migrations("sqlite")]  # what a new or adopted database ends with
NAMES = [name for _, name in SHIPPED]
CURRENT = SHIPPED[-1][0]


def database_of_the_schema_before_migrations(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.executescript((FIXTURES / "main-2026-12-07.sql").read_text())
    return path


def versions(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'").fetchone():
            return []
        return [tuple(r) for r in conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")]


SHIPPED = [(m.version, m.name) for m in migrations("sqlite")]  # [("0001", "0001_initial"), ...]
NAMES = [name for _, name in SHIPPED]
CURRENT = SHIPPED[-1][0]


def extra_migrations(tmp_path: Path, *files: tuple[str, str]) -> list:
    """The shipped SQLite migrations and more after them, in a folder of their own."""
    folder = tmp_path / "migrations"
    folder.mkdir(exist_ok=True)
    for migration in migrations("sqlite"):
        (folder / f"{migration.name}.sql").write_text(migration.sql)
    for name, sql in files:
        (folder / name).write_text(sql)
    return migrations("sqlite", folder)


def test_a_database_made_before_migrations_upgrades_in_place_and_keeps_everything(tmp_path: Path) -> None:
    path = database_of_the_schema_before_migrations(tmp_path / "old.db")

    async def go() -> None:
        store = SQLiteStore(path)
        await store.open()
        try:
            assert (await store.ingest(Webhook("shopify", "orders/create", "evt-1", b"{}"))).duplicate
            assert [m.idempotency_key for m in await store.claim("omnisend", 10, 60, now=1795000100.0)] == ["idem-2"]
            assert [e.dedupe_key for e in await store.waiting_events(10)] == ["evt-3"]
            states = await store.destination_states()
            assert states["ometria"]["paused"] and states["ometria"]["reason"] == "paused by an operator"
            page = await store.list_events(EventFilter(), 10)
            assert page.total == 3 and [e["id"] for e in page.items] == [3, 2, 1]
            detail = await store.event_detail(1)
            assert detail is not None and detail["messages"][0]["trail"][0]["status"] == 202
            assert (await store.list_dead(DeadFilter(), 10)).total == 0
        finally:
            await store.close()

    asyncio.run(go())
    assert versions(path) == SHIPPED
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_migrating_twice_applies_nothing_the_second_time(tmp_path: Path) -> None:
    store = make_store(f"sqlite:///{tmp_path / 'b.db'}", migrate=False)
    first = asyncio.run(store.migrate())
    again = asyncio.run(store.migrate())
    assert first.applied == NAMES and first.current == CURRENT
    assert again.applied == [] and again.current == CURRENT
    assert first.created and not again.created  # the run that made the schema says the database is new
    assert versions(tmp_path / "b.db") == SHIPPED


def test_a_database_made_before_migrations_is_adopted_not_new(tmp_path: Path) -> None:
    conn = connect(database_of_the_schema_before_migrations(tmp_path / "old.db"))
    try:
        adopted = migrate(conn)
    finally:
        conn.close()
    assert adopted.applied == NAMES and not adopted.created


def _migrate_in_a_process(path: str, folder: str, start: Any, results: Any) -> None:
    try:
        start.wait(120)  # both processes read the versions at the same moment
        conn = connect(path)
        try:
            status = migrate(conn, migrations("sqlite", Path(folder)))
            results.put((status.applied, status.created))
        finally:
            conn.close()
    except Exception as exc:
        results.put(f"{type(exc).__name__}: {exc}")


def test_two_processes_starting_at_once_apply_each_migration_once(tmp_path: Path) -> None:
    # ADD COLUMN fails when run twice: a migration applied by both processes would fail one of them
    available = extra_migrations(tmp_path, ("0901_note.sql", "ALTER TABLE events ADD COLUMN note TEXT;\n"),
                                 ("0902_note_index.sql", "CREATE INDEX events_note ON events (note);\n"))
    assert [m.version for m in available] == [v for v, _ in SHIPPED] + ["0901", "0902"]
    context = multiprocessing.get_context("spawn")
    for round_ in range(3):
        path = tmp_path / f"race-{round_}.db"
        start, results = context.Barrier(2), context.Queue()
        processes = [context.Process(target=_migrate_in_a_process,
                                     args=(str(path), str(tmp_path / "migrations"), start, results))
                     for _ in range(2)]
        for process in processes:
            process.start()
        runs = [results.get(timeout=180) for _ in processes]
        for process in processes:
            process.join(10)
        assert all(isinstance(run, tuple) for run in runs), runs
        applied = [run[0] for run in runs]
        assert sorted(applied[0] + applied[1]) == sorted([*NAMES, "0901_note", "0902_note_index"])
        assert sorted(run[1] for run in runs) == [False, True]  # one of them made the file's schema
        assert [v for v, _ in versions(path)] == [v for v, _ in SHIPPED] + ["0901", "0902"]


def test_a_failing_migration_leaves_the_database_at_the_last_good_one(tmp_path: Path) -> None:
    available = extra_migrations(tmp_path, ("0901_broken.sql", "ALTER TABLE events ADD COLUMN a TEXT;\nTHIS IS NOT SQL;\n"))
    conn = connect(tmp_path / "b.db")
    try:
        with pytest.raises(MigrationError, match="0901_broken"):
            migrate(conn, available)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    finally:
        conn.close()
    assert "a" not in columns  # the migration's first statement was undone with it
    assert versions(tmp_path / "b.db") == SHIPPED


def test_a_version_from_a_newer_bridge_is_left_alone(tmp_path: Path) -> None:
    """A rolling deploy: a newer instance migrated further; this one starts on the versions it knows."""
    newer = extra_migrations(tmp_path, ("0901_newer.sql", "CREATE TABLE newer (x INTEGER);\n"))
    conn = connect(tmp_path / "b.db")
    try:
        migrate(conn, newer)
    finally:
        conn.close()
    with SQLiteStore(tmp_path / "b.db", migrate=False):
        pass
    status = asyncio.run(SQLiteStore(tmp_path / "b.db").migrate())
    assert status.applied == [] and status.current == "0901"


def test_a_misnamed_migration_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_initial.sql").write_text("SELECT 1;\n")
    (tmp_path / "2_more.sql").write_text("SELECT 1;\n")
    with pytest.raises(MigrationError, match=r"2_more\.sql"):
        migrations("sqlite", tmp_path)


def test_a_store_told_not_to_migrate_refuses_a_database_that_lacks_migrations(tmp_path: Path) -> None:
    path = database_of_the_schema_before_migrations(tmp_path / "old.db")
    with pytest.raises(MigrationError, match="bridge migrate"):
        SQLiteStore(path, migrate=False).open_sync()
    assert settings_from_env({"BRIDGE_MIGRATE": "false"}).migrate is False
    assert settings_from_env({}).migrate is True


def test_the_migrate_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = database_of_the_schema_before_migrations(tmp_path / "old.db")
    monkeypatch.setenv("BRIDGE_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.delenv("BRIDGE_ENV", raising=False)
    assert main(["migrate"]) == 0
    assert "0001_initial" in capsys.readouterr().out
    assert main(["migrate"]) == 0
    assert "nothing to apply" in capsys.readouterr().out
    assert versions(path) == SHIPPED


def test_a_worker_started_with_no_migrate_refuses_a_database_that_lacks_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = database_of_the_schema_before_migrations(tmp_path / "old.db")
    monkeypatch.setenv("BRIDGE_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("BRIDGE_STORE_WRITER", "thread")
    monkeypatch.delenv("BRIDGE_ENV", raising=False)
    monkeypatch.setattr("bridge.cli.configure", lambda *args: None)  # the log set-up would outlive this test
    assert main(["worker", "--no-migrate"]) == 2
    assert "0001_initial" in capsys.readouterr().err and versions(path) == []
    assert build_parser().parse_args(["serve", "--no-migrate"]).no_migrate
