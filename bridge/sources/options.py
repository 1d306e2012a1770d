"""Scheme options: what each scheme accepts, checked once when sources are built.

Each scheme module declares its options as a table of `Option`s. The same
check runs for settings built in code (a plain ConfigError) and for the
sources file (config.py adds the file and line of the offending option).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.errors import ConfigError


class OptionError(ConfigError):
    """One option is wrong. `option` is its name (None: the set as a whole)."""

    def __init__(self, option: str | None, message: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class Option:
    """One scheme option: its name, whether it must be given, and how to check it.

    `check` returns the normalised value or raises ValueError with a message
    that tells the operator the fix.
    """

    name: str
    help: str
    required: bool = False
    check: Callable[[Any], Any] | None = None


def check_options(scheme: str, table: Mapping[str, Option], options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate `options` against a scheme's table; return them normalised.

    Raises OptionError naming the first wrong option, so the caller can
    point at its line.
    """
    for name in options:
        if name not in table:
            known = ", ".join(sorted(table)) or "none"
            raise OptionError(str(name), f"unknown option {name!r} for scheme {scheme}; known options: {known}")
    for option in table.values():
        if option.required and options.get(option.name) in (None, ""):
            raise OptionError(None, f"scheme {scheme} requires option {option.name!r} ({option.help})")
    result: dict[str, Any] = {}
    for name, value in options.items():
        option = table[name]
        try:
            result[name] = option.check(value) if option.check else value
        except (ValueError, TypeError) as exc:
            raise OptionError(name, f"option {name!r} of scheme {scheme}: {exc}") from None
    return result


def one_of(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
        return value.lower()

    return check


def text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return value.strip()


def header_name(value: Any) -> str:
    name = text(value)
    # RFC 9110 token characters; a space or colon here is always a typo.
    if any(c in name for c in ' :\t"(),/;<=>?@[\\]{}'):
        raise ValueError(f"{name!r} is not an HTTP header name")
    return name


def positive_seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"must be a number of seconds, got {value!r}")
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"must be a number of seconds, got {value!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"must be a positive number of seconds, got {value!r}")
    return seconds
