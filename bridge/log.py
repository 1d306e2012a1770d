"""structlog set-up: JSON lines off a terminal, context bound per event, personal data redacted.

Redaction is a processor at the end of the chain, so no call site can forget
it: values under personal or secret keys are replaced by a short hash (so two
lines about the same person still correlate), and e-mail addresses or phone
numbers found inside any other string are masked.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import hashlib
import logging
import re
import sys
import threading
import time
import weakref
from collections.abc import MutableMapping
from typing import Any, TextIO

import orjson
import structlog

PERSONAL_KEYS = frozenset(
    {
        "email", "phone", "mobile_phone", "first_name", "last_name", "firstname", "lastname", "name",
        "full_name", "address", "address1", "address2", "phone_number", "identity_email", "birthdate",
        "date_of_birth", "ip", "ip_address",
    }
)
SECRET_KEYS = frozenset({"secret", "api_key", "token", "authorization", "password", "key_value", "signature"})

EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# EMAIL where a run of address characters begins. EMAIL.sub would try every start inside a long run
# without an @ (quadratic: seconds on 64 KB); this tries each run once, and _mask_emails adds the one
# start EMAIL also takes, right after an address that ends inside a run ("a@b.com1x@c.com").
_EMAIL_AT_RUN = re.compile(r"(?<![A-Za-z0-9._%+\-])" + EMAIL.pattern)
# What is never a phone, tried first at each place so that it stays whole: a UUID (Shopify's event
# ids, in dedupe keys), a date or a time, a fingerprint (below).
_NOT_A_PHONE = (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
                r"|\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
                r"|h:[0-9a-f]{10}")
# A phone-like run: an optional + or bracket, then 7+ digits with spaces, dots, dashes or brackets
# between them; not inside a word or a decimal number, and a full stop after it ends a sentence.
PHONE = re.compile(rf"(?P<keep>{_NOT_A_PHONE})|(?<!\w)(?<!\d\.)\+?\(?\d[\d\s().\-]{{5,}}\d(?!\w|\.\d)")


def fingerprint(value: object) -> str:
    """A short stable hash for correlating personal values across lines without showing them."""
    return "h:" + hashlib.sha256(str(value).encode()).hexdigest()[:10]


# What an e-mail or a phone needs at the least: one search tells most strings apart.
_MAYBE_PERSONAL = re.compile(r"@|\d[\d\s().\-]{5,}\d")


# The longest text masked (mask_text) and the longest string a log line carries, in characters: longer
# ones are cut first (see `capped`), so what a sender controls costs bounded time (masking is linear,
# ~10 ms for the longest text on a slow core) and a log line stays small.
MASK_CAP = 32_768
LOG_VALUE_CAP = 2_048


def capped(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more characters]"


def mask_text(text: str, strict: bool = False) -> str:
    """E-mail addresses as a short hash (the same one on every line) and phone numbers as `<phone>`.

    For the bridge's own text (log values, payloads shown to an operator), a phone shows itself by a
    leading + or 0, or by groups, and has 9+ digits: a bare run of digits is an id (Shopify's have
    13+) and stays readable. `strict` is for text from outside (a destination's error, an exception's
    message), which may quote a phone without its + or groups: there every run of 7+ digits is masked.
    Dates, times and UUIDs are never taken for phones. Text over MASK_CAP characters is cut first.
    """
    text = capped(text, MASK_CAP)
    if not _MAYBE_PERSONAL.search(text):
        return text
    if "@" in text:
        text = _mask_emails(text)
    return PHONE.sub(_strict_phone if strict else _phone, text)


def _mask_emails(text: str) -> str:
    """`EMAIL.sub(<fingerprint of the lowercased address>, text)`, in time linear in `text`."""
    parts: list[str] = []
    done = 0  # where the text not yet copied to `parts` begins
    match = _EMAIL_AT_RUN.search(text)
    while match:
        parts += [text[done:match.start()], fingerprint(match.group().lower())]
        done = match.end()
        match = EMAIL.match(text, done) or _EMAIL_AT_RUN.search(text, done)
    parts.append(text[done:])
    return "".join(parts)


def _phone(match: re.Match[str], strict: bool = False) -> str:
    run = match.group()
    if match.group("keep"):
        return run
    digits = sum(c.isdigit() for c in run)
    if strict:
        return "<phone>" if digits >= 7 else run
    phone_like = run[0] in "+0(" or any(c in run for c in " ().-")
    return "<phone>" if digits >= 9 and phone_like else run


_strict_phone = functools.partial(_phone, strict=True)


QUOTED_CAP = 40


def quoted(value: Any) -> str:
    """A payload value as an error message may quote it: its shape, never its content.

    A name has no pattern mask_text could find, so letters become x or X and digits 9, the rest
    stays: `'Jane Doe'` is quoted `'Xxxx Xxx'`, `'2026-13-45'` is `'9999-99-99'`. Values are cut
    at QUOTED_CAP characters.
    """
    text = value if isinstance(value, str) else repr(value)
    shape = "".join("X" if c.isupper() else "x" if c.isalpha() else "9" if c.isdigit() else c
                    for c in text[:QUOTED_CAP])
    more = f"... ({len(text)} characters)" if len(text) > QUOTED_CAP else ""
    return f"'{shape}'{more}"


def _redact(value: Any, key: str | None = None) -> Any:
    lowered = (key or "").lower()
    if lowered in SECRET_KEYS:
        return "**********"
    if lowered in PERSONAL_KEYS and value not in (None, ""):
        return fingerprint(value)
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(v) for v in value]
    return value


def mask_values_of(text: str, record: Any) -> str:
    """`text` with every personal value of `record` (under a personal key, at any depth) masked.

    A destination's error may echo what we sent ("firstName 'Jane ...' is too long"); a name has no
    shape a pattern could find, but the record says which values are personal.
    """
    values: set[str] = set()

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            if value.get("type") in ("email", "phone"):  # Omnisend's {"type": "phone", "id": "+44..."}
                walk(value.get("id"), "phone")
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, key)
        elif key.lower() in PERSONAL_KEYS and isinstance(value, (str, int)) and len(str(value)) >= 2:
            values.add(str(value))
            if str(value).startswith("+"):  # an error may quote a phone without its +
                values.add(str(value)[1:])

    walk(record)
    for value in sorted(values, key=len, reverse=True):  # a full name before the first name inside it
        text = text.replace(value, fingerprint(value))
    return text


_PLAIN = (int, float, bool, type(None))
_SENSITIVE_KEYS = PERSONAL_KEYS | SECRET_KEYS


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # Every webhook logs a line, so the common cases cost one set lookup a key: a number under
    # an ordinary key, and a string with nothing in it that could be an e-mail or a phone.
    # A string over LOG_VALUE_CAP characters is cut first.
    # structlog hands each processor its own copy of the line: values are replaced in place.
    for key, value in event_dict.items():
        kind = type(value)
        if key in ("timestamp", "level"):
            continue
        if kind is str:
            if len(value) > LOG_VALUE_CAP:
                value = event_dict[key] = capped(value, LOG_VALUE_CAP)
            if key.lower() not in _SENSITIVE_KEYS and not _MAYBE_PERSONAL.search(value):
                continue
        elif kind in _PLAIN and key.lower() not in _SENSITIVE_KEYS:
            continue
        event_dict[key] = _redact(value, key)
    return event_dict


def timestamp(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """ISO 8601 UTC with microseconds; the second is formatted once a second, not on every line."""
    now = time.time()
    second = int(now)
    if second != _stamp_cache[0]:
        _stamp_cache[0], _stamp_cache[1] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    event_dict["timestamp"] = f"{_stamp_cache[1]}.{int((now - second) * 1e6):06d}Z"
    return event_dict


_stamp_cache: list[Any] = [None, ""]


def _json(event_dict: Any, **_: Any) -> str:
    # orjson renders a log line several times faster than json.dumps; default=str keeps odd values printable
    return orjson.dumps(event_dict, default=str).decode()


class LineWriter:
    """Where every log line goes: the lines of one event-loop iteration leave in one write.

    Each webhook logs a line, and a write() per line was about a sixth of the event
    loop's time under load. A line logged on an event loop waits for the end of the
    loop's current iteration (a few milliseconds at most); a line logged anywhere else
    (the store's writer thread, the CLI) is written at once, after whatever waits, so
    lines keep their order. What waits is written at exit too; a SIGKILL can lose the
    lines of one iteration, never an event (those are in the store before any answer).
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._waiting: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop that will flush what waits
        self._lock = threading.Lock()
        _WRITERS.add(self)

    def msg(self, message: str) -> None:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            self._waiting.append(message)
            if loop is not None and self._loop is None:
                loop.call_soon(self.flush)
                self._loop = loop
            deferred = loop is not None and loop is self._loop
        if not deferred:
            self.flush()

    log = debug = info = warn = warning = err = error = critical = exception = fatal = failure = msg

    def flush(self) -> None:
        with self._lock:
            lines, self._waiting, self._loop = self._waiting, [], None
            if lines:
                try:
                    self._stream.write("\n".join(lines) + "\n")
                    self._stream.flush()
                except (OSError, ValueError):  # stderr closed or gone: nothing better to do with a log line
                    pass


_WRITERS: weakref.WeakSet[LineWriter] = weakref.WeakSet()


@atexit.register
def flush_all() -> None:
    """Write what every LineWriter holds (at exit, and for tests)."""
    for writer in list(_WRITERS):
        writer.flush()


# What configure() set up for JSON lines: the writer and the lowest level written. None for
# console lines, which `emit` leaves to structlog.
_direct: tuple[LineWriter, int] | None = None
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
           "critical": logging.CRITICAL}


