"""Personal data masked for operators: the same rules as the logs (bridge.log), applied to records.

The CLI and the admin API show stored payloads, headers and response excerpts;
unless the operator asks to reveal them, values under personal keys become a
short hash (so two records about one person still match) and e-mail addresses
or phone numbers inside any other text are masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.log import _redact, mask_text

__all__ = ["mask_record", "mask_text", "mask_value"]


def mask_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `record` with personal and secret values masked, at any depth."""
    return {str(k): _redact(v, str(k)) for k, v in record.items()}


def mask_value(value: Any) -> Any:
    """Mask a value of any shape (a payload may be a list, a string, a number)."""
    if isinstance(value, Mapping):
        return mask_record(value)
    return _redact(value)
