"""Consent as decisions: what a rule's `decision:` makes of an event, and how `bridge.consent.judge` rules on it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bridge.consent import ConsentDecision, ConsentRecord, contact_fingerprint, judge, moment, remember
from bridge.errors import RulesError
from bridge.mapping import load_rules
from bridge.model import Event

ROOT = Path(__file__).resolve().parents[2]
RULES = load_rules(ROOT / "mappings")
HEAD = "# yaml-language-server: $schema=../bridge/mapping/rules.schema.json\n"
T = 1_795_000_000.0


def event(payload: Any, source: str, topic: str, event_id: int = 1) -> Event:
    return Event(event_id, source, topic, "k1", T, {}, json.dumps(payload).encode())


def stored(name: str) -> Any:
    return json.loads((ROOT / "tests" / "payloads" / name).read_text())


def decisions(payload: Any, source: str, topic: str) -> list[tuple[str, str, ConsentDecision | None]]:
    result = RULES.map(event(payload, source, topic))
    assert result.errors == []
    return [(m.destination, m.kind, m.decision) for m in result.messages if "consent" in m.areas]


# --- what the shipped rules make of an event -----------------------------------

def test_a_shopify_customer_who_chose_carries_the_decision_with_its_time() -> None:
    found = decisions(stored("shopify/customers_create.json"), "shopify", "customers/create")
    assert [(d, k) for d, k, _ in found] == [("omneo", "profile"), ("omnisend", "contact"), ("ometria", "contact")]
    decision = found[0][2]
    assert decision == found[1][2] == found[2][2] == ConsentDecision(contact_fingerprint("jane.citizen@example.com"), "email",
                                                      True, "shopify", moment("2025-03-02T09:14:21+11:00"))
    assert "jane" not in decision.contact  # a fingerprint, never the address


@pytest.mark.parametrize("consent", [
    {"state": "not_subscribed", "opt_in_level": "single_opt_in", "consent_updated_at": None},  # never chose
    {"state": "pending", "consent_updated_at": "2026-11-19T18:20:05+11:00"},  # awaiting confirmation
    None,
])
def test_a_shopify_default_or_pending_state_sends_no_consent(consent: Any) -> None:
    customer = dict(stored("shopify/customers_create.json"), email_marketing_consent=consent)
    assert decisions(customer, "shopify", "customers/update") == []


def test_omneo_default_comms_carry_no_time_only_the_profile_time_for_a_change() -> None:
    profile = dict(stored("omneo/profile_created.json"),
                   attributes={"comms": {"email_promo": False, "email_optout": False, "sms_promo": False}})
    found = decisions(profile, "omneo", "profile.created")
    assert {d.channel for _, _, d in found if d} == {"email", "sms"}
    assert all(d is not None and d.decided_at is None and d.changed_at == moment("2026-11-20 22:41:09")
               for _, _, d in found)
    # the store's verdict for a contact it knows nothing of: no decision, nothing sent
    assert all(not judge(d, [], 1).send for _, _, d in found if d)


def test_omneo_preference_centre_time_is_the_decision() -> None:
    found = decisions(stored("omneo/profile_updated.json"), "omneo", "profile.updated")
    assert [(d.channel, d.subscribed, d.decided_at) for _, _, d in found if d] == [
        ("email", True, moment("2026-11-21 08:05:33")), ("sms", False, moment("2026-11-21 08:05:33")),
        ("email", True, moment("2026-11-21 08:05:33"))]


def test_an_unreadable_decision_time_is_a_mapping_error_naming_the_field() -> None:
    customer = stored("shopify/customers_create.json")
    customer["email_marketing_consent"]["consent_updated_at"] = "last tuesday"
    result = RULES.map(event(customer, "shopify", "customers/update"))
    assert result.status == "partial"
    assert any("decision.at: `email_marketing_consent.consent_updated_at` gave" in e and "not a date" in e
               for e in result.errors)


# --- the checker -----------------------------------------------------------------

def write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "rules.yaml").write_text(HEAD + textwrap.dedent(body), encoding="utf-8")
    return tmp_path


CONSENT_MESSAGE = """\
rules:
  - name: R
    on: shopify customers/update
    send:
      - to: ometria contact
{decision}        fields:
          id: "{{{{ id }}}}"
          customer_id: "{{{{ id }}}}"
          marketing_optin: "{{{{ email_marketing_consent.state | lookup({{'subscribed': 'EXPLICITLY_OPTEDIN'}}) }}}}"
