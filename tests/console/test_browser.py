"""The console in a real browser: Debian's headless Chromium driven by Playwright, against `bridge serve`
on a loopback port with the fake Omnisend and Ometria APIs (tests/e2e).

Screenshots are kept as artefacts in tmp/artefacts/console/ (BRIDGE_TEST_ARTEFACTS to put them elsewhere).
Without /usr/bin/chromium the tests skip, except under CI=true where they fail (.ci/run installs it).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest
from e2e.conftest import Fakes, bridge_env, fakes  # noqa: F401  (the fixture)
from e2e.harness import ROOT, SHOPIFY_SECRET, BridgeProcess, wait_until

from bridge.sign import shopify_headers

from .support import TOKENS, XSS_NAME

CHROMIUM = os.environ.get("BRIDGE_TEST_CHROMIUM", "/usr/bin/chromium")
ARTEFACTS = Path(os.environ.get("BRIDGE_TEST_ARTEFACTS", ROOT / "tmp" / "artefacts")) / "console"
LIVE_WAIT_MS = 30_000  # the live parts refresh every 5 s

if not shutil.which(CHROMIUM):
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does)")
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def console(tmp_path: Path, fakes: Fakes) -> Iterator[BridgeProcess]:  # noqa: F811
    tokens = ",".join(f"{role[:2]}-user:{role}:{token}" for role, token in TOKENS.items())
    process = BridgeProcess(tmp_path, bridge_env(fakes, BRIDGE_CONSOLE_TOKENS=tokens)).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def signed_in(browser: Any, bridge: BridgeProcess, role: str) -> Any:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the console's confirmations
    page.goto(f"{bridge.url}/console/")
    assert page.url.endswith("/console/sign-in")
    page.fill("#token", TOKENS[role])
    page.click("button[type=submit]")
    page.wait_for_url(f"{bridge.url}/console/")
    assert "token" not in page.url
    return page


def shot(page: Any, name: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)


def order(bridge: BridgeProcess, event_id: str, **changes: Any) -> None:
    body = json.loads((ROOT / "tests" / "payloads" / "shopify" / "orders_create.json").read_bytes())
    body.update(changes)
    raw = json.dumps(body).encode()
    answer = bridge.post("shopify", raw, shopify_headers(raw, SHOPIFY_SECRET, "orders/create", event_id=event_id))
    assert answer.status_code == 200, answer.text


def test_each_role_sees_and_may_do_what_it_is_given(browser: Any, console: BridgeProcess) -> None:
    order(console, "evt-roles")
    for role in ("viewer", "operator", "rules_editor"):
        page = signed_in(browser, console, role)
        page.wait_for_selector("svg[role=img]")
        assert page.locator(f"header [data-role={role}]").count() == 1
        rows = page.locator("table.destinations tbody tr").count()
        pause_buttons = page.locator("table.destinations button").count()
        actions_link = page.locator("nav a[href='/console/actions']").count()
        if role == "operator":
            assert rows >= 3 and pause_buttons == rows and actions_link == 1  # one per destination
        else:
            assert pause_buttons == 0 and actions_link == 0
        page.goto(f"{console.url}/console/rules")
        can_edit = page.locator("#rules-editor").get_attribute("data-can-edit")
        assert can_edit == ("yes" if role == "rules_editor" else "no")
        assert page.locator("table.rules tbody tr").count() > 5
        page.goto(f"{console.url}/console/events")
        page.locator("table.events a").first.click()
        body = page.locator("pre.payload").inner_text()
        reveal = page.locator("a", has_text="Reveal personal data")
        if role == "operator":
            reveal.click()
            assert "Jane.Citizen@Example.com" in page.locator("pre.payload").inner_text()
        else:
            assert reveal.count() == 0 and "h:" in body and "Jane.Citizen" not in body
        # found by its e-mail (fingerprinted by the mapping process) and by its order number
        for wanted in ("jane.citizen@example.com", "#1042"):
            page.goto(f"{console.url}/console/events")
            page.fill("input[name=q]", wanted)
            page.click("form.search button[type=submit]")
            assert "1–1 of 1 events" in page.locator("p.count").inner_text()
        shot(page, f"event-as-{role}")
        page.goto(f"{console.url}/console/")
        page.wait_for_selector("svg[role=img]")
        shot(page, f"overview-as-{role}")
        page.context.close()


def test_watch_an_event_arrive_open_it_and_retry_its_dead_letter(browser: Any, console: BridgeProcess,
                                                                  fakes: Fakes) -> None:  # noqa: F811
    page = signed_in(browser, console, "operator")
    page.goto(f"{console.url}/console/events")
    assert "0–0 of 0 events" in page.locator("p.count").inner_text()
    fakes.ometria.fail("status", status=400, count=1)  # its first order push is refused: a dead letter
    order(console, "evt-watched")
    page.wait_for_selector("table.events a", timeout=LIVE_WAIT_MS)  # arrives without a reload
    assert "1–1 of 1 events" in page.locator("p.count").inner_text()
    page.locator("table.events a").first.click()
    page.wait_for_selector("h1:has-text('Event')")
    wait_until(lambda: page.reload() and page.locator("button", has_text="Retry this dead letter").count() == 1,
               timeout=30, interval=0.5)
    shot(page, "event-with-a-dead-letter")
    page.locator("button", has_text="Retry this dead letter").click()
    wait_until(lambda: page.reload() and page.locator(".message-card [data-state]", has_text="dead").count() == 0
               and page.locator(".message-card [data-state]", has_text="delivered").count() == 2,
               timeout=30, interval=0.5)
    page.goto(f"{console.url}/console/actions")
    assert page.locator("table.actions td", has_text="retry_dead").count() == 1
    shot(page, "actions-log")


def test_a_script_in_a_customer_name_stays_text(browser: Any, console: BridgeProcess) -> None:
    alerts: list[str] = []
    order(console, "evt-xss", customer={"id": 1, "first_name": XSS_NAME, "last_name": "<b>bold</b>",
                                        "email": "xss@example.com"})
    page = signed_in(browser, console, "operator")
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    page.goto(f"{console.url}/console/events")
    page.locator("table.events a").first.click()
    page.locator("a", has_text="Reveal personal data").click()
    payload = page.locator("pre.payload").inner_text()
    assert XSS_NAME.replace('"', '\\"') in payload and "<b>bold</b>" in payload
    assert page.title() != "pwned" and alerts == []
    assert page.locator("pre.payload script, pre.payload img, pre.payload b").count() == 0
    shot(page, "xss-as-text")
