"""Which source wins: the folder imported on a fresh install and when a deploy brings new files, never again
for files the store held; a broken folder is not imported and the published version keeps running; a
version that does not load here is not run; two instances starting at once import the folder once."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.mapping.reload import RulesHolder
from bridge.rules import files as ruleset
from bridge.rules.sync import RulesSync, publish
from bridge.store import SQLiteStore
from bridge.store.base import Store

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
ORDERS = "shopify-orders.yaml"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", target)
    return target


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = SQLiteStore(tmp_path / "b.db")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def instance(store: Store, folder: Path, tmp_path: Path) -> RulesSync:
    return RulesSync(store, RulesHolder(folder), folder, poll_seconds=0.05, base=tmp_path / "runtime")


def edit(folder: Path, old: str, new: str) -> None:
    path = folder / ORDERS
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


async def versions(store: Store) -> list[tuple[int, str]]:
    return [(v.version, v.origin) for v in (await store.rule_history(100)).items]


async def test_a_fresh_install_imports_the_folder_as_version_1(store: Store, folder: Path, tmp_path: Path) -> None:
    sync = instance(store, folder, tmp_path)
    await sync.start()
    assert await versions(store) == [(1, "folder")]
    assert sync.running is not None and sync.running.version == 1
    assert sync.holder.current is not None and sync.holder.directory.parent == tmp_path / "runtime"
    stored = await store.rule_version(1)
    assert stored is not None and stored.files == ruleset.read_folder(folder)
    again = instance(store, folder, tmp_path)  # a restart: nothing new
    await again.start()
    assert await versions(store) == [(1, "folder")] and again.running is not None and again.running.version == 1


async def test_a_deploy_with_changed_files_publishes_them_and_old_files_never_come_back(
        store: Store, folder: Path, tmp_path: Path) -> None:
    await instance(store, folder, tmp_path).start()
    original = (folder / ORDERS).read_text()
    edit(folder, 'currency: "{{ currency }}"', 'currency: "{{ currency | lower }}"')
    deployed = instance(store, folder, tmp_path)
    await deployed.start()
    assert await versions(store) == [(2, "folder"), (1, "folder")] and deployed.running.version == 2  # type: ignore[union-attr]
    (folder / ORDERS).write_text(original)  # an instance of the older build starts
    older = instance(store, folder, tmp_path)
    await older.start()
    assert await versions(store) == [(2, "folder"), (1, "folder")]
    assert older.running is not None and older.running.version == 2  # it runs what is published, not its folder
    assert older.holder.current is not None and older.holder.current.digests == deployed.holder.current.digests  # type: ignore[union-attr]


async def test_a_console_publish_survives_the_next_deploy_of_the_same_folder(
        store: Store, folder: Path, tmp_path: Path) -> None:
    sync = instance(store, folder, tmp_path)
    await sync.start()
    files = ruleset.read_folder(folder)
    files[ORDERS] += "# published from the console\n"
    assert await publish(store, files, author="maria", origin="publish", now=1.0, message="note") is not None
    restarted = instance(store, folder, tmp_path)
    await restarted.start()
    assert await versions(store) == [(2, "publish"), (1, "folder")]
    assert restarted.running is not None and restarted.running.version == 2


async def test_a_broken_folder_is_not_imported_and_the_published_rules_keep_running(
        store: Store, folder: Path, tmp_path: Path) -> None:
    await instance(store, folder, tmp_path).start()
    edit(folder, "to: omnisend event", "to: omnisnd event")
    sync = instance(store, folder, tmp_path)
    await sync.start()
    assert await versions(store) == [(1, "folder")]
    assert sync.running is not None and sync.running.version == 1 and sync.holder.current is not None
    assert sync.folder_error is not None and f"{ORDERS}:16:13: unknown destination `omnisnd`" in sync.folder_error
    assert "did you mean `omnisend`" in sync.folder_error and "published rules keep running" in sync.folder_error
    edit(folder, "to: omnisnd event", "to: omnisend event")  # fixed: the files of version 1 again
    await sync.import_folder()
    assert sync.folder_error is None and await versions(store) == [(1, "folder")]


async def test_the_watch_imports_a_saved_folder_and_runs_a_version_published_elsewhere(
        store: Store, folder: Path, tmp_path: Path) -> None:
    sync = instance(store, folder, tmp_path)
    await sync.start()
    watch = asyncio.create_task(sync.watch())
    try:
        edit(folder, 'currency: "{{ currency }}"', 'currency: "{{ currency | lower }}"')
        for _ in range(200):
            if sync.running is not None and sync.running.version == 2:
                break
            await asyncio.sleep(0.05)
        assert await versions(store) == [(2, "folder"), (1, "folder")] and sync.running.version == 2  # type: ignore[union-attr]
        elsewhere = ruleset.read_folder(folder)
        elsewhere[ORDERS] += "# from another instance\n"
        await publish(store, elsewhere, author="bo", origin="publish", now=2.0, message="")
        for _ in range(200):
            if sync.running.version == 3:  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.05)
        assert sync.running.version == 3  # type: ignore[union-attr]
        assert sync.holder.current is not None and sync.holder.current.digests == ruleset.digests(elsewhere)
    finally:
        watch.cancel()


async def test_a_version_that_does_not_load_here_is_not_run(store: Store, folder: Path, tmp_path: Path) -> None:
    sync = instance(store, folder, tmp_path)
    await sync.start()
    hash_before = sync.holder.hash
    broken = ruleset.read_folder(folder)
    broken[ORDERS] = broken[ORDERS].replace("to: omnisend event", "to: omnisnd event", 1)  # stored by another build
    await publish(store, broken, author="old", origin="publish", now=1.0, message="")
    assert not await sync.apply_head()
    assert sync.failed == 2 and sync.running is not None and sync.running.version == 1
    assert sync.holder.hash == hash_before
    assert sync.holder.error is not None and sync.holder.error.startswith("published version 2 does not load here")
    assert sync.state()["failed_version"] == 2


async def test_two_instances_starting_at_once_import_the_folder_once(tmp_path: Path, folder: Path) -> None:
    one, two = SQLiteStore(tmp_path / "b.db"), SQLiteStore(tmp_path / "b.db")
    await one.open()
    await two.open()
    try:
        syncs = [instance(one, folder, tmp_path), instance(two, folder, tmp_path)]
        await asyncio.gather(*(s.start() for s in syncs))
        assert await versions(one) == [(1, "folder")]
        assert all(s.running is not None and s.running.version == 1 for s in syncs)
    finally:
        await one.close()
        await two.close()
