"""Areas of access: what each message writes, the operator's allow-list, and policy refusals."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from bridge.config import settings_from_env
from bridge.destinations.catalog import AREAS, DEFAULT_AREAS, OMNISEND_DEFAULT_AREAS, parse_areas
from bridge.errors import ConfigError, RulesError
from bridge.mapping import RulesHolder, load_rules
from bridge.mapping.areas import allowed_from_settings, areas_of
from bridge.mapping.cli import main
from bridge.mapping.engine import CompiledRuleSet
from bridge.model import Event

ROOT = Path(__file__).resolve().parents[2]
MAPPINGS = ROOT / "mappings"
PAYLOADS = ROOT / "tests" / "payloads"
HEAD = "# yaml-language-server: $schema=../bridge/mapping/rules.schema.json\n"
DEFAULT = {"omnisend": DEFAULT_AREAS, "ometria": DEFAULT_AREAS}  # Omnisend's own default also leaves `orders` out
FRESH = {"omnisend": OMNISEND_DEFAULT_AREAS, "ometria": DEFAULT_AREAS}  # what a fresh install allows
EVERYTHING = {"omnisend": AREAS, "ometria": AREAS}


def write(tmp_path: Path, body: str, name: str = "rules.yaml") -> Path:
    (tmp_path / name).write_text(HEAD + textwrap.dedent(body), encoding="utf-8")
    return tmp_path


def event(payload: object, source: str, topic: str) -> Event:
    return Event(1, source, topic, "k1", 1_790_000_000.0, {}, json.dumps(payload).encode())


def stored(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("destination, kind, action, record, cleared, expected", [
    ("omnisend", "event", "create", {"eventName": "x", "contact": {"email": "a@b.c"}}, (), ("events",)),
    ("omnisend", "event", "create", {"contact": {"email": "a@b.c", "firstName": "A"}}, (), ("events", "contacts")),
    ("omnisend", "event", "create", {"contact": {"email": "a@b.c", "optIns": [{"channel": "email"}]}}, (),
     ("events", "consent")),
    ("omnisend", "contact", "upsert",
     {"identifiers": [{"type": "email", "id": "a@b.c", "channels": {"email": {"status": "subscribed"}}}]}, (),
     ("contacts", "consent")),
    ("omnisend", "order", "update", {"orderID": "1", "paymentStatus": "paid"}, (), ("orders",)),
    ("omnisend", "order", "replace", {"orderID": "1"}, (), ("orders", "deletions")),
    ("omnisend", "cart", "replace", {"cartID": "c"}, (), ("carts", "deletions")),
    ("ometria", "contact", "upsert", {"id": "1", "email": "a@b.c", "@merge": True}, (), ("contacts",)),
    ("ometria", "contact", "upsert", {"id": "1", "marketing_optin": "EXPLICITLY_OPTEDIN"}, (), ("contacts", "consent")),
    ("ometria", "contact", "upsert", {"id": "1", "timestamp_unsubscribed": "2026-01-01T00:00:00Z"}, (),
     ("contacts", "consent")),
    ("ometria", "contact", "upsert", {"id": "1", "channels": {"sms": {"allow_marketing": False}}}, (),
     ("contacts", "consent")),
    ("ometria", "contact", "upsert", {"id": "1", "lastname": None}, ("lastname",), ("contacts", "deletions")),
    ("ometria", "contact", "upsert", {"id": "1", "marketing_optin": None}, ("marketing_optin",),
     ("contacts", "consent", "deletions")),
    ("ometria", "order", "upsert", {"id": "1", "customer": {"email": None}}, (), ("orders", "deletions")),
    ("ometria", "product", "upsert", {"id": "p", "title": "T"}, (), ("products",)),
    ("ometria", "custom_event", "upsert", {"event_type": "x", "identity_email": "a@b.c"}, (), ("events",)),
])
def test_areas_of(destination: str, kind: str, action: str, record: dict[str, Any], cleared: tuple[str, ...],
                  expected: tuple[str, ...]) -> None:
    assert areas_of(destination, kind, action, record, cleared) == expected


# --- configuration ------------------------------------------------------------

def test_default_areas_leave_consent_and_deletions_off_and_allow_the_catalogue() -> None:
    settings = settings_from_env({})
    # Omnisend's `orders` are its v3 order resources: off by default (its order events are `events`)
    assert allowed_from_settings(settings) == {"omnisend": ("events", "contacts", "carts", "products"),
                                               "ometria": ("events", "contacts", "orders", "carts", "products"),
                                               "omneo": ("contacts",)}


def test_areas_are_read_per_destination() -> None:
    settings = settings_from_env({"OMNISEND_AREAS": " Consent,events ,contacts", "OMETRIA_AREAS": "none"})
    assert settings.destinations["omnisend"].options["areas"] == ("events", "contacts", "consent")
    assert settings.destinations["ometria"].options["areas"] == ()


def test_an_unknown_area_names_the_variable_and_the_valid_names() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_env({"OMETRIA_AREAS": "events,consnt"})
    text = str(caught.value)
    assert "OMETRIA_AREAS" in text and "'consnt'" in text
    assert "events, contacts, consent, orders, carts, products, deletions" in text


def test_parse_areas_blank_is_the_default() -> None:
    assert parse_areas("", "X_AREAS") == parse_areas(None, "X_AREAS") == DEFAULT_AREAS


# --- the shipped rules under the default policy -------------------------------

def test_shipped_rules_load_with_consent_blocked() -> None:
    rules = load_rules(MAPPINGS, DEFAULT)
    assert len(rules.blocked) == 8
    assert all(("consent" in line or "deletions" in line) and "which is not allowed; to allow it set" in line
               for line in rules.blocked)
    files = sorted(Path(line.split(":")[0]).name for line in rules.blocked)
    assert files == (["erasure.yaml"] * 2 + ["omneo-profiles.yaml"] * 3 + ["shopify-storefront.yaml"] * 2
                     + ["woocommerce.yaml"])
    assert sum("OMETRIA_AREAS=events,contacts,orders,carts,products,deletions" in line for line in rules.blocked) == 2
    assert sum("OMNISEND_AREAS=events,contacts,consent,orders,carts,products" in line for line in rules.blocked) == 3
    assert sum("OMETRIA_AREAS=events,contacts,consent,orders,carts,products" in line for line in rules.blocked) == 3


def test_blocked_consent_is_recorded_and_the_contact_details_still_flow() -> None:
    rules = load_rules(MAPPINGS, DEFAULT)
    result = rules.map(event(stored("omneo/profile_updated.json"), "omneo", "profile.updated"))
    details, contact = result.messages
    assert (details.destination, details.kind, details.action, details.areas) == (
        "omnisend", "contact", "update", ("contacts",))
    assert details.record["lastName"] == "Brooks" and all("channels" not in i for i in details.record["identifiers"])
    assert (contact.destination, contact.kind, contact.areas) == ("ometria", "contact", ("contacts",))
    assert contact.record["lastname"] == "Brooks" and "marketing_optin" not in contact.record
    # what the areas keep back is a notice with the setting that would allow it, not a mapping error
    assert result.errors == [] and result.status == "mapped"
    omnisend, sms, ometria = result.withheld
    assert "→ omnisend contact: blocked: this message writes consent (identifiers[].channels.email.status" in omnisend
    assert "→ omnisend contact: blocked: this message writes consent (identifiers[].channels.sms.status" in sms
    assert omnisend.endswith("to omnisend, not allowed by OMNISEND_AREAS; "
                             "OMNISEND_AREAS=events,contacts,consent,orders,carts,products would allow it")
    assert "blocked: this message writes consent (marketing_optin) to ometria, not allowed by OMETRIA_AREAS" in ometria


def test_a_blocked_message_that_would_not_have_been_sent_records_nothing() -> None:
    """Without comms neither consent message would be sent, so nothing is blocked and the event is mapped."""
    rules = load_rules(MAPPINGS, DEFAULT)
    result = rules.map(event(stored("omneo/profile_created.json"), "omneo", "profile.created"))
    assert result.errors == [] and result.withheld == [] and result.status == "mapped" and len(result.messages) == 4


def test_consent_flows_when_allowed() -> None:
    allowed = {"omnisend": DEFAULT_AREAS + ("consent",), "ometria": DEFAULT_AREAS + ("consent",)}
    rules = load_rules(MAPPINGS, allowed)
    assert all("erasure.yaml" in line and "deletions" in line for line in rules.blocked)  # only erasure is left
    result = rules.map(event(stored("omneo/profile_updated.json"), "omneo", "profile.updated"))
    assert result.errors == []
    assert [(m.destination, m.areas) for m in result.messages] == [
        ("omnisend", ("contacts", "consent")), ("omnisend", ("contacts",)), ("ometria", ("contacts",)),
        ("omnisend", ("contacts", "consent")), ("ometria", ("contacts", "consent"))]
    assert [m.decision.channel if m.decision else None for m in result.messages] == [
        "email", None, None, "sms", "email"]
    assert result.messages[4].record == {"id": "omneo-9a5f2c1e-7b3d-4e8a-9c61-2f0d8b7e4a13", "@collection": "omneo",
                                         "@merge": True, "customer_id": "CUST-000184",
                                         "marketing_optin": "EXPLICITLY_OPTEDIN"}


def test_none_allows_everything() -> None:
    rules = load_rules(MAPPINGS)
    assert rules.blocked == [] and rules.allowed_areas is None


@pytest.mark.parametrize("name, source, topic", [
    ("shopify/orders_create.json", "shopify", "orders/create"),
    ("shopify/customers_create.json", "shopify", "customers/create"),
    ("woocommerce/order_created.json", "woocommerce", "order.created"),
    ("omneo/transaction_created.json", "omneo", "transaction.created"),
])
def test_every_produced_message_carries_its_areas(name: str, source: str, topic: str) -> None:
    rules = load_rules(MAPPINGS)
    result = rules.map(event(stored(name), source, topic))
    assert result.messages
    for message in result.messages:
        assert message.areas and set(message.areas) <= set(AREAS)
        assert message.areas == areas_of(message.destination, message.kind, message.action, message.record)


def test_orders_flow_under_the_default_policy() -> None:
    rules = load_rules(MAPPINGS, FRESH)
    result = rules.map(event(stored("shopify/orders_create.json"), "shopify", "orders/create"))
    assert result.errors == []
    assert [(m.destination, m.kind, m.action, m.areas) for m in result.messages] == [
        ("omnisend", "event", "create", ("events", "contacts")), ("ometria", "order", "upsert", ("orders",))]
    # the v3 order is held back until OMNISEND_AREAS has `orders`: a notice naming that setting
    (v3,) = result.withheld
    assert "omnisend order: blocked: this message writes orders (omnisend order records)" in v3
    assert v3.endswith("OMNISEND_AREAS=events,contacts,orders,carts,products would allow it")
    with_v3 = load_rules(MAPPINGS, DEFAULT)
    sent = with_v3.map(event(stored("shopify/orders_create.json"), "shopify", "orders/create"))
    assert ("omnisend", "order", "create") in [(m.destination, m.kind, m.action) for m in sent.messages]


# --- refusals in rule files ----------------------------------------------------

CONSENT_RULE = """\
rules:
  - name: Profiles
    on: omneo profile.updated
    send:
      - to: omnisend contact
        fields:
          identifiers:
            - type: email
              id: "{{ email }}"
              channels:
                email:
                  status: "{{ attributes.comms.email_promo | consent }}"
