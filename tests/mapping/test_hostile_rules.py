"""Rules a marketer can save that would crash, stall or blow up the bridge: refused by the check,
bounded when an event is mapped, or an error of that one event's message."""

from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2 import TemplateAssertionError
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.tests import TESTS as JINJA_TESTS

from bridge.errors import RulesError
from bridge.mapping import budget, load_rules
from bridge.mapping.allowed import TEST_NAMES
from bridge.mapping.cli import main as mappings_main
from bridge.mapping.expressions import ENV, JOINED, LOOP_FILTER, MEASURED
from bridge.mapping.filters import FILTERS
from bridge.mapping.process import complete, map_events
from tests.mapping.test_rules import ORDER_RULE, event, problems, write

LOCATED = re.compile(r"^.*rules\.yaml:\d+:\d+: ")


def with_note(expression: str) -> str:
    """ORDER_RULE with `note` (line 13 of the written file, after the schema line) made of `expression`."""
    return ORDER_RULE.replace('"{{ note }}"', json.dumps(expression))


@pytest.mark.parametrize("expression, expected", [
    ("{{ 10 ** 100000 }}", "`**` would make a number of about 100,000 digits"),
    ("{{ 'a' * 10**9 }}", "`*` would make text of 1,000,000,000 characters"),
    ("{{ [1, 2] * 10**8 }}", "`*` would make a list of 200,000,000 items"),
    ("{{ note | center(1000000000) }}", "`center` is not a filter rules can use"),
    ("{{ '%999999999d' | format(1) }}", "`format` is not a filter rules can use"),
    ("{{ '%999999999d' % 1 }}", "`%` formatting of text is not available in rules"),
    ("{{ " + "(" * 40 + "1" + ")" * 40 + " }}", "brackets are nested over 32 deep"),
    ("{{ " + "(" * 400 + "1" + ")" * 400 + " }}", "brackets are nested over 64 levels deep"),  # the file's own check
    ("{{ " + "-" * 3000 + "1 }}", "nested too deeply"),
    ("{% for a in 'x' * 100000 %}{% for b in 'x' * 100000 %}y{% endfor %}{% endfor %}",
     "`*` would make text of 100,000 characters"),
    ("{{ line_items | map(attribute='sku') }}", "to take one field of each item, use `| pluck('sku')`"),
    ("{{ line_items | selectattr('sku') }}", "use `for each:` with `when:`"),
    ("{{ line_items | batch(2) }}", "`batch` is not a filter rules can use"),
    ("{{ line_items | slice(2) }}", "`slice` is not a filter rules can use"),
    ("{{ line_items | reverse }}", "`reverse` is not a filter rules can use"),
    ("{{ note is callable }}", "`is callable` is not a test rules can use"),
    ("{{ note is sameas note }}", "`is sameas` is not a test rules can use"),
])
def test_hostile_expressions_are_refused_with_their_place(tmp_path: Path, expression: str, expected: str) -> None:
    started = time.monotonic()
    (found,) = problems(tmp_path, with_note(expression))
    assert time.monotonic() - started < 30  # minutes, or a MemoryError, before the limits
    assert LOCATED.match(found) and ":13:" in found, found
    assert expected in found, found


@pytest.mark.parametrize("name", sorted(set(JINJA_FILTERS) - set(FILTERS)))
def test_every_jinja_filter_rules_do_not_have_is_refused_with_a_fix(tmp_path: Path, name: str) -> None:
    (found,) = problems(tmp_path, with_note(f"{{{{ note | {name} }}}}"))
    assert LOCATED.match(found) and ":13:" in found
    assert f"`{name}` is not a filter rules can use; " in found and "mappings/README.md" in found, found


@pytest.mark.parametrize("name", sorted(set(JINJA_TESTS) - set(TEST_NAMES)))
def test_every_jinja_test_rules_do_not_have_is_refused(tmp_path: Path, name: str) -> None:
    (found,) = problems(tmp_path, with_note(f"{{{{ note is {name} }}}}"))
    assert LOCATED.match(found) and ":13:" in found
    assert f"`is {name}` is not a test rules can use; the tests are defined, undefined, none" in found, found


