"""Hostile rules saved into a running bridge: it keeps answering webhooks and mapping every source.

Two kinds: files `bridge mappings check` refuses (constant folding that would build huge values,
Jinja built-ins that are not rules' filters, brackets 400 deep, a YAML "billion laughs", binary
junk), which hot reload must refuse while the rules it has keep running; and a rule that passes
the check but loops over a long list in the payload, which must cost one event a mapping error
naming the rule, and nothing else.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.conftest import Fakes
from e2e.harness import ROOT

from bridge.sign import shopify_headers

from .process import SHOPIFY_SECRET, Bridge, reliability_env, wait_until
from .traffic import order, profile

HEAD = "# yaml-language-server: $schema=../bridge/mapping/rules.schema.json\n"


def rules_file(*notes: str, name: str = "Hostile") -> str:
    """A rule file with a rule per note: each sends an Omnisend event whose `note` is that template."""
    return HEAD + "rules:\n" + "".join(rule(f"{name} {n}" if len(notes) > 1 else name, note)
                                       for n, note in enumerate(notes))


def rule(name: str, note: str) -> str:
    return f"""\
  - name: {name}
    on: shopify orders/create
    send:
      - to: omnisend event "hostile check"
        fields:
          origin: api
          contact:
            email: "{{{{ email | lower }}}}"
          properties:
            note: {json.dumps(note)}
