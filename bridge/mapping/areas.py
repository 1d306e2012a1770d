"""Areas of access: what a message writes at its destination, and whether the deployment allows it.

Every message writes its record type's area (events, contacts, orders, carts,
products). On top of that it writes `consent` when any field decides whether
someone gets marketing (the consent paths of `check.py`), and `deletions`
when it erases stored data: an explicit `clear:` (null), or `action: replace`
(an Omnisend PUT overwrites everything stored). An Omnisend event whose
`contact` carries more than identifiers also updates the contact profile, so
it writes `contacts` too.

The same rules serve the loader (from the field paths a rule can write, to
refuse a rule before it runs) and the engine (from the record actually
produced, as a backstop and for the store's audit column).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from bridge.destinations.catalog import AREAS, KINDS
from bridge.mapping.check import CONSENT_CONTAINERS, CONSENT_LEAVES

if TYPE_CHECKING:
    from bridge.settings import Settings

Path = tuple[str, ...]
Allowed = Mapping[str, Collection[str]]

# Omnisend event `contact` fields that only say who the event is about.
EVENT_IDENTIFIERS = frozenset({"id", "email", "phone"})


def setting_name(destination: str) -> str:
    """The environment variable that allows areas for `destination`."""
    return f"{destination.upper()}_AREAS"


def dotted(path: Path) -> str:
    return ".".join(path).replace(".[]", "[]")


def _prefix_matches(path: Path, pattern: Path) -> bool:
    return len(pattern) <= len(path) and all(p == "*" or p == step for step, p in zip(path, pattern))


def consent_path(destination: str, kind: str, path: Path, opaque: bool = False) -> bool:
    """True when writing `path` writes consent.

    `opaque` is for a value the rule computes as a whole (`contact: "{{ customer }}"`):
    it may hold anything below `path`, so a consent field under it counts too.
    """
    patterns = CONSENT_LEAVES.get((destination, kind), ()) + CONSENT_CONTAINERS.get((destination, kind), ())
    for pattern in patterns:
        if _prefix_matches(path, pattern):
            return True
        if opaque and len(path) < len(pattern) and _prefix_matches(pattern, path):
            return True
    return False


def record_paths(record: Any, path: Path = ()) -> Iterator[Path]:
    """Every leaf path of a record; list items are `[]`, empty containers count as leaves."""
    if isinstance(record, dict) and record:
        for key, value in record.items():
            yield from record_paths(value, path + (str(key),))
    elif isinstance(record, list) and record:
        for value in record:
            yield from record_paths(value, path + ("[]",))
    elif path:
        yield path


def has_null(record: Any) -> bool:
    if record is None:
        return True
    if isinstance(record, dict):
        return any(has_null(value) for value in record.values())
    if isinstance(record, list):
        return any(has_null(value) for value in record)
    return False


def written_by(destination: str, kind: str, action: str, paths: Iterable[Path],
               cleared: Iterable[str] = (), opaque: Collection[Path] = ()) -> dict[str, list[str]]:
    """Each area the message writes, in canonical order, with what puts it there (first: the main cause).

    `paths` are the field paths it writes, `cleared` the `clear:` paths (sent as
    null), `opaque` the paths whose whole value is computed by one expression.
    """
    spec = KINDS.get((destination, kind))
    found: dict[str, list[str]] = {spec.area if spec else kind: [f"{destination} {kind} records"]}

    def add(area: str, why: str) -> None:
        reasons = found.setdefault(area, [])
        if why not in reasons:
            reasons.append(why)

    for path in paths:
        if consent_path(destination, kind, path, opaque=path in opaque):
            add("consent", dotted(path))
        elif (destination, kind) == ("omnisend", "event") and len(path) > 1 and path[0] == "contact" \
                and path[1] not in EVENT_IDENTIFIERS:
            add("contacts", dotted(path))
    for name in cleared:
        add("deletions", f"clear: {name}")
        if consent_path(destination, kind, tuple(name.split("."))):
            add("consent", name)
    if action == "replace":
        add("deletions", "action: replace")
    order = [area for area in AREAS if area in found] + [area for area in found if area not in AREAS]
    return {area: found[area] for area in order}


@cache
def _roots(destination: str, kind: str) -> frozenset[str]:
    """Top-level fields under which a path can add an area beyond the record type's own."""
    patterns = CONSENT_LEAVES.get((destination, kind), ()) + CONSENT_CONTAINERS.get((destination, kind), ())
    roots = {pattern[0] for pattern in patterns}
    if (destination, kind) == ("omnisend", "event"):
        roots.add("contact")
    return frozenset(roots)


def areas_of(destination: str, kind: str, action: str, record: Mapping[str, Any],
             cleared: Iterable[str] = ()) -> tuple[str, ...]:
    """The areas one produced record writes: what the store saves and the audit lists."""
    roots = _roots(destination, kind)
    # Only the subtrees that can matter are walked: this runs for every message.
    paths = [path for key, value in record.items() if key in roots for path in record_paths(value, (str(key),))]
    areas = tuple(written_by(destination, kind, action, paths, cleared))
    if "deletions" not in areas and has_null(dict(record)):
        areas = tuple(area for area in AREAS if area in areas or area == "deletions")
    return areas


def not_allowed(destination: str, areas: Iterable[str], allowed: Allowed | None) -> list[str]:
    """The areas `allowed` forbids for `destination`; a destination it does not name is unrestricted."""
    if allowed is None or destination not in allowed:
        return []
    permitted = set(allowed[destination])
    return [area for area in areas if area not in permitted]


def setting_that_allows(destination: str, allowed: Allowed, extra: Iterable[str]) -> str:
    """`OMNISEND_AREAS=events,contacts,consent,orders,carts,products`: today's value plus `extra`."""
    wanted = set(allowed.get(destination, ())) | set(extra)
    return f"{setting_name(destination)}={','.join(area for area in AREAS if area in wanted)}"


def describe(areas: Mapping[str, list[str]], which: Iterable[str]) -> str:
    """`consent (marketing_optin, timestamp_subscribed) and deletions (clear: lastname)`."""
    parts = [f"{area} ({', '.join(areas[area])})" for area in which]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def allowed_from_settings(settings: Settings) -> dict[str, tuple[str, ...]]:
    """`{destination: areas}` from `Settings.destinations[*].options["areas"]`, for `load_rules`."""
    from bridge.destinations.catalog import DEFAULT_AREAS

    return {name: tuple(destination.options.get("areas", DEFAULT_AREAS))
            for name, destination in settings.destinations.items()}
