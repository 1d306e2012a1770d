"""The last good rules survive a restart: a start whose folder is broken runs the copy of the set that last loaded."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.config import settings_from_env
from bridge.mapping import reload, saved
from bridge.mapping.reload import RulesHolder
from bridge.model import Event

ROOT = Path(__file__).resolve().parents[2]
BROKEN = "rules:\n  - name: orders to omnisend\n    when: [\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the shipped rules (and their example payloads, found from the folder's parent)."""
    shutil.copytree(ROOT / "mappings", tmp_path / "mappings")
    shutil.copytree(ROOT / "tests" / "payloads", tmp_path / "tests" / "payloads")
    return tmp_path / "mappings"


def order_event() -> Event:
    body = (ROOT / "tests/payloads/shopify/orders_create.json").read_bytes()
    return Event(id=1, source="shopify", topic="orders/create", dedupe_key="k", received_at=1_800_000_000.0,
                 headers={}, body=body)


def holder(folder: Path, copies: Path) -> RulesHolder:
    return RulesHolder(folder, saved_dir=copies)


def test_a_set_that_loads_is_copied_once(folder: Path, tmp_path: Path) -> None:
    copies = tmp_path / "bridge.db.last-good-rules"
    first = holder(folder, copies)
    copy = saved.latest(copies)
    assert copy is not None and first.running_saved is None
    assert sorted(p.name for p in copy.path.iterdir() if not p.name.startswith(".")) == \
        sorted(p.name for p in folder.glob("*.yaml"))
    assert (copy.path / "shopify-orders.yaml").read_bytes() == (folder / "shopify-orders.yaml").read_bytes()
    assert json.loads((copy.path / saved.META).read_text())["source"] == str(folder)

    again = holder(folder, copies)  # the same files: the same copy, not a new one
    assert saved.latest(copies) == copy and again.current is not None
    assert [p.name for p in copies.iterdir() if p.is_dir()] == [copy.path.name]


def test_a_start_with_a_broken_file_runs_the_last_good_copy(folder: Path, tmp_path: Path) -> None:
    copies = tmp_path / "copies"
    good = holder(folder, copies)
    expected = good.current.map(order_event())  # type: ignore[union-attr]
    (folder / "shopify-orders.yaml").write_text(BROKEN)

    restarted = holder(folder, copies)

    assert restarted.current is not None and restarted.running_saved is not None
    assert restarted.current.fingerprint == good.current.fingerprint  # type: ignore[union-attr]
    assert restarted.loaded_at == restarted.running_saved.saved_at
    result = restarted.current.map(order_event())
    assert [(m.destination, m.record) for m in result.messages] == [(m.destination, m.record) for m in expected.messages]
    assert restarted.error is not None
    assert f"{folder.name}/shopify-orders.yaml:4:1: YAML syntax error" in restarted.error  # the file, the line, the fix
    assert "running the last good rules instead" in restarted.error and str(restarted.running_saved.path) in restarted.error
    assert (folder / "shopify-orders.yaml").read_text() == BROKEN  # the marketer's file is left as they saved it


def test_without_a_copy_a_broken_start_has_no_rules_as_before(folder: Path, tmp_path: Path) -> None:
    (folder / "shopify-orders.yaml").write_text(BROKEN)
    started = holder(folder, tmp_path / "copies")
    assert started.current is None and started.running_saved is None
    assert started.error is not None and "running the last good rules" not in started.error
    assert saved.latest(tmp_path / "copies") is None  # a broken set is never copied


def test_fixing_the_folder_replaces_the_copy_and_clears_the_error(folder: Path, tmp_path: Path) -> None:
    copies = tmp_path / "copies"
    holder(folder, copies)
    old = saved.latest(copies)
    original = (folder / "shopify-orders.yaml").read_text()
    (folder / "shopify-orders.yaml").write_text(BROKEN)
    running = holder(folder, copies)
    assert running.running_saved is not None

    assert running.reload() is False  # still broken: the copy keeps running, and is not replaced
    assert running.running_saved is not None and saved.latest(copies) == old

    (folder / "shopify-orders.yaml").write_text(original.replace("name: ", "name: renamed ", 1))
    assert running.reload() is True
    assert running.running_saved is None and running.error is None
    assert running.current is not None and running.current.directory == folder
    new = saved.latest(copies)
    assert new is not None and old is not None and new.path != old.path and not old.path.exists()
    assert "name: renamed " in (new.path / "shopify-orders.yaml").read_text()


def test_a_file_saved_between_its_load_and_the_copy_is_not_copied(folder: Path, tmp_path: Path) -> None:
    loaded = holder(folder, None)  # type: ignore[arg-type]
    assert loaded.current is not None
    (folder / "shopify-orders.yaml").write_text(BROKEN)
    assert saved.save(tmp_path / "copies", folder, loaded.current.digests) is None
    assert saved.latest(tmp_path / "copies") is None


def test_a_copy_that_cannot_be_written_does_not_stop_the_rules(folder: Path, tmp_path: Path) -> None:
    in_the_way = tmp_path / "copies"
    in_the_way.write_text("a file where the folder would go")
    loaded = holder(folder, in_the_way)
    assert loaded.current is not None and loaded.error is None


