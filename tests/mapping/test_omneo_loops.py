"""Omneo's own webhooks mapped back to Omneo make a loop: refused unless the message says so, then warned about."""

from __future__ import annotations

from pathlib import Path

from bridge.mapping import load_rules
from tests.mapping.test_rules import problems, write

LOOP = """
rules:
  - name: Omneo back to Omneo
    on: omneo profile.updated
    send:
      - to: omneo profile
        fields:
          email: "{{ email }}"
          first_name: "{{ first_name | trim }}"
"""


def test_a_rule_sending_omneo_webhooks_back_to_omneo_is_refused_with_the_fix(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, LOOP)
    assert "rules.yaml:7:" in found and "sends Omneo's own webhooks back to Omneo" in found
    assert "add `allow loop: true` to this message" in found


def test_allow_loop_loads_and_the_check_warns(tmp_path: Path) -> None:
    body = LOOP.replace("      - to: omneo profile\n", "      - to: omneo profile\n        allow loop: true\n")
    rules = load_rules(write(tmp_path, body))
    [warning] = [note for note in rules.notes if "warning" in note]
    assert "rules.yaml:7: warning: rule 'Omneo back to Omneo' sends Omneo's own webhooks back to Omneo" in warning
    assert "namespace" in warning


def test_allow_loop_elsewhere_is_refused(tmp_path: Path) -> None:
    body = LOOP.replace("omneo profile.updated", "shopify customers/update").replace(
        "      - to: omneo profile\n", "      - to: omneo profile\n        allow loop: true\n")
    (found,) = problems(tmp_path, body)
    assert "only fits a rule on Omneo's webhooks that sends to Omneo" in found


def test_allow_loop_must_be_true_or_false(tmp_path: Path) -> None:
    body = LOOP.replace("      - to: omneo profile\n", "      - to: omneo profile\n        allow loop: yes please\n")
    (found,) = problems(tmp_path, body)
    assert "`allow loop:` is true or false" in found
