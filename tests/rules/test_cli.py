"""`bridge rules ...` on a real SQLite store: import (refused when the check fails), history with a diff,
export that mirrors the set, rollback, and nothing published twice."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.config import settings_from_env

ROOT = Path(__file__).resolve().parents[2]
ORDERS = "shopify-orders.yaml"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'b.db'}")
    monkeypatch.delenv("BRIDGE_ENV", raising=False)
    monkeypatch.setattr("bridge.cli.configure", lambda *args: None)
    assert main(["migrate"]) == 0
    folder = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", folder)
    return folder


def test_import_history_export_and_rollback(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "list"]) == 1
    assert "no rules are published yet" in capsys.readouterr().err
    assert main(["rules", "import", str(env), "-m", "first"]) == 0
    assert "published version 1" in capsys.readouterr().out
    assert main(["rules", "import", str(env)]) == 0
    assert "nothing to publish" in capsys.readouterr().out

    text = (env / ORDERS).read_text()
    (env / ORDERS).write_text(text.replace('currency: "{{ currency }}"', 'currency: "{{ currency | lower }}"', 1))
    assert main(["rules", "import", str(env), "-m", "lower case"]) == 0
    out = capsys.readouterr().out
    assert f"+++ b/{ORDERS}" in out and "published version 2" in out

    (env / ORDERS).write_text(text.replace("to: omnisend event", "to: omnisnd event", 1))
    assert main(["rules", "import", str(env)]) == 1
    err = capsys.readouterr().err
    assert f"{ORDERS}:16:13: unknown destination `omnisnd`; did you mean `omnisend`?" in err
    assert "nothing was published" in err

    assert main(["rules", "history", "--diff", "2"]) == 0
    assert '+            currency: "{{ currency | lower }}"' in capsys.readouterr().out
    assert main(["rules", "rollback", "1"]) == 0
    assert "published version 3 with the files of version 1" in capsys.readouterr().out
    assert main(["rules", "history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:3]] == ["3", "2", "1"] and "rollback" in lines[0]
    assert lines[-1] == "3 of 3 versions"

    out_dir = tmp_path / "exported"
    out_dir.mkdir()
    (out_dir / "README.md").write_text("kept\n")
    (out_dir / "gone.yaml").write_text("rules: []\n")
    assert main(["rules", "export", str(out_dir)]) == 0
    assert "removed gone.yaml" in capsys.readouterr().out
    assert (out_dir / ORDERS).read_text() == text and (out_dir / "README.md").read_text() == "kept\n"
    assert not (out_dir / "gone.yaml").exists()
    assert sorted(p.name for p in out_dir.glob("*.yaml")) == sorted(p.name for p in (ROOT / "mappings").glob("*.yaml"))


def test_replay_runs_the_published_rules_not_the_folder(env: Path, tmp_path: Path) -> None:
    from bridge.ops.cli import running_rules
    from bridge.rules import files as ruleset

    changed = tmp_path / "changed"
    shutil.copytree(env, changed)
    (changed / ORDERS).write_text((changed / ORDERS).read_text() + "# published, not deployed\n")
    assert main(["rules", "import", str(changed)]) == 0
    settings = settings_from_env({"BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}",
                                  "BRIDGE_MAPPINGS_DIR": str(env)})
    assert running_rules(settings).digests == ruleset.digests(ruleset.read_folder(changed))  # type: ignore[attr-defined]
    folder_only = settings_from_env({"BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}",
                                     "BRIDGE_MAPPINGS_DIR": str(env), "BRIDGE_RULES_SOURCE": "folder"})
    assert running_rules(folder_only).digests == ruleset.digests(ruleset.read_folder(env))  # type: ignore[attr-defined]