def test_only_the_documented_filters_and_tests_exist_at_run_time() -> None:
    """Not only refused by the check: a template compiled past it cannot reach Jinja's built-ins either."""
    assert set(ENV.filters) == set(FILTERS) | {LOOP_FILTER, MEASURED, JOINED}
    assert all(" " in name for name in (LOOP_FILTER, MEASURED, JOINED))  # names a rule cannot write
    assert set(ENV.tests) == set(TEST_NAMES)
    with pytest.raises(TemplateAssertionError):
        ENV.from_string("{{ items | map(attribute='sku') | list }}")
    readme = (Path(__file__).resolve().parents[2] / "mappings" / "README.md").read_text()
    for name in FILTERS:
        assert f"`{name}" in readme, f"filter {name} is not in the marketers' guide"


@pytest.mark.parametrize("expression, payload, expected", [
    ("{{ note * count }}", {"note": "ab", "count": 10**8}, "`*` would make text of 200,000,000 characters"),
    ("{{ count ** count }}", {"count": 10**6}, "`**` would make a number"),
    ("{{ note % count }}", {"note": "%999999999d", "count": 1}, "`%` formatting of text"),
    ("{{ count * count * count }}", {"count": 10**200}, "`*` would make a number of about 400 digits"),
    ("{{ note | int }}", {"note": "1" * 1_000_000}, "`int` needs a whole number"),  # quadratic past 4,300 digits
    # a long payload text, or a list or object holding it, at many places
    ("{{ note ~ note ~ note }}", {"note": "x" * 200_000}, "`~` would make text over 512,000 characters"),
    ("{{ note + note + note }}", {"note": "x" * 200_000}, "`+` would make a value over 512,000 characters"),
    ("{{ [note, note, note] }}", {"note": "x" * 200_000}, "this list or object would be over 512,000 characters"),
    ("{{ [line_items] * 1000 }}", {"line_items": list(range(1000))}, "`*` would make a list over 512,000 characters"),
    ("{% set a = [line_items, line_items] %}{% set b = [a, a] %}{% set c = [b, b] %}{% set d = [c, c] %}"
     "{% set e = [d, d] %}{% set f = [e, e] %}{% set g = [f, f] %}{{ g }}", {"line_items": list(range(10_000))},
     "this list or object would be over 512,000 characters"),
    ("{{ line_items | join('" + "-" * 1000 + "') }}", {"line_items": list(range(1000))},
     "`join` would make text over 512,000 characters"),
])
def test_values_from_the_payload_are_bounded_when_an_event_is_mapped(tmp_path: Path, expression: str,
                                                                       payload: dict[str, Any], expected: str) -> None:
    rules = load_rules(write(tmp_path, with_note(expression)))
    result = rules.map(event({"email": "a@b.c", "id": 1, "line_items": [], **payload}))
    assert result.status == "mapping_error" and not result.messages
    (error,) = result.errors
    assert "rules.yaml:13 rule 'Order'" in error and "properties.note" in error and expected in error


def test_a_loop_over_a_long_list_stops_at_the_events_budget_and_names_the_rule(tmp_path: Path) -> None:
    body = with_note("{% for a in line_items %}{% for b in line_items %}{{ b.price }}{% endfor %}{% endfor %}")
    rules = load_rules(write(tmp_path, body))
    big = event({"email": "a@b.c", "id": 1, "line_items": [{"price": "1.00"}] * 2000})
    small = replace(event({"email": "a@b.c", "id": 2, "line_items": [{"price": "1.00"}] * 3}), id=2, dedupe_key="k2")

    started = time.monotonic()
    mapped = map_events(rules, [big, small])
    assert time.monotonic() - started < 30  # minutes, or a MemoryError, before the limits

    (over,) = mapped  # the batch ended at the event over its budget: the other one is read again
    assert over.event_id == 1 and over.status == "mapping_error" and not over.messages
    (error,) = over.errors
    assert "rules.yaml:3 rule 'Order'" in error and f"over {budget.MAX_LOOP_STEPS:,} steps" in error
    assert not complete([big, small], mapped)
    (again,) = map_events(rules, [small])
    assert again.status == "mapped"


