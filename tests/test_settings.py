"""Production refuses what would lose data or run half-configured, and nothing more."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge import paas
from bridge.config import settings_from_env
from bridge.errors import ConfigError


def production(tmp_path: Path, **env: str) -> dict[str, str]:
    return {"BRIDGE_ENV": "production", "BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path}/bridge.db", **env}


def refusal(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as refused:
        settings_from_env(env)
    return str(refused.value)


def test_a_shopify_and_omnisend_shop_sets_only_those(tmp_path: Path) -> None:
    settings = settings_from_env(production(tmp_path, SHOPIFY_WEBHOOK_SECRET="s", OMNISEND_API_KEY="k"))
    assert settings.production
    assert "destination ometria: no API key" in settings.missing()  # still listed in /healthz, not refused


def test_a_destination_named_without_its_key_is_refused(tmp_path: Path) -> None:
    message = refusal(production(tmp_path, SHOPIFY_WEBHOOK_SECRET="s", OMNISEND_API_KEY="k",
                                 OMETRIA_BASE_URL="https://eu.ometria.example", OMETRIA_AREAS="events"))
    assert "destination ometria: OMETRIA_AREAS, OMETRIA_BASE_URL set but no OMETRIA_API_KEY" in message
    assert "omnisend" not in message and "source" not in message


def test_a_source_named_in_the_sources_file_without_its_secret_is_refused(tmp_path: Path) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources:\n  shop-eu:\n    scheme: shopify\n    secret_env: SHOP_EU_SECRET\n")
    env = production(tmp_path, SHOPIFY_WEBHOOK_SECRET="s", OMNISEND_API_KEY="k", BRIDGE_SOURCES_FILE=str(sources))
    assert "source shop-eu: named in BRIDGE_SOURCES_FILE but has no secret" in refusal(env)
    assert settings_from_env(dict(env, SHOP_EU_SECRET="eu")).sources["shop-eu"].configured


def test_nothing_configured_is_refused(tmp_path: Path) -> None:
    message = refusal(production(tmp_path))
    assert "no destination: set OMNISEND_API_KEY, OMETRIA_API_KEY or OMNEO_API_TOKEN" in message
    assert "no source: set SHOPIFY_WEBHOOK_SECRET" in message
    assert "no source" in refusal(production(tmp_path, OMETRIA_API_KEY="k"))
    assert "no destination" in refusal(production(tmp_path, OMNEO_WEBHOOK_SECRET="s"))


def test_development_requires_nothing(tmp_path: Path) -> None:
    assert settings_from_env({"OMETRIA_BASE_URL": "http://127.0.0.1:1", "DYNO": "web.1",
                              "BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path}/no/such/folder/bridge.db"}).env == "development"


COMPLETE = {"SHOPIFY_WEBHOOK_SECRET": "s", "OMNISEND_API_KEY": "k"}


def test_heroku_refuses_sqlite_and_names_database_url(tmp_path: Path) -> None:
    message = refusal(production(tmp_path, DYNO="web.1", **COMPLETE))
    assert "Heroku (DYNO is set) deletes the local disk at every restart" in message
    assert "DATABASE_URL" in message and str(tmp_path / "bridge.db") in message and "volume" not in message


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
@pytest.mark.parametrize("variable", ["DYNO", "RENDER", "FLY_APP_NAME", "RAILWAY_PROJECT_ID"])
def test_a_platform_that_wipes_the_disk_takes_postgresql(tmp_path: Path, variable: str, scheme: str) -> None:
    """The platform's add-on sets DATABASE_URL: nothing of the database is on the instance's disk."""
    url = f"{scheme}://u:p@db.example:5432/bridge"
    env = {"BRIDGE_ENV": "production", variable: "x", "DATABASE_URL": url, **COMPLETE}
    settings = settings_from_env(env)
    assert settings.production and settings.database_url == url and settings.platform == paas.detect({variable: "x"})
    assert settings_from_env(dict(env, DATABASE_URL="", BRIDGE_DATABASE_URL=url)).database_url == url


def test_heroku_refuses_sqlite_named_by_bridge_database_url_beside_its_postgresql(tmp_path: Path) -> None:
    """BRIDGE_DATABASE_URL wins over DATABASE_URL: a SQLite file there is what would run, so it is refused."""
    message = refusal(production(tmp_path, DYNO="web.1", DATABASE_URL="postgres://u:p@db.example/bridge", **COMPLETE))
    assert "Heroku (DYNO is set)" in message and "BRIDGE_DATABASE_URL" in message and "u:p" not in message


@pytest.mark.parametrize("variable", ["RENDER", "FLY_APP_NAME", "RAILWAY_PROJECT_ID"])
def test_a_platform_with_volumes_refuses_sqlite_off_a_volume(tmp_path: Path, variable: str) -> None:
    assert not paas.on_volume(tmp_path / "bridge.db")  # a test folder is not a mount point of its own here
    message = refusal(production(tmp_path, **{variable: "x"}, **COMPLETE))
    assert f"{variable} is set" in message and "no folder above" in message and "mounted volume" in message
    assert "DATABASE_URL" in message


def test_a_platform_with_volumes_takes_sqlite_on_a_mounted_volume(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    mounted = tmp_path / "data"
    mounted.mkdir()
    real = os.path.ismount
    monkeypatch.setattr(paas.os.path, "ismount", lambda p: Path(p) == mounted or real(p))
    env = production(tmp_path, RENDER="true", BRIDGE_DATABASE_URL=f"sqlite:///{mounted}/bridge.db", **COMPLETE)
    assert settings_from_env(env).platform == paas.detect({"RENDER": "true"})
    (mounted / "bridge").mkdir()
    assert settings_from_env(dict(env, BRIDGE_DATABASE_URL=f"sqlite:///{mounted}/bridge/bridge.db")).production


def test_production_never_creates_the_database_folder(tmp_path: Path) -> None:
    """An unmounted volume's mount point is missing (or empty): a folder made there would be on the lost disk."""
    env = production(tmp_path, BRIDGE_DATABASE_URL=f"sqlite:///{tmp_path}/data/bridge.db", **COMPLETE)
    message = refusal(env)
    assert f"the folder {tmp_path}/data does not exist" in message and "volume is not mounted" in message
    assert not (tmp_path / "data").exists()


