"""Reading the settings from the environment: the composition of bridge.settings' records from the
variables, the sources file (bridge.sources.config) and the console's tokens (bridge.access)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from bridge import paas
from bridge.access import tokens_from_env
from bridge.envvars import env_bool, env_choice, env_float, env_int
from bridge.errors import ConfigError
from bridge.settings import POSTGRES_SCHEMES, Secret, Settings, database_path, destinations_from_env
from bridge.sources.config import sources_from_env


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings the environment gives; in production, refused while incomplete (ConfigError)."""
    env = os.environ if environ is None else environ

    # BRIDGE_DATABASE_URL wins over DATABASE_URL (what Heroku, Render and Railway set for their PostgreSQL).
    url = env.get("BRIDGE_DATABASE_URL") or env.get("DATABASE_URL") or "sqlite:///bridge.db"
    postgres = url.split("://", 1)[0] in POSTGRES_SCHEMES
    settings = Settings(
        env=env.get("BRIDGE_ENV", "development"),
        host=env.get("HOST", "0.0.0.0"),
        port=env_int(env, "PORT", Settings.port),
        database_path=database_path(url) if not postgres else Settings.database_path,
        database_url=url if postgres else "",
        pg_pool_size=env_int(env, "BRIDGE_PG_POOL_SIZE", Settings.pg_pool_size),
        pg_notify=env_bool(env, "BRIDGE_PG_NOTIFY", Settings.pg_notify),
        mappings_dir=Path(env.get("BRIDGE_MAPPINGS_DIR", "mappings")),
        last_good_rules=env.get("BRIDGE_LAST_GOOD_RULES_DIR", "").strip(),
        sources=sources_from_env(env),
        destinations=destinations_from_env(env),
        max_body_bytes=env_int(env, "BRIDGE_MAX_BODY_BYTES", Settings.max_body_bytes),
        max_header_bytes=env_int(env, "BRIDGE_MAX_HEADER_BYTES", Settings.max_header_bytes),
        read_timeout_seconds=env_float(env, "BRIDGE_READ_TIMEOUT_SECONDS", Settings.read_timeout_seconds),
        max_connections=env_int(env, "BRIDGE_MAX_CONNECTIONS", Settings.max_connections),
        dedupe_days=env_float(env, "BRIDGE_DEDUPE_DAYS", Settings.dedupe_days),
        lease_seconds=env_float(env, "BRIDGE_LEASE_SECONDS", Settings.lease_seconds),
        retry_max_age_seconds=env_float(env, "BRIDGE_RETRY_MAX_AGE_SECONDS", Settings.retry_max_age_seconds),
        retry_max_attempts=env_int(env, "BRIDGE_RETRY_MAX_ATTEMPTS", Settings.retry_max_attempts),
        retry_base_seconds=env_float(env, "BRIDGE_RETRY_BASE_SECONDS", Settings.retry_base_seconds),
        retry_cap_seconds=env_float(env, "BRIDGE_RETRY_CAP_SECONDS", Settings.retry_cap_seconds),
        batch_follow_up_seconds=env_float(env, "BRIDGE_BATCH_FOLLOW_UP_SECONDS", Settings.batch_follow_up_seconds),
        admin_token=Secret(env["BRIDGE_ADMIN_TOKEN"]) if env.get("BRIDGE_ADMIN_TOKEN") else None,
        console_tokens=tokens_from_env(env.get("BRIDGE_CONSOLE_TOKENS")),
        log_format=env.get("BRIDGE_LOG_FORMAT", "auto"),
        log_level=env.get("BRIDGE_LOG_LEVEL", "info"),
        store_writer=env_choice(env, "BRIDGE_STORE_WRITER", ("process", "thread"), "process"),
        mapping=env_choice(env, "BRIDGE_MAPPING", ("process", "thread"), "process"),
        migrate=env_bool(env, "BRIDGE_MIGRATE", Settings.migrate),
        shutdown_seconds=env_float(env, "BRIDGE_SHUTDOWN_SECONDS", Settings.shutdown_seconds),
        platform=paas.detect(env),
        mapping_timeout_seconds=env_float(env, "BRIDGE_MAPPING_TIMEOUT_SECONDS", Settings.mapping_timeout_seconds),
        mapping_memory_mb=env_int(env, "BRIDGE_MAPPING_MEMORY_MB", Settings.mapping_memory_mb),
        rules_source=env_choice(env, "BRIDGE_RULES_SOURCE", ("store", "folder"), "store"),
        rules_poll_seconds=env_float(env, "BRIDGE_RULES_POLL_SECONDS", Settings.rules_poll_seconds),
        rules_preview_seconds=env_float(env, "BRIDGE_RULES_PREVIEW_SECONDS", Settings.rules_preview_seconds),
        lookup_wait_seconds=env_float(env, "BRIDGE_LOOKUP_WAIT_SECONDS", Settings.lookup_wait_seconds),
        lookup_days=env_float(env, "BRIDGE_LOOKUP_DAYS", Settings.lookup_days),
        mapping_nice=env_int(env, "BRIDGE_MAPPING_NICE", Settings.mapping_nice),
        worker_nice=env_int(env, "BRIDGE_WORKER_NICE", Settings.worker_nice),
        yield_lag_ms=env_float(env, "BRIDGE_YIELD_LAG_MS", Settings.yield_lag_ms),
    )
    if settings.rules_poll_seconds <= 0 or settings.rules_preview_seconds <= 0:
        raise ConfigError("BRIDGE_RULES_POLL_SECONDS and BRIDGE_RULES_PREVIEW_SECONDS must be above 0")
    if settings.yield_lag_ms < 0:
        raise ConfigError(f"BRIDGE_YIELD_LAG_MS must be 0 (never yield) or more, got {settings.yield_lag_ms:g}")
    for name in ("mapping_nice", "worker_nice"):
        if not 0 <= getattr(settings, name) <= 19:
            raise ConfigError(f"BRIDGE_{name.upper()} must be from 0 (as important as the web side) to 19 "
                              f"(the lowest priority), got {getattr(settings, name)}")
    if settings.shutdown_seconds <= 0:
        raise ConfigError(f"BRIDGE_SHUTDOWN_SECONDS must be above 0, got {env['BRIDGE_SHUTDOWN_SECONDS']!r}")
    if settings.production:
        settings.require_complete()
        settings.require_durable_database()
    return settings
