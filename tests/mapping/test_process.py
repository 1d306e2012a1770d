"""The mapping process: the worker's very rules in a child, or a thread when the child holds others."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.mapping.loader import load_rules
from bridge.mapping.process import MappingProcess, map_events, mapped_of
from bridge.mapping.result import MapResult
from bridge.model import Event
from bridge.settings import Secret, SourceSettings
from bridge.sign import shopify_headers
from bridge.sources.shopify import ShopifySource
from tests.mapping.test_rules import ORDER_HEAD

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = ROOT / "tests" / "payloads" / "shopify" / "orders_create.json"


def events(n: int = 3) -> list[Event]:
    source = ShopifySource.from_settings(SourceSettings("shopify", "shopify", (Secret("s"),)))
    out = []
    body = PAYLOAD.read_bytes()
    for i in range(n):
        hook = source.verify(shopify_headers(body, "s", "orders/create", event_id=f"e{i}"), body)
        out.append(Event(i + 1, hook.source, hook.topic, hook.dedupe_key, 0.0, hook.headers, hook.body))
    return out


def comparable(mapped: list[Any]) -> list[Any]:
    return [(m.event_id, m.status, m.rules, m.errors, [(o.destination, o.kind, o.record, key) for o, key in m.messages])
            for m in mapped]


async def map_until_in_child(process: MappingProcess, rules: Any, batch: list[Event], timeout: float = 60) -> list[Any]:
    """Map until the child took a batch (it starts on the first); each batch's answer must be right."""
    expected = comparable(map_events(rules, batch))
    deadline = time.monotonic() + timeout
    before = process.mapped_here
    while process.mapped_here == before:
        assert comparable(await process.map(rules, batch)) == expected
        assert time.monotonic() < deadline, "the mapping process never took a batch"
        await asyncio.sleep(0.1)
    return expected


def child_pids() -> set[int]:
    me = os.getpid()
    return {int(p) for p in Path(f"/proc/{me}/task/{me}/children").read_text().split()}


def test_the_child_maps_with_the_workers_rules_and_gives_the_same_messages(tmp_path: Path) -> None:
    rules = load_rules(ROOT / "mappings")
    batch = events()

    async def go() -> None:
        process = MappingProcess()
        try:
            expected = await map_until_in_child(process, rules, batch)
            assert expected and all(m[3] == [] and m[4] for m in expected)  # mapped, with messages
        finally:
            process.close()

    asyncio.run(go())


@pytest.mark.slow  # ~30 s: waits out a child that keeps other rules
def test_a_child_holding_other_rules_leaves_the_batch_to_the_thread(tmp_path: Path) -> None:
    """The worker reloaded, and the file changed again (or broke) before the child read it: the child
    cannot load the worker's set, says so, and the thread maps with the worker's rules."""
    directory = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", directory)
    orders = directory / "shopify-orders.yaml"
    original = orders.read_text()
    batch = events(2)

    async def go() -> None:
        process = MappingProcess()
        try:
            await map_until_in_child(process, load_rules(directory), batch)
            orders.write_text(original.replace("origin: api", "origin: reloaded", 1))
            reloaded = load_rules(directory)  # what the worker holds now
            expected = comparable(map_events(reloaded, batch))
            for saved_since in (original.replace("origin: api", "origin: saved-since", 1), original + "\n  - oops: [\n"):
                orders.write_text(saved_since)
                taken = process.mapped_here
                for _ in range(2):
                    mapped = comparable(await process.map(reloaded, batch))
                    assert mapped == expected  # the worker's rules, not the file's
                assert process.mapped_here == taken
            assert '"origin": "reloaded"' in repr(expected) or "'origin': 'reloaded'" in repr(expected)
            orders.write_text(original.replace("origin: api", "origin: reloaded", 1))  # the file is the worker's again
            await map_until_in_child(process, reloaded, batch)
        finally:
            process.close()

    assert "origin: api" in original  # the edits above change a rule
    asyncio.run(go())