"""


def test_a_policy_refusal_is_not_a_rule_error(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, CONSENT_RULE), DEFAULT)
    (line,) = rules.blocked
    assert line.endswith("rules.yaml:13:27: note: this message writes consent (identifiers[].channels.email.status) "
                         "to omnisend, which is not allowed; to allow it set "
                         "OMNISEND_AREAS=events,contacts,consent,orders,carts,products")
    result = rules.map(event({"email": "a@b.c", "attributes": {"comms": {"email_promo": True}}},
                             "omneo", "profile.updated"))
    assert result.status == "ignored" and result.errors == [] and len(result.withheld) == 1


def test_genuine_rule_errors_still_fail_the_load(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="did you mean `omnisend`"):
        load_rules(write(tmp_path, CONSENT_RULE.replace("omnisend contact", "omnisnd contact")), DEFAULT)


def test_a_destination_the_policy_does_not_name_is_unrestricted(tmp_path: Path) -> None:
    assert load_rules(write(tmp_path, CONSENT_RULE), {"ometria": ()}).blocked == []


@pytest.mark.parametrize("message, what", [
    ("""\
      - to: ometria contact
        clear: [lastname]
        fields: {id: "{{ id }}", email: "{{ email }}"}
""", "deletions (clear: lastname)"),
    ("""\
      - to: omnisend order
        action: replace
        fields: {orderID: "{{ id }}", email: "{{ email }}", currency: AUD, orderSum: 1, createdAt: "{{ at }}"}