def test_an_event_over_its_time_is_a_mapping_error_naming_the_rule(tmp_path: Path) -> None:
    body = with_note("{% for a in line_items %}{{ a.price }}{% endfor %}")
    rules = load_rules(write(tmp_path, body))
    slow = event({"email": "a@b.c", "id": 1, "line_items": [{"price": "1.00"}] * 90_000})
    (over,) = map_events(rules, [slow], seconds=0.01)
    assert over.status == "mapping_error" and "rule 'Order'" in over.errors[0] and "took over 0.01 s" in over.errors[0]


@pytest.mark.parametrize("expression, payload, expected", [
    # a field the payload lacks, inside a list the rule builds: Jinja gives an Undefined, not a value
    ("{{ [customer.tag, 1] }}", {"customer": {}}, "properties.note.0: the value is a field the webhook does not have"),
    ("{{ note }}", {"note": "x" * 600_000}, "makes the record over 512,000 characters"),
    ("{{ note }}", {"note": "Jane \ud800"}, "properties.note: the value holds text that is not valid Unicode"),
])
def test_a_value_that_cannot_be_sent_is_an_error_of_its_message(tmp_path: Path, expression: str,
                                                                payload: dict[str, Any], expected: str) -> None:
    rules = load_rules(write(tmp_path, with_note(expression)))
    result = rules.map(event({"email": "a@b.c", "id": 1, "line_items": [], **payload}))
    assert not result.messages and result.status == "mapping_error"
    (error,) = result.errors
    assert "rules.yaml:13 rule 'Order' → omnisend event: " in error, error
    assert expected in error, error


def test_fields_that_copy_a_long_text_many_times_stop_at_the_events_text_budget(tmp_path: Path) -> None:
    fields = "".join(f"            p{n}: \"{{{{ note ~ note }}}}\"\n" for n in range(60))
    rules = load_rules(write(tmp_path, ORDER_RULE.replace('            note: "{{ note }}"\n', fields)))
    result = rules.map(event({"email": "a@b.c", "id": 1, "line_items": [], "note": "x" * 200_000}))
    assert result.over_budget and not result.messages
    assert f"over {budget.MAX_TEXT:,} characters of text" in result.errors[0] and "rule 'Order'" in result.errors[0]


def test_a_record_holding_one_payload_list_at_many_places_is_refused_without_writing_it_out(tmp_path: Path) -> None:
    """2,000 fields each giving the same 50,000-item list: written out, 2 GB of JSON."""
    fields = "".join(f"            p{n}: \"{{{{ line_items }}}}\"\n" for n in range(2000))
    rules = load_rules(write(tmp_path, ORDER_RULE.replace('            note: "{{ note }}"\n', fields)))
    started = time.monotonic()
    result = rules.map(event({"email": "a@b.c", "id": 1, "line_items": list(range(50_000))}))
    assert time.monotonic() - started < 30  # minutes, or a MemoryError, before the limits
    assert not result.messages and "makes the record over 512,000 characters" in result.errors[0]


def test_try_names_the_field_instead_of_crashing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, with_note("{{ [customer.tag] }}"))
    payload = tmp_path / "order.json"
    payload.write_text(json.dumps({"email": "a@b.c", "id": 1, "customer": {}}))
    code = mappings_main(["mappings", "try", "--source", "shopify", "--topic", "orders/create", "--dir", str(tmp_path),
                          "--messages", str(payload)])
    out = capsys.readouterr().out
    assert code == 1
    assert "# error: " in out and "rules.yaml:13 rule 'Order'" in out and "properties.note.0" in out


