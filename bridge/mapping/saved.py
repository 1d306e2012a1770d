"""The last good rules, kept on disk, so that a restart with a broken file keeps running them.

A running bridge keeps its rules when a file is saved broken (`reload.RulesHolder`). A
restart (a deploy, a PaaS's daily restart, a crash) used to lose them: the broken folder
was all there was, no rules loaded and every event waited. So each set that loads is
copied here, and a start whose folder does not load runs the copy instead.

    <base>/                     BRIDGE_LAST_GOOD_RULES_DIR (default: beside the database)
        CURRENT                 the name of the copy in use, replaced atomically
        <digest>/               the rule files as they were when they loaded
            *.yaml, *.yml
            .saved.json         when, and from which folder

Only the rule files are copied, not example payloads: a copy loads without them, as a
deployment that ships mappings/ without tests/ does. One copy is kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from bridge.mapping.loader import rule_files

CURRENT = "CURRENT"
META = ".saved.json"


@dataclass(frozen=True)
class SavedCopy:
    path: Path  # the folder to load
    saved_at: float
    source: str  # the folder it was copied from


def copy_name(digests: Mapping[str, str]) -> str:
    return hashlib.sha256(repr(sorted(digests.items())).encode()).hexdigest()[:16]


def latest(base: Path) -> SavedCopy | None:
    """The copy CURRENT names, or None when there is none (or it cannot be read)."""
    try:
        name = (base / CURRENT).read_text().strip()
        meta = json.loads((base / name / META).read_text())
        return SavedCopy(base / name, float(meta["saved_at"]), str(meta["source"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(base: Path, directory: Path, digests: Mapping[str, str]) -> SavedCopy | None:
    """Copy `directory`'s rule files as the last good set; None when that copy is already the
    current one, or when the files are no longer the ones that loaded (`digests`, file name ->
    sha256): saved again since, they wait for their own load.

    Written to a temporary folder, synced, renamed, and only then named in CURRENT, so a
    crash at any point leaves the previous copy or the new one, never half of one.
    """
    name = copy_name(digests)
    current = latest(base)
    if current is not None and current.path.name == name:
        return None
    files = {path.name: path.read_bytes() for path in rule_files(directory)}
    if {n: hashlib.sha256(data).hexdigest() for n, data in files.items()} != dict(digests):
        return None
    base.mkdir(parents=True, exist_ok=True)
    target = base / name
    if not target.is_dir():
        staging = base / f".{name}.{os.getpid()}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for file_name, data in files.items():
            _write(staging / file_name, data)
        saved_at = time.time()
        _write(staging / META, json.dumps({"saved_at": saved_at, "source": str(directory)}).encode())
        _sync_dir(staging)
        try:
            os.replace(staging, target)
        except OSError:  # made meanwhile by another process from the same files
            shutil.rmtree(staging, ignore_errors=True)
            if not target.is_dir():
                raise
    _write(base / f".{CURRENT}.{os.getpid()}.tmp", name.encode())
    os.replace(base / f".{CURRENT}.{os.getpid()}.tmp", base / CURRENT)
    _sync_dir(base)
    for other in base.iterdir():  # the copies before this one, and what a crash left half-written
        if other.is_dir() and other.name != name:
            shutil.rmtree(other, ignore_errors=True)
    return latest(base)


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _sync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened for fsync
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
