"""The shipped rule files validate against the JSON Schema editors use, and the schema refuses broken ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "bridge" / "mapping" / "rules.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
# The draft the schema declares in `$schema`, checked against its own meta-schema first.
VALIDATOR = jsonschema.validators.validator_for(SCHEMA)(SCHEMA)
FILES = sorted((ROOT / "mappings").glob("*.yaml"))
HEADER = "# yaml-language-server: $schema="


def load(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def errors(document: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in VALIDATOR.iter_errors(document)]


def test_the_schema_is_valid_for_its_draft() -> None:
    type(VALIDATOR).check_schema(SCHEMA)


def test_there_are_rule_files() -> None:
    assert len(FILES) >= 5


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_file_validates(path: Path) -> None:
    assert errors(load(path.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_first_line_references_the_schema(path: Path) -> None:
    """The header points editors (yaml-language-server) at the schema, by a path that resolves from the file."""
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith(HEADER), path
    assert (path.parent / first[len(HEADER):].strip()).resolve() == SCHEMA_PATH


RULE = """
  - name: order to ometria
    on: shopify orders/create
    send:
      - to: ometria order
        fields:
          id: "{{ id }}"
"""

# name -> (document, where the schema must object)
BROKEN = {
    "unknown top-level key": ("rules:" + RULE + "rulez: []\n", ""),
    "send not a list": (
        "rules:\n  - name: x\n    on: shopify orders/create\n    send:\n      to: ometria order\n      fields: {id: '1'}\n",
        "rules/0/send",
    ),
    "send a string other than ignore": ("rules:\n  - name: x\n    on: shopify orders/create\n    send: ometria order\n", "rules/0/send"),
    "missing name": ("rules:\n  - on: shopify orders/create\n    send: ignore\n", "rules/0"),
    "empty name": ("rules:\n  - name: ''\n    on: shopify orders/create\n    send: ignore\n", "rules/0/name"),
    "missing rules": ("examples: []\n", ""),
    "unknown destination": (
        "rules:\n  - name: x\n    on: shopify orders/create\n    send:\n      - to: mailchimp contact\n        fields: {}\n",
        "rules/0/send",
    ),
    "message without fields": ("rules:\n  - name: x\n    on: shopify orders/create\n    send:\n      - to: ometria order\n", "rules/0/send"),
    "unknown key in a rule": ("rules:\n  - name: x\n    on: shopify orders/create\n    send: ignore\n    sned: ignore\n", "rules/0"),
}


def test_a_good_document_passes() -> None:
    assert errors(load("rules:" + RULE)) == []


@pytest.mark.parametrize(("text", "where"), BROKEN.values(), ids=BROKEN.keys())
def test_broken_document_fails(text: str, where: str) -> None:
    found = errors(load(text))
    assert [e for e in found if e.startswith(f"{where or '<root>'}: ")], found
