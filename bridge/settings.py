"""The settings records: one Settings object, read once from the environment at the edge (bridge.config)
and passed inward. It imports nothing of the bridge but leaves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from bridge import paas
from bridge.destinations.catalog import OMNEO_DEFAULT_AREAS, OMNISEND_DEFAULT_AREAS, parse_areas
from bridge.envvars import env_bool, env_float
from bridge.errors import ConfigError
from bridge.paas import Platform

if TYPE_CHECKING:
    from bridge.access import ConsoleToken


@dataclass(frozen=True)
class Secret:
    """A secret value whose repr never shows it."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"


def secrets_from(value: str | None) -> tuple[Secret, ...]:
    """A comma-separated list of secrets (rotation: any of them verifies)."""
    if not value:
        return ()
    return tuple(Secret(part.strip()) for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class SourceSettings:
    """A named webhook endpoint: `/webhooks/{name}` verified by `scheme`.

    scheme: shopify | woocommerce | omneo | standard | hmac. `options` holds
    scheme-specific settings (header, algorithm, encoding, prefix,
    tolerance_seconds, topic_header, ...), documented in docs/sources.md.
    """

    name: str
    scheme: str
    secrets: tuple[Secret, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    declared: bool = False  # named in BRIDGE_SOURCES_FILE: production requires its secret

    @property
    def configured(self) -> bool:
        # A Shopify source may carry its secrets per shop only (options.shops).
        return bool(self.secrets or self.options.get("shops"))


@dataclass(frozen=True)
class DestinationSettings:
    name: str
    base_url: str
    api_key: Secret | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    # The variables set for it (OMETRIA_BASE_URL, ...): one set without the key is a half-done configuration.
    named_by: tuple[str, ...] = ()
    # The variable that holds its key (OMNEO_API_TOKEN for Omneo), for messages that say what to set.
    key_variable: str = ""

    @property
    def configured(self) -> bool:
        return self.api_key is not None and bool(self.api_key.value) and bool(self.base_url)

    @property
    def key_setting(self) -> str:
        return self.key_variable or f"{self.name.upper()}_API_KEY"


MIN_ADMIN_TOKEN_LENGTH = 32  # in production: a short token can be guessed over the network


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    host: str = "0.0.0.0"
    port: int = 8000
    database_path: Path = Path("bridge.db")
    # A PostgreSQL URL (DATABASE_URL or BRIDGE_DATABASE_URL); empty: the SQLite file database_path.
    database_url: str = ""
    # PostgreSQL: connections each process's pool may open, and LISTEN/NOTIFY wake-ups (off behind PgBouncer).
    pg_pool_size: int = 4
    pg_notify: bool = True
    mappings_dir: Path = Path("mappings")
    # Where the last rules that loaded are copied: "" beside the database, "off" nowhere.
    last_good_rules: str = ""
    sources: Mapping[str, SourceSettings] = field(default_factory=lambda: _default_sources())
    destinations: Mapping[str, DestinationSettings] = field(default_factory=lambda: destinations_from_env({}))
    max_body_bytes: int = 1024 * 1024
    # What one client may hold before the app sees its request (bridge.connections).
    max_header_bytes: int = 32 * 1024
    read_timeout_seconds: float = 10.0
    max_connections: int = 0  # 0: the open-file limit less what the outbound side needs
    # Dedupe keys are kept at least this long: Shopify resends for 4 hours.
    dedupe_days: float = 7.0
    # A claimed message whose worker died is claimed again after this.
    lease_seconds: float = 60.0
    retry_max_age_seconds: float = 24 * 3600.0
    retry_max_attempts: int = 300
    retry_base_seconds: float = 1.0
    retry_cap_seconds: float = 600.0
    # A destination's asynchronous batch (Omnisend /api/batches) is first checked this long after it was accepted.
    batch_follow_up_seconds: float = 5.0
    admin_token: Secret | None = None
    # The console's and the admin API's tokens besides the admin token (bridge.access).
    console_tokens: tuple[ConsoleToken, ...] = ()
    log_format: str = "auto"  # auto | json | console
    log_level: str = "info"
    run_worker: bool = True
    # The store's writer in a process of its own (process) or a thread of the web process (thread).
    store_writer: str = "process"
    # The worker's mapping in a process of its own (process) or a thread of the worker's process (thread).
    mapping: str = "process"
    # Apply the store's pending migrations at start (BRIDGE_MIGRATE=false: only `bridge migrate` does).
    migrate: bool = True
    # SIGTERM to exit: stop taking work, finish or give back what is held (Heroku kills at 30 s).
    shutdown_seconds: float = 25.0
    # The PaaS the environment names (bridge.paas), None elsewhere.
    platform: Platform | None = None
    # One event's mapping may take this long; the mapping process is stopped when it grows over the memory.
    mapping_timeout_seconds: float = 5.0
    mapping_memory_mb: int = 512
    # Where the running rules come from: "store" (published versions, mappings/ imported when it
    # changes; bridge.rules) or "folder" (mappings/ only, reloaded when a file changes).
    rules_source: str = "store"
    # How often each instance looks for a newly published version.
    rules_poll_seconds: float = 2.0
    # A preview of a rule change stops after this long (it maps up to 500 events twice).
    rules_preview_seconds: float = 30.0
    # An event that names a resource the bridge has not received (a Shopify refund before its order)
    # waits this long for it, then is mapped without it: a mapping error that says so.
    lookup_wait_seconds: float = 24 * 3600.0
    # Resources kept for lookups (the latest state of each Shopify order) are forgotten this long after
    # their latest event: a refund of an older order finds nothing.
    lookup_days: float = 120.0
    # OS priorities (nice increments, 0-19) that leave the CPU to the acknowledgements when a burst
    # needs it: the mapping process's, and `bridge worker`'s (which its mapping process adds to).
    mapping_nice: int = 10
    worker_nice: int = 10
    # In `bridge serve`, the map and delivery loops wait while webhooks arrive and the event loop runs
    # this many milliseconds late (bridge.pressure); 0: they never wait.
    yield_lag_ms: float = 5.0

    @property
    def last_good_rules_dir(self) -> Path | None:
        """The folder the rules that last loaded are copied to, so a restart with a broken file runs them."""
        if self.last_good_rules.lower() == "off":
            return None
        if self.last_good_rules:
            return Path(self.last_good_rules)
        return self.database_path.with_name(self.database_path.name + ".last-good-rules")

    @property
    def store_url(self) -> str:
        """The database the store opens: the PostgreSQL URL, or the SQLite file."""
        return self.database_url or f"sqlite:///{self.database_path}"

    @property
    def closing_seconds(self) -> float:
        """The end of shutdown_seconds kept for closing once work stopped: claims given back, the store closed."""
        return min(5.0, self.shutdown_seconds / 5)

    @property
    def production(self) -> bool:
        return self.env == "production"

    def missing(self) -> list[str]:
        """What is not configured: destinations without a key, sources without a secret."""
        gaps = [f"destination {d.name}: no API key" for d in self.destinations.values() if not d.configured]
        gaps += [f"source {s.name}: no secret" for s in self.sources.values() if not s.configured]
        return gaps

    def half_configured(self) -> list[str]:
        """What the operator named but left without its key or secret, and nothing configured at all."""
        gaps = [f"destination {d.name}: {', '.join(d.named_by)} set but no {d.key_setting}"
                for d in self.destinations.values() if d.named_by and not d.configured and not d.api_key]
        gaps += [f"source {s.name}: named in BRIDGE_SOURCES_FILE but has no secret"
                 for s in self.sources.values() if s.declared and not s.configured]
        if not any(d.configured for d in self.destinations.values()):
            gaps.append("no destination: set OMNISEND_API_KEY, OMETRIA_API_KEY or OMNEO_API_TOKEN")
        if not any(s.configured for s in self.sources.values()):
            gaps.append("no source: set SHOPIFY_WEBHOOK_SECRET, OMNEO_WEBHOOK_SECRET or WOOCOMMERCE_WEBHOOK_SECRET, "
                        "or name sources in BRIDGE_SOURCES_FILE")
        return gaps

    def require_complete(self) -> None:
        """Production runs what the operator configured, completely: a Shopify + Omnisend shop sets only those."""
        gaps = self.half_configured()
        if gaps:
            raise ConfigError("BRIDGE_ENV=production and not configured: " + "; ".join(gaps))
        if self.admin_token is not None and len(self.admin_token.value) < MIN_ADMIN_TOKEN_LENGTH:
            raise ConfigError(f"BRIDGE_ENV=production: BRIDGE_ADMIN_TOKEN must have {MIN_ADMIN_TOKEN_LENGTH} characters"
                              " or more (for example `openssl rand -hex 32`)")

    def require_durable_database(self) -> None:
        """Production refuses a SQLite file the platform would lose, or whose volume is not mounted.
        A PostgreSQL database is not on the instance's disk: nothing here can lose it."""
        if self.database_url:
            return
        folder = self.database_path.parent
        if not folder.is_dir():
            raise ConfigError(f"BRIDGE_DATABASE_URL: the folder {folder} does not exist; if it is a volume's "
                              "mount point, the volume is not mounted (in production the bridge does not create "
                              "it: a folder made on the instance's own disk would be lost at the next restart)")
        loss = paas.sqlite_loss(self.platform, self.database_path)
        if loss:
            raise ConfigError(f"BRIDGE_ENV=production refuses the SQLite database {self.database_path}: {loss}. "
                              "Set DATABASE_URL to a PostgreSQL database (the platform's add-on sets it), "
                              "and leave BRIDGE_DATABASE_URL unset: it wins over DATABASE_URL")


POSTGRES_SCHEMES = ("postgres", "postgresql")


def masked_url(url: str) -> str:
    """A database URL with its password shown as ***, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}"))


def database_path(url: str) -> Path:
    """`sqlite:///relative.db`, `sqlite:////abs/path.db` or a plain path."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :])
    if "://" in url:
        raise ConfigError(f"database URL: sqlite:///path or postgresql://..., got the scheme {url.split('://')[0]!r}")
    return Path(url)


def destinations_from_env(env: Mapping[str, str]) -> dict[str, DestinationSettings]:
    def key(name: str) -> Secret | None:
        return Secret(env[name]) if env.get(name) else None

    def named_by(prefix: str) -> tuple[str, ...]:
        return tuple(sorted(name for name in env if name.startswith(prefix) and env[name]))

    return {
        "omnisend": DestinationSettings(
            name="omnisend",
            base_url=env.get("OMNISEND_BASE_URL", "https://api.omnisend.com").rstrip("/"),
            api_key=key("OMNISEND_API_KEY"),
            options={
                "version": env.get("OMNISEND_VERSION", "2026-03-15"),
                "requests_per_minute": env_float(env, "OMNISEND_REQUESTS_PER_MINUTE", 400.0),
                "batch_linger_seconds": env_float(env, "OMNISEND_BATCH_LINGER_SECONDS", 0.2),
                # Omnisend warns that batched events can re-trigger automations: a historical
                # import may want them one by one.
                "batch_events": env_bool(env, "OMNISEND_BATCH_EVENTS", True),
                "batch_v3": env_bool(env, "OMNISEND_BATCH_V3", True),
                "areas": parse_areas(env.get("OMNISEND_AREAS"), "OMNISEND_AREAS", OMNISEND_DEFAULT_AREAS),
                "route_limits": _route_limits(env, "OMNISEND_ROUTE_LIMITS"),
            },
            named_by=named_by("OMNISEND_"),
        ),
        "ometria": DestinationSettings(
            name="ometria",
            base_url=env.get("OMETRIA_BASE_URL", "https://api.ometria.com").rstrip("/"),
            api_key=key("OMETRIA_API_KEY"),
            options={
                "requests_per_second": env_float(env, "OMETRIA_REQUESTS_PER_SECOND", 8.0),
                "batch_linger_seconds": env_float(env, "OMETRIA_BATCH_LINGER_SECONDS", 0.2),
                "areas": parse_areas(env.get("OMETRIA_AREAS"), "OMETRIA_AREAS"),
            },
            named_by=named_by("OMETRIA_"),
        ),
        "omneo": omneo_settings(env),
    }


# Omneo's destination variables. OMNEO_WEBHOOK_SECRET is the Omneo *source's* (bridge.sources.config): setting
# it alone receives from Omneo without writing to it.
OMNEO_VARIABLES = ("OMNEO_API_TOKEN", "OMNEO_BASE_URL", "OMNEO_REQUESTS_PER_MINUTE", "OMNEO_BATCH_LINGER_SECONDS",
                   "OMNEO_AREAS", "OMNEO_ECHO_WINDOW_SECONDS")
# Omneo publishes no rate limit (apis.md 3.7): a pace its shared queue takes without trouble, raised by the operator.
OMNEO_REQUESTS_PER_MINUTE = 60.0
# How long after the bridge wrote a profile an Omneo `profile.updated` carrying exactly what it wrote is taken
# for the echo of that write (batches wait in Omneo's queue, shared with its other jobs).
OMNEO_ECHO_WINDOW_SECONDS = 3600.0


def omneo_settings(env: Mapping[str, str]) -> DestinationSettings:
    """Omneo as a destination: the tenant's API root (`https://api.<tenant>.getomneo.com/api`) and a token.
    There is no default root: each tenant has its own host."""
    token, base_url = env.get("OMNEO_API_TOKEN", "").strip(), env.get("OMNEO_BASE_URL", "").strip().rstrip("/")
    if token and not base_url:
        raise ConfigError("OMNEO_API_TOKEN is set but OMNEO_BASE_URL is not: set it to your tenant's API root, "
                          "like https://api.<tenant>.getomneo.com/api")
    if base_url and not base_url.startswith(("https://", "http://")):
        raise ConfigError(f"OMNEO_BASE_URL must be a URL like https://api.<tenant>.getomneo.com/api, got {base_url!r}")
    if base_url.endswith("/v3"):
        raise ConfigError("OMNEO_BASE_URL is the API root ending in /api, without /v3 (the bridge adds "
                          f"/v3/profiles/batch): {base_url[:-3]}")
    per_minute = env_float(env, "OMNEO_REQUESTS_PER_MINUTE", OMNEO_REQUESTS_PER_MINUTE)
    if per_minute < 1:
        raise ConfigError(f"OMNEO_REQUESTS_PER_MINUTE must be 1 or more, got {env['OMNEO_REQUESTS_PER_MINUTE']!r}")
    return DestinationSettings(
        name="omneo",
        base_url=base_url,
        api_key=Secret(token) if token else None,
        options={
            "requests_per_minute": per_minute,
            # Profiles of a burst gather into fuller batches: each request is one job in Omneo's queue.
            "batch_linger_seconds": env_float(env, "OMNEO_BATCH_LINGER_SECONDS", 0.5),
            "areas": parse_areas(env.get("OMNEO_AREAS"), "OMNEO_AREAS", OMNEO_DEFAULT_AREAS),
            "echo_window_seconds": env_float(env, "OMNEO_ECHO_WINDOW_SECONDS", OMNEO_ECHO_WINDOW_SECONDS),
        },
        named_by=tuple(sorted(name for name in OMNEO_VARIABLES if env.get(name))),
        key_variable="OMNEO_API_TOKEN",
    )


def _default_sources() -> dict[str, SourceSettings]:
    """The sources every deployment has, before their secrets are read (bridge.config)."""
    return {name: SourceSettings(name, name) for name in ("shopify", "omneo", "woocommerce")}


def _route_limits(env: Mapping[str, str], name: str) -> dict[str, float]:
    """`/api/contacts=15,/api/products=400` -> {path prefix: requests a minute}; unset -> {}."""
    limits: dict[str, float] = {}
    for part in (env.get(name) or "").split(","):
        if not part.strip():
            continue
        prefix, _, number = part.partition("=")
        try:
            per_minute = float(number)
        except ValueError:
            per_minute = 0.0
        # At least 6: a creation after a 404 is a second request on the route, and must fit the 10 s a
        # delivery waits for its turn.
        if not prefix.strip().startswith("/") or per_minute < 6:
            raise ConfigError(f"{name}: {part.strip()!r} is not `/path=requests per minute` (at least 6), "
                              "like /api/contacts=15")
        limits[prefix.strip()] = per_minute
    return limits
