"""Replay through the current rules: what is done stays done, what died or was missed is queued."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bridge.cli import main
from bridge.ops.replay import replay
from bridge.store.base import EventFilter
from bridge.store.sqlite.writer import execute

from .support import DAY, NOW, FixedRules, Outbox, idem

RULES = FixedRules({"orders/create": [("omnisend", "orders")], "customers/create": [("ometria", "customers")]})


@pytest.fixture
def history(outbox: Outbox) -> Outbox:
    """a: delivered; b: no rule matched at the time; c: dead letter; d: body pruned."""
    a = outbox.ingest("a", at=NOW - 2 * DAY)
    outbox.map(a, [("omnisend", idem("a"))], at=NOW - 2 * DAY)
    outbox.deliver("omnisend", "delivered", 202, at=NOW - 2 * DAY)
    b = outbox.ingest("b", topic="customers/create", at=NOW - DAY)
    outbox.store.write_sync(execute, "UPDATE events SET status = 'no_rule' WHERE id = ?", b)
    c = outbox.ingest("c", at=NOW - DAY)
    outbox.map(c, [("omnisend", idem("c"))], at=NOW - DAY)
    outbox.deliver("omnisend", "dead", 422, at=NOW - DAY)
    d = outbox.ingest("d", at=NOW - DAY)
    outbox.store.write_sync(execute, "UPDATE events SET body = NULL, status = 'mapped' WHERE id = ?", d)
    return outbox


def states(outbox: Outbox) -> list[tuple[int, str, str]]:
    return [(r[0], r[1], r[2]) for r in outbox.rows("SELECT event_id, destination, state FROM messages ORDER BY id")]


def test_replay_queues_missed_and_dead_and_skips_delivered(history: Outbox) -> None:
    summary = asyncio.run(replay(history.store, RULES, EventFilter(since=NOW - 3 * DAY), NOW))
    assert (summary.events, summary.queued, summary.requeued_dead, summary.skipped_delivered) == (3, 2, 1, 0 + 1)
    assert states(history) == [(1, "omnisend", "delivered"), (3, "omnisend", "pending"), (2, "ometria", "pending")]
    # the dead letter came back in place, with the new record and a fresh budget
    record, attempts = history.rows("SELECT record, attempts FROM messages WHERE event_id = 3")[0]
    assert json.loads(record)["v"] == 2 and attempts == 0
    assert history.rows("SELECT status, rules FROM events WHERE id = 2") == [("mapped", '["customers"]')]
    assert sorted(RULES.seen[-3:]) == [1, 2, 3]  # the pruned event was never mapped

    again = asyncio.run(replay(history.store, RULES, EventFilter(since=NOW - 3 * DAY), NOW))
    assert (again.queued, again.skipped_delivered, again.skipped_open) == (0, 1, 2)


def test_force_queues_even_delivered(history: Outbox) -> None:
    summary = asyncio.run(replay(history.store, RULES,
                                 EventFilter(since=NOW - 3 * DAY, source="shopify", topic="orders/create"), NOW,
                                 force=True))
    assert (summary.events, summary.queued, summary.skipped_delivered) == (2, 2, 0)
    assert states(history)[-1] == (1, "omnisend", "pending")
    keys = history.rows("SELECT idempotency_key FROM messages WHERE event_id = 1")
    assert keys == [(idem("a"),), (idem("a"),)]  # same key: the destination can drop it if it already has it


def test_dry_run_changes_nothing(history: Outbox) -> None:
    before = history.rows("SELECT * FROM messages"), history.rows("SELECT id, status, rules FROM events")
    summary = asyncio.run(replay(history.store, RULES, EventFilter(since=NOW - 3 * DAY), NOW, dry_run=True))
    assert summary.dry_run and (summary.queued, summary.skipped_delivered) == (2, 1)
    assert (history.rows("SELECT * FROM messages"), history.rows("SELECT id, status, rules FROM events")) == before


def test_replay_command(history: Outbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("bridge.ops.cli.load_current_rules", lambda settings: RULES)
    assert main(["replay", "--since", "2026-11-01", "--until", "2026-12-01", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("3 events replayed; dry run: would have queued 2 messages") and "1 already delivered" in out
    assert main(["replay", "--since", "2026-11-01"]) == 0
    assert "queued 2 messages" in capsys.readouterr().out
    assert main(["replay", "--since", "2026-11-01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped_delivered"] == 1


def test_replay_of_one_status(history: Outbox, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    """`--status no_rule` replays b alone (no rule matched it at the time); the others are not read."""
    summary = asyncio.run(replay(history.store, RULES, EventFilter(status="no_rule", since=NOW - 3 * DAY), NOW))
    assert (summary.events, summary.queued) == (1, 1)
    assert states(history)[-1] == (2, "ometria", "pending") and len(states(history)) == 3
    monkeypatch.setattr("bridge.ops.cli.load_current_rules", lambda settings: RULES)
    assert main(["replay", "--since", "2026-11-01", "--status", "mapping_error", "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("0 events replayed")
    with pytest.raises(SystemExit):
        main(["replay", "--since", "2026-11-01", "--status", "lost"])


def test_replay_requires_since(history: Outbox) -> None:
    with pytest.raises(SystemExit):
        main(["replay"])


def test_progress_bar_for_long_replays(outbox: Outbox, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    for n in range(250):
        outbox.ingest(f"bulk-{n}", at=NOW)
    monkeypatch.setattr("bridge.ops.cli.load_current_rules", lambda settings: RULES)
    assert main(["replay", "--since", "2026-11-01"]) == 0
    captured = capsys.readouterr()
    assert "250 events replayed; queued 250 messages" in captured.out
    assert "replay: 250/250 (100%)" in captured.err


def test_an_event_over_its_mapping_budget_does_not_end_the_replay(outbox: Outbox, tmp_path: Any) -> None:
    """Mapping ends a batch at an event over its budget; the replay reads on from the next one."""
    from bridge.mapping import load_rules
    from tests.mapping.test_rules import ORDER_HEAD

    (tmp_path / "rules.yaml").write_text(ORDER_HEAD + """\
          contact: {email: "{{ email }}"}
          properties:
            n: "{% for a in line_items %}{% for b in line_items %}x{% endfor %}{% endfor %}"
""")
    rules = load_rules(tmp_path)
    small = {"email": "jane@example.com", "line_items": [1, 2]}
    for key, body in (("a", small), ("b", {**small, "line_items": list(range(1000))}), ("c", small), ("d", small)):
        outbox.ingest(key, body=body, at=NOW - DAY)
    summary = asyncio.run(replay(outbox.store, rules, EventFilter(since=NOW - 3 * DAY), NOW))
    statuses = outbox.rows("SELECT id, status FROM events ORDER BY id")
    assert statuses == [(1, "mapped"), (2, "mapping_error"), (3, "mapped"), (4, "mapped")]
    assert summary.events == 4
