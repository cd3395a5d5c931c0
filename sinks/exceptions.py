"""The sinks' errors. Whether to retry is decided by the error's type (``retriable``), the way
aiokafka's ``KafkaError.retriable`` does: ``classify`` maps what clickhouse-connect and the OS
raise onto this tree; anything it does not recognise (a TypeError, a KeyError: a bug) is
not a sink error at all and fails fast with its own traceback."""

from __future__ import annotations

from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from gmv.schemas.errors import GmvError


class SinkError(GmvError):
    """ClickHouse did not take a write."""

    retriable = False


class SinkUnavailable(SinkError):
    """ClickHouse is unreachable or overloaded for now: retried with backoff."""

    retriable = True


class SinkRejected(SinkError):
    """ClickHouse refused the statement (schema, syntax, types): retrying cannot help."""


class SinkGaveUp(SinkError):
    """ClickHouse stayed unavailable for the whole retry budget (``sink_retry_for_s``)."""


class SinkStopped(SinkError):
    """The process is stopping: retries were abandoned and nothing after the write was committed."""


class RefreshYielded(Exception):  # noqa: N818 (not an error: no retry, no failure; ``classify`` passes it on)
    """A slow refresh stopped between two statements for a stop or a rebalance, which then confirm what
    is stored and record the slow work as owed (``gmv.sinks.owed``): nothing it did is undone, and
    everything it had still to do is due again."""


# Server error codes that say "not now" rather than "never": timeouts, overload, network,
# replicas and keeper trouble, a server shutting down.
RETRIABLE_CODES = frozenset({
    3,    # UNEXPECTED_END_OF_FILE
    32,   # ATTEMPT_TO_READ_AFTER_EOF
    159,  # TIMEOUT_EXCEEDED
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    203,  # NO_FREE_CONNECTION
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    236,  # ABORTED
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY
    252,  # TOO_MANY_PARTS
    285,  # TOO_FEW_LIVE_REPLICAS
    319,  # UNKNOWN_STATUS_OF_INSERT
    394,  # QUERY_WAS_CANCELLED
    425,  # SYSTEM_ERROR
    473,  # DEADLOCK_AVOIDED
    999,  # KEEPER_EXCEPTION
    1000,  # POCO_EXCEPTION
})


def classify(exc: BaseException) -> SinkError | None:
    """The sink error an exception stands for, or None if it is not one (a programming error)."""
    if isinstance(exc, SinkError):
        return exc
    if isinstance(exc, OperationalError | ConnectionError | TimeoutError):
        return SinkUnavailable(str(exc))
    if isinstance(exc, DatabaseError):
        code = getattr(exc, "code", None)
        return SinkUnavailable(str(exc)) if code in RETRIABLE_CODES else SinkRejected(str(exc))
    if isinstance(exc, OSError):  # sockets, DNS: the transport, not our code
        return SinkUnavailable(str(exc))
    return None
