"""The operator commands, run through `bridge.cli.main` against a real store."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.cli import main
from bridge.model import Outgoing

from .support import DAY, NOW, Outbox


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def filled(outbox: Outbox) -> Outbox:
    """Three events: one delivered to omnisend, one dead at ometria, one with a mapping error and no message."""
    a = outbox.ingest("evt-a", at=NOW - 3 * DAY)
    outbox.map(a, [("omnisend", "idem-a")], at=NOW - 3 * DAY)
    outbox.deliver("omnisend", "delivered", 202, at=NOW - 3 * DAY)
    b = outbox.ingest("evt-b", topic="customers/create", at=NOW - DAY, body={"email": "bob@example.com"})
    outbox.map(b, [("ometria", "idem-b")], at=NOW - DAY)
    outbox.deliver("ometria", "retry", 503, at=NOW - DAY, detail="upstream busy")
    outbox.deliver("ometria", "dead", 400, at=NOW - DAY + 60, detail='{"error": "bad email bob@example.com"}')
    c = outbox.ingest("evt-c", source="omneo", topic="profile.updated", at=NOW)
    outbox.map(c, [], errors=["rule orders: required field contact.email is empty"])
    return outbox


def test_events_list_filters_and_masks(filled: Outbox, capsys: pytest.CaptureFixture[str]) -> None:
    rows = run_json(capsys, "events", "list")
    assert [r["id"] for r in rows] == [3, 2, 1]  # newest first
    assert rows[2]["messages"] == {"delivered": 1} and rows[1]["messages"] == {"dead": 1}
    assert rows[0]["errors"] == ["rule orders: required field contact.email is empty"]
    assert rows[2]["received_at"].endswith("Z")
    assert [r["id"] for r in run_json(capsys, "events", "list", "--source", "omneo")] == [3]
    assert [r["id"] for r in run_json(capsys, "events", "list", "--topic", "customers/create")] == [2]
    assert [r["id"] for r in run_json(capsys, "events", "list", "--status", "partial")] == [3]
    assert [r["id"] for r in run_json(capsys, "events", "list", "--limit", "1")] == [3]
    iso_since = "2026-11-17T00:00:00Z"  # NOW - 1 day is 2026-11-18
    assert [r["id"] for r in run_json(capsys, "events", "list", "--since", iso_since)] == [3, 2]
    assert [r["id"] for r in run_json(capsys, "events", "list", "--until", iso_since)] == [1]


def test_a_table_that_shows_part_of_the_matches_says_which_rows_of_how_many(
        filled: Outbox, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "events", "list", "--limit", "1", "--offset", "1")
    assert code == 0 and out.splitlines()[1].split()[0] == "2"
    assert out.splitlines()[-1] == "rows 2-2 of 3; --offset 2 for the next"
    _, everything, _ = run(capsys, "events", "list")
    assert "rows" not in everything.splitlines()[-1]
    assert [r["id"] for r in run_json(capsys, "dead", "list", "--offset", "0")] == [2]
    assert run_json(capsys, "audit", "--limit", "1", "--offset", "5") == []


def test_events_list_refuses_a_status_that_does_not_exist(filled: Outbox, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        run(capsys, "events", "list", "--status", "failed")
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'failed'" in err and "mapping_error" in err


def test_events_list_table(filled: Outbox, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "events", "list")
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split()[:5] == ["ID", "RECEIVED", "SOURCE", "TOPIC", "STATUS"]
    assert len(lines) == 3 and "delivered:1" in lines[2]


def test_events_show_masks_unless_revealed(filled: Outbox, capsys: pytest.CaptureFixture[str]) -> None:
    view = run_json(capsys, "events", "show", "2")
    assert view["payload"]["email"].startswith("h:")
    (message,) = view["messages"]
    assert message["destination"] == "ometria" and message["state"] == "dead" and message["attempts"] == 2
    assert message["record"]["email"].startswith("h:")
    assert [(a["outcome"], a["status"]) for a in message["trail"]] == [("retry", 503), ("dead", 400)]
    assert "bob@example.com" not in json.dumps(view)
    assert "bob@example.com" in json.dumps(run_json(capsys, "events", "show", "2", "--reveal"))
    code, out, _ = run(capsys, "events", "show", "2")
    assert code == 0 and "bob@example.com" not in out and "dead" in out and "--reveal" in out


def test_events_show_unknown_id(filled: Outbox, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "events", "show", "99")
    assert code == 2 and "no event with id 99" in err


def test_bad_when_is_a_usage_error(filled: Outbox, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["events", "list", "--since", "yesterday-ish"])
    assert exit_.value.code == 2
    assert "ISO 8601" in capsys.readouterr().err


def test_missing_database_is_reported(outbox: Outbox, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BRIDGE_DATABASE_URL", f"sqlite:///{outbox.path.parent / 'nope.db'}")
    code, _, err = run(capsys, "outbox", "stats")
    assert code == 2 and "no database" in err
    assert not (outbox.path.parent / "nope.db").exists()


def test_outbox_stats(filled: Outbox, capsys: pytest.CaptureFixture[str]) -> None:
    pending = filled.ingest("evt-d", at=NOW)
    filled.map(pending, [("omnisend", "idem-d")], at=NOW - 120)
    stats = run_json(capsys, "outbox", "stats")["destinations"]
    assert stats["omnisend"]["counts"] == {"pending": 1, "inflight": 0, "submitted": 0, "delivered": 1, "dead": 0}
    assert stats["ometria"]["counts"]["dead"] == 1
    assert stats["omnisend"]["oldest_pending_age_seconds"] > 120
    assert stats["ometria"]["oldest_pending_age_seconds"] is None
    assert not stats["omnisend"]["paused"]
    code, out, _ = run(capsys, "outbox", "stats")
    assert code == 0 and out.splitlines()[0].startswith("DESTINATION")


def test_pause_and_resume(filled: Outbox, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "destinations", "pause", "ometria", "--reason", "maintenance window")
    assert code == 0 and "paused" in out
    stats = run_json(capsys, "outbox", "stats")["destinations"]
    assert stats["ometria"]["paused"] and stats["ometria"]["pause_reason"] == "maintenance window"
    assert run(capsys, "destinations", "resume", "ometria")[0] == 0
    assert filled.rows("SELECT paused, key_fingerprint FROM destination_state WHERE name = 'ometria'") == [(0, None)]
    code, _, err = run(capsys, "destinations", "pause", "klaviyo")
    assert code == 2 and "known: ometria, omneo, omnisend" in err


def test_dead_list_and_retry(filled: Outbox, capsys: pytest.CaptureFixture[str]) -> None:
    (dead,) = run_json(capsys, "dead", "list")
    assert dead["destination"] == "ometria" and dead["last_status"] == 400
    assert "bob@example.com" not in dead["last_detail"] and "h:" in dead["last_detail"]
    assert run_json(capsys, "dead", "list", "--destination", "omnisend") == []
    assert run_json(capsys, "dead", "list", "--since", "2026-11-19T00:00:00Z") == []

    code, _, err = run(capsys, "dead", "retry")
    assert code == 2 and "--all" in err
    assert filled.rows("SELECT state FROM messages WHERE id = ?", dead["id"]) == [("dead",)]

    code, out, _ = run(capsys, "dead", "retry", "--destination", "ometria")
    assert code == 0 and out.startswith("1 dead letter back")
    state, attempts, next_at = filled.rows("SELECT state, attempts, next_at FROM messages WHERE id = ?", dead["id"])[0]
    assert (state, attempts) == ("pending", 0) and next_at > NOW
    assert run_json(capsys, "dead", "list") == []


def test_dead_retry_by_id_and_all(outbox: Outbox, capsys: pytest.CaptureFixture[str]) -> None:
    for n in range(3):
        outbox.map(outbox.ingest(f"e{n}"), [("omnisend", f"k{n}")])
    ids = outbox.deliver("omnisend", "dead", 422)
    assert run(capsys, "dead", "retry", "--id", str(ids[0]), "--id", str(ids[1]))[1].startswith("2 dead letters")
    assert outbox.rows("SELECT state FROM messages ORDER BY id") == [("pending",), ("pending",), ("dead",)]
    assert run(capsys, "dead", "retry", "--all")[1].startswith("1 dead letter")


def test_prune_cli_dry_run_then_real(outbox: Outbox, capsys: pytest.CaptureFixture[str]) -> None:
    old = outbox.ingest("old", at=NOW - 40 * DAY)
    outbox.map(old, [("omnisend", "k-old")], at=NOW - 40 * DAY)
    outbox.deliver("omnisend", "delivered", 202, at=NOW - 40 * DAY)
    code, out, _ = run(capsys, "prune", "--dry-run")
    assert code == 0 and out.startswith("would remove 1 delivered messages (1 attempts), 1 event bodies, 1 dedupe keys")
    assert outbox.rows("SELECT count(*) FROM messages") == [(1,)]
    code, out, _ = run(capsys, "prune")
    assert out.startswith("removed 1 delivered messages (1 attempts), 1 event bodies, 1 dedupe keys")
    assert outbox.rows("SELECT count(*) FROM messages") == [(0,)]


def test_every_command_is_documented() -> None:
    """docs/operations.md shows every operator command (as sqlite-utils checks its CLI docs)."""
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    for command in ("events list", "events show", "outbox stats", "dead list", "dead retry", "replay",
                    "destinations pause", "destinations resume", "prune", "audit"):
        assert f"bridge {command}" in guide, command


def test_idempotency_key_helper_matches_the_model() -> None:
    # The replay tests rely on Outbox.map keys being the model's keys.
    assert Outgoing("omnisend", "event", {}, rule="r").idempotency_key("s", "k") == \
        Outgoing("ometria", "contact", {"x": 1}, rule="r").idempotency_key("s", "k")


def test_audit_lists_what_was_written_by_area(outbox: Outbox, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 8: `bridge audit --area consent` shows every consent write with its event and rule, masked."""
    import asyncio

    from bridge.store import Mapped

    event = outbox.ingest("profile-1")
    consent = Outgoing("ometria", "contact", {"id": "c1", "email": "ann@example.com", "marketing_optin": "EXPLICITLY_OPTEDIN"},
                       rule="Omneo consent", areas=("contacts", "consent"))
    details = Outgoing("ometria", "contact", {"id": "c1", "firstname": "Ann"}, rule="Omneo details", index=1,
                       areas=("contacts",))
    asyncio.run(outbox.store.save_mappings(
        [Mapped(event, "mapped", ["Omneo consent", "Omneo details"], [], [(consent, "k-c"), (details, "k-d")])], now=NOW))
    outbox.deliver("ometria", "delivered", 202)
    rows = run_json(capsys, "audit", "--area", "consent", "--destination", "ometria")
    assert [(r["rule"], r["outcome"], r["status"], r["event_id"]) for r in rows] == [("Omneo consent", "delivered", 202, event)]
    assert rows[0]["areas"] == ["contacts", "consent"] and rows[0]["record"]["marketing_optin"] == "EXPLICITLY_OPTEDIN"
    assert "ann@example.com" not in json.dumps(rows)
    assert len(run_json(capsys, "audit", "--area", "contacts")) == 2
    assert run(capsys, "audit", "--area", "consent", "--destination", "omnisend")[1].strip() == "nothing written"
    shown = run_json(capsys, "events", "show", str(event))
    assert [m["areas"] for m in shown["messages"]] == [["contacts", "consent"], ["contacts"]]


