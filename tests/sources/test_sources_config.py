"""Sources from the environment and the BRIDGE_SOURCES_FILE YAML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import settings_from_env
from bridge.errors import ConfigError
from bridge.settings import Secret, Settings
from bridge.sources import build_sources
from bridge.sources.config import sources_from_env


def write(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    return {"BRIDGE_SOURCES_FILE": str(path)}


def test_env_defaults() -> None:
    sources = sources_from_env({"SHOPIFY_WEBHOOK_SECRET": "a, b", "OMNEO_WEBHOOK_SECRET": "o"})
    assert set(sources) == {"shopify", "omneo", "woocommerce"}
    assert [s.value for s in sources["shopify"].secrets] == ["a", "b"]
    assert sources["woocommerce"].secrets == ()
    assert "'a'" not in repr(sources["shopify"])


def test_file_adds_and_overrides(tmp_path: Path) -> None:
    env = write(
        tmp_path,
        """
sources:
  shopify:                     # scheme defaults to the name
    secret_env: [SHOPIFY_OLD, SHOPIFY_NEW]
    options:
      shops:
        a.myshopify.com: {secret_env: SHOP_A_SECRET}
        b.myshopify.com: "b1,b2"
  partner:
    scheme: hmac
    secret_env: PARTNER_SECRET
    options:
      header: X-Partner-Signature
      encoding: base64
      prefix: "sha256="
      topic_field: data.type
  events:
    scheme: standard
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
    options: {tolerance_seconds: 120}
""",
    )
    env |= {"SHOPIFY_WEBHOOK_SECRET": "from-env", "SHOPIFY_OLD": "o", "SHOPIFY_NEW": "n", "SHOP_A_SECRET": "sa", "PARTNER_SECRET": "p"}
    sources = sources_from_env(env)
    assert set(sources) == {"shopify", "omneo", "woocommerce", "partner", "events"}
    assert [s.value for s in sources["shopify"].secrets] == ["o", "n"]
    assert sources["shopify"].options["shops"]["a.myshopify.com"] == (Secret("sa"),)
    assert sources["partner"].scheme == "hmac" and sources["partner"].options["header"] == "X-Partner-Signature"
    assert sources["events"].options["tolerance_seconds"] == 120
    built = build_sources(Settings(sources=sources))
    assert all(built[name].configured for name in ("shopify", "partner", "events"))


def test_settings_reads_the_file(tmp_path: Path) -> None:
    env = write(tmp_path, "sources:\n  partner:\n    scheme: hmac\n    secret_env: P\n    options: {header: X-Sig}\n")
    settings = settings_from_env(env | {"P": "x"})
    assert settings.sources["partner"].secrets == (Secret("x"),)


def test_unset_secret_env_leaves_source_unconfigured(tmp_path: Path) -> None:
    env = write(tmp_path, "sources:\n  omneo:\n    secret_env: NOT_SET\n")
    sources = sources_from_env(env)
    assert sources["omneo"].secrets == ()
    assert "source omneo: no secret" in Settings(sources=sources).missing()


def test_empty_file(tmp_path: Path) -> None:
    assert set(sources_from_env(write(tmp_path, "# nothing yet\n"))) == {"shopify", "omneo", "woocommerce"}


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("sources:\n  x:\n    scheme: paypal\n", 3, "unknown scheme 'paypal'; use one of shopify, woocommerce, omneo, standard, hmac"),
        ("sources:\n  x:\n    secret: a\n", 2, "missing `scheme:`"),
        ("sources:\n  x:\n    scheme: hmac\n    secret: a\n    options:\n      encoding: hex\n", 5, "requires option 'header'"),
        ("sources:\n  x:\n    scheme: hmac\n    options:\n      header: X-S\n      colour: red\n", 6, "unknown option 'colour' for scheme hmac; known options:"),
        ("sources:\n  x:\n    scheme: hmac\n    options:\n      header: X-S\n      encoding: base63\n", 6, "must be one of hex, base64"),
        ("sources:\n  x:\n    scheme: hmac\n    header: X-S\n", 4, "scheme options go under `options:`"),
        ("sources:\n  x:\n    scheme: standard\n    options:\n      tolerance_seconds: -5\n", 5, "positive number of seconds"),
        ("sources:\n  x:\n    scheme: omneo\n    secret: a\n    secret_env: B\n", 4, "not both"),
        ("sources:\n  'bad name':\n    scheme: omneo\n", 2, "letters, digits"),
        ("sources:\n  x:\n    scheme: omneo\n    secret_env: 42\n", 4, "must name an environment variable"),
        ("sources:\n  x:\n    scheme: shopify\n    options:\n      shops: [a.myshopify.com]\n", 5, "option 'shops'"),
        ("sources:\n  x: [1, 2]\n", 2, "expected a mapping"),
        ("other: 1\n", 1, "top-level mapping, `sources:`"),
        ("sources:\n  x:\n    scheme: omneo\n  x:\n    scheme: hmac\n", 4, "not valid YAML"),
        ("sources:\n  x: {scheme: omneo\n", 3, "not valid YAML"),
    ],
)
def test_file_errors_name_file_line_and_fix(tmp_path: Path, text: str, line: int, message: str) -> None:
    env = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        sources_from_env(env)
    assert str(info.value).startswith(f"{env['BRIDGE_SOURCES_FILE']}:{line}: ")
    assert message in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the sources file"):
        sources_from_env({"BRIDGE_SOURCES_FILE": str(tmp_path / "nope.yaml")})


def test_inline_secret_never_appears_in_errors(tmp_path: Path) -> None:
    env = write(tmp_path, "sources:\n  x:\n    scheme: shopify\n    options:\n      shops:\n        a.myshopify.com: 12345\n")
    with pytest.raises(ConfigError) as info:
        sources_from_env(env)
    assert "12345" not in str(info.value)
