"""Start-up in any order: wait for Kafka and ClickHouse to answer, with backoff, within a budget.

compose (or any orchestrator) starts services in any order, so a worker may come up before
its broker or its ClickHouse server. Each dependency is tried until it answers or
``GMV_STARTUP_WAIT_S`` runs out, pausing 0.5 s, 1 s, 2 s, ... up to ``GMV_STARTUP_BACKOFF_MAX_S``
between attempts. Every failed attempt prints one line naming the setting and the address;
running out of time raises ``DependencyUnavailable`` with one line saying what to check.
Whether an error is worth another attempt is decided by its type (``retriable``): a refused
connection is, a wrong password is not.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO, TypeVar

from gmv.schemas.errors import ServiceUnavailable
from gmv.sinks.exceptions import SinkError, classify
from gmv.streams.settings import Settings

T = TypeVar("T")
FIRST_PAUSE_S = 0.5


class DependencyUnavailable(ServiceUnavailable):
    """Kafka or ClickHouse did not answer within the start-up budget."""


def wait_for(what: str, setting: str, address: str, attempt: Callable[[], T], settings: Settings,
             retriable: Callable[[BaseException], bool], out: TextIO | None = None,
             clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> T:
    """``attempt()`` until it returns, ``retriable`` says its error is final, or the budget is spent."""
    out = out or sys.stderr
    budget = settings.startup_wait_s
    deadline = clock() + budget
    pause, n = FIRST_PAUSE_S, 0
    while True:
        n += 1
        try:
            with _quiet("kafka", "urllib3", "clickhouse_connect"):
                return attempt()
        except Exception as e:
            if not retriable(e):
                raise
            reason = _one_line(e)
            left = deadline - clock()
            if left <= 0:
                raise DependencyUnavailable(
                    f"{what} at {address} ({setting}) did not answer within {budget:.0f}s ({n} attempts; last: "
                    f"{reason}); check that it is up and reachable from here, or raise {settings.source('startup_wait_s')}"
                ) from None
            wait = min(pause, left)
            print(f"gmv: waiting for {what} at {address} ({setting}): attempt {n}: {reason}; "
                  f"next in {wait:.1f}s ({left:.1f}s left of {settings.source('startup_wait_s')}={budget:g})",
                  file=out, flush=True)
            sleep(wait)
            pause = min(pause * 2, settings.startup_backoff_max_s)


def _one_line(e: BaseException) -> str:
    """The error's first line, without the advice on what to check (the final line gives that)."""
    text = str(e).strip().splitlines()
    return text[0].split("; check ")[0][:300] if text else type(e).__name__


# -- Kafka ------------------------------------------------------------------------------------
class KafkaNotAnswering(ServiceUnavailable):
    """No bootstrap server answered a metadata request."""


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """kafka-python logs every failed connection at ERROR (62 lines for one unreachable address),
    urllib3 and clickhouse-connect warn about each refused request: our one line per attempt
    says it instead."""
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def kafka_answers(bootstrap: str, timeout_s: float = 5.0) -> None:
    """One attempt: a TCP connection to any bootstrap server, then a metadata request."""
    reachable = False
    errors: list[str] = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                reachable = True
                break
        except (OSError, ValueError) as e:
            errors.append(f"{server.strip()}: {e.strerror if isinstance(e, OSError) and e.strerror else e}")
    if not reachable:
        raise KafkaNotAnswering("; ".join(errors))
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000),
                                 client_id="gmv-startup")
    except KafkaError as e:
        raise KafkaNotAnswering(f"a port is open but no Kafka metadata came back ({type(e).__name__})") from None
    try:
        admin.list_topics()
    except KafkaError as e:
        raise KafkaNotAnswering(f"metadata request failed ({type(e).__name__})") from None
    finally:
        admin.close()




def wait_for_kafka(settings: Settings, out: TextIO | None = None) -> None:
    bootstrap = settings.kafka_bootstrap_servers or ""
    wait_for("Kafka", settings.source("kafka_bootstrap_servers"), bootstrap, lambda: kafka_answers(bootstrap), settings,
             lambda e: isinstance(e, KafkaNotAnswering), out)


# -- ClickHouse -------------------------------------------------------------------------------
def clickhouse_retriable(e: BaseException) -> bool:
    """Unreachable, overloaded or starting: try again. A refusal (a wrong password, a bad
    statement) is final: waiting cannot fix it."""
    err = e if isinstance(e, SinkError) else classify(e)
    return err is not None and err.retriable