""", "deletions (action: replace)"),
    ("""\
      - to: omnisend event "x"
        fields: {origin: api, contact: "{{ customer }}"}
""", "consent (contact)"),
])
def test_deletions_and_opaque_consent_are_off_by_default(tmp_path: Path, message: str, what: str) -> None:
    body = "rules:\n  - name: R\n    on: omneo profile.updated\n    send:\n" + message
    rules = load_rules(write(tmp_path, body), DEFAULT)
    (line,) = rules.blocked
    assert f"this message writes {what} to " in line, line
    assert load_rules(tmp_path, EVERYTHING).blocked == []


def test_the_catalogue_is_allowed_by_default_and_can_be_turned_off(tmp_path: Path) -> None:
    body = ("rules:\n  - name: R\n    on: shopify products/update\n    send:\n"
            "      - to: ometria product\n        fields: {id: \"{{ id }}\", title: \"{{ title }}\"}\n")
    assert load_rules(write(tmp_path, body), DEFAULT).blocked == []
    (line,) = load_rules(tmp_path, {"ometria": ("events", "contacts", "orders", "carts")}).blocked
    assert "this message writes products (ometria product records) to ometria" in line
    assert line.endswith("OMETRIA_AREAS=events,contacts,orders,carts,products")


def test_a_replace_is_pointed_out(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, """\
rules:
  - name: R
    on: shopify orders/updated
    send:
      - to: omnisend order
        action: replace
        fields: {orderID: "{{ id }}", email: "{{ email }}", currency: AUD, orderSum: 1, createdAt: "{{ at }}"}
