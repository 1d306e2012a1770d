"""What the console shows and does: the overview, searches with "N of M", an event's page, replays with
progress, retries, pause and resume; each change in the actions log."""

from __future__ import annotations

import re
import time

from starlette.testclient import TestClient

from .support import fill, sign_in


def test_the_overview_counts_per_destination_and_charts_the_day(client: TestClient) -> None:
    fill(client, 0)
    fill(client, 1, dead=False)  # in flight
    sign_in(client, "viewer")
    data = client.get("/console/overview.json").json()
    [omnisend] = [d for d in data["destinations"] if d["name"] == "omnisend"]
    assert (omnisend["waiting"], omnisend["in_flight"], omnisend["dead"], omnisend["paused"]) == (0, 1, 1, False)
    received = next(c for c in data["charts"] if c["title"] == "Events received")
    assert len(received["hours"]) == 24 and received["hours"][-1] == 2 and received["total"] == 2
    assert [s["day"] for s in data["sources"] if s["name"] == "shopify"] == [2]
    assert data["rules"]["loaded"] and data["rules"]["count"] > 0
    fragment = client.get("/console/overview/fragment").text
    assert "<svg" in fragment and 'data-field="dead"' in fragment and "<html" not in fragment


def test_pause_and_resume_a_destination(client: TestClient) -> None:
    csrf = sign_in(client, "operator")
    answer = client.post("/console/destinations/omnisend/pause", data={"csrf": csrf, "reason": "maintenance"},
                         follow_redirects=False)
    assert answer.status_code == 303
    [omnisend] = [d for d in client.get("/console/overview.json").json()["destinations"] if d["name"] == "omnisend"]
    assert omnisend["paused"] and omnisend["pause_reason"] == "maintenance"
    client.post("/console/destinations/omnisend/resume", data={"csrf": csrf})
    [omnisend] = [d for d in client.get("/console/overview.json").json()["destinations"] if d["name"] == "omnisend"]
    assert not omnisend["paused"]
    assert client.post("/console/destinations/nowhere/pause", data={"csrf": csrf}).status_code == 404
    assert client.post("/console/destinations/omnisend/delete", data={"csrf": csrf}).status_code == 404
    log = client.get("/console/actions").text
    assert "pause" in log and "resume" in log and "maintenance" in log


def test_events_page_with_n_of_m_and_search_by_email_order_number_or_fingerprint(client: TestClient) -> None:
    for n in range(55):
        fill(client, n, email="jane@example.com" if n == 7 else f"c{n}@example.com", dead=False)
    sign_in(client, "viewer")
    first = client.get("/console/events").text
    assert "1–50 of 55 events" in first and "Older" in first
    second = client.get("/console/events?offset=50").text
    assert "51–55 of 55 events" in second and "Newer" in second
    by_email = client.get("/console/events", params={"q": "JANE@example.com"}).text
    assert "1–1 of 1 events" in by_email and 'href="/console/events/8"' in by_email
    assert "1–1 of 1 events" in client.get("/console/events", params={"q": "#1007"}).text
    fingerprint = re.search(r"h:[0-9a-f]{10}", client.get("/console/events/8").text)
    assert fingerprint is not None  # the masked e-mail a viewer sees finds the event too
    assert "1–1 of 1 events" in client.get("/console/events", params={"q": fingerprint.group()}).text
    assert "0–0 of 0 events" in client.get("/console/events", params={"q": "nobody@example.com"}).text
    wrong = client.get("/console/events", params={"status": "lost", "since": "yesterday-ish"}).text
    assert "status: one of" in wrong and "since:" in wrong
    assert "1–50 of 55 events" in client.get("/console/events", params={"source": "shopify", "since": "1h"}).text


def test_an_events_page_has_its_messages_and_every_attempt(client: TestClient) -> None:
    filled = fill(client)
    sign_in(client, "operator")
    page = client.get(f"/console/events/{filled.event_id}").text
    assert "omnisend event (upsert)" in page and "refused: bad email" in page and ">dead<" in page
    assert "Retry this dead letter" in page and "Replay this event" in page
    assert client.get("/console/events/999").status_code == 404


def test_retry_one_dead_letter_or_all(client: TestClient) -> None:
    fills = [fill(client, n) for n in range(3)]
    csrf = sign_in(client, "operator")
    assert "1–3 of 3 dead letters" in client.get("/console/dead").text
    client.post("/console/dead/retry", data={"csrf": csrf, "id": str(fills[0].dead_message),
                                              "back": f"/console/events/{fills[0].event_id}"})
    assert "1–2 of 2 dead letters" in client.get("/console/dead").text
    assert client.post("/console/dead/retry", data={"csrf": csrf}).status_code == 400  # nothing chosen
    client.post("/console/dead/retry", data={"csrf": csrf, "all": "1", "destination": "omnisend"})
    assert "0–0 of 0 dead letters" in client.get("/console/dead").text
    log = client.get("/console/actions").text
    assert f"message {fills[0].dead_message}" in log and "destination omnisend" in log and "2 retried" in log


def test_replay_one_event_and_a_whole_search_with_progress(client: TestClient) -> None:
    fills = [fill(client, n) for n in range(3)]
    csrf = sign_in(client, "operator")
    one = client.post(f"/console/events/{fills[0].event_id}/replay", data={"csrf": csrf})
    assert one.status_code == 200 and "1 events replayed" in one.text
    assert client.post("/console/replay", data={"csrf": csrf}).status_code == 400  # every event: not here
    started = client.post("/console/replay", data={"csrf": csrf, "source": "shopify"}, follow_redirects=False)
    assert started.status_code == 303
    job = started.headers["location"]
    deadline = time.monotonic() + 60
    while "Finished" not in (page := client.get(f"{job}/fragment").text) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "Finished: 3 events replayed" in page and "3 of 3 events" in page
    log = client.get("/console/actions").text
    assert "replay_finished" in log and "source shopify" in log and f"event {fills[0].event_id}" in log


def test_the_earlier_hours_of_the_charts_are_counted_once_in_the_background(client: TestClient) -> None:
    from bridge.model import Webhook

    store = client.app.state.bridge.store  # type: ignore[attr-defined]
    now = time.time()
    for n, hours_ago in enumerate((5, 5, 30)):  # 30 hours ago: outside the charts
        webhook = Webhook("shopify", "orders/paid", f"old-{n}", b"{}")
        client.portal.call(store.ingest, webhook, now - hours_ago * 3600)  # type: ignore[attr-defined]
    sign_in(client, "viewer")
    deadline = time.monotonic() + 30
    while (data := client.get("/console/overview.json").json())["counting"] and time.monotonic() < deadline:
        time.sleep(0.1)
    received = next(c for c in data["charts"] if c["title"] == "Events received")
    assert not data["counting"] and received["total"] == 2 and received["hours"][23 - 5] == 2
    # counted once: an event stored now for an hour already counted does not change it
    client.portal.call(store.ingest, Webhook("shopify", "orders/paid", "late", b"{}"),  # type: ignore[attr-defined]
                       now - 5 * 3600)
    again = next(c for c in client.get("/console/overview.json").json()["charts"] if c["title"] == "Events received")
    assert again["hours"][23 - 5] == 2
