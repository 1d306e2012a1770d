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


def test_the_ingest_sweep_picks_each_servers_own_peak_and_is_shown_in_numeric_order() -> None:
    import bench.ingest

    assert bench.ingest.best({16: 15_000.0, 32: 17_000.0, 128: 14_000.0}) == 32
    assert bench.ingest.best({16: 7_000.0, 64: 9_000.0, 128: 9_900.0}) == 128
    # As saved: JSON keys are strings, sorted as text ("128" before "16").
    r = {"connections": 128, "bare_connections": 32,
         "sweep": {"bare": {"128": 14_000.0, "16": 16_000.0, "32": 17_000.0},
                   "bridge": {"128": 9_800.0, "16": 7_000.0, "32": 8_500.0}}}
    table = bench.report.sweep_table(r)
    assert table[1] == "| sweep, 2 s each (requests/s) | -c16 | -c32 | -c128 |"
    assert table[-1] == "| ratio at the same count | 0.44 | 0.50 | 0.70 |"
    assert "peak" in bench.report.connections_text(r)
    assert bench.report.connections_text({"connections": 32}) == "Both servers with `-c32`."


def test_a_pick_at_the_top_of_the_sweep_is_called_out() -> None:
    sweep = {"bare": {"16": 1.0, "256": 0.5}, "bridge": {"16": 0.5, "256": 1.0}}
    assert "bridge peaked at the sweep's top count (256)" in bench.report.edge_warning(
        {"connections": 256, "bare_connections": 16, "sweep": sweep})
    assert bench.report.edge_warning({"connections": 16, "bare_connections": 16, "sweep": sweep}) == ""
