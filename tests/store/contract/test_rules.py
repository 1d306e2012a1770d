"""Rule sets kept in the store: published versions (head + 1 only), drafts, the rules' audit log, and
the newest events of some topics that a preview reads."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridge.store.base import RuleAction, RuleVersion, Store

from ..conftest import StoreFactory
from .support import T0, hook

pytestmark = pytest.mark.anyio

FILES = {"orders.yaml": "rules: []\n", "customers.yaml": "rules:\n  - name: é ünïcode\n"}


def version(n: int, *, origin: str = "publish", files: dict[str, str] | None = None, based_on: int | None = None,
            author: str = "ana") -> RuleVersion:
    return RuleVersion(n, T0 + n, author, f"change {n}", origin, f"digest{n}", based_on, files or FILES)


async def test_no_rules_before_the_first_publish(store: Store) -> None:
    assert await store.rule_head() is None and await store.rule_version(1) is None
    assert (await store.rule_history(10)).total == 0


async def test_each_publish_is_the_next_version_and_the_highest_is_the_head(store: Store) -> None:
    assert await store.publish_rules(version(1, origin="folder"))
    assert await store.publish_rules(version(2, files={"orders.yaml": "rules: [1]\n"}, based_on=1))
    head = await store.rule_head()
    assert head is not None and (head.version, head.author, head.message, head.origin, head.based_on) == \
        (2, "ana", "change 2", "publish", 1)
    assert head.files == {}  # the head is polled: no files
    stored = await store.rule_version(1)
    assert stored is not None and stored.files == FILES and stored.digest == "digest1" and stored.created_at == T0 + 1
    folder = await store.rule_head(origin="folder")
    assert folder is not None and folder.version == 1
    assert await store.rule_head(origin="rollback") is None
    assert (await store.rule_head(digest="digest1")).version == 1  # type: ignore[union-attr]
    assert await store.rule_head(origin="publish", digest="digest1") is None


async def test_a_publish_that_is_not_head_plus_one_stores_nothing(store: Store) -> None:
    assert not await store.publish_rules(version(2))  # no version 1 yet
    assert await store.publish_rules(version(1))
    assert not await store.publish_rules(version(1, author="bo"))  # another instance took 1 first
    assert not await store.publish_rules(version(3))
    history = await store.rule_history(10)
    assert [v.version for v in history.items] == [1] and history.items[0].author == "ana"


async def test_two_instances_publishing_at_once_one_wins(store_factory: StoreFactory, tmp_path: Path) -> None:
    async with store_factory(tmp_path) as one, store_factory(tmp_path) as two:
        assert await one.publish_rules(version(1))
        won = await asyncio.gather(*(s.publish_rules(version(2, author=name))
                                     for s, name in ((one, "one"), (two, "two"), (one, "three"), (two, "four"))))
        assert sorted(won) == [False, False, False, True]
        head = await two.rule_head()
        assert head is not None and head.version == 2 and head.author == ["one", "two", "three", "four"][won.index(True)]


async def test_history_pages_newest_first_with_the_total(store: Store) -> None:
    for n in range(1, 6):
        assert await store.publish_rules(version(n))
    page = await store.rule_history(2, offset=1)
    assert [v.version for v in page.items] == [4, 3] and (page.total, page.limit, page.offset) == (5, 2, 1)
    assert all(v.files == {} for v in page.items)


async def test_drafts_are_saved_changed_listed_and_deleted(store: Store) -> None:
    first = await store.save_rule_draft(None, FILES, 3, "ana", T0)
    assert first is not None and first.files == FILES and (first.base_version, first.author) == (3, "ana")
    second = await store.save_rule_draft(None, {"a.yaml": "x"}, None, "bo", T0 + 1)
    assert second is not None and second.id != first.id
    changed = await store.save_rule_draft(first.id, {"orders.yaml": "rules: [2]\n"}, 4, "cy", T0 + 2)
    assert changed is not None and changed.id == first.id and changed.files == {"orders.yaml": "rules: [2]\n"}
    assert (changed.created_at, changed.updated_at, changed.base_version) == (T0, T0 + 2, 4)
    assert await store.save_rule_draft(10_000, FILES, None, "ana", T0) is None
    listed = await store.rule_drafts(10)
    assert [d.id for d in listed.items] == [first.id, second.id] and listed.total == 2
    assert all(d.files == {} for d in listed.items)
    assert await store.delete_rule_draft(first.id) and not await store.delete_rule_draft(first.id)
    assert await store.rule_draft(first.id) is None
    kept = await store.rule_draft(second.id)
    assert kept is not None and kept.files == {"a.yaml": "x"}


async def test_the_audit_log_lists_newest_first(store: Store) -> None:
    for n, action in enumerate(("draft.save", "preview", "publish")):
        entry: RuleAction = {"at": T0 + n, "actor": "ana", "action": action, "version": 2 if action == "publish" else None,
                             "draft": 7, "detail": f"step {n}"}
        await store.record_rule_action(entry)
    page = await store.rule_actions(2)
    assert page.total == 3 and [a["action"] for a in page.items] == ["publish", "preview"]
    assert page.items[0] == {"at": T0 + 2, "actor": "ana", "action": "publish", "version": 2, "draft": 7,
                             "detail": "step 2"}


async def test_latest_events_are_the_newest_of_the_topics_with_a_body(store: Store) -> None:
    ids = {}
    for n, (source, topic) in enumerate([("shopify", "orders/create"), ("shopify", "orders/paid"),
                                         ("shopify", "customers/create"), ("woocommerce", "order.created"),
                                         ("shopify", "orders/create"), ("shopify", "orders/create")]):
        ids[n] = (await store.ingest(hook(f"k{n}", source=source, topic=topic), now=T0 + n)).event_id
    await store.ingest(hook("bad", topic="orders/create", body=b"{", payload_ok=False), now=T0 + 9)
    latest = await store.latest_events("shopify", ["orders/create", "orders/paid"], 3)
    assert [e.id for e in latest] == [ids[5], ids[4], ids[1]]
    assert latest[0].body == b'{"id": 1}' and latest[0].topic == "orders/create"
    assert await store.latest_events("shopify", [], 3) == []
    assert [e.id for e in await store.latest_events("woocommerce", ["order.created"], 10)] == [ids[3]]
