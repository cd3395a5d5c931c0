"""Opens what the settings point at: the embedded pair, or a real Kafka and ClickHouse server."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import secrets
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client
from pydantic import SecretStr

from gmv.schemas.errors import ConfigurationError, NotFound, ServiceUnavailable
from gmv.sinks.clickhouse import ClickHouseSink, connect, redact_dsn
from gmv.sinks.migrations import migrate
from gmv.sinks.query_limits import QueryLimits
from gmv.sinks.readonly import (
    Readers,
    ReadonlyClients,
    SqlBusy,
    SqlFailed,
    cancel_tagged,
    connect_readonly,
    run_readonly_sql,
)
from gmv.sinks.sql_formats import as_requested, engine_format
from gmv.sinks.sql_policy import read_statement
from gmv.streams.settings import Settings
from gmv.tools.embedded import (
    ClickHouseOwnership,
    EmbeddedKafka,
    ensure_topics,
    existing_partitions,
)
from gmv.tools.startup import clickhouse_retriable, wait_for, wait_for_kafka

log = logging.getLogger(__name__)

class ClickHouseBusy(ServiceUnavailable):
    """Another process owns the embedded ClickHouse data path."""


def chdb_path(dsn: str) -> Path | None:
    return Path(dsn.removeprefix("chdb://")) if dsn.startswith("chdb://") else None


WEB_TOKEN_FILE = "web-token"


def web_token(settings: Settings) -> SecretStr:
    """``GMV_WEB_TOKEN``, or the token in ``<data_dir>/web-token``, generated there (mode 0600) the
    first time: every gmv process on the same data dir (``gmv sql``, the printed dashboard link)
    finds it without the user typing it."""
    if settings.web_token is not None:
        return settings.web_token
    path = settings.data_path / WEB_TOKEN_FILE
    if not path.exists():
        _generate_token(path)
    token = path.read_text(encoding="ascii").strip()
    if not token:
        raise ConfigurationError(f"{path} is empty; delete it (a new token is generated) or set GMV_WEB_TOKEN")
    return SecretStr(token)


def _generate_token(path: Path) -> None:
    """Written whole under a name of its own, then linked into place: the file appears with its token
    in it, so two processes starting at once on one data dir (two workers) agree on one token; the
    second sees the first's file (measured: an O_EXCL create let the other read it still empty). A file
    system without hard links gets the exclusive create (a race there can still read an empty file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{WEB_TOKEN_FILE}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(token)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process was first: its token it is
        except OSError:  # no hard links here
            with contextlib.suppress(FileExistsError), os.fdopen(
                    os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="ascii") as fh:
                fh.write(token)
    finally:
        os.unlink(tmp)


def dashboard_link(settings: Settings, port: int) -> str:
    """The dashboard's address with the access token in its fragment (which the browser keeps to
    itself: it is not sent to the server, nor in a Referer). Only a token generated into the data
    dir is spelled out (the user's own file, as Jupyter prints its link); one set by GMV_WEB_TOKEN
    is a configured secret and is never printed."""
    host = "127.0.0.1" if settings.web_host in ("0.0.0.0", "::", "") else settings.web_host
    token = web_token(settings).get_secret_value()
    path = settings.data_path / WEB_TOKEN_FILE
    generated = path.is_file() and path.read_text(encoding="ascii").strip() == token
    return f"http://{host}:{port}/dashboard/#token={token if generated else '<GMV_WEB_TOKEN>'}"


class Runtime:
    """Kafka and ClickHouse for one gmv process; ``close`` stops what it started."""

    def __init__(self, settings: Settings, wrap_client: Callable[[Client], Client] | None = None) -> None:
        """``wrap_client`` wraps the client the sink writes through (the chaos harness and the
        outage tests fail its writes on demand; production passes none)."""
        self.settings = settings.model_copy(update={"web_token": web_token(settings)})
        self.wrap_client = wrap_client
        self.kafka: EmbeddedKafka | None = None
        self.ownership: ClickHouseOwnership | None = None
        self._client: Client | None = None
        self._readers: Readers | None = None
        self._more_clients: list[Client] = []  # the sinks' refresh sessions, closed with the rest

    # -- Kafka ------------------------------------------------------------------------
    def topic_partitions(self) -> dict[str, int]:
        s = self.settings
        names = [*s.source_topics, s.dlq_topic, s.unrouted_topic, s.rekeyed_topic, s.changelog_topic]
        return {**{name: s.partitions for name in names}, s.rows_topic: 1, s.alerts_topic: 1}

    def open_kafka(self) -> str:
        """Start or reach the broker and create missing topics. ``self.settings`` may change here:
        source topics that already exist (a producer created them first, with the broker's default
        partition count) set ``partitions``, unless GMV_PARTITIONS says otherwise."""
        s = self.settings
        if s.embedded_kafka:
            self.kafka = EmbeddedKafka(s.data_path, s.kafka_port)
            bootstrap = self.kafka.start()
        else:
            bootstrap = s.kafka_bootstrap_servers or ""
            wait_for_kafka(s)
        self._adopt_partitions(bootstrap)
        s = self.settings
        ensure_topics(bootstrap, self.topic_partitions(), s.replication_factor,
                      compacted=frozenset({s.changelog_topic}),
                      retention_ms=s.topic_retention_ms)
        return bootstrap

    def _adopt_partitions(self, bootstrap: str) -> None:
        s = self.settings
        if "partitions" in s.model_fields_set:
            return  # set by the user: a mismatch is theirs to resolve (ensure_topics says how)
        counts = set(existing_partitions(bootstrap, list(s.source_topics)).values())
        if len(counts) == 1 and (n := counts.pop()) != s.partitions:
            print(f"gmv: the source topics exist with {n} partition(s); using GMV_PARTITIONS={n} "
                  "(set GMV_PARTITIONS to override)", file=sys.stderr, flush=True)
            self.settings = s.model_copy(update={"partitions": n})

    # -- ClickHouse -----------------------------------------------------------------------
    def open_clickhouse(self, wait_s: float = 15.0) -> Client:
        """Open (and own, if embedded) ClickHouse and apply migrations."""
        s = self.settings
        dsn = s.resolved_clickhouse_dsn
        path = chdb_path(dsn)
        if path is not None:
            self.ownership = ClickHouseOwnership(path)
            # A `gmv sql` holds the lock for a moment only: wait briefly before giving up.
            deadline = time.monotonic() + wait_s
            while not self.ownership.try_acquire() and time.monotonic() < deadline:
                time.sleep(0.25)
            if self.ownership._fh is None:
                owner = self.ownership.owner() or {}
                self.ownership = None
                raise ClickHouseBusy(
                    f"another gmv process (pid {owner.get('pid', '?')}) owns the embedded ClickHouse at {path}; "
                    "stop it first, or query it with `gmv sql` while it runs"
                )
            path.mkdir(parents=True, exist_ok=True)
        if path is not None:
            self._client = connect(dsn)
            migrate(self._client, s.clickhouse_database)
            return self._client

        def reach_and_migrate() -> Client:
            client = connect(dsn, s.clickhouse_password, s.clickhouse_compression)
            try:
                migrate(client, s.clickhouse_database, lock_wait_s=s.migration_lock_wait_s,
                        on_wait=lambda line: print(f"gmv: {line}", file=sys.stderr, flush=True))
            except BaseException:
                client.close()
                raise
            return client

        self._client = wait_for("ClickHouse", s.source("clickhouse_dsn"), redact_dsn(dsn), reach_and_migrate, s,
                                clickhouse_retriable)
        return self._client

    @property
    def client(self) -> Client:
        if self._client is None:
            raise AssertionError("open_clickhouse() first")
        return self._client

    def sink(self) -> ClickHouseSink:
        s = self.settings
        wrap = self.wrap_client or (lambda c: c)
        client = wrap(self.client)

        def refresh_client() -> Client:
            opened = connect(s.resolved_clickhouse_dsn, s.clickhouse_password, s.clickhouse_compression)
            self._more_clients.append(opened)
            return wrap(opened)

        return ClickHouseSink(lambda: client, s.clickhouse_database, retry_for_s=s.sink_retry_for_s,
                              refresh_client_factory=refresh_client)

    def readers(self) -> Readers:
        """Read-only SQL on sessions of their own, safe to call from several threads at once: the
        ad-hoc pool (``gmv sql`` forwarded here, the web SQL endpoint) and the dashboard's."""
        if self._readers is None:
            s = self.settings
            _warn_if_readers_may_crowd_the_pipeline(s)
            dsn, password, compression = s.resolved_clickhouse_dsn, s.clickhouse_password, s.clickhouse_compression
            self._readers = Readers(
                adhoc=ReadonlyClients(dsn, password, s.sql_max_concurrent, compression, s.adhoc_limits,
                                      queue_wait_s=s.sql_queue_wait_s,
                                      busy_hint=f" ({s.source('sql_max_concurrent')}={s.sql_max_concurrent})"),
                dashboard=ReadonlyClients(dsn, password, 2, compression, s.dashboard_limits))
        return self._readers

    def sql_runner(self) -> Callable[..., bytes]:
        """The product's own reads (the demo's figures and reconciliation): the dashboard's pool."""
        return self.readers().dashboard.run

    def advertise(self, web_port: int) -> None:
        if self.ownership is not None:
            self.ownership.advertise(web_port)

    def close(self) -> None:
        if self._readers is not None:
            self._readers.close()
            self._readers = None
        for opened in self._more_clients:
            with contextlib.suppress(Exception):
                opened.close()
        self._more_clients.clear()
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # closing chdb at exit must not mask the real outcome
                log.debug("closing ClickHouse client failed", exc_info=True)
            self._client = None
        if self.ownership is not None:
            self.ownership.release()
            self.ownership = None
        if self.kafka is not None:
            self.kafka.stop()
            self.kafka = None


# Readers together may take at most this share of the machine's memory; the rest is the pipeline's
# (the embedded engine's own ceiling is ~90% of it: what readers take, the inserts cannot).
READERS_MEMORY_SHARE = 0.5


def _warn_if_readers_may_crowd_the_pipeline(s: Settings) -> None:
    """One line at start when the readers' limits together (ad-hoc places x memory each, plus the
    dashboard's two) exceed ``READERS_MEMORY_SHARE`` of this machine's memory."""
    try:
        machine_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError):
        return
    readers_mb = s.sql_max_concurrent * s.sql_max_memory_mb + 2 * s.dashboard_max_memory_mb
    if readers_mb > READERS_MEMORY_SHARE * machine_mb:
        print(f"gmv: readers may take {readers_mb:,} MiB of this machine's {machine_mb:,} MiB "
              f"({s.source('sql_max_concurrent')} x {s.source('sql_max_memory_mb')} + 2 x "
              f"{s.source('dashboard_max_memory_mb')}); lower them so the pipeline keeps its room",
              file=sys.stderr, flush=True)


