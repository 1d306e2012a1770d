"""Value filters marketers use in `{{ ... | filter }}`.

Every filter treats "nothing" (a missing field, JSON null) the same way and
passes it through as None, so a missing field is omitted from the record
instead of failing the whole message. Bad data that is present (a price that
is not a number) raises `FilterError`, which the engine turns into a mapping
error naming the rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import phonenumbers
from jinja2 import Undefined

from bridge.log import quoted  # errors reach logs and operator views: a value is quoted by its shape only
from bridge.mapping.limits import MAX_INT_DIGITS, MAX_RECORD_CHARS


class FilterError(ValueError):
    """A value is present but cannot be converted (e.g. `"abc" | decimal`)."""


def _nothing(value: Any) -> bool:
    return value is None or isinstance(value, Undefined)


def _to_decimal(value: Any, name: str) -> Decimal | None:
    if _nothing(value) or value == "":
        return None
    if isinstance(value, bool):
        raise FilterError(f"`{name}` needs a money amount, got {quoted(value)}")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # repr keeps the shortest exact form: 19.99 stays 19.99, not 19.989999...
        return Decimal(repr(value))
    try:
        return Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        raise FilterError(f"`{name}` needs a money amount, got {quoted(value)}") from None


def decimal(value: Any) -> float | int | None:
    """Money string to a JSON number: "19.99" -> 19.99 (parsed exactly, then a float)."""
    amount = _to_decimal(value, "decimal")
    if amount is None:
        return None
    return float(amount)


def cents(value: Any) -> int | None:
    """Money to integer cents, rounding half-up on the exact decimal: "1.255" -> 126."""
    amount = _to_decimal(value, "cents")
    if amount is None:
        return None
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def rfc3339(value: Any, assume: str = "UTC") -> str | None:
    """A date or time to RFC 3339 ("2026-11-20T10:15:30Z").

    Accepts ISO 8601 with or without offset ("2026-11-20 10:15:30" from Omneo
    has none: it is read as UTC unless `assume` names another fixed offset
    like "+10:00"), a date ("1990-05-12" -> midnight UTC) and Unix seconds.
    """
    if _nothing(value) or value == "":
        return None
    if isinstance(value, bool):
        raise FilterError(f"`rfc3339` needs a date, got {quoted(value)}")
    if isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(value, tz=UTC)
    elif isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise FilterError(f"`rfc3339` cannot read {quoted(value)} as a date") from None
    if moment.tzinfo is None:
        zone: tzinfo
        if assume.upper() in ("UTC", "Z"):
            zone = UTC
        else:
            try:
                zone = datetime.fromisoformat(f"2000-01-01T00:00:00{assume}").tzinfo or UTC
            except ValueError:
                raise FilterError(f"`rfc3339` offset {assume!r} is not like '+10:00'") from None
        moment = moment.replace(tzinfo=zone)
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


E164_MAX_DIGITS = 15  # ITU-T E.164: country code and number together


def e164(value: Any, region: str | None = None) -> str | None:
    """A phone number to E.164 ("0412 345 678" with region "AU" -> "+61412345678").

    A number that cannot be read becomes nothing (omitted) rather than an error: one bad phone
    should not stop the order from being sent. A local number (no leading +) must also be a valid
    number of `region`: read in the wrong country it would become someone else's number. A number
    given in international form only has to be a possible one, as test numbers (+1 555 ...) are.
    Either way it must fit E.164, 15 digits at most with the country code: phonenumbers takes
    some longer ones (German numbers of 16 digits) as valid, and the destinations refuse them.
    """
    if _nothing(value) or value == "":
        return None
    text = str(value).strip()
    try:
        parsed = phonenumbers.parse(text, region.upper() if region else None)
    except phonenumbers.NumberParseException:
        return None
    if text.startswith("+"):
        if not phonenumbers.is_possible_number(parsed):
            return None
    elif not phonenumbers.is_valid_number(parsed):
        return None
    formatted = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return formatted if len(formatted) - 1 <= E164_MAX_DIGITS else None


def string(value: Any) -> str | None:
    if _nothing(value):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_UNSET: Any = object()


def integer(value: Any, otherwise: Any = _UNSET) -> Any:
    """A whole number. Text that is not one is a mapping error, or `otherwise` when given:
    `{{ number | int(none) }}` leaves out a WooCommerce order number like "WC-727"."""
    if _nothing(value) or value == "":
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        number = Decimal(str(value).strip())
        if not number.is_finite() or number.adjusted() >= MAX_INT_DIGITS:  # its conversion takes quadratic time
            raise InvalidOperation
        return int(number)
    except InvalidOperation:
        if otherwise is not _UNSET:
            return otherwise
        raise FilterError(f"`int` needs a whole number, got {quoted(value)}; "
                          "`int(none)` leaves such a value out instead") from None


def lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else (None if _nothing(value) else value)


def upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else (None if _nothing(value) else value)


def trim(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else (None if _nothing(value) else value)


def default(value: Any, fallback: Any = None) -> Any:
    """Unlike Jinja's own `default`, JSON null and "" count as missing too."""
    return fallback if _nothing(value) or value == "" else value


