"""Checker messages, sandbox, omission, required fields, consent and reload."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bridge.errors import RulesError
from bridge.mapping import RulesHolder, load_rules
from bridge.model import Event

HEAD = "# yaml-language-server: $schema=../bridge/mapping/rules.schema.json\n"


def write(tmp_path: Path, body: str, name: str = "rules.yaml") -> Path:
    (tmp_path / name).write_text(HEAD + textwrap.dedent(body), encoding="utf-8")
    return tmp_path


def problems(tmp_path: Path, body: str) -> list[str]:
    with pytest.raises(RulesError) as caught:
        load_rules(write(tmp_path, body))
    return caught.value.problems


def event(payload: object, source: str = "shopify", topic: str = "orders/create") -> Event:
    return Event(1, source, topic, "k1", 1_790_000_000.0, {"X-Shopify-Shop-Domain": "s.myshopify.com"},
                 json.dumps(payload).encode())


# A rule's head up to its fields; the tests add the contact and properties they need.
ORDER_HEAD = """\
rules:
  - name: Order
    on: shopify orders/create
    send:
      - to: omnisend event "placed order"
        fields:
          origin: api
"""
ORDER_RULE = ORDER_HEAD + """\
          contact:
            email: "{{ email | lower }}"
          properties:
            orderID: "{{ id | string }}"
            note: "{{ note }}"
            totalPrice: "{{ total_price | decimal }}"
            lineItems:
              for each: line_items
              item:
                productPrice: "{{ item.price | decimal }}"
"""


@pytest.mark.parametrize("body, expected", [
    ("rules:\n  - name: A\n    on: shopify orders/create\n    send:\n      - to: omnisnd event\n        fields: {origin: api}\n",
     "rules.yaml:6:13: unknown destination `omnisnd`; did you mean `omnisend`?"),
    ("rules:\n  - name: A\n    on: shopify orders/create\n    send:\n      - to: omnisend evnt\n        fields: {origin: api}\n",
     "rules.yaml:6:13: unknown record type `evnt` for omnisend; did you mean `event`?"),
    ("rules:\n  - name: A\n    on: shopify orders/create\n    send:\n      - to: ometria order\n        fields:\n          grand_totl: 1\n",
     "rules.yaml:8:11: unknown destination field `grand_totl` for ometria order; did you mean `grand_total`?"),
    ("rules:\n  - name: A\n    on: shopify orders/create\n    send:\n      - to: ometria order\n        fields:\n          id: \"{{ id | decimel }}\"\n",
     "rules.yaml:8:15: unknown filter `decimel`; did you mean `decimal`?"),
    ("rules:\n  - name: A\n    on: shopify orders/create\n    send:\n      - to: ometria order\n        fields:\n          id: \"{{ id | }}\"\n",
     "rules.yaml:8:15: template syntax error"),
    ("rules:\n  - name: A\n    on: shopify orders/create\n    send:\n      - to: ometria order\n      fields: {}\n",
     "rules.yaml:7:"),
    ("rules:\n  - name: A\n    on: shopify orders/create\n    sned: ignore\n",
     "unknown key `sned` in a rule; did you mean `send`?"),
    ("rules:\n  - name: A\n    on: shopify\n    send: ignore\n",
     "rules.yaml:4:9: `on:` names a source and a topic"),
])
def test_problem_messages(tmp_path: Path, body: str, expected: str) -> None:
    found = problems(tmp_path, body)
    assert any(expected in problem for problem in found), found
    assert all(problem.startswith((str(tmp_path), "/")) or ":" in problem for problem in found)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
rules:
  - name: A
    on: shopify orders/create
    send:
      - to: omnisnd event
        fields: {origin: api}
      - to: ometria order
        fields:
          totl: 1
""")
    assert len(found) == 2


def test_duplicate_rule_names_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "rules:\n  - name: A\n    on: shopify a/b\n    send: ignore\n", "one.yaml")
    write(tmp_path, "rules:\n  - name: A\n    on: shopify c/d\n    send: ignore\n", "two.yaml")
    with pytest.raises(RulesError, match="already used"):
        load_rules(tmp_path)


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ email['__class__'] }}",
    "{% import 'os' as os %}{{ os }}",
    "{% include '/etc/passwd' %}",
    "{% extends 'base' %}",
    "{% from 'x' import y %}{{ y }}",
])
def test_escapes_fail_the_check(tmp_path: Path, template: str) -> None:
    body = ORDER_RULE.replace('"{{ note }}"', json.dumps(template))
    found = problems(tmp_path, body)
    assert any("not allowed" in problem for problem in found), found


