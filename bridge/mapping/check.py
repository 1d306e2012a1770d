"""What the checker knows about destinations: names, fields, and which fields are consent.

Consent is protected because a wrong literal ("subscribed") would subscribe
every contact the rule touches, which is a legal problem, not a data one.
A consent field must be computed from the payload, so it can only say what
the customer actually said.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from bridge.destinations.catalog import KINDS, KindSpec

DESTINATIONS = tuple(sorted({destination for destination, _ in KINDS}))

# Fields of nested objects the catalog does not list, for "did you mean" below the top level.
NESTED_FIELDS: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("omnisend", "event", "contact"): (
        "id", "email", "phone", "firstName", "lastName", "address", "city", "state", "country",
        "countryCode", "postalCode", "birthdate", "gender", "tags", "customProperties",
        "optIns", "optOuts", "consents",
    ),
    ("ometria", "order", "customer"): ("id", "email", "firstname", "lastname"),
}

# Consent paths. "[]" stands for any list item, "*" for any key.
# A leaf pattern must be an expression that reads the payload; a container
# pattern (optIns, channels, ...) must be one, or be built by a `for each` or
# guarded by a `when` that reads the payload.
CONSENT_LEAVES: dict[tuple[str, str], tuple[tuple[str, ...], ...]] = {
    ("omnisend", "contact"): (("identifiers", "[]", "channels", "*", "status"),),
    ("omneo", "profile"): (("comms_attributes", "*"),),
    ("ometria", "contact"): (
        ("marketing_optin",), ("@force_optin",), ("timestamp_subscribed",), ("timestamp_unsubscribed",),
        ("channels", "*", "*"),
    ),
}
CONSENT_CONTAINERS: dict[tuple[str, str], tuple[tuple[str, ...], ...]] = {
    ("omnisend", "contact"): (("optIns",), ("optOuts",), ("consents",)),
    ("omnisend", "event"): (("contact", "optIns"), ("contact", "optOuts"), ("contact", "consents")),
    ("ometria", "contact"): (("channels",),),
    ("omneo", "profile"): (("comms_attributes",),),
}


# Where each source states marketing consent. A consent field in a rule for
# one of these sources may only read these payload paths (and what is below
# them); other sources are not restricted. WooCommerce core has no consent
# field: an opt-in plugin stores it in the order's or customer's `meta_data`,
# read by key with `meta_data | meta('<key>')`.
CONSENT_SOURCES: dict[str, tuple[str, ...]] = {
    "shopify": ("email_marketing_consent", "buyer_accepts_marketing"),
    "omneo": ("attributes.comms",),
    "woocommerce": ("meta_data",),
}


def foreign_consent_reads(source: str, paths: frozenset[str] | tuple[str, ...],
                          loop_variables: frozenset[str] = frozenset()) -> list[str]:
    """Payload paths a consent field of `source` reads outside CONSENT_SOURCES (loop variables excepted)."""
    allowed = CONSENT_SOURCES.get(source)
    if allowed is None:
        return []
    foreign = []
    for path in sorted(paths):
        root = path.split(".")[0]
        if root == "event" or root in loop_variables:
            continue
        if not any(path == prefix or path.startswith(prefix + ".") for prefix in allowed):
            foreign.append(path)
    return foreign


def did_you_mean(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:
        lowered = {choice.lower(): choice for choice in choices}
        if word.lower() in lowered:
            close = [lowered[word.lower()]]
    return f"; did you mean `{close[0]}`?" if close else ""


def find_kind(destination: str, kind: str) -> tuple[KindSpec | None, str]:
    """The catalog entry, or a problem text with a suggestion."""
    if destination not in DESTINATIONS:
        return None, f"unknown destination `{destination}`{did_you_mean(destination, DESTINATIONS) or '; known: ' + ', '.join(DESTINATIONS)}"
    kinds = tuple(k for d, k in KINDS if d == destination)
    if kind not in kinds:
        hint = did_you_mean(kind, kinds) or f"; {destination} accepts: {', '.join(kinds)}"
        return None, f"unknown record type `{kind}` for {destination}{hint}"
    return KINDS[(destination, kind)], ""


def known_fields(spec: KindSpec, parent: tuple[str, ...]) -> tuple[str, ...] | None:
    """Known field names at this depth, or None when anything goes (free-form objects)."""
    if not parent:
        return spec.fields or None
    if len(parent) == 1:
        return NESTED_FIELDS.get((spec.destination, spec.kind, parent[0]))
    return None


def _matches(path: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    if len(path) != len(pattern):
        return False
    return all(p == "*" or p == step for step, p in zip(path, pattern))


def consent_role(destination: str, kind: str, path: tuple[str, ...]) -> str | None:
    """'leaf' or 'container' when `path` is a consent field, else None."""
    for pattern in CONSENT_CONTAINERS.get((destination, kind), ()):
        if _matches(path, pattern):
            return "container"
    for pattern in CONSENT_LEAVES.get((destination, kind), ()):
        if _matches(path, pattern):
            return "leaf"
    return None


@dataclass(frozen=True)
class ConsentUse:
    """A rule writes consent: which field, from which template and payload fields."""

    file: str
    line: int
    rule: str
    destination: str
    kind: str
    path: str
    source: str
    reads: tuple[str, ...]
    paths: tuple[str, ...] = ()  # the dotted payload paths, e.g. attributes.comms.email_promo

    def describe(self) -> str:
        reads = ", ".join(f"`{name}`" for name in (self.paths or self.reads))
        return (f"{self.file}:{self.line} rule '{self.rule}' → {self.destination} {self.kind}: "
                f"{self.path} from {reads}: {self.source}")
