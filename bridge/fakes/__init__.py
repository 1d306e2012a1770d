"""Fake Omnisend, Ometria and Omneo HTTP servers that enforce the documented contracts, and a helper to
serve any ASGI app on a loopback port. Used by tests and by `python -m bridge.fakes` sandboxes."""

from __future__ import annotations

from bridge.fakes.ometria import create_ometria_app
from bridge.fakes.omneo import create_omneo_app
from bridge.fakes.omnisend import create_omnisend_app
from bridge.fakes.server import serve_in_thread

__all__ = ["create_ometria_app", "create_omneo_app", "create_omnisend_app", "serve_in_thread"]
