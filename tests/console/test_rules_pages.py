"""The console's Rules pages over HTTP (the browser's path is tests/console/test_browser.py): what each role
may do, CSRF on the rules API, refusals shown as text."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from .support import XSS_NAME, csrf_of, sign_in

BROKEN = "\n  - name: Broken rule\n    when source is shopify\n"


def new_draft(client: TestClient, csrf: str) -> int:
    answer = client.post("/console/rules/drafts", data={"csrf": csrf}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    match = re.fullmatch(r"/console/rules/drafts/(\d+)", answer.headers["location"])
    assert match
    return int(match.group(1))


def test_the_rules_page_lists_each_rule_with_its_state_and_the_history(client: TestClient) -> None:
    sign_in(client, "viewer")
    page = client.get("/console/rules").text
    assert "Shopify order placed" in page and 'data-state="runs"' in page
    # consent is off by default: the rules that only write it are held back, with the setting that allows it
    assert 'data-state="held back"' in page and 'data-state="ignores"' in page
    assert re.search(r'class="held warn"><span class="where">line \d+</span> this message writes', page)
    assert "to allow it set" in page
    assert "Version 1" in page and "Roll back" not in page and "new draft" not in page


def test_an_editor_drafts_checks_publishes_and_rolls_back(client: TestClient) -> None:
    csrf = sign_in(client, "rules_editor")
    draft = new_draft(client, csrf)
    page = client.get(f"/console/rules/drafts/{draft}?file=shopify-orders.yaml")
    assert page.status_code == 200 and 'data-file="shopify-orders.yaml"' in page.text
    api = f"/console/api/rules/drafts/{draft}"
    text = client.get(api).json()["files"]["shopify-orders.yaml"]
    headers = {"X-CSRF-Token": csrf_of(page.text)}
    # no CSRF header: refused, nothing saved
    assert client.put(f"{api}/files/shopify-orders.yaml", json={"text": text + BROKEN}).status_code == 403
    assert client.get(api).json()["files"]["shopify-orders.yaml"] == text
    saved = client.put(f"{api}/files/shopify-orders.yaml", json={"text": text + BROKEN}, headers=headers)
    assert saved.status_code == 200, saved.text
    check = client.post(f"{api}/check", headers=headers).json()
    assert not check["ok"]
    [problem] = check["problems"]
    assert problem["file"] == "shopify-orders.yaml" and problem["line"] > text.count("\n")
    refused = client.post(f"{api}/publish", json={}, headers=headers)
    assert refused.status_code == 422 and refused.json()["problems"]
    client.put(f"{api}/files/shopify-orders.yaml", json={"text": text.replace("Shopify order placed",
                                                                              "Shopify order placed (v2)")},
               headers=headers)
    published = client.post(f"{api}/publish", json={"message": "renamed"}, headers=headers)
    assert published.status_code == 201, published.text
    assert published.json()["version"] == 2
    listing = client.get("/console/rules?published=2").text
    assert "Version 2 is published" in listing and "Shopify order placed (v2)" in listing
    version = client.get("/console/rules/versions/2").text
    assert "+" in version and "Shopify order placed (v2)" in version
    back = client.post("/console/rules/rollback", data={"csrf": csrf, "version": "1"}, follow_redirects=False)
    assert back.status_code == 303 and back.headers["location"] == "/console/rules?published=3"
    assert "Shopify order placed (v2)" not in client.get("/console/rules").text.split("Running rules")[1] \
        .split("History")[0]
    # operators see who changed the rules, beside the other actions
    sign_in(client, "operator")
    changes = client.get("/console/actions").text.split("Rule changes")[1]
    rows = re.findall(r"<tr><td>[^<]+</td><td>([^<]+)</td><td>([^<]+)</td><td>([^<]*)</td>", changes)
    assert ("ed", "rollback", "3") in rows and ("ed", "publish", "2") in rows, rows


def test_a_viewer_reads_rules_but_changes_nothing(client: TestClient) -> None:
    csrf = sign_in(client, "viewer")
    assert client.post("/console/rules/drafts", data={"csrf": csrf}, follow_redirects=False).status_code == 403
    assert client.post("/console/rules/rollback", data={"csrf": csrf, "version": "1"}).status_code == 403
    answer = client.post("/console/api/rules/drafts", json={}, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 403
    assert client.get("/console/api/rules").json()["published"]["version"] == 1


def test_the_api_needs_a_session(client: TestClient) -> None:
    assert client.get("/console/api/rules").status_code == 401
    assert client.post("/console/api/rules/drafts", json={}).status_code == 401


def test_a_draft_with_a_script_shows_it_as_text(client: TestClient) -> None:
    csrf = sign_in(client, "rules_editor")
    draft = new_draft(client, csrf)
    headers = {"X-CSRF-Token": csrf}
    client.put(f"/console/api/rules/drafts/{draft}/files/xss.yaml", json={"text": f"# {XSS_NAME}\n"}, headers=headers)
    page = client.get(f"/console/rules/drafts/{draft}?file=xss.yaml").text
    assert XSS_NAME not in page and "&lt;script&gt;" in page


def test_every_change_of_the_rules_pages_needs_the_csrf_token(client: TestClient) -> None:
    csrf = sign_in(client, "rules_editor")
    draft = new_draft(client, csrf)
    before = client.get(f"/console/api/rules/drafts/{draft}").json()["files"]
    for path, data in ((f"/console/rules/drafts/{draft}/save", {"name": "shopify-orders.yaml", "text": "junk"}),
                       (f"/console/rules/drafts/{draft}/delete", {}), ("/console/rules/rollback", {"version": "1"}),
                       ("/console/rules/drafts", {})):
        assert client.post(path, data={**data, "csrf": "0" * 40}).status_code == 403, path
    assert client.get(f"/console/api/rules/drafts/{draft}").json()["files"] == before
    assert client.get("/console/api/rules/versions").json()["total"] == 1
    headers = {"X-CSRF-Token": "0" * 40}
    for method, path in (("POST", f"/console/api/rules/drafts/{draft}/publish"), ("POST", "/console/api/rules/rollback"),
                         ("DELETE", f"/console/api/rules/drafts/{draft}")):
        assert client.request(method, path, json={"version": 1}, headers=headers).status_code == 403, path
    assert client.get("/console/api/rules/versions").json()["total"] == 1


def test_a_draft_saved_without_script_and_a_broken_publish_are_explained(client: TestClient) -> None:
    csrf = sign_in(client, "rules_editor")
    draft = new_draft(client, csrf)
    saved = client.post(f"/console/rules/drafts/{draft}/save",
                        data={"csrf": csrf, "name": "shopify-orders.yaml", "text": "rules:\n  - name: x\n"},
                        follow_redirects=False)
    assert saved.status_code == 303
    assert "rules:\n  - name: x" in client.get(f"/console/rules/drafts/{draft}?file=shopify-orders.yaml").text
    refused = client.post(f"/console/api/rules/drafts/{draft}/publish", json={}, headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 422
    assert all(p["file"] and p["line"] for p in refused.json()["problems"])
    assert client.get("/console/api/rules/versions").json()["total"] == 1
