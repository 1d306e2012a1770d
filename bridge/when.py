"""Points in time as operators type them: ISO 8601, or relative to now (`90m`, `2h`, `3d`, `1w`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*(?:ago)?\s*$", re.IGNORECASE)


def parse_when(text: str, now: float) -> float:
    """Seconds since the epoch. A bare date or a time without offset is read as UTC.

    Relative forms count back from `now`: `2h` is two hours ago.
    """
    value = text.strip()
    if value.lower() == "now":
        return now
    match = RELATIVE.match(value)
    if match:
        return now - float(match.group(1)) * UNITS[match.group(2).lower()]
    try:
        # fromisoformat accepts "Z" from 3.11 on, dates, and "2026-11-23 10:00".
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"cannot read {text!r} as a time: use ISO 8601 (2026-11-23T10:00:00Z, 2026-11-23) "
            "or a relative form (30m, 2h, 3d, 1w)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso(ts: float | None) -> str | None:
    """UTC ISO 8601 to the second, for tables and JSON."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def age(seconds: float | None) -> str:
    """A short human duration: 45s, 12m, 3h, 2d."""
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}" if seconds >= 10 * size else f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"
