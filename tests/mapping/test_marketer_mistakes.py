"""Edits a marketer makes by mistake that used to load cleanly and then fail every event, or silently
drop rules: each is refused at load (so a running bridge keeps its rules) with the line and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mapping.test_rules import ORDER_RULE, problems


def test_the_order_rule_itself_loads(tmp_path: Path) -> None:
    from bridge.mapping import load_rules
    from tests.mapping.test_rules import write

    assert len(load_rules(write(tmp_path, ORDER_RULE)).rules) == 1


@pytest.mark.parametrize("body", ["", "# rules: all commented out\n#  - name: Order\n", "rules: []\n"])
def test_a_file_emptied_by_mistake_is_refused(tmp_path: Path, body: str) -> None:
    (found,) = problems(tmp_path, body)
    assert "rules.yaml:" in found and "keeps the rules it has" in found and "delete the file" in found


def test_a_required_field_the_rule_never_sets(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, ORDER_RULE.replace("          origin: api\n", ""))
    assert "rules.yaml:6:" in found  # the message's `to:` line (the file has a one-line header)
    assert "omnisend event needs `origin`" in found and "`origin: api`" in found


def test_none_of_a_contact_group_is_set(tmp_path: Path) -> None:
    body = ORDER_RULE.replace('          contact:\n            email: "{{ email | lower }}"\n', "")
    (found,) = problems(tmp_path, body)
    assert "one of `contact.email`, `contact.phone`, `contact.id`" in found


def test_a_whole_object_counts_as_setting_what_is_inside(tmp_path: Path) -> None:
    from bridge.mapping import load_rules
    from tests.mapping.test_rules import write

    body = ORDER_RULE.replace('          contact:\n            email: "{{ email | lower }}"\n',
                              '          contact: "{{ customer }}"\n')
    assert len(load_rules(write(tmp_path, body)).rules) == 1


@pytest.mark.parametrize("line, fixed", [
    ('            totalPrice: "{{ total_price | decimal }}"\n', "            totalPrice: {{ total_price | decimal }}\n"),
    ('    on: shopify orders/create\n', '    on: shopify orders/create\n    when: {{ email }}\n'),
])
def test_merge_tags_without_quotes(tmp_path: Path, line: str, fixed: str) -> None:
    (found,) = problems(tmp_path, ORDER_RULE.replace(line, fixed))
    assert "put the value in quotes" in found and '"{{ ... }}"' in found


@pytest.mark.parametrize("expression, expected", [
    ("round(total_price)", "`round(...)` cannot be called in rules; use `| decimal`"),
    ("total_price.strip()", "`.strip()` cannot be called"),
    ("now()", "`now(...)` cannot be called in rules; use a filter after `|`"),
])
def test_functions_and_methods_are_refused(tmp_path: Path, expression: str, expected: str) -> None:
    body = ORDER_RULE.replace("{{ total_price | decimal }}", f"{{{{ {expression} }}}}")
    (found,) = problems(tmp_path, body)
    assert expected in found and "rules.yaml:" in found


def test_hidden_files_are_skipped_and_near_misses_noted(tmp_path: Path) -> None:
    from bridge.mapping import load_rules
    from tests.mapping.test_rules import write

    write(tmp_path, ORDER_RULE)
    (tmp_path / "._rules.yaml").write_bytes(b"\x00\x05\x16\x07\xff\xfe macOS metadata")
    (tmp_path / "orders.yaml.txt").write_text(ORDER_RULE.replace("name: Order", "name: Other"), encoding="utf-8")
    loaded = load_rules(tmp_path)
    assert [rule.name for rule in loaded.rules] == ["Order"]
    assert any("orders.yaml.txt" in note and "not read" in note for note in loaded.notes)


def test_a_file_saved_in_latin1_names_the_line_and_the_fix(tmp_path: Path) -> None:
    from bridge.errors import RulesError
    from bridge.mapping import load_rules

    body = ORDER_RULE.replace("name: Order", "name: Commande passée")
    (tmp_path / "rules.yaml").write_bytes(body.encode("latin-1"))
    with pytest.raises(RulesError) as caught:
        load_rules(tmp_path)
    (found,) = caught.value.problems
    assert "rules.yaml:2:" in found and "not saved as UTF-8" in found and "Save with Encoding" in found


def test_a_slow_reload_does_not_stop_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import time

    import bridge.mapping.reload as reload
    from tests.mapping.test_rules import write

    holder = reload.RulesHolder(write(tmp_path, ORDER_RULE))
    real = reload.load_rules

    def slow(*args: object, **kwargs: object) -> object:
        time.sleep(0.5)  # a folder of thousands of rules
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(reload, "load_rules", slow)

    async def go() -> int:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        assert await holder.areload() is True
        ticker.cancel()
        return ticks

    assert asyncio.run(go()) >= 20  # the loop kept running while the rules loaded


def test_a_woocommerce_topic_that_can_never_arrive(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, ORDER_RULE.replace("on: shopify orders/create", "on: woocommerce orders.created"))
    assert "woocommerce never sends `orders.created`; did you mean `order.created`?" in found
    assert "rules.yaml:4:" in found


def test_an_unknown_shopify_topic_is_noted_with_the_close_one(tmp_path: Path) -> None:
    from bridge.mapping import load_rules
    from tests.mapping.test_rules import write

    loaded = load_rules(write(tmp_path, ORDER_RULE.replace("orders/create", "order/create")))
    assert any("`order/create` is not a topic shopify is known to send; did you mean `orders/create`?" in note
               for note in loaded.notes)
    loaded = load_rules(write(tmp_path, ORDER_RULE.replace("on: shopify", "on: shopfy")))
    assert any("`shopfy` is not a built-in source; did you mean `shopify`?" in note for note in loaded.notes)
    loaded = load_rules(write(tmp_path, ORDER_RULE.replace("on: shopify", "on: my_crm")))  # a source of its own
    assert not loaded.notes


def test_a_typo_in_a_condition_is_caught_against_the_examples() -> None:
    import shutil
    import tempfile

    from bridge.mapping import load_rules
    from tests.mapping.test_shipped import MAPPINGS

    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "mappings"
        shutil.copytree(MAPPINGS, copy)
        (Path(folder) / "tests").symlink_to(MAPPINGS.parent / "tests")  # the examples' payload files
        orders = copy / "shopify-orders.yaml"
        text = orders.read_text(encoding="utf-8")
        assert 'when: "{{ email }}"' in text
        orders.write_text(text.replace('when: "{{ email }}"', 'when: "{{ emial }}"', 1), encoding="utf-8")
        found = load_rules(copy).example_problems
    assert any("shopify-orders.yaml:17:" in p and "there is no `emial`; did you mean `email`?" in p for p in found)


def test_for_each_written_as_one_word(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, ORDER_RULE.replace("for each: line_items", "foreach: line_items"))
    assert "`foreach:` should be `for each:`" in found


def test_a_name_that_yaml_reads_as_a_number(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, ORDER_RULE.replace("name: Order", "name: 2026"))
    assert 'put the rule\'s name in quotes: `name: "2026"`' in found and "rules.yaml:3:" in found


def test_money_left_as_text_fails_the_examples_with_the_fix() -> None:
    import shutil
    import tempfile

    from bridge.mapping import load_rules
    from bridge.mapping.examples import run_examples
    from tests.mapping.test_shipped import MAPPINGS

    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "mappings"
        shutil.copytree(MAPPINGS, copy)
        (Path(folder) / "tests").symlink_to(MAPPINGS.parent / "tests")
        orders = copy / "shopify-orders.yaml"
        text = orders.read_text(encoding="utf-8")
        orders.write_text(text.replace('grand_total: "{{ total_price | decimal }}"', 'grand_total: "{{ total_price }}"', 1)
                          .replace('is_valid: "{{ not test and financial_status != \'voided\' }}"', "is_valid: \"yes\"", 1),
                          encoding="utf-8")
        reports = [o.report for o in run_examples(load_rules(copy)) if not o.ok]
    text = "".join(reports)
    assert "`grand_total` is '" in text and "needs a number there: add `| decimal`" in text
    assert "`is_valid` is 'yes', but ometria needs true or false there" in text


RUNTIME_RULE = """\
rules:
  - name: Order
    on: shopify orders/create
    when: "{{ (tags | int(none)) + 1 > 0 if tags else true }}"
    send:
      - to: omnisend event "placed order"
        when: "{{ (note | int(none)) + 1 > 0 if note else true }}"
        fields:
          origin: api
          contact:
            email: "{{ email | lower }}"
          properties:
            totalPrice: "{{ total_price | decimal }}"
            lineItems:
              for each: "{{ line_items | decimal }}"
              item:
                productID: "{{ item.product_id | string }}"
