"""One Settings object, read once from the environment at the edge and passed inward."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from bridge.errors import ConfigError


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


@dataclass(frozen=True)
class DestinationSettings:
    name: str
    base_url: str
    api_key: Secret | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def configured(self) -> bool:
        return self.api_key is not None and bool(self.api_key.value)


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    host: str = "0.0.0.0"
    port: int = 8000
    database_path: Path = Path("bridge.db")
    mappings_dir: Path = Path("mappings")
    # Where the last rules that loaded are copied: "" beside the database, "off" nowhere.
    last_good_rules: str = ""
    sources: Mapping[str, SourceSettings] = field(default_factory=lambda: _default_sources())
    destinations: Mapping[str, DestinationSettings] = field(default_factory=lambda: destinations_from_env({}))
    max_body_bytes: int = 1024 * 1024
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
    log_format: str = "auto"  # auto | json | console
    log_level: str = "info"
    run_worker: bool = True
    # The store's writer in a process of its own (process) or a thread of the web process (thread).
    store_writer: str = "process"
    # The worker's mapping in a process of its own (process) or a thread of the worker's process (thread).
    mapping: str = "process"

    @property
    def last_good_rules_dir(self) -> Path | None:
        """The folder the rules that last loaded are copied to, so a restart with a broken file runs them."""
        if self.last_good_rules.lower() == "off":
            return None
        if self.last_good_rules:
            return Path(self.last_good_rules)
        return self.database_path.with_name(self.database_path.name + ".last-good-rules")

    @property
    def production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        from bridge.sources.config import sources_from_env

        settings = cls(
            env=env.get("BRIDGE_ENV", "development"),
            host=env.get("HOST", "0.0.0.0"),
            port=_int(env, "PORT", cls.port),
            database_path=database_path(env.get("BRIDGE_DATABASE_URL", "sqlite:///bridge.db")),
            mappings_dir=Path(env.get("BRIDGE_MAPPINGS_DIR", "mappings")),
            last_good_rules=env.get("BRIDGE_LAST_GOOD_RULES_DIR", "").strip(),
            sources=sources_from_env(env),
            destinations=destinations_from_env(env),
            max_body_bytes=_int(env, "BRIDGE_MAX_BODY_BYTES", cls.max_body_bytes),
            dedupe_days=_float(env, "BRIDGE_DEDUPE_DAYS", cls.dedupe_days),
            lease_seconds=_float(env, "BRIDGE_LEASE_SECONDS", cls.lease_seconds),
            retry_max_age_seconds=_float(env, "BRIDGE_RETRY_MAX_AGE_SECONDS", cls.retry_max_age_seconds),
            retry_max_attempts=_int(env, "BRIDGE_RETRY_MAX_ATTEMPTS", cls.retry_max_attempts),
            retry_base_seconds=_float(env, "BRIDGE_RETRY_BASE_SECONDS", cls.retry_base_seconds),
            retry_cap_seconds=_float(env, "BRIDGE_RETRY_CAP_SECONDS", cls.retry_cap_seconds),
            batch_follow_up_seconds=_float(env, "BRIDGE_BATCH_FOLLOW_UP_SECONDS", cls.batch_follow_up_seconds),
            admin_token=Secret(env["BRIDGE_ADMIN_TOKEN"]) if env.get("BRIDGE_ADMIN_TOKEN") else None,
            log_format=env.get("BRIDGE_LOG_FORMAT", "auto"),
            log_level=env.get("BRIDGE_LOG_LEVEL", "info"),
            store_writer=_choice(env, "BRIDGE_STORE_WRITER", ("process", "thread"), "process"),
            mapping=_choice(env, "BRIDGE_MAPPING", ("process", "thread"), "process"),
        )
        if settings.production:
            settings.require_complete()
        return settings

    def missing(self) -> list[str]:
        """What is not configured: destinations without a key, sources without a secret."""
        gaps = [f"destination {d.name}: no API key" for d in self.destinations.values() if not d.configured]
        # A Shopify source may carry its secrets per shop only (options.shops).
        gaps += [f"source {s.name}: no secret" for s in self.sources.values() if not (s.secrets or s.options.get("shops"))]
        return gaps

    def require_complete(self) -> None:
        gaps = self.missing()
        if gaps:
            raise ConfigError("BRIDGE_ENV=production and not configured: " + "; ".join(gaps))


def database_path(url: str) -> Path:
    """`sqlite:///relative.db`, `sqlite:////abs/path.db` or a plain path."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :])
    if "://" in url:
        raise ConfigError(f"BRIDGE_DATABASE_URL: only sqlite:/// URLs are supported, got scheme {url.split('://')[0]!r}")
    return Path(url)


def destinations_from_env(env: Mapping[str, str]) -> dict[str, DestinationSettings]:
    from bridge.destinations.catalog import OMNISEND_DEFAULT_AREAS, parse_areas

    def key(name: str) -> Secret | None:
        return Secret(env[name]) if env.get(name) else None

    return {
        "omnisend": DestinationSettings(
            name="omnisend",
            base_url=env.get("OMNISEND_BASE_URL", "https://api.omnisend.com").rstrip("/"),
            api_key=key("OMNISEND_API_KEY"),
            options={
                "version": env.get("OMNISEND_VERSION", "2026-03-15"),
                "requests_per_minute": _float(env, "OMNISEND_REQUESTS_PER_MINUTE", 400.0),
                "batch_linger_seconds": _float(env, "OMNISEND_BATCH_LINGER_SECONDS", 0.2),
                # Omnisend warns that batched events can re-trigger automations: a historical
                # import may want them one by one.
                "batch_events": _bool(env, "OMNISEND_BATCH_EVENTS", True),
                "batch_v3": _bool(env, "OMNISEND_BATCH_V3", True),
                "areas": parse_areas(env.get("OMNISEND_AREAS"), "OMNISEND_AREAS", OMNISEND_DEFAULT_AREAS),
                "route_limits": _route_limits(env, "OMNISEND_ROUTE_LIMITS"),
            },
        ),
        "ometria": DestinationSettings(
            name="ometria",
            base_url=env.get("OMETRIA_BASE_URL", "https://api.ometria.com").rstrip("/"),
            api_key=key("OMETRIA_API_KEY"),
            options={
                "requests_per_second": _float(env, "OMETRIA_REQUESTS_PER_SECOND", 8.0),
                "batch_linger_seconds": _float(env, "OMETRIA_BATCH_LINGER_SECONDS", 0.2),
                "areas": parse_areas(env.get("OMETRIA_AREAS"), "OMETRIA_AREAS"),
            },
        ),
    }


def _default_sources() -> dict[str, SourceSettings]:
    from bridge.sources.config import sources_from_env

    return sources_from_env({})


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(env.get(name, default))
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {env[name]!r}") from exc


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


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        return float(env.get(name, default))
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {env[name]!r}") from exc


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = env.get(name, default).strip().lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {env[name]!r}")
    return value
