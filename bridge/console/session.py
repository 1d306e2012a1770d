"""Signed-in sessions without server-side state: a cookie naming the token's holder and when it ends,
signed with a key derived from the holder's token (bridge.access.ConsoleToken.key).

So every instance of a fleet reads the same cookie with no shared secret to configure, a changed or
removed token ends its sessions at once, and the cookie holds no token. The CSRF token of a session
is derived from the cookie the same way: a page's forms carry it, and a change without it is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from bridge.access import Access, ConsoleToken

COOKIE = "bridge_console"
LIFETIME_SECONDS = 8 * 3600.0
MAX_COOKIE = 1024


def _sign(token: ConsoleToken, purpose: str, payload: str) -> str:
    return hmac.new(token.key, f"{purpose}\x00{payload}".encode(), hashlib.sha256).hexdigest()


def issue(token: ConsoleToken, now: float) -> str:
    """A session cookie's value for `token`'s holder, valid for LIFETIME_SECONDS."""
    payload = base64.urlsafe_b64encode(json.dumps([token.name, int(now + LIFETIME_SECONDS)]).encode()).decode()
    return f"{payload}.{_sign(token, 'session', payload)}"


def read(access: Access, value: str, now: float) -> ConsoleToken | None:
    """The holder of a session cookie still valid at `now`, else None."""
    if not value or len(value) > MAX_COOKIE or "." not in value:
        return None
    payload, signature = value.rsplit(".", 1)
    try:
        name, expires = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except (ValueError, TypeError):
        return None
    if not isinstance(name, str) or not isinstance(expires, int) or expires <= now:
        return None
    token = access.by_name(name)
    if token is None or not hmac.compare_digest(signature, _sign(token, "session", payload)):
        return None
    return token


def csrf_token(token: ConsoleToken, cookie: str) -> str:
    """The token every change of this session carries (a hidden field, or the X-CSRF-Token header)."""
    return _sign(token, "csrf", cookie)[:40]


def csrf_ok(token: ConsoleToken, cookie: str, supplied: str) -> bool:
    return bool(supplied) and hmac.compare_digest(supplied.encode(), csrf_token(token, cookie).encode())