def emit(logger: Any, level: str, event: str, fields: dict[str, Any]) -> None:
    """Log as `getattr(logger, level)(event, **fields)` would, with `fields` (a dict the caller gives up).

    The webhook endpoint writes a line for every request. structlog's bound logger costs
    ~15 us a line on this kind of machine, most of it in calling one processor after the
    other; here the JSON line goes through the same processors, in the same order, in one
    step (~4 us). Console lines, and anything else the chain does beyond plain JSON (an
    exception to format), still go through structlog. test_log holds the two to the same line.
    """
    direct = _direct
    # A logger with context of its own (log.bind(x=...)) goes through structlog, which adds it.
    if direct is None or level not in _LEVELS or "exc_info" in fields or getattr(logger, "_context", None):
        getattr(logger, level)(event, **fields)
        return
    writer, lowest = direct
    if _LEVELS[level] < lowest:
        return
    fields["event"] = event
    structlog.contextvars.merge_contextvars(None, level, fields)
    fields["level"] = level
    timestamp(None, level, fields)
    writer.msg(_json(redact(None, level, fields)))


class _LineHandler(logging.Handler):
    """stdlib records (uvicorn's) through the same LineWriter, so they stay in order with ours."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.msg(self.format(record))
        except Exception:
            self.handleError(record)


def configure(log_format: str = "auto", level: str = "info") -> None:
    """structlog for our lines; stdlib logging (uvicorn, httpx) rendered the same way.

    Every webhook writes a line on the acknowledgement path, so the chain is kept cheap: orjson,
    a cached timestamp, redaction that looks twice only at what may be personal, and LineWriter
    (one write per event-loop iteration).
    """
    global _direct
    as_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    writer = LineWriter(sys.stderr)
    lowest = logging.getLevelNamesMapping()[level.upper()]
    renderer: Any = structlog.processors.JSONRenderer(serializer=_json) if as_json else structlog.dev.ConsoleRenderer()
    # `emit` renders JSON lines through these same steps without structlog: change both together.
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        timestamp,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, redact, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lowest),
        logger_factory=lambda *_: writer,
        cache_logger_on_first_use=False,
    )
    _direct = (writer, lowest) if as_json else None
    handler = _LineHandler(writer)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)  # httpx logs every request at INFO, with URLs: keep it quiet
    logging.getLogger("uvicorn.error").setLevel(logging.INFO)


# The folders of an absolute path ("/srv/app/mappings/"), left out of what anyone may read (/healthz, the console).
_FOLDERS = re.compile(r"(?<![\w.~-])/(?:[^\s/:'\"]+/)+")


def without_folders(text: str) -> str:
    """`text` with the folders of every absolute path left out: "/srv/app/mappings/a.yaml" reads "a.yaml"."""
    return _FOLDERS.sub("", text)
