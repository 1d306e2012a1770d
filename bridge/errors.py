"""The exception tree, split by what the caller can do about it.

    BridgeError
    ├── ConfigError          the operator must fix settings or rules; never retried
    │   └── RulesError       a rule file fails its check (carries every problem found)
    ├── RejectedWebhook      the sender gets a 4xx; nothing is stored
    │   ├── SignatureError   401: missing or wrong signature, stale timestamp
    │   ├── MalformedWebhook 400: signed, but no genuine delivery looks like it (bridge.sources.shape)
    │   ├── PayloadTooLarge  413
    │   └── UnknownSource    404
    └── StoreUnavailable     the store cannot commit: answer 503 so the sender retries
        └── MigrationError   the schema cannot be brought to this version's
"""

from __future__ import annotations


class BridgeError(Exception):
    """Root of every error the bridge raises on purpose."""


class ConfigError(BridgeError):
    """Settings or rules are wrong; the operator must fix them."""


class RulesError(ConfigError):
    """One or more rule files fail the check. `problems` holds each message."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class RejectedWebhook(BridgeError):
    status_code = 400
    outcome = "rejected_other"  # the label counted in bridge_webhooks_received_total


class SignatureError(RejectedWebhook):
    status_code = 401
    outcome = "rejected_signature"


class MalformedWebhook(RejectedWebhook):
    status_code = 400


class PayloadTooLarge(RejectedWebhook):
    status_code = 413
    outcome = "too_large"


class UnknownSource(RejectedWebhook):
    status_code = 404
    outcome = "unknown_source"


class StoreUnavailable(BridgeError):
    """The store could not commit; nothing was acknowledged."""


class MigrationError(StoreUnavailable):
    """The database's schema cannot be brought to what this version needs."""
