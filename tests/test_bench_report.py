"""bench/report.py: docs/benchmarks.md names the machine that measured, however often it is re-rendered."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import bench.common
import bench.report

MEASURED_ON = {"cpu": "Measuring CPU", "cores": 2, "memory_gib": 23.5, "python": "3.11.7", "kernel": "6.1"}
RENDERED_ON = {"cpu": "Rendering CPU", "cores": 8, "memory_gib": 64.0, "python": "3.12.1", "kernel": "6.9"}


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(bench.common, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(bench.report, "DOC", tmp_path / "benchmarks.md")
    return tmp_path


def render(monkeypatch: pytest.MonkeyPatch, command: str, on: dict[str, object]) -> None:
    monkeypatch.setattr(bench.report, "machine", lambda: on)
    monkeypatch.setattr(sys, "argv", ["report", "--command", command, "--seconds", "61"])
    bench.report.main()


def test_a_run_records_its_machine_and_a_re_render_keeps_it(results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    render(monkeypatch, "bench/run ingest", MEASURED_ON)
    assert json.loads((results / "results" / "run.json").read_text())["machine"] == MEASURED_ON

    render(monkeypatch, "bench/run report", RENDERED_ON)
    doc = (results / "benchmarks.md").read_text()
    assert "Measured by `bench/run ingest`" in doc and "in 1 min 1 s" in doc
    assert "Measuring CPU, 2 cores" in doc and "Rendering CPU" not in doc


def test_a_re_render_without_a_recorded_run_names_the_machine_it_runs_on(results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    render(monkeypatch, "bench/run report", RENDERED_ON)
    assert "Rendering CPU, 8 cores" in (results / "benchmarks.md").read_text()
