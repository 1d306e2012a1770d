"""Which sources exist: defaults from the environment, plus an optional YAML file.

The environment gives the three built-in sources (SHOPIFY_WEBHOOK_SECRET,
OMNEO_WEBHOOK_SECRET, WOOCOMMERCE_WEBHOOK_SECRET; comma-separated for
rotation). BRIDGE_SOURCES_FILE names a YAML file that defines any number of
sources; an entry there replaces the default of the same name:

    sources:
      shopify-eu:
        scheme: shopify
        secret_env: SHOPIFY_EU_WEBHOOK_SECRET
        options:
          shops:
            eu-store.myshopify.com: {secret_env: EU_STORE_SECRET}

Every mistake in the file is a ConfigError naming the file, the line and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from bridge.errors import ConfigError
from bridge.settings import Secret, SourceSettings, secrets_from
from bridge.sources.options import OptionError, check_options
from bridge.sources.registry import SCHEMES

FILE_VARIABLE = "BRIDGE_SOURCES_FILE"
_ENTRY_KEYS = ("scheme", "secret_env", "secret", "options")
# The name is the last segment of /webhooks/{name}: keep it URL-safe.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def sources_from_env(env: Mapping[str, str]) -> dict[str, SourceSettings]:
    """All sources: the environment defaults, overridden by BRIDGE_SOURCES_FILE entries."""
    sources = {
        "shopify": SourceSettings("shopify", "shopify", secrets_from(env.get("SHOPIFY_WEBHOOK_SECRET"))),
        "omneo": SourceSettings("omneo", "omneo", secrets_from(env.get("OMNEO_WEBHOOK_SECRET"))),
        "woocommerce": SourceSettings("woocommerce", "woocommerce", secrets_from(env.get("WOOCOMMERCE_WEBHOOK_SECRET"))),
    }
    if env.get(FILE_VARIABLE):
        sources.update(sources_from_file(Path(env[FILE_VARIABLE]), env))
    return sources


def sources_from_file(path: Path, env: Mapping[str, str]) -> dict[str, SourceSettings]:
    """The sources a YAML file defines; secrets named by `secret_env` are read from `env`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the sources file ({exc.strerror}); fix {FILE_VARIABLE} or create the file") from None
    try:
        document = YAML(typ="rt").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    return _Reader(path, env).document(document)


class _Reader:
    """Walks the parsed file, keeping the path for messages."""

    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env

    def fail(self, node: Any, key: Any, message: str) -> ConfigError:
        return ConfigError(f"{self.path}:{_line(node, key)}: {message}")

    def document(self, document: Any) -> dict[str, SourceSettings]:
        if document is None:
            return {}
        if not isinstance(document, Mapping) or set(document) - {"sources"}:
            raise self.fail(document, None, "the file must hold one top-level mapping, `sources:`, of name -> source")
        entries = document.get("sources")
        if entries is None:
            return {}
        if not isinstance(entries, Mapping):
            raise self.fail(document, "sources", "`sources:` must map each source name to its settings")
        return {str(name): self.entry(entries, name) for name in entries}

    def entry(self, entries: Any, name: Any) -> SourceSettings:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise self.fail(entries, name, f"source name {name!r} must be letters, digits, - or _ (it is the URL path /webhooks/<name>)")
        entry = entries[name]
        if entry is None:
            entry = {}
        if not isinstance(entry, Mapping):
            raise self.fail(entries, name, f"source {name}: expected a mapping with scheme, secret_env and options")
        for key in entry:
            if key not in _ENTRY_KEYS:
                hint = "; scheme options go under `options:`" if any(key in s.options for s in SCHEMES.values()) else ""
                raise self.fail(entry, key, f"source {name}: unknown key {key!r}; use {', '.join(_ENTRY_KEYS)}{hint}")
        scheme = entry.get("scheme", name if name in SCHEMES else None)
        if scheme is None:
            raise self.fail(entries, name, f"source {name}: missing `scheme:`; use one of {', '.join(SCHEMES)}")
        if scheme not in SCHEMES:
            raise self.fail(entry, "scheme", f"source {name}: unknown scheme {scheme!r}; use one of {', '.join(SCHEMES)}")
        if "secret" in entry and "secret_env" in entry:
            raise self.fail(entry, "secret", f"source {name}: give secret_env or secret, not both (prefer secret_env)")
        secrets = self.secrets(entry, name)
        options = entry.get("options") or {}
        if not isinstance(options, Mapping):
            raise self.fail(entry, "options", f"source {name}: `options:` must be a mapping of option -> value")
        plain = {str(k): self.resolve(options[k], options, k, name) for k in options}
        try:
            check_options(scheme, SCHEMES[scheme].options, plain)
        except OptionError as exc:
            node, key = (options, exc.option) if exc.option in options else (entry, "options" if "options" in entry else None)
            raise self.fail(node, key, f"source {name}: {exc}") from None
        return SourceSettings(name=name, scheme=scheme, secrets=secrets, options=plain, declared=True)

    def secrets(self, entry: Any, name: str) -> tuple[Secret, ...]:
        if "secret_env" in entry:
            return self.from_env(entry, "secret_env", name)
        if "secret" in entry:
            value = entry["secret"]
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(v, str) for v in values):
                raise self.fail(entry, "secret", f"source {name}: `secret:` must be a string (comma-separated for rotation)")
            return tuple(s for v in values for s in secrets_from(v))
        return ()

    def from_env(self, node: Any, key: Any, name: str) -> tuple[Secret, ...]:
        """`secret_env: VAR` or a list of variables (old and new during a rotation)."""
        value = node[key]
        variables = value if isinstance(value, list) else [value]
        if not variables or not all(isinstance(v, str) and v for v in variables):
            raise self.fail(node, key, f"source {name}: secret_env must name an environment variable, e.g. SHOPIFY_WEBHOOK_SECRET")
        # An unset variable leaves the source unconfigured: it refuses every
        # delivery, and BRIDGE_ENV=production refuses to start.
        return tuple(s for v in variables for s in secrets_from(self.env.get(v)))

    def resolve(self, value: Any, parent: Any, key: Any, name: str) -> Any:
        """Plain Python values; `{secret_env: VAR}` anywhere in options becomes secrets."""
        if isinstance(value, Mapping):
            if set(value) == {"secret_env"}:
                return self.from_env(value, "secret_env", name)
            return {str(k): self.resolve(value[k], value, k, name) for k in value}
        if isinstance(value, list):
            return [self.resolve(v, value, i, name) for i, v in enumerate(value)]
        return value


def _line(node: Any, key: Any) -> int:
    """1-based line of `key` in `node` (or of the node itself) as ruamel recorded it."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return 1
    try:
        if key is not None:
            return int(lc.key(key)[0]) + 1
    except (KeyError, TypeError, IndexError):
        pass
    return int(lc.line) + 1