"""))
    assert any(":7: note: rule 'R' replaces the whole omnisend order" in note and "deletions" in note
               for note in rules.notes)


def test_an_omnisend_status_change_is_an_update_in_the_orders_area(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, """\
rules:
  - name: R
    on: shopify orders/paid
    send:
      - to: omnisend order
        action: update
        fields: {orderID: "{{ id }}", email: "{{ email }}", currency: AUD, orderSum: 1, createdAt: "{{ at }}",
                 paymentStatus: paid}
"""), DEFAULT)
    assert rules.blocked == []
    (message,) = rules.map(event({"id": 1, "email": "a@b.c", "at": "2026-01-01"}, "shopify", "orders/paid")).messages
    assert (message.action, message.areas) == ("update", ("orders",))


def test_the_engine_blocks_a_record_the_static_check_missed(tmp_path: Path) -> None:
    """Backstop: areas are computed again from each produced record."""
    loaded = load_rules(write(tmp_path, CONSENT_RULE))
    loaded.rules[0].messages[0].areas = ("contacts",)  # pretend the check missed the consent
    rules = CompiledRuleSet(loaded.rules, allowed_areas=DEFAULT)
    result = rules.map(event({"email": "a@b.c", "attributes": {"comms": {"email_promo": True}}},
                             "omneo", "profile.updated"))
    assert result.messages == []
    assert result.errors == [] and result.status == "ignored"
    assert "blocked: this record writes consent to omnisend, not allowed by OMNISEND_AREAS" in result.withheld[0]
    assert result.withheld[0].endswith("OMNISEND_AREAS=events,contacts,consent,orders,carts,products would allow it")


def test_the_holder_exposes_refusals(tmp_path: Path) -> None:
    write(tmp_path, CONSENT_RULE)
    with capture_logs() as logs:
        holder = RulesHolder(tmp_path, allowed_areas=DEFAULT)
    assert holder.current is not None and holder.error is None
    assert len(holder.blocked) == 1 and "OMNISEND_AREAS=" in holder.blocked[0]
    assert any(entry["event"] == "rules.blocked" for entry in logs)
    assert RulesHolder(tmp_path).blocked == []


# --- where consent may come from ---------------------------------------------

@pytest.mark.parametrize("source, template, refused", [
    ("shopify", "{{ accepts_marketing | consent(none, 'EXPLICITLY_OPTEDIN', 'EXPLICITLY_OPTEDOUT') }}", True),
    ("shopify", "{{ buyer_accepts_marketing | consent(none, 'EXPLICITLY_OPTEDIN', 'EXPLICITLY_OPTEDOUT') }}", False),
    ("shopify", "{{ email_marketing_consent.state | lookup({'subscribed': 'EXPLICITLY_OPTEDIN'}) }}", False),
    ("omneo", "{{ custom_fields.promo | consent(none, 'EXPLICITLY_OPTEDIN') }}", True),
    ("omneo", "{{ attributes.comms.email_promo | consent(none, 'EXPLICITLY_OPTEDIN') }}", False),
    ("woocommerce", "{{ meta_data | meta('marketing_optin') | consent(none, 'EXPLICITLY_OPTEDIN') }}", False),
    ("woocommerce", "{{ 'EXPLICITLY_OPTEDIN' if billing.email else '' }}", True),
    ("bigcommerce", "{{ accepts_marketing | consent(none, 'EXPLICITLY_OPTEDIN') }}", False),
])
def test_consent_comes_only_from_the_source_s_consent_fields(tmp_path: Path, source: str, template: str,
                                                             refused: bool) -> None:
    topic = "customer.updated" if source == "woocommerce" else "customers/update"
    body = f"""\