"""


@pytest.mark.parametrize("payload, line, what", [
    ({"total_price": "ten dollars"}, 13, "properties.totalPrice: `{{ total_price | decimal }}` failed"),
    ({"note": "gift"}, 7, "condition `{{ (note | int(none)) + 1 > 0 if note else true }}` failed"),
    ({"tags": "vip"}, 4, "condition `{{ (tags | int(none)) + 1 > 0 if tags else true }}` failed"),
    ({"line_items": "many"}, 15, "properties.lineItems: `{{ line_items | decimal }}` failed"),
])
def test_an_error_while_mapping_names_the_line_of_the_field_or_condition(tmp_path: Path, payload: dict[str, object],
                                                                        line: int, what: str) -> None:
    """Bad data for one field: the event's error points at that field's line, not at the message's `to:`."""
    from bridge.mapping import load_rules
    from tests.mapping.test_rules import event, write

    rules = load_rules(write(tmp_path, RUNTIME_RULE))
    (error,) = rules.map(event({"email": "a@example.com", **payload})).errors
    assert error.startswith(f"{tmp_path}/rules.yaml:{line + 1} rule 'Order'"), error  # +1: the file's header line
    assert what in error


CUSTOM_EVENT_RULE = """\
rules:
  - name: Reward
    on: omneo reward.issued
    send:
      - to: ometria custom_event "NAME"
        fields:
          id: "reward-{{ id }}"
          timestamp: "{{ created_at | rfc3339 }}"
          identity_email: "{{ email | lower }}"
"""


