"""Connections to PostgreSQL: the URL, the pool, one transaction at a time, and errors as the bridge's own.

Every store method runs one short transaction on a pooled connection (never one held across an
HTTP call); pooled connections are in autocommit, so a method of one statement (a take of the
shared budget, a read of the newest event id) is its own transaction, with no BEGIN and COMMIT
round trips. A driver error becomes StoreUnavailable with the database's reason and no password,
so a webhook is answered 503. A deadlock or a serialization failure is retried a few times first:
both mean "run it again", and the lock order of bridge/store/postgres/outbox.py makes them rare.
The pool checks a connection before lending it, so after PostgreSQL restarts or a backend is
terminated the broken connections are replaced and the next call works, without a restart.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from bridge.errors import ConfigError, StoreUnavailable
from bridge.settings import masked_url as masked

T = TypeVar("T")
Conn = psycopg.AsyncConnection[dict[str, Any]]

SCHEMES = ("postgres", "postgresql")
RETRIES = 3  # a transaction chosen as a deadlock's victim is run again this many times
# A caller waits this long for a connection, then gets StoreUnavailable: a webhook's 503 then comes
# before Shopify's 5 s timeout, so the sender sees an answer and retries.
POOL_TIMEOUT = 3.0
CONNECT_TIMEOUT = 3  # seconds libpq waits for the server
MAX_LIFETIME = 1800.0  # below the idle timeouts of proxies and poolers


# For the FROM of a statement whose commit need not wait for the disk: synchronous_commit off for its
# own transaction only (the shared request schedule, the mapping turn). A crash may lose the last
# few milliseconds of such writes, never an event or a message.
NO_FLUSH = "(SELECT set_config('synchronous_commit', 'off', true) AS no_flush) AS no_flush"


def libpq_url(url: str) -> str:
    """The URL libpq takes: `postgres://` (Heroku's) is `postgresql://`; anything that cannot be a
    PostgreSQL URL is a ConfigError that names what is wrong and never the password."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ConfigError(f"database URL: expected postgresql://, got {masked(url)}")
    try:
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError as exc:
        raise ConfigError(f"database URL: {exc}: {masked(url)}") from None
    if not parts.hostname and "host=" not in parts.query:
        raise ConfigError(f"database URL: no host in {masked(url)}")
    try:
        psycopg.conninfo.conninfo_to_dict(urlunsplit(parts._replace(scheme="postgresql")))
    except psycopg.ProgrammingError as exc:
        reason = mask_text(str(exc).strip().splitlines()[0], url)
        raise ConfigError(f"database URL: {reason}: {masked(url)}") from None
    return urlunsplit(parts._replace(scheme="postgresql"))


def mask_text(text: str, url: str) -> str:
    """`text` (a driver's message) without the URL's password in it."""
    password = urlsplit(url).password
    if password:
        text = text.replace(password, "***")
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", text)


def first_line(exc: BaseException, url: str) -> str:
    """A driver error's first line, with no password."""
    return mask_text((str(exc).strip().splitlines() or [type(exc).__name__])[0], url)


def unavailable(exc: BaseException, url: str) -> StoreUnavailable:
    """A driver error as the bridge's own."""
    return StoreUnavailable(f"PostgreSQL: {first_line(exc, url)}")


async def configure(conn: Conn) -> None:
    # No server-side prepared statements: PgBouncer in transaction mode (Heroku's pooler) breaks them.
    conn.prepare_threshold = None


def make_pool(url: str, size: int) -> AsyncConnectionPool[Conn]:
    return AsyncConnectionPool(
        url, min_size=1, max_size=max(1, size), open=False, timeout=POOL_TIMEOUT, max_lifetime=MAX_LIFETIME,
        max_idle=300.0, check=AsyncConnectionPool.check_connection, configure=configure,
        kwargs={"row_factory": dict_row, "connect_timeout": CONNECT_TIMEOUT, "application_name": "bridge",
                "autocommit": True},
        connection_class=psycopg.AsyncConnection[dict[str, Any]], name="bridge",
    )


async def connect(url: str, *, autocommit: bool = False) -> Conn:
    """A connection outside the pool (migrations, LISTEN); StoreUnavailable when it cannot be made."""
    try:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=autocommit, row_factory=dict_row,
                                                     connect_timeout=CONNECT_TIMEOUT, application_name="bridge")
    except psycopg.Error as exc:
        raise unavailable(exc, url) from None
    conn.prepare_threshold = None
    return conn


async def in_transaction(pool: AsyncConnectionPool[Conn], url: str, fn: Callable[..., Awaitable[T]], *args: Any,
                         single: bool = False, wait: float = POOL_TIMEOUT) -> T:
    """`await fn(conn, *args)` in one transaction on a pooled connection, committed when it returns;
    with `single`, each statement of `fn` commits by itself (fn's statements must allow that).
    A connection is waited for at most `wait` seconds."""
    for attempt in range(RETRIES + 1):
        try:
            async with pool.connection(timeout=wait) as conn:
                if single:
                    return await fn(conn, *args)
                async with conn.transaction():
                    return await fn(conn, *args)
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
            if attempt == RETRIES:
                raise unavailable(exc, url) from None
        except psycopg.Error as exc:  # psycopg_pool.PoolTimeout is one too
            raise unavailable(exc, url) from None
    raise AssertionError("unreachable")
