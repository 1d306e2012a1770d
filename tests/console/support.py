"""The console on the real app (SQLite, rules from mappings/), with a store the test fills."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from bridge.access import tokens_from_env
from bridge.model import Mapped, Outgoing, Webhook
from bridge.search import fingerprints
from bridge.settings import Secret, Settings, destinations_from_env

ADMIN = "admin-token-0123456789"
TOKENS = {"viewer": "viewer-token-0123456789", "operator": "operator-token-0123456789",
          "rules_editor": "editor-token-0123456789"}
CONSOLE_TOKENS = f"vi:viewer:{TOKENS['viewer']},op:operator:{TOKENS['operator']},ed:rules_editor:{TOKENS['rules_editor']}"
XSS_NAME = '<script>document.title="pwned"</script><img src=x onerror=alert(1)>'


def settings_for(path: Path, console_tokens: str = CONSOLE_TOKENS, admin: str | None = ADMIN) -> Settings:
    return Settings(database_path=path, store_writer="thread", mapping="thread", admin_token=Secret(admin) if admin else None,
                    console_tokens=tokens_from_env(console_tokens), destinations=destinations_from_env({}),
                    last_good_rules="off")


def order_body(n: int, email: str = "jane@example.com", name: str = "Jane") -> bytes:
    return json.dumps({"id": 1000 + n, "name": f"#{1000 + n}", "order_number": 1000 + n, "email": email,
                       "customer": {"first_name": name, "email": email}}).encode()


@dataclass
class Filled:
    event_id: int
    dead_message: int


def fill(client: TestClient, n: int = 0, *, name: str = "Jane", email: str = "jane@example.com",
         dead: bool = True) -> Filled:
    """One Shopify order event mapped to one omnisend message, which dies (a 400) unless `dead` is False."""
    store = client.app.state.bridge.store  # type: ignore[attr-defined]
    portal = client.portal  # type: ignore[attr-defined]
    body = order_body(n, email, name)
    result = portal.call(store.ingest, Webhook("shopify", "orders/create", f"key-{n}", body,
                                                {"x-shopify-topic": "orders/create"}))
    message = Outgoing("omnisend", "event", {"email": email, "name": name}, rule="Shopify order placed",
                       key=f"order:{n}", areas=("events",))
    mapped = Mapped(result.event_id, "mapped", ["Shopify order placed"], [],
                    [(message, message.idempotency_key("shopify", f"key-{n}"))],
                    fingerprints(body, "orders/create"))
    portal.call(store.save_mappings, [mapped], 1.0)
    [claimed] = portal.call(store.claim, "omnisend", 1, 60.0, 2.0)
    if dead:
        from bridge.model import Decision, Outcome

        portal.call(store.complete, [(claimed, Outcome("dead", 400, "refused: bad email"), Decision("dead", 3.0))], 3.0)
    return Filled(result.event_id, claimed.id)


def sign_in(client: TestClient, role: str) -> str:
    """Sign `client` in with the role's token; the CSRF token of its pages."""
    token = ADMIN if role == "admin" else TOKENS[role]
    answer = client.post("/console/sign-in", data={"token": token}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/console/").text)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def app_client(settings: Settings, **parts: Any) -> TestClient:
    from bridge.app import create_app

    return TestClient(create_app(settings, run_worker=False, **parts), base_url="http://testserver")
