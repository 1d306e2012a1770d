"""The console's security: tokens, the session cookie, CSRF, the CSP, roles, escaping, the actions log."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bridge.ops import slowdown

from .support import ADMIN, TOKENS, XSS_NAME, app_client, fill, settings_for, sign_in


def test_the_console_answers_404_while_no_token_is_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    with app_client(settings_for(tmp_path / "b.db", console_tokens="", admin=None)) as client:
        assert client.get("/console/sign-in").status_code == 404
        assert client.post("/console/sign-in", data={"token": "x"}).status_code == 404


def test_pages_need_a_session_and_sign_in_sets_a_strict_httponly_cookie(client: TestClient) -> None:
    first = client.get("/console/events", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/console/sign-in"
    assert client.get("/console/overview/fragment").status_code == 401
    answer = client.post("/console/sign-in", data={"token": TOKENS["viewer"]}, follow_redirects=False)
    cookie = answer.headers["set-cookie"].lower()
    assert answer.status_code == 303 and "httponly" in cookie and "samesite=strict" in cookie
    assert "secure" not in cookie and "path=/console" in cookie
    assert TOKENS["viewer"] not in answer.headers["set-cookie"]
    assert client.get("/console/events").status_code == 200


def test_the_cookie_is_secure_behind_https(client: TestClient) -> None:
    answer = client.post("/console/sign-in", data={"token": TOKENS["viewer"]}, follow_redirects=False,
                         headers={"X-Forwarded-Proto": "https"})
    assert "secure" in answer.headers["set-cookie"].lower()


def test_every_answer_has_the_content_security_policy(client: TestClient) -> None:
    for answer in (client.get("/console/sign-in"), client.get("/console/static/console.js")):
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert answer.headers["x-frame-options"] == "DENY" and answer.headers["cache-control"] == "no-store"


def test_a_token_in_the_url_signs_nobody_in(client: TestClient) -> None:
    assert "set-cookie" not in client.get(f"/console/sign-in?token={TOKENS['operator']}").headers
    answer = client.post(f"/console/sign-in?token={TOKENS['operator']}", data={"token": ""}, follow_redirects=False)
    assert answer.status_code == 401 and "set-cookie" not in answer.headers
    assert 'name="token" type="password"' in client.get("/console/sign-in").text  # posted in a form


def test_failed_sign_ins_wait_longer_and_longer(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    failed = slowdown.FailedTries.failed

    def counted(self: slowdown.FailedTries, who: str) -> float:
        waits.append(failed(self, who))
        return 0.0

    monkeypatch.setattr(slowdown.FailedTries, "failed", counted)
    for _ in range(6):
        answer = client.post("/console/sign-in", data={"token": "guess-0123456789abcdef"})
        assert answer.status_code == 401 and "not known" in answer.text
    assert waits[:3] == [0.0, 0.0, 0.0] and 0 < waits[3] < waits[4] < waits[5]
    assert client.post("/console/sign-in", data={"token": TOKENS["viewer"]}, follow_redirects=False).status_code == 303


def test_a_change_without_the_sessions_csrf_token_is_refused(client: TestClient) -> None:
    filled = fill(client)
    csrf = sign_in(client, "operator")
    refused = client.post("/console/dead/retry", data={"id": str(filled.dead_message)})
    assert refused.status_code == 403 and "expired" in refused.text
    forged = client.post("/console/dead/retry", data={"id": str(filled.dead_message), "csrf": "0" * 40})
    assert forged.status_code == 403
    cross = client.post("/console/dead/retry", data={"id": str(filled.dead_message), "csrf": csrf},
                        headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    assert client.get("/console/dead").text.count('data-message="') == 1  # still dead
    done = client.post("/console/dead/retry", data={"id": str(filled.dead_message), "csrf": csrf},
                       follow_redirects=False)
    assert done.status_code == 303 and "No dead letter." in client.get("/console/dead").text


def test_a_session_of_another_token_or_a_tampered_cookie_is_not_accepted(client: TestClient) -> None:
    sign_in(client, "viewer")
    cookie = client.cookies.get("bridge_console")
    assert cookie
    client.cookies.set("bridge_console", cookie.replace(cookie[-4:], "0000"), path="/console")
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_a_viewer_reads_masked_data_and_changes_nothing(client: TestClient) -> None:
    filled = fill(client)
    csrf = sign_in(client, "viewer")
    page = client.get(f"/console/events/{filled.event_id}?reveal=1").text
    assert "jane@example.com" not in page and "h:" in page and "Personal data is masked" in page
    assert "Retry this dead letter" not in page and "Replay this event" not in page
    assert "Retry" not in client.get("/console/dead").text
    assert client.get("/console/actions").status_code == 403
    for path, data in (("/console/dead/retry", {"all": "1"}), (f"/console/events/{filled.event_id}/replay", {}),
                       ("/console/destinations/omnisend/pause", {})):
        answer = client.post(path, data={**data, "csrf": csrf})
        assert answer.status_code == 403 and "viewer role may not" in answer.text, path
    assert "1 dead" in client.get("/console/events").text


def test_an_operator_reveals_personal_data_and_the_reveal_is_logged(client: TestClient) -> None:
    filled = fill(client)
    sign_in(client, "operator")
    assert "jane@example.com" not in client.get(f"/console/events/{filled.event_id}").text
    assert "jane@example.com" in client.get(f"/console/events/{filled.event_id}?reveal=1").text
    log = client.get("/console/actions").text
    assert f"event {filled.event_id}" in log and "reveal" in log and "sign_in" in log


def test_a_rules_editor_sees_rules_without_personal_data_or_operations(client: TestClient) -> None:
    filled = fill(client)
    csrf = sign_in(client, "rules_editor")
    assert 'data-can-edit="yes"' in client.get("/console/rules").text
    assert "jane@example.com" not in client.get(f"/console/events/{filled.event_id}?reveal=1").text
    assert client.post("/console/dead/retry", data={"all": "1", "csrf": csrf}).status_code == 403
    assert client.get("/console/actions").status_code == 403


def test_a_script_in_a_customer_name_is_shown_as_text(client: TestClient) -> None:
    filled = fill(client, name=XSS_NAME)
    sign_in(client, "operator")
    page = client.get(f"/console/events/{filled.event_id}?reveal=1").text
    assert "<script>document" not in page and "<img src=x" not in page
    assert "&lt;script&gt;document.title=" in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_the_admin_api_and_the_console_share_the_roles(client: TestClient) -> None:
    filled = fill(client)
    viewer, operator = ({"Authorization": f"Bearer {TOKENS[r]}"} for r in ("viewer", "operator"))
    assert client.get("/admin/events", headers=viewer).status_code == 200
    assert client.get("/admin/events?reveal=true", headers=viewer).status_code == 403
    assert client.post("/admin/dead/retry", json={"all": True}, headers=viewer).status_code == 403
    assert client.get("/admin/actions", headers=viewer).status_code == 403
    assert client.post("/admin/dead/retry", json={"ids": [filled.dead_message]}, headers=operator).json() == {
        "retried": 1}
    [entry, *_] = client.get("/admin/actions", headers={"Authorization": f"Bearer {ADMIN}"}).json()["actions"]
    assert (entry["actor"], entry["role"], entry["action"], entry["target"]) == (
        "op", "operator", "retry_dead", f"messages {filled.dead_message}")


def test_sign_out_ends_the_session_in_this_browser(client: TestClient) -> None:
    csrf = sign_in(client, "viewer")
    assert client.post("/console/sign-out", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert client.get("/console/", follow_redirects=False).status_code == 303
