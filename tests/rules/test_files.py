"""A rule set's names, sizes and digests; folders made for a version, and exported."""

from __future__ import annotations

from pathlib import Path

from bridge.mapping.saved import copy_name, files_digests
from bridge.rules import files as ruleset


def test_what_cannot_be_saved_is_named() -> None:
    assert ruleset.problems({"orders.yaml": "rules: []\n", "Shop_2.YML": "x"}) == []
    found = ruleset.problems({"../evil.yaml": "x", "notes.txt": "x", "nul.yaml": "a\x00b",
                              "big.yaml": "x" * (ruleset.MAX_FILE_BYTES + 1)})
    assert any(p.startswith("'../evil.yaml': a rule file's name") for p in found)
    assert any(p.startswith("'notes.txt'") for p in found)
    assert any(p.startswith("nul.yaml: holds a NUL character") for p in found)
    assert any(p.startswith("big.yaml: ") and "split it" in p for p in found)
    many = {f"f{n}.yaml": "x" * (ruleset.MAX_FILE_BYTES - 1) for n in range(10)}
    assert any("MB of text" in p for p in ruleset.problems(many))


def test_a_materialized_version_is_the_files_and_its_digest_is_the_last_good_copys_name(tmp_path: Path) -> None:
    files = {"a.yaml": "rules: []\n", "b.yml": "é\n"}
    folder = ruleset.materialize(files, tmp_path)
    assert folder.name == ruleset.digest(files) == copy_name(files_digests(folder))
    assert ruleset.read_folder(folder) == files
    (folder / "a.yaml").write_text("changed by hand\n")
    assert ruleset.read_folder(ruleset.materialize(files, tmp_path)) == files  # made again when not intact
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]  # no staging left behind


def test_export_mirrors_the_set_and_leaves_other_files(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("guide\n")
    (tmp_path / "old.yaml").write_text("rules: []\n")
    removed = ruleset.export({"new.yaml": "rules: []\n"}, tmp_path)
    assert removed == ["old.yaml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "new.yaml"]


def test_prune_removes_only_version_folders_nobody_kept(tmp_path: Path) -> None:
    import os

    old = ruleset.materialize({"a.yaml": "1\n"}, tmp_path)
    kept = ruleset.materialize({"a.yaml": "2\n"}, tmp_path)
    other = tmp_path / "not-ours"
    other.mkdir()
    week_ago = 1_800_000_000.0 - ruleset.KEEP_UNUSED_SECONDS - 1
    for folder in (old, kept, other):
        os.utime(folder, (week_ago, week_ago))
    os.utime(kept, (1_800_000_000.0, 1_800_000_000.0))  # what ruleset.keep does at every poll
    assert ruleset.prune(tmp_path, 1_800_000_000.0) == [old.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([kept.name, "not-ours"])