def test_test_names_the_field_instead_of_crashing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = with_note("{{ [customer.tag] }}") + """\
examples:
  - name: an order
    on: shopify orders/create
    payload: {email: a@b.c, id: 1, customer: {}}
    expect: []
"""
    write(tmp_path, body)
    assert mappings_main(["mappings", "test", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "unexpected mapping error" in out and "properties.note.0" in out


BILLION_LAUGHS = "".join(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]\n" for n in range(1, 9))


@pytest.mark.parametrize("text, expected", [
    ("a: &l0 [x]\n" + BILLION_LAUGHS + "rules: *l8\n", "holds over 200,000 values"),
    ("rules: &a [*a]\n", ":1:"),
    ("rules: " + "[" * 5000 + "]" * 5000 + "\n", "brackets are nested over 64 levels deep"),
    ("rules:\n" + "".join("  " * i + "- a:\n" for i in range(1, 400)), "nested too deeply to read"),
    ("rules:\n  - name: x\n" + "    # padding\n" * 90_000, "over 1,000,000 bytes"),
    ("rules:\n  - name: [1, {a: 2}]\n    on: {shopify: 1}\n    send: {to: 5}\n  - 7\n  - name: y\n    on: [1, 2]\n"
     "    send: [{to: [omnisend]}, {to: omnisend event, fields: [1]}, {to: ometria order, fields: {id: {for each: 3}}}]\n",
     ":2:"),
])
def test_check_never_ends_in_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                         expected: str) -> None:
    (tmp_path / "rules.yaml").write_text(text, encoding="utf-8")
    started = time.monotonic()
    assert mappings_main(["mappings", "check", str(tmp_path)]) == 1
    assert time.monotonic() - started < 30  # minutes, or a MemoryError, before the limits
    err = capsys.readouterr().err.splitlines()
    assert err[-1].endswith("problem(s); nothing was changed")
    assert all(LOCATED.match(line) for line in err[:-1]), err
    assert any(expected in line for line in err[:-1]), err


def test_binary_junk_is_a_located_problem(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_bytes(bytes(range(256)) * 40)
    with pytest.raises(RulesError) as caught:
        load_rules(tmp_path)
    assert all(LOCATED.match(problem) for problem in caught.value.problems)


SHIPPED = sorted((Path(__file__).resolve().parents[2] / "mappings").glob("*.yaml"))
JUNK = ["", "\x00", "\xff", "&a", "*a", "*b", "<<: *a", "- ", ": ", "{", "}", "[", "]", "'", '"', "{{", "}}", "{%", "%}",
        "| map", "| center(10**9)", "** 999", "!!python/object:os.system", "!!binary", "? ", "\t", "#", "%YAML 1.1",
        "---", "...", "@", "`", "\\", "~", "null", "1e999", "-.inf", ".nan", "0x", "é", "\U0001F600", "\r"]


def mutate(text: str, cuts: list[tuple[int, int, str, int]]) -> str:
    """Apply (position, length, insert, repeat) edits: a deleted span, junk pasted (and repeated)."""
    for position, length, insert, repeat in cuts:
        at = position % (len(text) + 1)
        text = text[:at] + insert * repeat + text[at + length:]
    return text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(file=st.sampled_from(SHIPPED),
       cuts=st.lists(st.tuples(st.integers(0, 20_000), st.integers(0, 40), st.sampled_from(JUNK) | st.text(max_size=8),
                               st.integers(1, 50)), min_size=1, max_size=6))
def test_any_mutation_of_a_shipped_file_loads_or_gives_located_problems(file: Path, cuts: list[Any]) -> None:
    """`bridge mappings check`'s loader over mutated shipped files: it loads, or it lists problems that each
    start with file:line:col; it never raises anything else, and it never takes long."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "rules.yaml").write_text(mutate(file.read_text(encoding="utf-8"), cuts), encoding="utf-8",
                                                 errors="surrogatepass")
        started = time.monotonic()
        try:
            load_rules(Path(folder))
        except RulesError as exc:
            assert exc.problems and all(LOCATED.match(problem) for problem in exc.problems), exc.problems
        assert time.monotonic() - started < 30  # minutes, or a MemoryError, before the limits