def test_events_show_prints_json_nested_too_deep_to_take_now_as_text(outbox: Outbox,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from bridge.model import Webhook

    deep = b'{"a":' * 1000 + b"1" + b"}" * 1000  # acknowledged before ingest refused JSON over 64 levels
    event = asyncio.run(outbox.store.ingest(Webhook("shopify", "orders/create", "deep", deep), now=NOW)).event_id
    for reveal in ((), ("--reveal",)):
        assert run_json(capsys, "events", "show", str(event), *reveal)["payload"] == deep.decode()
        code, out, _ = run(capsys, "events", "show", str(event), *reveal)
        assert code == 0 and '{\\"a\\":' in out


def test_consent_show_says_per_channel_and_source_which_decision_is_current(
        outbox: Outbox, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from bridge.consent import ConsentDecision, contact_fingerprint
    from bridge.model import Mapped

    jane = contact_fingerprint("jane@example.com")

    def decide(key: str, source: str, subscribed: bool, at: float) -> None:
        event_id = outbox.ingest(key, source=source, topic="profile.updated", at=at)
        message = Outgoing("ometria", "contact", {"id": "1", "marketing_optin": "x"}, rule="contacts",
                           areas=("contacts", "consent"),
                           decision=ConsentDecision(jane, "email", subscribed, source, at))
        asyncio.run(outbox.store.save_mappings([Mapped(event_id, "mapped", ["contacts"], [], [(message, key)])], at))

    decide("s1", "shopify", True, NOW - DAY)
    decide("o1", "omneo", False, NOW)
    rows = run_json(capsys, "consent", "show", "Jane@Example.com")
    assert [(r["channel"], r["source"], r["says"], r["current"]) for r in rows] == [
        ("email", "omneo", "not subscribed", True), ("email", "shopify", "subscribed", False)]
    code, out, _ = run(capsys, "consent", "show", "jane@example.com")
    assert code == 0 and "CURRENT" in out and "jane" not in out
    assert run(capsys, "consent", "show", "nobody@example.com")[1].strip() == "no consent decision known for that e-mail"


def test_outbox_stats_shows_the_backlog_and_the_time_to_drain_it(
        outbox: Outbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OMNISEND_API_KEY", "omnisend-key")  # 400 requests a minute of 100: 666.7 records a second
    monkeypatch.delenv("OMETRIA_API_KEY", raising=False)
    for n in range(3):
        outbox.map(outbox.ingest(f"mapped-{n}", at=NOW - 300), [("omnisend", f"idem-{n}")], at=NOW - 300)
    outbox.ingest("waiting-1", at=NOW - 60)
    outbox.ingest("waiting-2", at=NOW)
    backlog = run_json(capsys, "outbox", "stats")["backlog"]
    assert backlog["events_waiting"] == 2 and backlog["oldest_event_age_seconds"] >= 60
    omnisend = backlog["destinations"]["omnisend"]
    assert omnisend["messages"] == 3 and omnisend["ceiling_per_second"] == pytest.approx(666.7)
    assert omnisend["drain_seconds"] == pytest.approx(5 / 666.7, abs=0.1)  # its 3 messages and the 2 events to map
    assert backlog["destinations"]["ometria"]["drain_seconds"] is None  # not configured: it does not drain
    code, out, _ = run(capsys, "outbox", "stats")
    assert code == 0 and "events waiting to be mapped: 2" in out
    assert "omnisend: 3 waiting; drained in about 0s at its limit of 667 records a second" in out
    assert "ometria: 0 waiting; not delivering (paused or not configured)" in out
