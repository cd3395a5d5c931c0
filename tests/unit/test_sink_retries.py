"""The sink retries what is retriable only, and stops retrying when the process stops.

The client here is a stand-in for the network (mocks only around the retry logic)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from gmv.schemas.catalogue import INGEST_LOG
from gmv.sinks.clickhouse import ClickHouseSink, dedup_token
from gmv.sinks.exceptions import SinkGaveUp, SinkRejected, SinkStopped, SinkUnavailable, classify
from tests.support.waiting import wait_for

NOW = datetime(2026, 11, 25, tzinfo=UTC)
ROW = ("s", "t", 0, 0, -1, "e", "view", "accepted", "", NOW)


class ScriptedClient:
    """Raises the scripted errors in turn, then succeeds."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.tokens: list[str] = []

    def raw_insert(self, *args, settings=None, **kwargs) -> None:
        self.tokens.append(settings["insert_deduplication_token"])
        if self.errors:
            raise self.errors.pop(0)


def sink_for(client: ScriptedClient, retry_for_s: float = 5.0) -> ClickHouseSink:
    sink = ClickHouseSink(lambda: client, "gmv", tables=[INGEST_LOG], retry_for_s=retry_for_s,
                          on_retry=lambda *a: None)
    sink.add("ingest_log", [ROW])
    return sink


def test_a_retried_insert_sends_the_same_dedup_token_and_a_new_flush_a_new_one():
    client = ScriptedClient(OperationalError("server went away"))
    sink = sink_for(client)
    sink.flush_sync()
    sink.add("ingest_log", [ROW])
    sink.flush_sync()
    assert client.tokens[0] == client.tokens[1] != client.tokens[2]
    assert dedup_token("t", [ROW]) != dedup_token("t", [ROW])


def test_errors_are_retriable_by_their_type():
    assert classify(OperationalError("connection refused")).retriable
    assert classify(ConnectionResetError()).retriable
    assert classify(DatabaseError("Code: 252. Too many parts", code=252)).retriable
    assert isinstance(classify(DatabaseError("Code: 62. Syntax error", code=62)), SinkRejected)
    assert not classify(DatabaseError("Code: 62. Syntax error", code=62)).retriable
    assert classify(TypeError("a bug")) is None
    assert classify(KeyError("a bug")) is None


def test_a_refused_statement_fails_at_once_without_retrying():
    client = ScriptedClient(DatabaseError("Code: 16. No such column", code=16))
    with pytest.raises(SinkRejected, match="No such column"):
        sink_for(client).flush_sync()
    assert len(client.tokens) == 1


def test_a_programming_error_fails_at_once_with_its_own_type():
    client = ScriptedClient(TypeError("unsupported operand"))
    with pytest.raises(TypeError, match="unsupported operand"):
        sink_for(client).flush_sync()
    assert len(client.tokens) == 1


def test_an_outage_longer_than_the_budget_gives_up_with_advice():
    client = ScriptedClient(*[OperationalError("down")] * 50)
    with pytest.raises(SinkGaveUp, match="restarting the worker once ClickHouse is healthy loses nothing"):
        sink_for(client, retry_for_s=0.5).flush_sync()
    assert 1 < len(client.tokens) < 50


def test_abort_ends_the_retries_of_a_write_in_progress():
    client = ScriptedClient(*[SinkUnavailable("down")] * 1000)
    sink = sink_for(client, retry_for_s=600)
    failure: list[BaseException] = []

    def write() -> None:
        try:
            sink.flush_sync()
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            failure.append(e)

    writer = threading.Thread(target=write)
    writer.start()
    wait_for(lambda: len(client.tokens) >= 2, 30, "the sink to retry", poll_s=0.01)
    assert sink.failing_since is not None
    sink.abort()
    writer.join(timeout=30)
    assert not writer.is_alive()
    assert len(failure) == 1 and isinstance(failure[0], SinkStopped)
    with pytest.raises(SinkStopped):  # and nothing more is written after it
        sink.add("ingest_log", [ROW])
        sink.flush_sync()
