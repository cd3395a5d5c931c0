"""Errors of the alerting package: configuration, and receivers that did not take an alert."""

from __future__ import annotations

from gmv.schemas.errors import ConfigurationError, GmvError


class AlertError(GmvError):
    """Base of the alerting errors."""


class RulesError(AlertError, ConfigurationError):
    """The rules file is missing, not TOML, or names a field wrongly; the message names file and field."""


class DeliveryError(AlertError):
    """A receiver did not take the alerts. ``retriable`` says whether trying again can help
    (a timeout, a refused connection, a 5xx or 429) or not (any other 4xx: the payload is wrong)."""

    def __init__(self, message: str, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable
