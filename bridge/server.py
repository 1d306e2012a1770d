"""The web server: uvicorn, told of a stop signal the moment it arrives so the worker stops with it."""

from __future__ import annotations

import asyncio
import contextlib
from types import FrameType

import uvicorn

from bridge.app import Bridge


class BridgeServer(uvicorn.Server):
    """uvicorn's server, which also tells the bridge the moment a stop signal arrives: its worker
    stops taking work while uvicorn lets open requests finish, both within the stop's bound."""

    def __init__(self, config: uvicorn.Config, bridge: Bridge) -> None:
        super().__init__(config)
        self.bridge = bridge

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        with contextlib.suppress(RuntimeError):  # no loop running yet: the lifespan's end stops the worker
            asyncio.get_running_loop().call_soon_threadsafe(self.bridge.stop_soon)