"""


def test_a_consent_message_without_a_decision_is_noted(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, CONSENT_MESSAGE.format(decision="")))
    assert any("writes consent (marketing_optin) to ometria with no `decision:`" in note for note in rules.notes)


@pytest.mark.parametrize("decision, problem", [
    ("        decision: {contact: \"{{ email }}\", channel: email, state: subscribed, at: \"{{ updated_at }}\"}\n",
     "decision `state` must read the webhook"),
    ("        decision: {contact: \"{{ email }}\", channel: push, state: \"{{ email_marketing_consent.state }}\","
     " at: \"{{ updated_at }}\"}\n", "`channel: push` is not a consent channel"),
    ("        decision: {contact: \"{{ email }}\", channel: email, state: \"{{ accepts }}\","
     " at: \"{{ updated_at }}\"}\n", "decision `state` is consent, and shopify states consent only in"),
    ("        decision: {contact: \"{{ email }}\", channel: email}\n", "`decision:` needs `state`, `at`"),
    ("        decision: {contact: \"{{ email }}\", channel: email, state: \"{{ email_marketing_consent.state }}\","
     " at: \"{{ updated_at }}\", when: x}\n", "when"),
])
def test_a_decision_that_cannot_be_one_is_refused_with_its_place(tmp_path: Path, decision: str, problem: str) -> None:
    with pytest.raises(RulesError) as raised:
        load_rules(write(tmp_path, CONSENT_MESSAGE.format(decision=decision)))
    assert any(problem in line and "rules.yaml:" in line for line in raised.value.problems), raised.value.problems


def test_a_decision_on_a_message_without_consent_is_refused(tmp_path: Path) -> None:
    body = """\
rules:
  - name: R
    on: shopify customers/update
    send:
      - to: ometria contact
        decision:
          contact: "{{ email }}"
          channel: email
          state: "{{ email_marketing_consent.state }}"
          at: "{{ updated_at }}"
        fields: {id: "{{ id }}", email: "{{ email }}"}
"""
    with pytest.raises(RulesError, match="belongs to a message that writes consent"):
        load_rules(write(tmp_path, body))


# --- the judge ---------------------------------------------------------------------

JANE = contact_fingerprint("jane@example.com")


def said(source: str, subscribed: bool, at: float | None, changed: float | None = None) -> ConsentDecision:
    return ConsentDecision(JANE, "email", subscribed, source, at, changed)


def after(*steps: tuple[ConsentDecision, int]) -> tuple[list[ConsentRecord], list[bool]]:
    records: list[ConsentRecord] = []
    sent = []
    for decision, event_id in steps:
        verdict = judge(decision, records, event_id)
        own = next((r for r in records if r.source == decision.source), None)
        records = [r for r in records if r is not own] + [remember(decision, verdict, own, event_id, T)]
        sent.append(verdict.send)
    return records, sent


def test_the_newer_decision_wins_and_equal_times_are_no_change() -> None:
    _, sent = after((said("shopify", True, 100), 1), (said("omneo", True, 100), 2), (said("omneo", False, 50), 3),
                    (said("omneo", False, 150), 4), (said("shopify", True, 120), 5))
    assert sent == [True, False, False, True, False]


def test_a_flag_without_a_time_is_a_decision_only_when_it_changed() -> None:
    _, sent = after((said("omneo", False, None, 10), 1), (said("omneo", False, None, 20), 2),
                    (said("omneo", True, None, 30), 3), (said("omneo", True, None, 40), 4),
                    (said("omneo", False, None, None), 5))
    assert sent == [False, False, True, False, False]


def test_a_flag_change_older_than_another_sources_decision_loses() -> None:
    _, sent = after((said("omneo", False, None, 10), 1), (said("shopify", True, 100), 2),
                    (said("omneo", True, None, 50), 3), (said("omneo", False, None, 200), 4))
    assert sent == [False, True, False, True]


def test_the_same_event_judged_again_keeps_its_decision_while_newest() -> None:
    records, sent = after((said("shopify", True, 100), 7), (said("shopify", True, 100), 7))
    assert sent == [True, True]
    assert not judge(said("shopify", True, 100), [*records, ConsentRecord(JANE, "email", "omneo", False, 8, 150.0, 8,
                                                                          T)], 7).send


def test_a_replayed_older_event_does_not_move_what_the_source_said() -> None:
    records, _ = after((said("omneo", False, None, 10), 5), (said("omneo", True, None, 5), 3))
    [own] = records
    assert own.subscribed is False and own.said_event == 5


def test_moment_reads_the_forms_the_sources_use() -> None:
    assert moment("2025-03-02T09:14:21+11:00") == moment("2025-03-01 22:14:21") == moment("2025-03-01T22:14:21Z")
    assert moment(None) is None and moment("") is None and moment(1.5) == 1.5
    with pytest.raises(ValueError):
        moment("soon")