def test_a_child_that_died_is_replaced_and_no_batch_is_lost(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr("bridge.mapping.process.RESTART_AFTER_SECONDS", 0.0)
    rules = load_rules(ROOT / "mappings")
    batch = events(2)

    async def go() -> None:
        process = MappingProcess()
        try:
            expected = await map_until_in_child(process, rules, batch)
            (child,) = process._pool._processes  # type: ignore[union-attr]  # (the pool's own resource tracker aside)
            os.kill(child, signal.SIGKILL)
            assert comparable(await process.map(rules, batch)) == expected  # mapped in the thread
            await map_until_in_child(process, rules, batch)  # a new child took over
            assert child not in child_pids()
        finally:
            process.close()

    asyncio.run(go())


def test_a_set_the_child_cannot_load_is_not_asked_of_it_again_for_a_while(tmp_path: Path) -> None:
    """A broken file on disk: the child says so once, then the thread maps without waiting for it."""
    directory = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", directory)
    rules = load_rules(directory)
    batch = events(1)

    async def go() -> None:
        process = MappingProcess()
        calls: list[str] = []
        original = process._in_child

        async def in_child(*args: Any) -> Any:
            calls.append("child")
            return await original(*args)

        process._in_child = in_child  # type: ignore[method-assign]
        try:
            await map_until_in_child(process, rules, batch)
            reloaded_elsewhere = directory / "shopify-orders.yaml"
            reloaded_elsewhere.write_text(reloaded_elsewhere.read_text().replace("origin: api", "origin: other", 1))
            other = load_rules(directory)  # the worker reloads: a set the child has not loaded
            (directory / "broken.yaml").write_text("rules: [\n")  # and a file breaks before the child reads it
            calls.clear()
            for _ in range(3):
                assert comparable(await process.map(other, batch)) == comparable(map_events(other, batch))
            assert calls == ["child"]  # asked once, then left alone
        finally:
            process.close()

    asyncio.run(go())


@pytest.mark.parametrize("limits, expected", [
    ({"memory_mb": 1}, "the mapping process grew over 1 MB"),  # a memory limit no process meets
    ({"seconds": 0.001}, "it took over 0.001 s"),  # no loop for the child's own budget to stop
])
def test_a_child_over_its_budget_is_killed_its_event_names_the_rule_and_a_new_one_starts(
        tmp_path: Path, monkeypatch: Any, limits: dict[str, Any], expected: str) -> None:
    """Budgets are per event: the worker watches the child while it maps one, and kills it once it is over
    what its own loops could stop; that event is a mapping error naming its rule, and the batch ends there."""
    monkeypatch.setattr("bridge.mapping.process.GRACE_SECONDS", 0.0)
    directory = tmp_path / "mappings"
    directory.mkdir()
    (directory / "orders.yaml").write_text(ORDER_HEAD + NO_LOOP)
    rules = load_rules(directory)
    batch = events(3000)

    async def go() -> None:
        process = MappingProcess(**limits)
        try:
            await map_until_ready(process, rules)
            child = process._progress[3]
            mapping = asyncio.ensure_future(process.map(rules, batch))
            if "seconds" in limits:
                # A child stuck in one event, whatever the machine's speed (an ordinary event maps in
                # under a millisecond, faster than the worker looks): stopped once it has begun one.
                while not process._progress[2] and not mapping.done():
                    await asyncio.sleep(0.001)
                os.kill(int(child), signal.SIGSTOP)
            (mapped,) = await mapping
            assert mapped.status == "mapping_error" and not mapped.messages
            (error,) = mapped.errors
            assert f"orders.yaml:2 rule 'Order': mapping this event stopped: {expected}" in error
            (event,) = [event for event in batch if event.id == mapped.event_id]
            # What the event itself asks of the store is kept (its search keys, the kept order; an
            # erasure's deletions the same way): a rule over its budget does not undo them.
            itself = mapped_of(event, MapResult())
            assert mapped.search_keys and mapped.resource is not None
            assert (mapped.search_keys, mapped.resource, mapped.forget_resources, mapped.forget_copies) == \
                (itself.search_keys, itself.resource, itself.forget_resources, itself.forget_copies)
            assert stopped(int(child))
            await process.map(rules, batch[:1])
            assert process._pool is not None  # and a new one started
        finally:
            process.close()

    asyncio.run(go())


NO_LOOP = """\
          contact: {email: "{{ email | lower }}"}
          properties: {orderID: "{{ id | string }}", total: "{{ total_price | decimal }}"}
"""


def stopped(pid: int, timeout: float = 10) -> bool:
    """The process is gone, or a zombie waiting for its parent's pool to reap it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


async def map_until_ready(process: MappingProcess, rules: Any, timeout: float = 60) -> None:
    """Start the child and wait until it has loaded the rules (batches go to the thread until then)."""
    process.start(rules)
    deadline = time.monotonic() + timeout
    while process._ready is None or not process._ready.done():
        assert time.monotonic() < deadline, "the mapping process never started"
        await asyncio.sleep(0.1)


def test_rules_without_a_fingerprint_never_start_a_child() -> None:
    class Fixed:
        def map(self, event: Event) -> Any:
            return load_rules(ROOT / "mappings").map(event)

    async def go() -> None:
        before = child_pids()
        process = MappingProcess()
        await process.map(Fixed(), events(1))
        assert process.mapped_here == 0 and child_pids() <= before  # (a child of an earlier test may be ending)

    asyncio.run(go())


CHILD_OF_A_KILLED_PARENT = """
import asyncio, sys
from pathlib import Path
from bridge.mapping.loader import load_rules
from bridge.mapping.process import MappingProcess

async def main():
    process = MappingProcess()
    process.start(load_rules(Path(sys.argv[1])))
    print(*process._pool._processes, flush=True)  # the child, still starting
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_a_child_whose_parent_is_killed_while_it_starts_goes_too(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(CHILD_OF_A_KILLED_PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(ROOT / "mappings")], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        (child,) = map(int, parent.stdout.readline().split())
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    deadline = time.monotonic() + 30
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{child}").exists(), "the mapping child outlived its parent"


def test_the_child_runs_at_a_lower_os_priority_than_the_worker() -> None:
    """Mapping can wait and acknowledgements cannot: the child leaves the CPU to the web process in a burst."""
    rules = load_rules(ROOT / "mappings")

    async def go() -> None:
        process = MappingProcess(nice=7)
        try:
            await map_until_in_child(process, rules, events(1))
            child = int(process._progress[3])
            assert os.getpriority(os.PRIO_PROCESS, child) == min(os.getpriority(os.PRIO_PROCESS, 0) + 7, 19)
        finally:
            process.close()

    asyncio.run(go())


def test_bridge_worker_lowers_its_own_priority_and_not_below_the_lowest() -> None:
    script = ("import os; from bridge.cli import lower_priority; before = os.getpriority(os.PRIO_PROCESS, 0); "
              "lower_priority(5); print(os.getpriority(os.PRIO_PROCESS, 0) - before); lower_priority(0)")
    before = os.getpriority(os.PRIO_PROCESS, 0)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert int(out) == min(5, 19 - before)
