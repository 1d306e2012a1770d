"""Every shipped rule file loads, passes its check and produces its own examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.mapping.examples import run_examples
from bridge.mapping.loader import load_rules, rule_files

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
RULES = load_rules(MAPPINGS)
OUTCOMES = run_examples(RULES)


def test_every_file_points_to_the_schema() -> None:
    for path in rule_files(MAPPINGS):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == "# yaml-language-server: $schema=../bridge/mapping/rules.schema.json", path


def test_every_file_has_examples() -> None:
    with_examples = {Path(example.file).name for example in RULES.examples}
    assert with_examples == {path.name for path in rule_files(MAPPINGS)}


@pytest.mark.parametrize("outcome", OUTCOMES, ids=lambda outcome: outcome.title)
def test_example(outcome) -> None:  # type: ignore[no-untyped-def]
    assert outcome.ok, outcome.report
