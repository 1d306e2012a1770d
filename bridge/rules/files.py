"""A rule set as the store keeps it: file name -> text. Its names and sizes, its digest, and the folders
it is read from, written to (`bridge rules export`) and run from (a folder per published version)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from bridge.mapping.rulefile import rule_files
from bridge.mapping.saved import copy_name

RuleFiles = dict[str, str]

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.(yaml|yml)", re.IGNORECASE)
MAX_FILE_BYTES = 512 * 1024
MAX_FILES = 200
MAX_SET_BYTES = 4 * 1024 * 1024


def problems(files: Mapping[str, str]) -> list[str]:
    """What makes a set unsavable, whatever its contents: names, sizes, count, text that is not text."""
    found = []
    if len(files) > MAX_FILES:
        found.append(f"a rule set holds at most {MAX_FILES} files, this one {len(files)}: put rules together")
    total = sum(len(text.encode("utf-8", "surrogatepass")) for text in files.values())
    if total > MAX_SET_BYTES:
        found.append(f"a rule set holds at most {MAX_SET_BYTES // 2**20} MB of text, this one {total // 1024} KB")
    for name, text in files.items():
        if not NAME.fullmatch(name):
            found.append(f"{name[:120]!r}: a rule file's name is letters, digits, '.', '_' or '-' and ends in "
                         ".yaml (e.g. shopify-orders.yaml)")
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_FILE_BYTES:
            found.append(f"{name[:120]}: {size} bytes, over the {MAX_FILE_BYTES // 1024} KB a rule file may hold: "
                         "split it into several files")
        if "\x00" in text:
            found.append(f"{name[:120]}: holds a NUL character, which a text file cannot: save it again as text")
    return found


def digests(files: Mapping[str, str]) -> dict[str, str]:
    return {name: hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() for name, text in files.items()}


def digest(files: Mapping[str, str]) -> str:
    """Names a set's texts: the name the last good copy of the same files gets (bridge.mapping.saved)."""
    return copy_name(digests(files))


def read_folder(directory: Path) -> RuleFiles:
    """The rule files of a folder (names ending in .yaml or .yml, as the loader reads them).
    Raises OSError when it cannot be read and ValueError for a file that is not UTF-8."""
    files = {}
    for path in rule_files(directory):
        try:
            files[path.name] = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    return files


def export(files: Mapping[str, str], directory: Path) -> list[str]:
    """Make `directory`'s rule files exactly `files` (other files, such as a README, are left);
    returns the rule files removed."""
    directory.mkdir(parents=True, exist_ok=True)
    removed = []
    for path in rule_files(directory):
        if path.name not in files:
            path.unlink()
            removed.append(path.name)
    for name, text in files.items():
        _write_atomically(directory / name, text.encode("utf-8"))
    return removed


def materialize(files: Mapping[str, str], base: Path) -> Path:
    """A folder holding exactly `files`, named by their digest under `base`, for the loader and the
    mapping process to read. Made in a staging folder and renamed, so a reader never sees half of one;
    instances sharing `base` share the folder."""
    target = base / digest(files)
    if target.is_dir() and _holds(target, files):
        return target
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=base))
    for name, text in files.items():
        (staging / name).write_bytes(text.encode("utf-8"))
    if target.is_dir() and not _holds(target, files):  # a damaged copy; one made meanwhile is kept
        shutil.rmtree(target, ignore_errors=True)
    try:
        os.replace(staging, target)
    except OSError:  # made meanwhile by another instance (a folder that is there is never replaced)
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _holds(folder: Path, files: Mapping[str, str]) -> bool:
    try:
        return digests(read_folder(folder)) == digests(files)
    except (OSError, ValueError):
        return False


KEEP_UNUSED_SECONDS = 7 * 86400.0  # a version's folder no instance touched for this long is removed
_DIGEST = re.compile(r"[0-9a-f]{16}")


def keep(folder: Path) -> None:
    """Mark a version's folder as in use (each instance does, for the version it runs, at every poll)."""
    with contextlib.suppress(OSError):
        os.utime(folder)


def prune(base: Path, now: float) -> list[str]:
    """Remove the version folders under `base` that no instance marked in use for KEEP_UNUSED_SECONDS,
    and staging a crash left; nothing else there. Returns the names removed."""
    removed = []
    with contextlib.suppress(OSError):
        for folder in base.iterdir():
            with contextlib.suppress(OSError):
                stale = now - folder.stat().st_mtime > KEEP_UNUSED_SECONDS
                ours = _DIGEST.fullmatch(folder.name) or (folder.name.startswith(".") and folder.name.endswith(".tmp"))
                if stale and ours and folder.is_dir():
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder.name)
    return removed


def runtime_base() -> Path:
    """Where the folders of published versions are made: a temporary folder, writable on any platform."""
    return Path(tempfile.gettempdir()) / f"bridge-rules-{os.getuid() if hasattr(os, 'getuid') else 0}"


def _write_atomically(path: Path, data: bytes) -> None:
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with open(fd, "wb") as f:
            f.write(data)
        os.replace(staging, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(staging)