def test_an_ometria_event_type_longer_than_ometria_keeps(tmp_path: Path) -> None:
    from bridge.mapping import load_rules
    from tests.mapping.test_rules import write

    long_name = "omneo_reward_issued_to_a_vip_member"  # 35 characters
    (found,) = problems(tmp_path, CUSTOM_EVENT_RULE.replace("NAME", long_name))
    assert "rules.yaml:6:" in found and "first 32 characters" in found
    assert f'would arrive as "{long_name[:32]}"' in found and "use a shorter name" in found
    assert load_rules(write(tmp_path, CUSTOM_EVENT_RULE.replace("NAME", long_name[:32]))).rules  # 32 fit


def test_text_where_a_number_goes_is_a_mapping_error_on_the_fields_line_at_run_time(tmp_path: Path) -> None:
    """Data the examples did not cover: the message is not sent (Ometria would drop it out of sight)."""
    from bridge.mapping import load_rules
    from tests.mapping.test_rules import event, write

    body = """\
rules:
  - name: Order
    on: shopify orders/create
    send:
      - to: ometria order
        fields:
          id: "{{ id | string }}"
          timestamp: "{{ created_at | rfc3339 }}"
          currency: "{{ currency }}"
          status: complete
          grand_total: "{{ total_price }}"
          is_valid: "{{ not test }}"
          customer:
            email: "{{ email }}"
"""
    rules = load_rules(write(tmp_path, body))
    base = {"id": 7, "created_at": "2026-12-02T10:00:00Z", "currency": "AUD", "email": "a@example.com", "test": False}
    sent = rules.map(event({**base, "total_price": 12.5}))  # a number in the payload: fine as it is
    assert not sent.errors and sent.messages[0].record["grand_total"] == 12.5
    refused = rules.map(event({**base, "total_price": "12.50"}))
    assert not refused.messages and refused.status == "mapping_error"
    (error,) = refused.errors
    assert error.startswith(f"{tmp_path}/rules.yaml:12 rule 'Order' → ometria order: `grand_total` is '12.50'"), error
    assert "add `| decimal`" in error


TYPED_RULES = """\
rules:
  - name: Order
    on: shopify orders/create
    send:
      - to: omnisend event "tier changed"
        fields:
          origin: api
          contact:
            email: "{{ email }}"
          properties:
            value: "{{ tier }}"
      - to: omnisend order
        fields:
          orderID: "{{ id | string }}"
          email: "{{ email }}"
          currency: AUD
          createdAt: "{{ created_at | rfc3339 }}"
          orderSum: "{{ total_price }}"
          products:
            for each: "{{ line_items }}"
            item:
              productID: "{{ item.product_id | string }}"
              quantity: "{{ item.quantity }}"
      - to: ometria custom_event "{{ kind }}_reward_issued_to_a_member"
        fields:
          id: "reward-{{ id }}"
          timestamp: "{{ created_at | rfc3339 }}"
          identity_email: "{{ email }}"
"""


def test_run_time_type_errors_give_the_filter_that_fits_the_field(tmp_path: Path) -> None:
    """A custom Omnisend event's properties are its own; an order's money is in cents; a count is whole;
    an Ometria event name made from the data is held to Ometria's 32 characters too."""
    from bridge.mapping import load_rules
    from tests.mapping.test_rules import event, write

    rules = load_rules(write(tmp_path, TYPED_RULES))
    result = rules.map(event({"id": 7, "email": "a@example.com", "tier": "Gold", "kind": "gold",
                              "created_at": "2026-12-02T10:00:00Z", "total_price": "22.50",
                              "line_items": [{"product_id": 1, "quantity": "2"}]}))
    assert [m.kind for m in result.messages] == ["event", "custom_event"]  # "tier changed": value "Gold" is fine
    assert result.messages[0].record["properties"]["value"] == "Gold"
    text = "\n".join(result.errors)
    assert "`orderSum` is '22.50', but omnisend needs a number there: add `| cents`" in text
    assert "(this field is in cents: 22.50 is 2250)" in text
    assert "`products[].quantity` is '2', but omnisend needs a number there: add `| int`" in text
    assert "event name" not in text  # "gold_reward_issued_to_a_member": 30 characters fit
    long = rules.map(event({"id": 7, "email": "a@example.com", "tier": "Gold", "kind": "platinum_plus",
                            "created_at": "2026-12-02T10:00:00Z", "total_price": 22,
                            "line_items": [{"product_id": 1, "quantity": 2}]}))
    (error,) = long.errors
    assert error.startswith(f"{tmp_path}/rules.yaml:25 rule 'Order' → ometria custom_event"), error  # the to: line (+1: the header)
    assert 'the event name "platinum_plus_reward_issued_to_a_member" has 39 characters' in error
    assert 'only the first 32 ("platinum_plus_reward_issued_to_a")' in error