"""


REFUSED = [
    "{{ 10 ** 100000 }}",
    "{{ 'a' * 10**9 }}",
    "{{ note | center(1000000000) }}",
    "{{ '%999999999d' | format(1) }}",
    "{{ line_items | map(attribute='sku') }}",
    "{% for a in 'x' * 100000 %}{% for b in 'x' * 100000 %}y{% endfor %}{% endfor %}",
]
DEEP = "{{ " + "(" * 400 + "1" + ")" * 400 + " }}"  # refused before YAML is parsed: a file of its own
LAUGHS = "l0: &l0 [x]\n" + "".join(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]\n" for n in range(1, 9)) + "rules: *l8\n"
NESTED_LOOP = "{% for a in line_items %}{% for b in line_items %}{{ b.sku }}{% endfor %}{% endfor %}"


@pytest.fixture
def rules_dir(workdir: Path) -> Path:
    folder = workdir / "mappings"
    shutil.copytree(ROOT / "mappings", folder)
    return folder


@pytest.fixture
def bridge(workdir: Path, fakes: Fakes, rules_dir: Path) -> Iterator[Bridge]:
    process = Bridge(workdir, reliability_env(fakes, BRIDGE_MAPPINGS_DIR=str(rules_dir),
                                              BRIDGE_MAPPING_TIMEOUT_SECONDS="30")).start()
    yield process
    process.stop()


def big_order(n: int, items: int) -> tuple[bytes, dict[str, str]]:
    """A signed order whose line_items list is long (small items: the body stays well under 1 MB)."""
    body = json.loads(order(n).body)
    body["line_items"] = [{"title": "Tee", "sku": f"S{i}", "price": "1.00", "quantity": 1} for i in range(items)]
    raw = json.dumps(body).encode()
    return raw, shopify_headers(raw, SHOPIFY_SECRET, "orders/create", event_id=f"hostile-big-{n}")


def post_and_time(bridge: Bridge, items: list[tuple[str, bytes, dict[str, str]]]) -> list[float]:
    seconds = []
    for source, body, headers in items:
        started = time.monotonic()
        assert bridge.post(source, body, headers).status_code == 200
        seconds.append(time.monotonic() - started)
    return seconds


def traffic(start: int, count: int) -> list[tuple[str, bytes, dict[str, str]]]:
    out = []
    for n in range(start, start + count):
        item = profile(n) if n % 2 else order(n)
        out.append((item.source, item.body, item.headers))
    return out


def event_row(bridge: Bridge, event_id: str) -> tuple[Any, ...]:
    """The event Shopify sent with this X-Shopify-Event-Id (kept with its headers; the dedupe key is the body's)."""
    rows = bridge.query("SELECT status, rules, errors FROM events WHERE headers LIKE ?", f'%"{event_id}"%')
    assert rows, event_id
    return rows[0]


def test_refused_rules_saved_into_a_running_bridge_change_nothing_but_the_error(bridge: Bridge,
                                                                                rules_dir: Path) -> None:
    loaded_at = bridge.get("/healthz").json()["rules"]["loaded_at"]
    (rules_dir / "hostile.yaml").write_text(rules_file(*REFUSED), encoding="utf-8")
    (rules_dir / "deep.yaml").write_text(rules_file(DEEP), encoding="utf-8")
    (rules_dir / "laughs.yaml").write_text(LAUGHS, encoding="utf-8")
    (rules_dir / "junk.yaml").write_bytes(bytes(range(256)) * 64)
    seconds = post_and_time(bridge, traffic(0, 20))

    health = wait_until(lambda: (h := bridge.get("/healthz").json())["rules"]["error"] and h, timeout=30)
    error = health["rules"]["error"]
    assert health["rules"]["loaded"] and health["rules"]["loaded_at"] == loaded_at  # the rules it had run on
    for file in ("hostile.yaml", "deep.yaml", "laughs.yaml", "junk.yaml"):
        assert f"{file}:" in error, error
    assert error.count("hostile.yaml:") == len(REFUSED), error
    seconds += post_and_time(bridge, traffic(20, 20))
    wait_until(lambda: bridge.unmapped() == 0, timeout=60)
    statuses = {row[0] for row in bridge.query("SELECT status FROM events")}
    assert statuses <= {"mapped", "partial", "ignored"}, statuses
    peak = peak_memory_mb(bridge)
    print(f"\nrefused rules: {len(error.splitlines())} problems named, {len(seconds)} webhooks answered, slowest "
          f"{max(seconds) * 1000:.0f} ms, statuses {sorted(statuses)}, peak memory {peak:.0f} MB")
    assert peak < 1024  # a folded `'a' * 10**9` alone would take a gigabyte
    assert max(seconds) < 5, seconds  # every webhook answered within Shopify's 5 s
    assert bridge.get("/readyz").status_code == 200
    assert bridge.alive()


def test_a_rule_that_loops_over_a_long_list_costs_one_event_and_a_fix_runs_within_seconds(bridge: Bridge,
                                                                                          rules_dir: Path) -> None:
    save_and_wait(bridge, rules_dir / "heavy.yaml", rules_file(NESTED_LOOP, name="Heavy"))
    body, headers = big_order(1, 1_000)  # 1,000 x 1,000 steps: over the event's 100,000
    seconds = post_and_time(bridge, [("shopify", body, headers)] + traffic(100, 20))
    wait_until(lambda: bridge.unmapped() == 0, timeout=60)

    status, _, errors = event_row(bridge, "hostile-big-1")
    assert status == "mapping_error", errors
    assert "heavy.yaml:3 rule 'Heavy': mapping this event stopped: its loops went over 100,000 steps" in errors
    others = bridge.query("SELECT source, status FROM events WHERE headers NOT LIKE '%hostile-big%'")
    assert others and all(status in ("mapped", "partial", "ignored") for _, status in others), others
    assert {source for source, _ in others} == {"shopify", "omneo"}

    fixed_at = time.monotonic()
    save_and_wait(bridge, rules_dir / "heavy.yaml", rules_file("{{ line_items | pluck('sku') | first }}", name="Heavy"))
    body, headers = big_order(2, 1_000)
    seconds += post_and_time(bridge, [("shopify", body, headers)])
    wait_until(lambda: event_row(bridge, "hostile-big-2")[0] != "received", timeout=30)
    status, rules, errors = event_row(bridge, "hostile-big-2")
    assert status == "mapped" and "Heavy" in rules, errors
    took = time.monotonic() - fixed_at
    print(f"\nheavy rule: {len(others)} other events mapped, the fix mapped the next order {took:.1f} s after "
          f"its save, slowest answer {max(seconds) * 1000:.0f} ms")
    assert took < 20  # the watcher polls every 2 s; the mapping process follows
    assert max(seconds) < 5, seconds
    assert bridge.get("/readyz").status_code == 200


def peak_memory_mb(bridge: Bridge) -> float:
    """The bridge process's peak resident memory (Linux /proc)."""
    assert bridge.proc is not None
    for line in Path(f"/proc/{bridge.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def save_and_wait(bridge: Bridge, path: Path, text: str) -> None:
    """Save a rule file that passes the check, and wait until the running bridge has loaded it."""
    before = bridge.get("/healthz").json()["rules"]["loaded_at"]
    path.write_text(text, encoding="utf-8")
    wait_until(lambda: (rules := bridge.get("/healthz").json()["rules"])["loaded_at"] != before
               and rules["error"] is None, timeout=30)