@pytest.mark.parametrize("template", [
    "{{ email.upper.__self__ }}",          # reached without a literal `_` name in the check? still refused
    "{{ (email|attr('__class__')) }}",
    "{{ email.format }}",
    "{{ line_items.append }}",
    "{{ open }}",
    "{{ lipsum }}",
])
def test_escapes_render_nothing_dangerous(tmp_path: Path, template: str) -> None:
    body = ORDER_RULE.replace('"{{ note }}"', json.dumps(template))
    try:
        rules = load_rules(write(tmp_path, body))
    except RulesError:
        return  # refused by the check: fine
    result = rules.map(event({"email": "a@b.c", "id": 1, "line_items": []}))
    for message in result.messages:
        note = message.record["properties"].get("note")
        assert note is None or (isinstance(note, (str, int, float)) and "class" not in str(note)), note


def test_missing_and_empty_fields_are_omitted(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, ORDER_RULE))
    result = rules.map(event({"email": "A@B.C", "id": 2**60 + 1, "note": "", "total_price": "19.99",
                              "line_items": [{"price": "1.005"}, {}]}))
    assert result.errors == []
    (message,) = result.messages
    assert message.record == {
        "eventName": "placed order", "origin": "api", "contact": {"email": "a@b.c"},
        "properties": {"orderID": str(2**60 + 1), "totalPrice": 19.99, "lineItems": [{"productPrice": 1.005}]},
    }
    assert message.key == f"order:{2**60 + 1}"
    assert (message.action, message.index) == ("create", 0)


def test_required_field_is_a_mapping_error(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, ORDER_RULE))
    result = rules.map(event({"id": 5, "total_price": "1.00"}))
    assert result.messages == []
    (error,) = result.errors
    assert "rules.yaml:6 rule 'Order' → omnisend event: contact.email, contact.phone and contact.id are all empty" in error
    assert "`{{ email | lower }}` gave nothing" in error
    assert result.status == "mapping_error"


def test_bad_data_becomes_an_error_not_an_exception(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, ORDER_RULE))
    result = rules.map(event({"email": "a@b.c", "id": 1, "total_price": "lots"}))
    assert result.messages == [] and "properties.totalPrice" in result.errors[0]
    broken = Event(1, "shopify", "orders/create", "k", 0.0, {}, b"{not json")
    assert rules.map(broken).errors


def test_ometria_records_merge_unless_the_rule_says_otherwise(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, """\
rules:
  - name: O
    on: shopify orders/create
    send:
      - to: ometria order
        fields: {id: "{{ id }}", timestamp: "{{ created_at }}", grand_total: 1, currency: AUD}
      - to: ometria order
        key: "custom:{{ id }}"
        fields: {id: "{{ id }}", timestamp: "{{ created_at }}", grand_total: 1, currency: AUD, "@merge": false}
"""))
    first, second = rules.map(event({"id": 7, "created_at": "2026-01-01T00:00:00Z"})).messages
    assert first.record["@merge"] is True and first.key == "order:7" and first.index == 0
    assert second.record["@merge"] is False and second.key == "custom:7" and second.index == 1


def test_clear_sends_null_and_is_pointed_out(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, """\
rules:
  - name: C
    on: omneo profile.updated
    send:
      - to: ometria contact
        clear: [lastname]
        fields: {id: "{{ id }}", email: "{{ email }}"}
"""))
    (message,) = rules.map(event({"id": "p1", "email": "a@b.c"}, "omneo", "profile.updated")).messages
    assert message.record["lastname"] is None
    assert any("clears lastname" in note for note in rules.notes)


@pytest.mark.parametrize("field, value", [
    ("marketing_optin", "EXPLICITLY_OPTEDIN"),
    ("marketing_optin", "{{ 'EXPLICITLY_OPTEDIN' }}"),
    ("marketing_optin", "{{ event.topic }}"),
    ("\"@force_optin\"", "true"),
])
def test_consent_literal_is_refused(tmp_path: Path, field: str, value: str) -> None:
    found = problems(tmp_path, f"""\
rules:
  - name: C
    on: omneo profile.updated
    send:
      - to: ometria contact
        fields:
          id: "{{{{ id }}}}"
          {field}: {json.dumps(value)}
""")
    assert any(":9:" in p and "consent can only come from the payload" in p for p in found), found


def test_omnisend_channel_status_literal_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
rules:
  - name: C
    on: omneo profile.updated
    send:
      - to: omnisend contact
        fields:
          identifiers:
            - type: email
              id: "{{ email }}"
              channels:
                email:
                  status: subscribed
