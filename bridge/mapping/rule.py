"""A compiled rule: the events it listens to, its messages, and a consent message's decision."""

from __future__ import annotations

from dataclasses import dataclass, field

from jinja2.runtime import Context

from bridge.consent import ConsentDecision, contact_fingerprint, moment
from bridge.destinations.catalog import KindSpec
from bridge.log import quoted
from bridge.mapping.fields import Build, FieldError
from bridge.mapping.filters import yes_or_no


@dataclass
class DecisionSpec:
    """`decision:` of a message that writes consent: whose decision, on which channel, subscribed or not,
    when the person decided (`at`), and, for a source that gives no such time, when its flag changed."""

    contact: Build
    channel: str
    state: Build
    at: Build
    changed: Build | None
    line: int
    sources: dict[str, str] = field(default_factory=dict)  # key -> the payload fields it reads, for `--explain`

    def make(self, ctx: Context, source: str) -> ConsentDecision | None:
        """The decision of this event, or None when it states none (no yes/no, no time): then no consent
        is sent. A time or contact that cannot be read is a FieldError."""
        subscribed = yes_or_no(self.state(ctx))
        if subscribed is None:
            return None
        at = self._time("at", self.at, ctx)
        changed = self._time("changed", self.changed, ctx) if self.changed is not None else None
        if at is None and changed is None:
            return None
        contact = self.contact(ctx)
        if not isinstance(contact, str) or not contact.strip():
            raise FieldError("decision.contact", f"{self.sources.get('contact')} gave no e-mail: a consent "
                                                 "decision must say whose it is", self.line)
        return ConsentDecision(contact_fingerprint(contact), self.channel, subscribed, source, at, changed)

    def _time(self, name: str, build: Build, ctx: Context) -> float | None:
        value = build(ctx)
        try:
            return moment(value)
        except (TypeError, ValueError):
            raise FieldError(f"decision.{name}", f"{self.sources.get(name)} gave {quoted(value)}, which is not "
                                                 "a date and time", self.line) from None


@dataclass
class MessageSpec:
    destination: str
    kind: str
    spec: KindSpec
    action: str
    index: int
    line: int
    build: Build
    when: Build | None = None
    key: Build | None = None
    clear: tuple[str, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)  # field path -> template, for error text
    areas: tuple[str, ...] = ()  # every area the message can write (areas.py)
    writes: dict[str, list[str]] = field(default_factory=dict)  # area -> the fields that write it
    places: dict[str, tuple[int, int]] = field(default_factory=dict)  # field (as in `writes`) -> line, col
    decision: DecisionSpec | None = None  # a consent message's decision; without one it goes unjudged (a note)

    @property
    def label(self) -> str:
        return f"{self.destination} {self.kind}"


@dataclass
class Rule:
    name: str
    file: str
    line: int
    source: str
    topics: tuple[str, ...]
    messages: list[MessageSpec]
    ignore: bool = False
    when: Build | None = None