def test_the_shutdown_bound_is_read_and_checked() -> None:
    assert settings_from_env({}).shutdown_seconds == 25.0  # Heroku sends SIGKILL 30 s after SIGTERM
    assert settings_from_env({"BRIDGE_SHUTDOWN_SECONDS": "8"}).closing_seconds == pytest.approx(1.6)
    with pytest.raises(ConfigError, match="BRIDGE_SHUTDOWN_SECONDS must be above 0"):
        settings_from_env({"BRIDGE_SHUTDOWN_SECONDS": "0"})


def test_omneo_is_a_destination_with_a_token_and_the_tenants_api_root(tmp_path: Path) -> None:
    settings = settings_from_env(production(tmp_path, SHOPIFY_WEBHOOK_SECRET="s", OMNEO_API_TOKEN="t",
                                            OMNEO_BASE_URL="https://api.acme.getomneo.com/api/",
                                            OMNEO_REQUESTS_PER_MINUTE="30"))
    omneo = settings.destinations["omneo"]
    assert omneo.configured and omneo.base_url == "https://api.acme.getomneo.com/api"
    assert omneo.options["requests_per_minute"] == 30.0 and omneo.options["areas"] == ("contacts",)
    assert omneo.key_setting == "OMNEO_API_TOKEN"


def test_omneo_half_configured_is_refused_with_what_to_set(tmp_path: Path) -> None:
    assert "OMNEO_BASE_URL is not" in refusal(production(tmp_path, OMNEO_API_TOKEN="t"))
    assert "without /v3" in refusal(production(tmp_path, OMNEO_API_TOKEN="t",
                                               OMNEO_BASE_URL="https://api.acme.getomneo.com/api/v3"))
    message = refusal(production(tmp_path, SHOPIFY_WEBHOOK_SECRET="s", OMNISEND_API_KEY="k",
                                 OMNEO_BASE_URL="https://api.acme.getomneo.com/api"))
    assert "destination omneo: OMNEO_BASE_URL set but no OMNEO_API_TOKEN" in message


def test_receiving_from_omneo_does_not_configure_it_as_a_destination(tmp_path: Path) -> None:
    settings = settings_from_env(production(tmp_path, OMNEO_WEBHOOK_SECRET="s", OMNISEND_API_KEY="k"))
    assert not settings.destinations["omneo"].configured and settings.destinations["omneo"].named_by == ()


def test_the_burst_settings_have_defaults_and_refuse_what_the_os_would() -> None:
    settings = settings_from_env({})
    assert (settings.mapping_nice, settings.worker_nice, settings.yield_lag_ms) == (10, 10, 5.0)
    assert settings_from_env({"BRIDGE_YIELD_LAG_MS": "0", "BRIDGE_WORKER_NICE": "0"}).yield_lag_ms == 0
    for name, value in (("BRIDGE_MAPPING_NICE", "20"), ("BRIDGE_WORKER_NICE", "-1"), ("BRIDGE_YIELD_LAG_MS", "-5")):
        with pytest.raises(ConfigError) as refused:
            settings_from_env({name: value})
        assert name in str(refused.value)