def test_a_crash_while_copying_leaves_the_previous_copy(folder: Path, tmp_path: Path) -> None:
    copies = tmp_path / "copies"
    holder(folder, copies)
    before = saved.latest(copies)
    left = copies / ".0123456789abcdef.k2j4x.tmp"  # what a crash mid-copy leaves
    left.mkdir()
    (left / "shopify-orders.yaml").write_text(BROKEN)
    assert saved.latest(copies) == before
    an_hour_ago = time.time() - saved.STALE_STAGING_SECONDS - 1
    os.utime(left, (an_hour_ago, an_hour_ago))  # younger, it may be another process's save in progress
    (folder / "woocommerce.yaml").unlink()
    holder(folder, copies)  # the next copy tidies it away
    assert sorted(p.name for p in copies.iterdir()) == sorted([saved.CURRENT, saved.latest(copies).path.name])  # type: ignore[union-attr]


def test_settings_put_the_copy_beside_the_database_unless_told_otherwise(tmp_path: Path) -> None:
    db = tmp_path / "data" / "bridge.db"
    url = f"sqlite:///{db}"
    assert settings_from_env({"BRIDGE_DATABASE_URL": url}).last_good_rules_dir == tmp_path / "data" / "bridge.db.last-good-rules"
    assert settings_from_env({"BRIDGE_DATABASE_URL": url, "BRIDGE_LAST_GOOD_RULES_DIR": "/srv/rules-copy"}
                             ).last_good_rules_dir == Path("/srv/rules-copy")
    assert settings_from_env({"BRIDGE_DATABASE_URL": url, "BRIDGE_LAST_GOOD_RULES_DIR": "off"}).last_good_rules_dir is None


def test_a_shared_folder_keeps_everything_that_is_not_a_copy(folder: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"  # BRIDGE_LAST_GOOD_RULES_DIR=/data, beside other things
    (data / "backups").mkdir(parents=True)
    (data / "backups" / "old.db").write_bytes(b"x")
    (data / "notes.txt").write_text("keep me")
    shutil.copytree(folder, data / "mappings")
    holder(folder, data)
    (folder / "woocommerce.yaml").unlink()
    holder(folder, data)  # a second copy replaces the first one, and only that
    assert sorted(p.name for p in data.iterdir()) == sorted(
        ["backups", "notes.txt", "mappings", saved.CURRENT, saved.latest(data).path.name])  # type: ignore[union-attr]
    assert (data / "backups" / "old.db").read_bytes() == b"x"


def test_a_copy_missing_a_file_is_not_run_and_the_next_load_writes_it_again(folder: Path, tmp_path: Path) -> None:
    copies = tmp_path / "copies"
    holder(folder, copies)
    copy = saved.latest(copies)
    assert copy is not None
    (copy.path / "woocommerce.yaml").unlink()  # two saves at once, or a hand, left it short
    assert saved.latest(copies) is None
    (folder / "shopify-orders.yaml").write_text(BROKEN)
    assert holder(folder, copies).current is None  # a short copy never runs in place of the rules
    shutil.copy(ROOT / "mappings" / "shopify-orders.yaml", folder / "shopify-orders.yaml")
    holder(folder, copies)
    again = saved.latest(copies)
    assert again is not None and (again.path / "woocommerce.yaml").is_file()


def test_an_empty_folder_is_refused_and_the_last_good_copy_runs(folder: Path, tmp_path: Path) -> None:
    copies = tmp_path / "copies"
    holder(folder, copies)
    good = saved.latest(copies)
    for path in folder.iterdir():
        if path.is_file():
            path.unlink()
    (folder / "orders.yml.bak").write_text("rules: []\n")
    restarted = holder(folder, copies)
    assert restarted.running_saved == good and restarted.current is not None
    assert "there are no rule files in this folder" in (restarted.error or "")
    assert "orders.yml.bak" in (restarted.error or "")  # the file that may be the rules, named
    assert saved.latest(copies) == good


@pytest.mark.parametrize("error", [RecursionError("maximum recursion depth exceeded"), MemoryError(), KeyError("x")])
def test_a_start_whose_folder_raises_anything_runs_the_last_good_copy(folder: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     error: Exception) -> None:
    copies = tmp_path / "copies"
    good = holder(folder, copies)
    real = reload.load_rules

    def load(directory: Path, allowed: Any = None) -> Any:
        if Path(directory) == folder:
            raise error
        return real(directory, allowed)

    monkeypatch.setattr(reload, "load_rules", load)
    restarted = holder(folder, copies)
    assert restarted.running_saved is not None and restarted.current is not None
    assert restarted.current.fingerprint == good.current.fingerprint  # type: ignore[union-attr]
    assert restarted.error is not None and type(error).__name__ in restarted.error
    assert "running the last good rules instead" in restarted.error


def test_the_watcher_lives_on_after_any_exception(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    watched = holder(folder, tmp_path / "copies")
    failures = iter([OSError("disk gone"), RuntimeError("anything")])
    real = watched.changed

    def changed() -> bool:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real()

    monkeypatch.setattr(watched, "changed", changed)

    async def go() -> None:
        task = asyncio.create_task(watched.watch(interval=0.01))
        try:
            path = folder / "shopify-orders.yaml"
            path.write_text(path.read_text().replace("origin: api", "origin: other", 1))
            before = watched.loaded_at
            for _ in range(500):
                await asyncio.sleep(0.02)
                if watched.loaded_at != before:
                    break
            assert not task.done() and watched.loaded_at != before  # it survived both, and reloaded
        finally:
            task.cancel()

    asyncio.run(go())
