"""The root of every error the product raises on purpose, and its first branches.

A command catches ``GmvError`` and prints its message as one line (it says what went wrong and what
to do), then exits 1; anything else is a bug and keeps its traceback. Each package's own errors sit
under one of these (``gmv.sinks.exceptions``, ``gmv.alerts.exceptions``, ...), and where a retry may
help the error's type says so (``retriable``), as aiokafka's ``KafkaError.retriable`` does.
"""

from __future__ import annotations


class GmvError(Exception):
    """Something the user can act on: the message says what."""

    retriable = False


class ConfigurationError(GmvError):
    """A setting, a flag or a file the user gave is wrong (a rules file, a dimension file, a port)."""


class ServiceUnavailable(GmvError):
    """Kafka or ClickHouse cannot be reached, or another process holds what this one needs."""

    retriable = True


class NotFound(GmvError):
    """What was asked for is not stored (an order, a database)."""


class RunFailed(GmvError):
    """A command could not finish its job (the worker stopped, input could not be produced or was
    skipped): nothing it printed so far is a complete answer."""
