"""The console in a real browser: Debian's headless Chromium driven by Playwright, against `bridge serve`
on a loopback port with the fake Omnisend and Ometria APIs (tests/e2e).

Screenshots are kept as artefacts in tmp/artefacts/console/ (BRIDGE_TEST_ARTEFACTS to put them elsewhere).
Without /usr/bin/chromium the tests skip, except under CI=true where they fail (.ci/run installs it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.conftest import Fakes, bridge_env, fakes  # noqa: F401  (the fixture)
from e2e.harness import ROOT, SHOPIFY_SECRET, BridgeProcess, wait_until

from bridge.sign import shopify_headers

from .support import TOKENS, XSS_NAME

pytestmark = pytest.mark.slow  # a real bridge process and a real browser
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
    with page.expect_navigation():  # the form's POST and its redirect: a reload during it finds no page
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


# -- the Rules pages ----------------------------------------------------------------------------------


def open_draft(page: Any, bridge: BridgeProcess, file: str) -> Any:
    """A new draft of the running rules, `file` open in the editor and checked."""
    page.goto(f"{bridge.url}/console/rules")
    page.click("text=Change the rules (new draft)")
    page.wait_for_url(re.compile(r".*/console/rules/drafts/\d+$"))
    page.click(f"nav.files a[data-name='{file}']")
    page.wait_for_url(re.compile(rf".*/console/rules/drafts/\d+\?file={re.escape(file)}$"))
    page.wait_for_selector(".CodeMirror")
    page.wait_for_selector("#draft[data-checked=ok]")
    return page


def type_after(page: Any, needle: str, typed: str) -> int:
    """Put the cursor right after the first `needle` in the editor and type; the 1-based line it is on."""
    line = page.evaluate("""needle => {
        const cm = document.querySelector('.CodeMirror').CodeMirror;
        for (let i = 0; i < cm.lineCount(); i++) {
            const at = cm.getLine(i).indexOf(needle);
            if (at >= 0) { cm.focus(); cm.setCursor({line: i, ch: at + needle.length}); return i + 1; }
        }
        return 0;
    }""", needle)
    assert line, f"{needle!r} is not in the file"
    page.keyboard.type(typed)
    return int(line)


def editor_line(page: Any, number: int) -> Any:
    return page.locator(".CodeMirror-code > div",
                        has=page.locator(".CodeMirror-linenumber", has_text=re.compile(rf"^{number}$")))


def test_a_mistake_in_a_rule_shows_on_its_line_and_blocks_publishing(browser: Any, console: BridgeProcess) -> None:
    problems: list[str] = []
    page = signed_in(browser, console, "rules_editor")
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)  # a CSP refusal shows here
    open_draft(page, console, "shopify-orders.yaml")
    assert page.locator("#publish").is_enabled()
    line = type_after(page, "{{ total_price | decimal", "l")  # `decimall`: no such filter
    page.wait_for_selector("#draft[data-checked=problems]")
    problem = page.locator("#problems li.problem")
    assert problem.count() == 1
    assert problem.get_attribute("data-line") == str(line)
    assert f"shopify-orders.yaml:{line}" in problem.inner_text()
    assert "unknown filter `decimall`" in problem.inner_text() and "did you mean `decimal`?" in problem.inner_text()
    on_line = editor_line(page, line)
    assert on_line.locator(".problem-marker").count() == 1
    assert "unknown filter `decimall`" in on_line.locator(".problem-widget").inner_text()
    assert page.locator("#publish").is_disabled()
    page.evaluate("line => document.querySelector('.CodeMirror').CodeMirror.scrollIntoView({line: line - 1, ch: 0}, 200)",
                  line)
    shot(page, "rule-error-on-its-line")
    page.keyboard.press("Backspace")  # fixed
    page.wait_for_selector("#draft[data-checked=ok]")
    assert page.locator(".problem-marker").count() == 0 and page.locator("#publish").is_enabled()
    page.click("#run-examples")
    page.wait_for_selector("#example-list li")
    assert page.locator("#example-list li[data-ok=yes]").count() >= 1
    assert page.locator("#example-list li[data-ok=no]").count() == 0
    assert "Every example passes." in page.locator("#action-state").inner_text()
    assert problems == []
    page.context.close()


def test_preview_publish_see_the_new_rule_running_and_roll_back(browser: Any, console: BridgeProcess,
                                                                 fakes: Fakes) -> None:  # noqa: F811
    from e2e.received import omnisend_events

    def notes() -> list[str]:
        return [e["properties"].get("note") for e in omnisend_events(fakes) if e["eventName"] == "placed order"]

    for n in (1, 2):
        order(console, f"evt-stored-{n}", id=900 + n, order_number=900 + n)
    wait_until(lambda: len(notes()) == 2, timeout=30, interval=0.2)
    page = signed_in(browser, console, "rules_editor")
    open_draft(page, console, "shopify-orders.yaml")
    type_after(page, 'note: "{{ note', " | upper")
    page.wait_for_selector("#draft[data-checked=ok]")
    page.fill("#preview-limit", "50")
    page.click("#preview")
    page.wait_for_selector("#preview-summary[data-changed]", timeout=60_000)
    summary = page.locator("#preview-summary").inner_text()
    assert summary.startswith("2 events: 2 change, 0 unchanged, 0 become errors"), summary
    changed = page.locator(".preview-event[data-changed=yes]")
    assert changed.count() == 2
    assert "PLEASE LEAVE AT THE DOOR" in changed.first.locator("pre.diff .add").inner_text()
    assert "Please leave at the door" in changed.first.locator("pre.diff .del").inner_text()
    shot(page, "rules-preview")
    page.fill("#publish-message", "order notes in capitals")
    page.click("#publish")
    page.wait_for_url(re.compile(r".*/console/rules\?published=2$"))
    assert "Version 2 is published" in page.locator("#published-note").inner_text()
    order(console, "evt-after-publish", id=903, order_number=903)  # mapped by the new rule
    wait_until(lambda: "PLEASE LEAVE AT THE DOOR" in notes(), timeout=30, interval=0.2)
    page.click("a:has-text('Version 2')")
    assert "order notes in capitals" in page.locator("dl.facts").inner_text()
    assert "| upper" in page.locator("pre.diff .add").inner_text()
    shot(page, "rules-version")
    page.goto(f"{console.url}/console/rules")
    page.locator("table.history tr", has_text="Version 1").locator("button", has_text="Roll back").click()
    page.wait_for_url(re.compile(r".*/console/rules\?published=3$"))
    assert page.locator("table.history tr", has_text="Version 3").locator(".badge", has_text="running").count() == 1
    shot(page, "rules-history")
    order(console, "evt-after-rollback", id=904, order_number=904)  # mapped by the first version again
    wait_until(lambda: len(notes()) == 4, timeout=30, interval=0.2)
    assert notes().count("Please leave at the door") == 3 and notes().count("PLEASE LEAVE AT THE DOOR") == 1
    page.context.close()
