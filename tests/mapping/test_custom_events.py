"""The loyalty moments automations start from reach both destinations as custom events, on a fresh install."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bridge.destinations.catalog import DEFAULT_AREAS, OMETRIA_EVENT_TYPE_MAX
from bridge.mapping import load_rules
from bridge.model import Event

ROOT = Path(__file__).resolve().parents[2]
MAPPINGS = ROOT / "mappings"
DEFAULT = {"omnisend": DEFAULT_AREAS, "ometria": DEFAULT_AREAS}


def stored(name: str) -> Any:
    return json.loads((ROOT / "tests" / "payloads" / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("payload, topic, omnisend, ometria", [
    ("omneo/profile_created.json", "profile.created", "joined loyalty program", "omneo_joined"),
    ("omneo/tier_achieved.json", "tier.achieved", "tier achieved", "omneo_tier_achieved"),
    ("omneo/reward_created.json", "reward.created", "reward issued", "omneo_reward"),
    ("omneo/transaction_created.json", "transaction.created", "omneo transaction", "omneo_transaction"),
])
def test_each_loyalty_moment_is_a_custom_event_in_both(payload: str, topic: str, omnisend: str, ometria: str) -> None:
    event = Event(1, "omneo", topic, "k1", 1_790_000_000.0, {}, json.dumps(stored(payload)).encode())
    result = load_rules(MAPPINGS, DEFAULT).map(event)
    assert result.errors == [] and result.withheld == []
    events = {(m.destination, m.record.get("eventName") or m.record.get("event_type"))
              for m in result.messages if m.kind in ("event", "custom_event")}
    assert events == {("omnisend", omnisend), ("ometria", ometria)}
    custom = next(m.record for m in result.messages if m.kind == "custom_event")
    assert custom["id"] and custom["identity_email"] and custom["identity_account_id"]


def test_the_guide_and_the_file_name_every_ometria_event_type_to_set_up_first() -> None:
    """Ometria refuses an event type it has not set up: each one the rules send is named where a marketer reads."""
    types = {name for path in MAPPINGS.glob("*.yaml")
             for name in re.findall(r'to: ometria custom_event "([^"]+)"', path.read_text())}
    assert types == {"omneo_joined", "omneo_transaction", "omneo_tier_achieved", "omneo_reward"}
    header = (MAPPINGS / "omneo-loyalty.yaml").read_text().split("rules:")[0]
    guide = (MAPPINGS / "README.md").read_text()
    assert all(name in header and name in guide and len(name) <= OMETRIA_EVENT_TYPE_MAX for name in types)
    assert "set it up" in guide or "set up" in guide
