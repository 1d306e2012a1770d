"""The web console (bridge.console.app)."""