def join(value: Any, separator: str = ", ") -> str | None:
    if _nothing(value):
        return None
    if isinstance(value, str):
        return value
    parts = [text for part in value if (text := string(part))]
    if len(separator) * len(parts) + sum(map(len, parts)) > MAX_RECORD_CHARS:  # a long separator, many parts
        raise FilterError(f"`join` would make text over {MAX_RECORD_CHARS:,} characters")
    return separator.join(parts)


def first(value: Any) -> Any:
    if _nothing(value) or not value:
        return None
    if isinstance(value, Mapping):
        return None
    return value[0] if isinstance(value, (list, tuple, str)) else next(iter(value), None)


def last(value: Any) -> Any:
    if _nothing(value) or not value or isinstance(value, Mapping):
        return None
    items = value if isinstance(value, (list, tuple, str)) else list(value)
    return items[-1]


def split(value: Any, separator: str = ",") -> list[str] | None:
    """"vip, wholesale" -> ["vip", "wholesale"] (Shopify tags are one comma string)."""
    if _nothing(value) or value == "":
        return None
    if isinstance(value, list):
        return value
    return [part.strip() for part in str(value).split(separator) if part.strip()]


def lookup(value: Any, table: Mapping[Any, Any], otherwise: Any = None) -> Any:
    """Translate a value through a table: `state | lookup({'subscribed': 'subscribed'})`."""
    if _nothing(value):
        return None
    return table.get(value, otherwise)


def pluck(value: Any, field: str) -> list[Any] | None:
    """`line_items | pluck('sku')` -> the `sku` of every item, missing ones skipped."""
    if _nothing(value):
        return None
    found: Iterable[Any] = (item.get(field) for item in value if isinstance(item, Mapping))
    return [item for item in found if item is not None and item != ""]


def _items(value: Any, name: str) -> list[Any] | None:
    """A list a filter walks once (no more than the webhook's own size: like `pluck`, it spends no loop
    steps, so the check can fold it over constants outside any event's budget); None for nothing."""
    if _nothing(value) or value == "":
        return None
    if not isinstance(value, (list, tuple)):
        raise FilterError(f"`{name}` needs a list, got {quoted(value)}")
    return list(value)