rules:
  - name: R
    on: {source} {topic}
    send:
      - to: ometria contact
        fields:
          id: "{{{{ id }}}}"
          email: "{{{{ email }}}}"
          marketing_optin: {json.dumps(template)}
"""
    if refused:
        with pytest.raises(RulesError, match=r"is consent, and .* states consent only in"):
            load_rules(write(tmp_path, body))
    else:
        load_rules(write(tmp_path, body))


def test_meta_filter() -> None:
    from bridge.mapping.filters import meta

    entries = [{"key": "a", "value": "yes"}, {"key": "b", "value": ""}]
    assert meta(entries, "a") == "yes" and meta(entries, "b") is None and meta(entries, "c") is None
    assert meta(None, "a") is None and meta({"a": 1}, "a") is None


# --- the command ---------------------------------------------------------------

@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("OMNISEND_AREAS", "OMETRIA_AREAS", "BRIDGE_ENV"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_check_notes_what_the_deployment_does_not_allow(tmp_path: Path, clean_env: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """What the areas keep back is the deployment's choice, not a mistake: a notice with the setting, exit 0."""
    write(tmp_path, CONSENT_RULE)
    assert main(["mappings", "check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert ("rules.yaml:13:27: note: this message writes consent (identifiers[].channels.email.status) to omnisend, "
            "which is not allowed; to allow it set OMNISEND_AREAS=events,contacts,consent,carts,products") in out
    assert "1 message(s) not sent under this deployment's areas" in out
    clean_env.setenv("OMNISEND_AREAS", "events,contacts,consent,orders,carts,products")
    assert main(["mappings", "check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ok: 1 rules" in out and "which is not allowed" not in out


def test_check_passes_on_the_shipped_rules_of_a_fresh_install(clean_env: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mappings", "check", str(MAPPINGS)]) == 0
    out = capsys.readouterr().out
    assert "ok: " in out and "OMNISEND_AREAS=events,contacts,consent" in out


def test_check_reports_a_bad_area_setting(tmp_path: Path, clean_env: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, CONSENT_RULE)
    clean_env.setenv("OMNISEND_AREAS", "events,consnt")
    assert main(["mappings", "check", str(tmp_path)]) == 1
    assert "OMNISEND_AREAS" in capsys.readouterr().err


def test_check_explain_lists_areas_and_consent_sources(clean_env: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    main(["mappings", "check", "--explain", str(MAPPINGS)])
    out = capsys.readouterr().out
    assert "allowed: OMNISEND_AREAS=events,contacts,carts,products  OMETRIA_AREAS=events,contacts,orders,carts,products" in out
    assert "rule 'Omneo profile to contacts' (omneo profile.created, profile.updated)" in out
    assert "→ omnisend contact upsert (line " in out and "): contacts, consent (NOT ALLOWED)" in out
    assert ("consent identifiers[].channels.email.status from `attributes.comms.email_optout`, "
            "`attributes.comms.email_promo`") in out
    assert ("consent identifiers[].channels.email.status from `attributes.comms.email_optout`, "
            "`attributes.comms.email_promo`, decided at `attributes.comms.email_consent_updated_at` (without it: "
            "when the flag changes, at `updated_at`)") in out
    assert ("consent marketing_optin from `email_marketing_consent.state`, decided at "
            "`email_marketing_consent.consent_updated_at`\n") in out
    assert "consent marketing_optin from `meta_data`, decided at `date_created_gmt`" in out
    assert "its email decision, for `email`, is sent only when newer than any the bridge knows for that e-mail" in out
    assert "→ ometria order upsert" in out and ": orders" in out


def test_examples_are_checked_with_every_area_allowed(clean_env: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mappings", "test", str(MAPPINGS)]) == 0
