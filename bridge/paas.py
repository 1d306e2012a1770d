"""Where the bridge runs: the PaaS its environment names, and whether a SQLite file there outlives a restart.

What each platform sets, and what it does to the local disk:

- Heroku sets `DYNO`. "We delete all changes to the local filesystem when we restart the
  dyno", at least daily, and there are no volumes: SQLite there always loses its data.
- Render sets `RENDER=true`. A service's disk is lost at every deploy, restart or spin-down
  unless a persistent disk is mounted (paid instances only; free ones can have none). No
  variable names the plan or the disk, so the bridge looks at the database's folder.
- Fly.io sets `FLY_APP_NAME`, Railway `RAILWAY_PROJECT_ID`: the same, with volumes.

A volume is a mount point, the one thing a process can see: on Render, Fly.io and Railway the
SQLite file must be under one (any folder between the file and `/` that is a mount point).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Platform:
    name: str
    variable: str  # the environment variable that tells
    volumes: bool  # whether a persistent volume can be mounted at all


PLATFORMS = (
    Platform("Heroku", "DYNO", volumes=False),
    Platform("Render", "RENDER", volumes=True),
    Platform("Fly.io", "FLY_APP_NAME", volumes=True),
    Platform("Railway", "RAILWAY_PROJECT_ID", volumes=True),
)


def detect(env: Mapping[str, str]) -> Platform | None:
    """The platform whose variable is set, or None (a machine, a container, a platform not known here)."""
    return next((p for p in PLATFORMS if env.get(p.variable)), None)


def on_volume(path: Path) -> bool:
    """Whether a folder between `path` and `/` (excluded) is a mount point."""
    folder = path.resolve().parent
    return any(os.path.ismount(f) for f in (folder, *folder.parents) if f != Path(f.anchor))


def sqlite_loss(platform: Platform | None, path: Path) -> str | None:
    """Why a SQLite file at `path` would be lost on `platform`, or None when nothing says it would."""
    if platform is None:
        return None
    told = f"{platform.name} ({platform.variable} is set)"
    if not platform.volumes:
        return f"{told} deletes the local disk at every restart, at least daily"
    if not on_volume(path):
        return (f"{told} loses a disk that is not a mounted volume at every deploy or restart, "
                f"and no folder above {path} is a mount point: put the file on a mounted volume")
    return None
