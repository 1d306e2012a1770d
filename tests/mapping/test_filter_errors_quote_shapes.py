"""A filter's error reaches logs and operator views: it quotes a payload value by its shape, never its content."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bridge.log import quoted
from bridge.mapping import filters
from bridge.mapping.filters import FilterError


@pytest.mark.parametrize(("fn", "value"), [
    (filters.rfc3339, "Jane Doe"),
    (filters.rfc3339, True),
    (filters.decimal, "Jane Doe"),
    (filters.integer, "Jane Doe"),
    (filters.cents, "Quennell"),
])
def test_a_filter_error_names_the_shape_of_the_value_not_the_value(fn: Callable[[Any], Any], value: Any) -> None:
    with pytest.raises(FilterError) as refused:
        fn(value)
    message = str(refused.value)
    assert str(value) not in message
    assert quoted(value) in message


def test_a_quoted_value_keeps_its_shape_and_is_cut() -> None:
    assert quoted("Jane Doe") == "'Xxxx Xxx'"
    assert quoted("2026-13-45T10:00") == "'9999-99-99X99:99'"
    assert quoted(61412345678) == "'99999999999'"
    assert quoted("José") == "'Xxxx'"
    assert quoted("a" * 100) == "'" + "x" * 40 + "'... (100 characters)"