def _same(a: Any, b: Any) -> bool:
    """Equal, with an id and its text as one (5873920188416718053 and "5873920188416718053"); true and
    false equal only themselves (Python counts True as 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if a == b:
        return True
    return isinstance(a, (int, str)) and isinstance(b, (int, str)) and str(a) == str(b)


def where(value: Any, field: str, equals: Any) -> list[Any] | None:
    """`refund_line_items | where('line_item_id', item.id)`: the items whose `field` is `equals`."""
    items = _items(value, "where")
    if items is None:
        return None
    return [item for item in items if isinstance(item, Mapping) and _same(item.get(field), equals)]


def total(value: Any, field: str | None = None) -> float | int | None:
    """`transactions | total('amount')`: the sum of `field` over the items (numbers or money text), summed
    exactly; a whole number when every value is one (`| total('quantity')`), else a decimal number; 0 for
    an empty list. Without `field`, the sum of the items themselves."""
    items = _items(value, "total")
    if items is None:
        return None
    values = [item.get(field) if field is not None and isinstance(item, Mapping) else item for item in items]
    amounts = [amount for v in values if (amount := _to_decimal(v, "total")) is not None]
    result = sum(amounts, Decimal(0))
    if all(isinstance(v, int) or _nothing(v) for v in values):
        return int(result)
    return float(result)


def flatten(value: Any) -> list[Any] | None:
    """`order.refunds | pluck('refund_line_items') | flatten`: a list of lists as one list."""
    items = _items(value, "flatten")
    if items is None:
        return None
    out: list[Any] = []
    for item in items:
        if isinstance(item, (list, tuple)):
            out.extend(item)
        elif not _nothing(item):
            out.append(item)
    return out


def meta(value: Any, key: str) -> Any:
    """`meta_data | meta('newsletter_optin')`: the value of WooCommerce's meta entry with that key."""
    if _nothing(value) or not isinstance(value, (list, tuple)):
        return None
    for entry in value:
        if isinstance(entry, Mapping) and entry.get("key") == key:
            found = entry.get("value")
            return None if found == "" else found
    return None


def consent(value: Any, optout: Any = None, yes: Any = "subscribed", no: Any = "unsubscribed") -> Any:
    """A yes/no consent from an opt-in flag and an optional opt-out flag.

    `attributes.comms.email_promo | consent(attributes.comms.email_optout)`:
    opted out -> `no`; opted in -> `yes`; opt-in false -> `no`; nothing known
    -> nothing, so no consent field is sent at all (consent is never invented).
    """
    if yes_or_no(optout) is True:
        return no
    flag = yes_or_no(value)
    if flag is None:
        return None
    return yes if flag else no


def birthdate(year: Any, month: Any = None, day: Any = None) -> str | None:
    """`birth_year | birthdate(birth_month, birth_day)` -> "1991-06-14": a date from its three parts
    (numbers or their text, as Omneo sends either). Nothing when a part is missing or the date does not
    exist (a 31 June is left out, never guessed)."""
    parts = []
    for part in (year, month, day):
        if _nothing(part) or isinstance(part, bool) or str(part).strip() == "":
            return None
        try:
            parts.append(int(str(part).strip()))
        except ValueError:
            return None
    try:
        return date(*parts).isoformat() if parts[0] >= 1000 else None
    except ValueError:
        return None


DATE_PARTS = ("day", "month", "year")


def date_part(value: Any, part: str) -> int | None:
    """`"1991-06-14" | date_part('day')` -> 14: one part of a date as a whole number (Omneo's `birth_day`,
    `birth_month`, `birth_year`). A date with a time is read by its date; text that is not a date gives
    nothing (left out), never a guess."""
    if part not in DATE_PARTS:
        raise FilterError(f"`date_part` takes 'day', 'month' or 'year', got {quoted(part)}")
    if _nothing(value) or not isinstance(value, str) or not value.strip():
        return None
    try:
        day = date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None
    return int(getattr(day, part))


def yes_or_no(value: Any) -> bool | None:
    """A consent flag or state as True (true, yes, subscribed, ...) or False (false, no, unsubscribed,
    not_subscribed, ...); None for nothing or anything else (Shopify's `pending`, `invalid`)."""
    if _nothing(value) or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "y", "subscribed"):
        return True
    if text in ("false", "0", "no", "n", "unsubscribed", "not_subscribed"):
        return False
    return None


FILTERS: dict[str, Callable[..., Any]] = {
    "decimal": decimal,
    "cents": cents,
    "rfc3339": rfc3339,
    "e164": e164,
    "string": string,
    "int": integer,
    "lower": lower,
    "upper": upper,
    "trim": trim,
    "default": default,
    "join": join,
    "first": first,
    "last": last,
    "split": split,
    "lookup": lookup,
    "pluck": pluck,
    "where": where,
    "total": total,
    "flatten": flatten,
    "consent": consent,
    "meta": meta,
    "birthdate": birthdate,
    "date_part": date_part,
}
