"""docs/sources.md stays true: its example file loads and every scheme and option is documented."""

from __future__ import annotations

import re
from pathlib import Path

from bridge.settings import Settings
from bridge.sources import SCHEMES, build_sources
from bridge.sources.config import sources_from_env

DOC = Path(__file__).resolve().parents[2] / "docs" / "sources.md"


def test_example_file_loads_and_builds(tmp_path: Path) -> None:
    example = re.search(r"```yaml\n(sources:\n.*?)```", DOC.read_text(), re.DOTALL)
    assert example is not None
    path = tmp_path / "sources.yaml"
    path.write_text(example.group(1))
    names = set(re.findall(r"\b([A-Z][A-Z0-9_]+_(?:SECRET|SECRET_OLD|SECRET_NEW))\b", example.group(1)))
    env = {"BRIDGE_SOURCES_FILE": str(path)} | dict.fromkeys(names, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    sources = sources_from_env(env)
    built = build_sources(Settings(sources=sources))
    assert {"shopify", "woo-outlet", "loyalty-events", "partner"} <= set(built)
    assert all(source.configured for source in built.values() if source.name != "omneo" and source.name != "woocommerce")


def test_every_scheme_and_option_is_documented() -> None:
    text = DOC.read_text()
    for scheme in SCHEMES.values():
        assert f"`{scheme.name}`" in text
        for option in scheme.options:
            assert f"`{option}`" in text, option
