"""The last good rules, kept on disk, so that a restart with a broken file keeps running them.

A running bridge keeps its rules when a file is saved broken (`reload.RulesHolder`). A
restart (a deploy, a PaaS's daily restart, a crash) used to lose them: the broken folder
was all there was, no rules loaded and every event waited. So each set that loads is
copied here, and a start whose folder does not load runs the copy instead.

    <base>/                     BRIDGE_LAST_GOOD_RULES_DIR (default: beside the database)
        CURRENT                 the name of the copy in use, replaced atomically
        <digest>/               the rule files as they were when they loaded
            *.yaml, *.yml
            .saved.json         when, from which folder, and each file's sha256

Only the rule files are copied, not example payloads: a copy loads without them, as a
deployment that ships mappings/ without tests/ does. One copy is kept, and nothing in <base>
but the copies and their staging is ever removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bridge.mapping.rulefile import rule_files

CURRENT = "CURRENT"
META = ".saved.json"


# The only names this module makes in <base>, and so the only ones it ever removes: the folder
# may be shared with other files (BRIDGE_LAST_GOOD_RULES_DIR=/data), and those are not ours.
_COPY = re.compile(r"[0-9a-f]{16}")
_STAGING = re.compile(r"\.([0-9a-f]{16}|CURRENT)\..+\.tmp")
STALE_STAGING_SECONDS = 3600.0  # a staging folder this old was left by a crash, not by a save in progress


@dataclass(frozen=True)
class SavedCopy:
    path: Path  # the folder to load
    saved_at: float
    source: str  # the folder it was copied from


def copy_name(digests: Mapping[str, str]) -> str:
    return hashlib.sha256(repr(sorted(digests.items())).encode()).hexdigest()[:16]


def latest(base: Path) -> SavedCopy | None:
    """The copy CURRENT names, or None when there is none, it cannot be read, or its files are
    not the ones it was saved with (one missing, or changed by hand)."""
    try:
        name = (base / CURRENT).read_text().strip()
        if not _COPY.fullmatch(name):
            return None
        meta = json.loads((base / name / META).read_text())
        if not _intact(base / name, meta.get("files")):
            return None
        return SavedCopy(base / name, float(meta["saved_at"]), str(meta["source"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _intact(folder: Path, files: Mapping[str, str] | None) -> bool:
    if files is None:  # saved before .saved.json listed its files (2026-12-03)
        return True
    return _digests({path.name: path.read_bytes() for path in rule_files(folder)}) == dict(files)


def files_digests(folder: Path) -> dict[str, str]:
    """Each rule file's sha256, as LoadedRules.digests lists them ({} when the folder cannot be read)."""
    try:
        return _digests({path.name: path.read_bytes() for path in rule_files(folder)})
    except OSError:
        return {}


def _digests(files: Mapping[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def save(base: Path, directory: Path, digests: Mapping[str, str]) -> SavedCopy | None:
    """Copy `directory`'s rule files as the last good set; None when that copy is already the
    current one, or when the files are no longer the ones that loaded (`digests`, file name ->
    sha256): saved again since, they wait for their own load.

    Written to a staging folder of its own (two saves at once never share one), synced, renamed,
    and only then named in CURRENT, so a crash at any point leaves the previous copy or the new
    one, never half of one. A copy whose files do not match its list is written again.
    """
    name = copy_name(digests)
    current = latest(base)
    if current is not None and current.path.name == name:
        return None
    files = {path.name: path.read_bytes() for path in rule_files(directory)}
    if not files or _digests(files) != dict(digests):
        return None
    base.mkdir(parents=True, exist_ok=True)
    target = base / name
    if target.is_dir() and not _intact_copy(target):
        shutil.rmtree(target, ignore_errors=True)
    if not target.is_dir():
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=base))
        for file_name, data in files.items():
            _write(staging / file_name, data)
        meta = {"saved_at": time.time(), "source": str(directory), "files": dict(digests)}
        _write(staging / META, json.dumps(meta).encode())
        _sync_dir(staging)
        try:
            os.replace(staging, target)
        except OSError:  # made meanwhile by another save of the same files
            shutil.rmtree(staging, ignore_errors=True)
            if not target.is_dir():
                raise
        _sync_dir(base)  # the copy's name is on disk before CURRENT names it
    fd, pointer = tempfile.mkstemp(prefix=f".{CURRENT}.", suffix=".tmp", dir=base)
    with open(fd, "wb") as f:
        f.write(name.encode())
        f.flush()
        os.fsync(f.fileno())
    os.replace(pointer, base / CURRENT)
    _sync_dir(base)
    _remove_old(base, keep=name)
    return latest(base)


def _intact_copy(folder: Path) -> bool:
    try:
        return _intact(folder, json.loads((folder / META).read_text()).get("files"))
    except (OSError, ValueError, AttributeError):
        return False


def _remove_old(base: Path, keep: str) -> None:
    """The copies before `keep`, and staging a crash left behind; nothing else in `base`."""
    now = time.time()
    for other in base.iterdir():
        with contextlib.suppress(OSError):
            if _COPY.fullmatch(other.name) and other.name != keep and other.is_dir():
                shutil.rmtree(other, ignore_errors=True)
            elif _STAGING.fullmatch(other.name) and now - other.stat().st_mtime > STALE_STAGING_SECONDS:
                if other.is_dir():
                    shutil.rmtree(other, ignore_errors=True)
                else:
                    other.unlink()


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