def query_readonly(settings: Settings, query: str, fmt: str = "tsv", parameters: dict | None = None) -> bytes:
    """``gmv sql`` and the commands that read for a person: ask ClickHouse directly, or the process
    that owns the embedded engine, under the ad-hoc limits. Refused statements are refused here,
    before anything is opened or sent. ``fmt`` as ``gmv.sinks.sql_formats`` says (json: one array)."""
    return as_requested(fmt, _query_readonly(settings, query, engine_format(fmt), parameters))


def _query_readonly(settings: Settings, query: str, fmt: str, parameters: dict | None) -> bytes:
    read_statement(query)
    limits = settings.adhoc_limits
    dsn = settings.resolved_clickhouse_dsn
    path = chdb_path(dsn)
    if path is None:  # a server: it cancels a read whose HTTP client hangs up (the limits say so)
        client = connect_readonly(dsn, settings.clickhouse_password, settings.clickhouse_compression, limits)
        try:
            return run_readonly_sql(client, query, fmt, parameters, limits)
        finally:
            client.close()
    if not path.exists():  # a reader creates nothing: no folder, no lock file
        raise NotFound(f"no embedded ClickHouse at {path}: run `gmv demo` or `gmv run` with this data dir "
                           "first, or point GMV_CLICKHOUSE_DSN at a ClickHouse server")
    ownership = ClickHouseOwnership(path)
    if ownership.try_acquire():
        try:
            return _query_own_engine(dsn, query, fmt, parameters, limits)
        finally:
            ownership.release()
    owner = ownership.owner()
    if not owner or not owner.get("web_port"):
        raise ClickHouseBusy(f"a gmv process owns {path} but serves no SQL yet; retry in a moment")
    return _query_owner(settings, int(owner["web_port"]), query, fmt, parameters)


