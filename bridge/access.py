"""Who may do what: the one permission model of the console (bridge/console) and the admin API.

A token names a person (or a system) and gives one role:

    viewer        sees the overview, events, dead letters and rules, personal data masked
    operator      and retries, replays, pauses and resumes, reveals personal data, reads the actions log
    rules_editor  sees what a viewer sees, and drafts, previews and publishes rules
    admin         everything: the deployment owner's key, BRIDGE_ADMIN_TOKEN (for automation such as
                  publishing rules from git); give people tokens of the roles above

Tokens come from the environment: BRIDGE_CONSOLE_TOKENS holds `name:role:token` entries separated by
commas (`ana:operator:4f0c...,bo:viewer:9a1e...`; roles viewer, operator, rules_editor), and
BRIDGE_ADMIN_TOKEN, when set, is the admin named `admin`. Each token is compared in constant time; the name is what the actions log records.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from bridge.errors import ConfigError
from bridge.settings import Secret

MIN_TOKEN_LENGTH = 16
ADMIN_NAME = "admin"


class Role(str, Enum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    RULES_EDITOR = "rules_editor"
    ADMIN = "admin"  # BRIDGE_ADMIN_TOKEN only


class Permission(str, Enum):
    VIEW = "view"  # overview, events, dead letters, rules: personal data masked
    REVEAL = "reveal"  # personal data in clear
    OPERATE = "operate"  # retry, replay, pause, resume
    READ_ACTIONS = "read_actions"  # the log of who did what
    EDIT_RULES = "edit_rules"  # drafts, previews, publishing, rollback


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.VIEW}),
    Role.OPERATOR: frozenset({Permission.VIEW, Permission.REVEAL, Permission.OPERATE, Permission.READ_ACTIONS}),
    Role.RULES_EDITOR: frozenset({Permission.VIEW, Permission.EDIT_RULES}),
    Role.ADMIN: frozenset(Permission),
}
TOKEN_ROLES = (Role.VIEWER, Role.OPERATOR, Role.RULES_EDITOR)  # what BRIDGE_CONSOLE_TOKENS may give


@dataclass(frozen=True)
class Principal:
    """Someone signed in: the token's name and role."""

    name: str
    role: Role

    def can(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]


@dataclass(frozen=True)
class ConsoleToken:
    name: str
    role: Role
    token: Secret

    @property
    def principal(self) -> Principal:
        return Principal(self.name, self.role)

    @property
    def key(self) -> bytes:
        """A key derived from the token: signs this person's sessions, so a changed token ends them."""
        return hashlib.sha256(b"bridge-console-session\x00" + self.token.value.encode()).digest()


def tokens_from_env(value: str | None) -> tuple[ConsoleToken, ...]:
    """BRIDGE_CONSOLE_TOKENS: `name:role:token` entries separated by commas. Errors name the entry by its
    position and name, never its token."""

    tokens: list[ConsoleToken] = []
    roles = ", ".join(r.value for r in TOKEN_ROLES)
    for position, entry in enumerate((value or "").split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        name, _, rest = entry.partition(":")
        role, _, token = rest.partition(":")
        where = f"BRIDGE_CONSOLE_TOKENS entry {position}"
        if not name.strip() or not token.strip():
            raise ConfigError(f"{where}: expected name:role:token (for example ana:operator:$(openssl rand -hex 32))")
        if role.strip() not in {r.value for r in TOKEN_ROLES}:
            raise ConfigError(f"{where} ({name.strip()}): role must be one of {roles}")
        if len(token.strip()) < MIN_TOKEN_LENGTH:
            raise ConfigError(f"{where} ({name.strip()}): the token must have {MIN_TOKEN_LENGTH} characters or more")
        tokens.append(ConsoleToken(name.strip(), Role(role.strip()), Secret(token.strip())))
    names = [t.name for t in tokens]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"BRIDGE_CONSOLE_TOKENS: each name once; repeated: {', '.join(repeated)}")
    return tuple(tokens)


class Access:
    """The tokens of a deployment, and who a token or a session's name is."""

    def __init__(self, tokens: Iterable[ConsoleToken], admin_token: Secret | None = None) -> None:
        every = [t for t in tokens if t.name != ADMIN_NAME]
        if admin_token is not None and admin_token.value:
            every.append(ConsoleToken(ADMIN_NAME, Role.ADMIN, admin_token))
        self._by_name = {t.name: t for t in every}

    @property
    def enabled(self) -> bool:
        """Whether any token is set: without one the console and the admin API answer 404."""
        return bool(self._by_name)

    def by_token(self, supplied: str) -> ConsoleToken | None:
        """The token's holder; every token is compared (in constant time), so timing tells nothing."""
        found = None
        for token in self._by_name.values():
            if hmac.compare_digest(supplied.encode(), token.token.value.encode()):
                found = token
        return found

    def by_name(self, name: str) -> ConsoleToken | None:
        return self._by_name.get(name)

    def by_bearer(self, authorization: str) -> ConsoleToken | None:
        """The holder of an `Authorization: Bearer <token>` header."""
        scheme, _, supplied = authorization.partition(" ")
        if scheme.lower() != "bearer" or not supplied.strip():
            return None
        return self.by_token(supplied.strip())
