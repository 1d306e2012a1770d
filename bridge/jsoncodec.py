"""JSON for the records the worker stores, reads back and sends: orjson's speed, the json module's values.

The worker turns every message record into JSON three times (stored, read back, sent), and with
the json module that was ~17% of its process during a drain. orjson is several times faster but
differs from json where a record's value would change:

- NaN and Infinity: orjson writes `null`, which Ometria reads as "erase this field"; json writes
  `NaN`, which is stored as it was mapped, and httpx refuses to send it (`allow_nan=False`).
- Integers beyond 64 bits: orjson refuses to write them and reads them as floats, losing digits.
- Keys that are not plain strings, subclasses of str or int, lone surrogates, datetimes and
  dataclasses: orjson refuses them, writes them its own way, or json has its own rules for them.

Records hold JSON values only (from payloads and the rule engine's filters); beyond those, orjson
would still write plain enums, UUIDs and numpy values that json refuses.

So orjson's answer is taken only where it is the json module's answer; otherwise the json
module decides, exactly as before (its errors included).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# Whatever orjson would write differently from json goes to json instead (TypeError).
_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS
# orjson reads every integer of 19 digits or fewer exactly (int64 and uint64 cover them); a longer
# run of digits anywhere (in a string too, to keep the test cheap) goes to json.
_LONG_DIGITS = re.compile("[0-9]{19}")
_LONG_DIGITS_BYTES = re.compile(b"[0-9]{19}")


def dumps(value: Any, *, ensure_ascii: bool = False, allow_nan: bool = True) -> bytes:
    """`json.dumps(value, separators=(",", ":"), ensure_ascii=..., allow_nan=...).encode()`, or the same value.

    orjson's text when it means the same (it writes non-ASCII as UTF-8, which is the same value as
    json's escapes); otherwise json's, with json's errors: ValueError for NaN with allow_nan=False
    (as httpx's `json=` raises), UnicodeEncodeError for a lone surrogate without ensure_ascii.
    """
    try:
        data = orjson.dumps(value, option=_STRICT)
    except TypeError:  # beyond 64 bits, a key that is not a str, a surrogate, a type left to json
        data = None
    if data is None or b"null" in data:  # a null may be a NaN or an Infinity that orjson turned into null
        return json.dumps(value, separators=(",", ":"), ensure_ascii=ensure_ascii, allow_nan=allow_nan).encode()
    return data


def loads(text: str | bytes) -> Any:
    """`json.loads(text)`: the same value, every digit kept."""
    pattern = _LONG_DIGITS if isinstance(text, str) else _LONG_DIGITS_BYTES
    if pattern.search(text) is None:  # type: ignore[arg-type]
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:  # NaN, a lone surrogate, 1e400, or not JSON: json decides
            pass
    return json.loads(text)
