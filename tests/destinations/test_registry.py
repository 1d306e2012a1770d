from __future__ import annotations

import pytest

from bridge.config import settings_from_env
from bridge.destinations.ometria import Ometria
from bridge.destinations.omnisend import Omnisend
from bridge.destinations.registry import build_destinations
from bridge.errors import ConfigError
from bridge.settings import DestinationSettings


def test_builds_every_destination_configured_or_not() -> None:
    settings = settings_from_env({"OMNISEND_API_KEY": "k", "OMNISEND_REQUESTS_PER_MINUTE": "100",
                                  "OMETRIA_REQUESTS_PER_SECOND": "4", "OMNISEND_VERSION": "2026-03-15"})
    built = build_destinations(settings)
    assert isinstance(built["omnisend"], Omnisend) and isinstance(built["ometria"], Ometria)
    assert built["omnisend"].configured is True and built["ometria"].configured is False
    assert built["omnisend"].state()["rate_limit"]["limit"] == 100
    assert built["ometria"].state()["rate_limit"]["limit"] == 4
    assert built["omnisend"].max_batch == 100 and built["ometria"].max_batch == 100


def test_unknown_destination_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        build_destinations({"mailchimp": DestinationSettings("mailchimp", "https://x")})
