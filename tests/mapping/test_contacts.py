"""Contacts without consent: the Omnisend update by email, and the shipped rules under the default areas."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bridge.destinations.catalog import DEFAULT_AREAS
from bridge.mapping import load_rules
from bridge.mapping.filters import birthdate
from bridge.model import Event

ROOT = Path(__file__).resolve().parents[2]
MAPPINGS = ROOT / "mappings"
PAYLOADS = ROOT / "tests" / "payloads"
DEFAULT = {"omnisend": DEFAULT_AREAS, "ometria": DEFAULT_AREAS}

UPDATE_RULE = """\
rules:
  - name: R
    on: omneo profile.updated
    send:
      - to: omnisend contact
        action: update
        fields:
          identifiers:
            - type: phone
              id: "{{ phone }}"
            - type: email
              id: "{{ email }}"
          firstName: "{{ first_name }}"
"""


def event(payload: object, source: str, topic: str) -> Event:
    return Event(1, source, topic, "k1", 1_790_000_000.0, {}, json.dumps(payload).encode())


def stored(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def test_an_update_needs_the_email_first_and_no_status(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(textwrap.dedent(UPDATE_RULE))
    rules = load_rules(tmp_path, DEFAULT)
    assert rules.blocked == []  # no channel status: the contacts area only
    result = rules.map(event({"email": "a@b.c", "phone": "+61412345678", "first_name": "A"}, "omneo", "profile.updated"))
    assert result.messages == [] and result.status == "mapping_error"
    assert "r.yaml:5 rule 'R' → omnisend contact: identifiers.0 is not an email" in result.errors[0]
    # without a phone the email identifier comes first: sent, with no channel anywhere
    (message,) = rules.map(event({"email": "a@b.c", "first_name": "A"}, "omneo", "profile.updated")).messages
    assert (message.action, message.areas) == ("update", ("contacts",))
    assert message.record == {"identifiers": [{"type": "email", "id": "a@b.c"}], "firstName": "A"}


def test_a_profile_without_an_email_is_a_mapping_error_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(textwrap.dedent(UPDATE_RULE))
    result = load_rules(tmp_path, DEFAULT).map(event({"first_name": "A"}, "omneo", "profile.updated"))
    assert result.status == "mapping_error" and "r.yaml:5" in result.errors[0]


@pytest.mark.parametrize("payload, source, topic", [
    ("omneo/profile_updated.json", "omneo", "profile.updated"),
    ("omneo/profile_created.json", "omneo", "profile.created"),
    ("shopify/customers_create.json", "shopify", "customers/create"),
    ("shopify/customers_update_no_phone.json", "shopify", "customers/update"),
    ("woocommerce/customer_created.json", "woocommerce", "customer.created"),
    ("woocommerce/customer_created.json", "woocommerce", "customer.updated"),
])
def test_contacts_reach_both_destinations_on_a_fresh_install(payload: str, source: str, topic: str) -> None:
    """Default areas, consent fields or not: the details reach Omnisend and Ometria, no consent goes anywhere."""
    result = load_rules(MAPPINGS, DEFAULT).map(event(stored(payload), source, topic))
    assert result.errors == [] and result.status == "mapped"
    contacts = [m for m in result.messages if m.kind == "contact"]
    assert {(m.destination, m.action) for m in contacts} == {("omnisend", "update"), ("ometria", "upsert")}
    assert all(m.areas == ("contacts",) for m in contacts)
    omnisend = next(m.record for m in contacts if m.destination == "omnisend")
    assert all("channels" not in identifier for identifier in omnisend["identifiers"])
    assert omnisend["firstName"]


@pytest.mark.parametrize("parts, expected", [
    ((1991, 6, 14), "1991-06-14"), (("1988", "9", "3"), "1988-09-03"), ((1991, 6, 31), None),
    ((None, 6, 14), None), ((1991, "", 14), None), ((1991, "June", 14), None), ((91, 6, 14), None),
    ((True, 6, 14), None),
])
def test_birthdate_from_its_parts(parts: tuple[Any, Any, Any], expected: str | None) -> None:
    assert birthdate(*parts) == expected