def _query_own_engine(dsn: str, query: str, fmt: str, parameters: dict | None, limits: QueryLimits) -> bytes:
    """The engine opened in this process: the query runs in a thread so that Ctrl-C here cancels
    it in the engine (a KILL through a session of its own) before the process exits."""
    client = connect_readonly(dsn, limits=limits)
    tag = secrets.token_hex(8)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["rows"] = run_readonly_sql(client, query, fmt, parameters, limits, tag)
        except BaseException as e:  # handed to the main thread as is
            outcome["error"] = e

    thread = threading.Thread(target=run, name="gmv-sql", daemon=True)
    try:
        thread.start()
        while thread.is_alive():
            thread.join(0.2)
    except KeyboardInterrupt:
        admin = connect(dsn)
        try:
            cancel_tagged(admin, tag)
        finally:
            admin.close()
        thread.join(5)
        raise
    finally:
        if not thread.is_alive():
            client.close()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["rows"]


def _query_owner(settings: Settings, web_port: int, query: str, fmt: str, parameters: dict | None) -> bytes:
    """Ask the process that owns the engine; its limits apply. Waiting longer than this side's own
    limits allow, or Ctrl-C, hangs up, and the owner cancels the query when it sees that."""
    body = json.dumps({"query": query, "format": fmt, "parameters": parameters or {}}).encode()
    headers = {"Content-Type": "application/json",
               "Authorization": f"Bearer {web_token(settings).get_secret_value()}"}
    wait_s = settings.sql_max_execution_s + settings.sql_queue_wait_s + 10
    conn = http.client.HTTPConnection("127.0.0.1", web_port, timeout=wait_s)
    try:
        conn.request("POST", "/gmv/sql/", body, headers)
        resp = conn.getresponse()
        answer = resp.read()
    except TimeoutError:
        raise SqlFailed(f"no answer within {wait_s:g} s ({settings.source('sql_max_execution_s')} and "
                        f"{settings.source('sql_queue_wait_s')}, plus 10 s); the query was cancelled") from None
    finally:
        # Hung up here, Ctrl-C included: left to the interpreter's exit, the hang-up (which cancels the
        # query in the owner) came ~1.3 s after the signal. Shut down, not only closed: a response being
        # read holds the socket's file open past close().
        if conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
    if resp.status >= 400:
        try:
            detail = json.loads(answer).get("error", "")
        except ValueError:
            detail = f"HTTP {resp.status}: {answer[:200].decode(errors='replace')}"
        raise (SqlBusy if resp.status == 503 else SqlFailed)(detail)
    return answer