""")
    assert any(":13:" in p and "not the literal 'subscribed'" in p for p in found), found


def test_consent_is_never_invented(tmp_path: Path) -> None:
    rules = load_rules(Path(__file__).resolve().parents[2] / "mappings")
    profile = {"id": "p", "email": "x@y.z", "attributes": {}}
    result = rules.map(event(profile, "omneo", "profile.created"))
    details, contact = [m for m in result.messages if m.kind == "contact"]
    assert (details.destination, details.action) == ("omnisend", "update")
    assert details.record["identifiers"] == [{"type": "email", "id": "x@y.z"}]  # no channel, so no status
    assert contact.destination == "ometria" and "marketing_optin" not in contact.record


def test_reload_keeps_the_last_good_set(tmp_path: Path) -> None:
    write(tmp_path, ORDER_RULE)
    holder = RulesHolder(tmp_path)
    good = holder.current
    (tmp_path / "rules.yaml").write_text(HEAD + ORDER_RULE.replace("omnisend event", "omnisnd event"))
    with capture_logs() as logs:
        assert holder.reload() is False
    assert holder.current is good
    assert holder.error and "did you mean `omnisend`" in holder.error
    assert any(entry["event"] == "rules.reload_failed" for entry in logs)
    (tmp_path / "rules.yaml").write_text(HEAD + ORDER_RULE)
    assert holder.changed() and holder.reload() is True
    assert holder.error is None and holder.current is not good


def test_filters() -> None:
    from bridge.mapping.filters import cents, decimal, e164, rfc3339

    assert cents("1.005") == 101 and cents("0.125") == 13 and cents(None) is None
    assert decimal("1,299.90") == 1299.9 and decimal(None) is None
    assert rfc3339("2026-11-20 22:41:09") == "2026-11-20T22:41:09Z"
    assert rfc3339("2026-11-20T10:15:30+11:00") == "2026-11-20T10:15:30+11:00"
    assert e164("0412 345 678", "AU") == "+61412345678" and e164("nonsense") is None


def test_a_broken_first_load_holds_events_instead_of_failing(tmp_path: Path) -> None:
    """The bridge starts with broken rules: nothing is mapped (events wait) until a good set loads."""
    write(tmp_path, ORDER_RULE.replace("omnisend event", "omnisnd event"))
    holder = RulesHolder(tmp_path)
    assert holder.current is None and holder.loaded_at is None
    assert holder.error and "did you mean `omnisend`" in holder.error
    write(tmp_path, ORDER_RULE)
    assert holder.reload() is True and holder.current is not None and holder.error is None


def test_rules_load_without_their_example_payloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployment may ship mappings/ alone: a missing example payload fails `check`, never the running rules."""
    import shutil

    from bridge.cli import main

    shipped = Path(__file__).resolve().parents[2] / "mappings"
    copy = tmp_path / "mappings"
    shutil.copytree(shipped, copy)
    rules = load_rules(copy)
    assert len(rules) > 0 and rules.example_problems
    assert all("payload file" in p and "not found" in p for p in rules.example_problems)
    for name in ("OMNISEND_AREAS", "OMETRIA_AREAS"):  # the shipped consent rules need consent allowed
        monkeypatch.setenv(name, "events,contacts,consent,orders,carts,products")
    assert main(["mappings", "check", str(copy)]) == 1
    assert main(["mappings", "check", str(shipped)]) == 0


def test_a_misspelt_payload_field_is_caught_against_the_examples(tmp_path: Path) -> None:
    """A typo would otherwise just leave the field out of every message: check names it with a fix."""
    import shutil

    from bridge.cli import main

    root = Path(__file__).resolve().parents[2]
    copy = root / ".pytest-typo-rules"  # beside mappings/, so the examples find tests/payloads
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(root / "mappings", copy)
    try:
        rules_file = copy / "shopify-orders.yaml"
        text = rules_file.read_text()
        rules_file.write_text(text.replace("{{ item.price | decimal }}", "{{ item.prise | decimal }}", 1))
        problems = load_rules(copy).example_problems
        assert any("`item.prise` is not in the example payload for shopify orders/create" in p
                   and "did you mean `price`?" in p and p.startswith(".pytest-typo-rules/shopify-orders.yaml:")
                   for p in problems), problems
        assert main(["mappings", "check", str(copy)]) == 1
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    assert load_rules(root / "mappings").example_problems == []  # optional fields absent from examples are fine
