"""bridge.jsoncodec gives the json module's values and errors, whichever library did the work."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import jsoncodec

scalars = (st.none() | st.booleans() | st.floats() | st.integers() | st.integers(min_value=2**62, max_value=2**70)
           | st.integers(max_value=-(2**62), min_value=-(2**70)) | st.text())
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=12)


def outcome(fn: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """('ok', value) or ('error', the exception's type); NaN made comparable."""
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:
        return "error", type(exc)
    return "ok", comparable(result)


def comparable(value: Any) -> Any:
    """`value` with every float as its repr (NaN == NaN) and its type kept (1 != 1.0)."""
    if isinstance(value, float):
        return ("float", repr(value))
    if isinstance(value, dict):
        return ("dict", [(k, comparable(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [comparable(v) for v in value])
    return (type(value).__name__, value)


def as_json(ensure_ascii: bool, allow_nan: bool):  # type: ignore[no-untyped-def]
    return lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=ensure_ascii, allow_nan=allow_nan).encode()


@settings(max_examples=400, deadline=None)
@given(values, st.booleans(), st.booleans())
def test_dumps_means_what_json_dumps_means(value: Any, ensure_ascii: bool, allow_nan: bool) -> None:
    ours = outcome(lambda v: json.loads(jsoncodec.dumps(v, ensure_ascii=ensure_ascii, allow_nan=allow_nan)), value)
    theirs = outcome(lambda v: json.loads(as_json(ensure_ascii, allow_nan)(v)), value)
    assert ours == theirs


@settings(max_examples=400, deadline=None)
@given(values)
def test_loads_reads_what_json_reads(value: Any) -> None:
    text = json.dumps(value)  # NaN, Infinity, long integers and \ud800 escapes included
    assert outcome(jsoncodec.loads, text) == outcome(json.loads, text)
    assert outcome(jsoncodec.loads, text.encode("utf-8")) == outcome(json.loads, text.encode("utf-8"))


@pytest.mark.parametrize("text", ['{"a":NaN}', "[Infinity,-Infinity]", "1e400", "[12345678901234567890123]",
                                  "-9223372036854775809", '"\\ud800"', "{", "", "[1,]", '{"a":1,"a":2}'])
def test_loads_edges(text: str) -> None:
    assert outcome(jsoncodec.loads, text) == outcome(json.loads, text)


def test_a_nan_is_never_sent_as_null() -> None:
    # orjson writes NaN as null, and Ometria reads null as "erase this field".
    assert jsoncodec.dumps({"total": math.nan}) == b'{"total":NaN}'
    with pytest.raises(ValueError):
        jsoncodec.dumps({"total": math.inf}, allow_nan=False)  # what httpx's json= raised
    assert jsoncodec.dumps({"total": None, "n": 1}) == b'{"total":null,"n":1}'


def test_integers_beyond_64_bits_keep_every_digit() -> None:
    assert jsoncodec.dumps([2**70, -(2**64)]) == b"[1180591620717411303424,-18446744073709551616]"
    assert jsoncodec.loads("[1180591620717411303424]") == [2**70]


class Size(int, enum.Enum):
    BIG = 3


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize("value", [{1: "int key"}, {"when": datetime.datetime(2026, 12, 1)}, [Size.BIG], Point(1),
                                   {"s": "\ud800"}])
def test_types_orjson_writes_its_own_way_get_json_s_answer(value: Any) -> None:
    for ensure_ascii in (True, False):
        ours = outcome(jsoncodec.dumps, value, ensure_ascii=ensure_ascii)
        theirs = outcome(as_json(ensure_ascii, True), value)
        assert ours[0] == theirs[0]
        if ours[0] == "ok":
            assert json.loads(ours[1][1]) == json.loads(theirs[1][1])


def test_non_ascii_is_the_same_value_either_way() -> None:
    record = {"name": "Zoë Ångström", "city": "東京"}
    assert json.loads(jsoncodec.dumps(record, ensure_ascii=True)) == record
    assert jsoncodec.dumps(record) == json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
