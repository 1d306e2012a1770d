"""Without a PostgreSQL the PostgreSQL tests skip and say why, except under CI=true, where they fail."""

from __future__ import annotations

import socket

import pgserver
import pytest


def refused_url() -> str:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        return f"postgresql://postgres@127.0.0.1:{s.getsockname()[1]}/postgres"


def test_no_server_skips_with_the_reason_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_TEST_DATABASE_URL", refused_url())
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="does not answer"):
        pgserver.find_server()


def test_no_server_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_TEST_DATABASE_URL", refused_url())
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        pgserver.find_server()
