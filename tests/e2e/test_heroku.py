"""`bridge serve` in production where the platform wipes the disk (Heroku: DYNO is set): on the PostgreSQL
of DATABASE_URL, as the add-on sets it (postgres://), it starts, says the database is new and delivers;
on a SQLite file it refuses before serving anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pgserver

from bridge.sign import shopify_headers

from .conftest import Fakes, bridge_env
from .harness import ROOT, SHOPIFY_SECRET, BridgeProcess, wait_until
from .received import omnisend_events


def heroku_env(fakes: Fakes, **database: str) -> dict[str, str]:
    # BRIDGE_DATABASE_URL empty unless named: the harness's SQLite file gives way to DATABASE_URL
    return bridge_env(fakes, BRIDGE_ENV="production", DYNO="web.1", **{"BRIDGE_DATABASE_URL": "", **database})


def test_on_heroku_postgres_the_bridge_starts_announces_the_new_database_and_delivers(
        tmp_path: Path, fakes: Fakes, pg_server: pgserver.Server) -> None:
    url = pg_server.create_database()
    try:
        bridge = BridgeProcess(tmp_path, heroku_env(fakes, DATABASE_URL=url.replace("postgresql://", "postgres://", 1)))
        bridge.start()
        try:
            database = httpx.get(bridge.url + "/healthz", timeout=5).json()["database"]
            assert database["new"] is True and database["created_at_utc"].endswith("Z")
            assert '"store.new_database"' in bridge.logs()
            body = (ROOT / "tests" / "payloads" / "shopify" / "orders_create.json").read_bytes()
            headers = shopify_headers(body, SHOPIFY_SECRET, "orders/create", event_id="evt-heroku-1")
            assert bridge.post("shopify", body, headers).status_code == 200
            wait_until(lambda: omnisend_events(fakes), timeout=30)
            assert httpx.get(bridge.url + "/healthz", timeout=5).json()["database"] == {
                "new": False, "created_at_utc": database["created_at_utc"]}
            assert not bridge.db_path.exists()  # nothing of the store on the dyno's disk
        finally:
            bridge.stop()
    finally:
        pg_server.drop_database(url)


def test_on_heroku_a_sqlite_file_is_refused_before_serving(tmp_path: Path, fakes: Fakes) -> None:
    bridge = BridgeProcess(tmp_path, heroku_env(fakes, BRIDGE_DATABASE_URL=f"sqlite:///{tmp_path}/bridge.db"))
    ran = subprocess.run([sys.executable, "-m", "bridge", "serve"], cwd=tmp_path, env=bridge.child_env(),
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 2
    assert "Heroku (DYNO is set) deletes the local disk" in ran.stderr and "Set DATABASE_URL" in ran.stderr
    assert not bridge.db_path.exists()
