"""Typed settings: environment variables with the ``GMV_`` prefix, or CLI flags."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from gmv.schemas.events import TOPIC_NAMES
from gmv.streams.core.config import PipelineConfig
from gmv.streams.groups import AlertSettings, ClickHouseSettings, KafkaSettings, Topics, WebSettings
from gmv.streams.reader_settings import ReaderSettings


def _ms(td: timedelta) -> int:
    return int(td.total_seconds() * 1000)


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta | None:
    """'5s', '1500ms', '30m', '24h', '7d' or plain seconds; None if it is none of those."""
    t = text.strip()
    for suffix in ("ms", "s", "m", "h", "d"):
        number = t[: -len(suffix)]
        if t.endswith(suffix) and number.replace(".", "", 1).isdigit():
            return timedelta(seconds=float(number) * _UNITS[suffix])
    try:
        return timedelta(seconds=float(t))
    except ValueError:
        return None


class Settings(ReaderSettings):
    """Every knob of the pipeline. Unset Kafka servers mean: start the embedded broker."""

    model_config = SettingsConfigDict(env_prefix="GMV_", extra="ignore", frozen=True)
    # Settings a command-line flag set, by name -> the flag (``source`` names them in messages).
    _flags: dict[str, str] = PrivateAttr(default_factory=dict)

    data_dir: Path = Field(Path(".gmv"), description="where the embedded broker and ClickHouse keep data")
    kafka_bootstrap_servers: str | None = Field(
        None, description="host:port[,host:port]; unset = embedded noida-db broker under data_dir"
    )
    kafka_port: int = Field(0, description="embedded broker only: its port; 0 = pick a free loopback port")
    embedded_retention: timedelta = Field(
        timedelta(minutes=30),
        description="embedded broker only: how long messages stay on every topic but the state changelog. "
                    "noida-db's upkeep costs CPU in proportion to the bytes it holds (a long demo would "
                    "end up feeding the broker a core); a worker stopped longer than this loses what "
                    "arrived meanwhile. With Kafka servers, topic retention is yours to set")
    clickhouse_dsn: str | None = Field(
        None, description="chdb:///abs/path (embedded) or http(s)://user@host:port; unset = chdb://<data_dir>/clickhouse"
    )
    clickhouse_password: SecretStr | None = Field(None, description="ClickHouse server password (never logged)")
    clickhouse_database: str = Field("gmv", description="database holding every table")
    clickhouse_compression: Literal["lz4", "zstd", "gzip", "none"] = Field(
        "lz4", description="http(s) only: compression of inserts and query results on the wire (lz4 costs "
                           "little CPU and shrinks the JSON rows several times)")
    migration_lock_wait_s: Annotated[float, Field(gt=0)] = Field(
        300.0, description="how long a worker waits for another one's schema migration before taking over "
                           "its lock (a migrator killed mid-way leaves it behind)")
    startup_wait_s: Annotated[float, Field(ge=0)] = Field(
        60.0, description="at start, how long to wait for Kafka and for ClickHouse to answer (each) before "
                          "exiting non-zero: compose starts services in any order")
    startup_backoff_max_s: Annotated[float, Field(gt=0)] = Field(
        5.0, description="longest pause between two start-up attempts (backoff from 0.5 s)")

    app_id: str = Field("gmv", description="the ingest loop's Kafka consumer group (and the state changelog's name)")
    topic_prefix: str = Field("gmv.", description="prefix of every topic name")
    partitions: Annotated[int, Field(ge=1, le=256)] = Field(
        4, description="partitions of every topic the pipeline creates: at most this many workers have work. "
                       "Unset, it follows source topics that already exist with one partition count (a producer "
                       "that wrote first got the broker's default), and says so")
    replication_factor: Annotated[int, Field(ge=1)] = Field(1, description="replicas of the topics the workers create")

    # Attribution knobs (SPEC §3, §6).
    engaged_ms: Annotated[int, Field(ge=0)] = Field(
        3000, description="watch time (ms) that makes a short-video or clip view a touchpoint; shorter views "
                          "count in the funnel only")
    lookback: timedelta = Field(timedelta(days=7), description="how far before an order its touchpoints count "
                                                               "(event time)")
    half_life: timedelta = Field(timedelta(hours=24), description="half life of the time_decay model's weights")
    attribution_delay: timedelta = Field(
        timedelta(seconds=5), description="how long an order waits (processing time) before it is attributed, so "
                                          "touchpoints that arrive late still count")
    weights_retention: timedelta = Field(timedelta(days=90), description="how long an order's weights are kept for its refunds")
    orphan_refund_hold: timedelta = Field(timedelta(hours=1), description="event time a refund waits for its order")
    orphan_review_hold: timedelta = Field(timedelta(hours=1), description="event time a review waits for its order")
    cs_unanswered_after: timedelta = Field(
        timedelta(hours=1), description="a buyer turn with no agent answer within this much event time is unanswered")
    dedup_horizon: timedelta = Field(
        timedelta(hours=24), description="event-time window of event_id de-duplication, and how late (behind its "
                                         "partition's newest event) an order still finds every touch of its lookback")
    max_future_skew: timedelta = Field(timedelta(days=1), description="event_time further ahead of the wall clock is rejected")

    # Ingest / batching.
    max_message_bytes: int = Field(1024 * 1024, description="a message over this size is dead-lettered "
                                                            "(message_too_large)")
    max_batch_events: int = Field(1000, description="most events in one producer batch (a JSON array message)")
    batch_max: Annotated[int, Field(ge=1)] = Field(10_000, description="messages per consumed batch (one journal write, one insert per table)")
    batch_within_s: Annotated[float, Field(gt=0)] = Field(
        0.3, description="how long the ingest loop waits for a batch to fill before it processes what it has")
    sink_mode: Literal["direct", "topic"] = Field(
        "direct", description="direct: the worker writes ClickHouse; topic: rows go to <prefix>rows and the "
                              "process owning ClickHouse writes them (several workers with embedded chdb)")
    rollup_interval_s: Annotated[float, Field(ge=0)] = Field(
        0.5, description="under a backlog, how often the minute rollups are recomputed from the facts "
                         "(freshness vs cost); a caught-up worker recomputes them at most every 0.1 s")
    sink_retry_for_s: Annotated[float, Field(gt=0)] = Field(
        600.0, description="how long ClickHouse writes that fail with a retriable error are retried before the "
                           "worker stops (offsets uncommitted: nothing is lost)")
    kafka_compression: Literal["none", "gzip", "lz4"] = Field(
        "lz4", description="compression of every message the pipeline and its tools produce (journal, DLQ, "
                           "`gmv run`, the simulator); lz4 shrinks JSON several times for little CPU, and the embedded "
                           "broker's upkeep grows with the bytes it holds")

    # Worker runtime.
    web_host: str = Field("127.0.0.1", description="address the dashboard, API and metrics servers bind "
                                                   "(loopback unless you open it)")
    web_port: int = Field(0, description="dashboard / API port; 0 = pick a free loopback port")
    web_token: SecretStr | None = Field(
        None, description="bearer token the web endpoints ask for; unset = the one in <data_dir>/web-token, "
                          "generated at first start (gmv sql and the dashboard link read it from there)")
    web_allowed_hosts: str = Field(
        "", description="comma-separated Host names (no port) the web endpoints answer, besides localhost, "
                        "127.0.0.1 and ::1; '*' = any (behind a proxy that checks Host itself)")
    metrics_port: int = Field(0, description="Prometheus metrics on http://<web_host>:<port>/metrics; 0 = off")
    session_timeout_s: float = Field(6.0, description="consumer-group session timeout: a silent worker keeps its partitions this long")
    worker_instance_id: str = Field("worker-0", description="static group member id, unique per concurrently running "
                                    "worker; '' = dynamic membership (for scale-out workers that come and go)")
    max_poll_interval_s: Annotated[float, Field(gt=0)] = Field(300.0, description="how long reading may wait (on "
                                       "ClickHouse) before the worker gives up its partitions (Kafka's default)")
    rebalance_timeout_s: float | None = Field(None, description="max_poll_interval_s's old name (was 20 s); wins if set")
    log_level: str = Field("WARNING", description="log level of the worker and the commands (DEBUG, INFO, "
                                                  "WARNING, ERROR)")
    alerts: bool = Field(True, description="evaluate the alert rules in the worker that owns ClickHouse")
    alert_rules: Path | None = Field(None, description="TOML file of alert rules over the built-in defaults "
                                                       "(`gmv alerts rules` prints the effective ones)")
    alertmanager_url: str | None = Field(None, description="Alertmanager base URL, e.g. http://127.0.0.1:9093: "
                                                           "alerts are POSTed to its /api/v2/alerts")
    alert_webhook_url: SecretStr | None = Field(None, description="a plain webhook receiving Alertmanager's "
                                                                  "webhook JSON (may carry a token: never logged)")
    alert_resend_s: Annotated[float, Field(gt=0)] = Field(
        60.0, description="how often firing alerts are re-sent to Alertmanager (it expires them otherwise)")
    alert_min_firing_s: Annotated[float, Field(gt=0)] = Field(
        60.0, description="an alert that fired and resolved before Alertmanager had it as firing (one evaluation "
                          "judged both) is sent as firing for this long, so Alertmanager pages for it; keep it "
                          "above the route's group_wait")
    alert_retry_max_s: Annotated[float, Field(gt=0)] = Field(
        30.0, description="longest wait between delivery attempts to a receiver that is down (backoff from 1 s)")
    stop_timeout_s: Annotated[float, Field(gt=0)] = Field(
        10.0, description="on SIGTERM / Ctrl-C, how long the worker may spend storing what it holds before it "
                          "abandons the write in flight (uncommitted: the next start re-processes it)")

    @field_validator("lookback", "half_life", "attribution_delay", "weights_retention", "orphan_refund_hold",
                     "orphan_review_hold", "cs_unanswered_after", "dedup_horizon", "max_future_skew", "embedded_retention", mode="before")
    @classmethod
    def _human_duration(cls, v: object) -> object:
        """Also accept '5s', '1500ms', '30m', '24h', '7d' (as the README and the flags write them)."""
        if isinstance(v, str):
            return parse_duration(v) or v
        return v

    @field_validator("clickhouse_database")
    @classmethod
    def _database_is_identifier(cls, v: str) -> str:
        if not _IDENT.match(v):
            raise ValueError("clickhouse_database must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*)")
        return v

    # -- the groups each part takes (``gmv.streams.groups``) ----------------------------------------
    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings(
            self.kafka_bootstrap_servers or None, self.topics, self.partitions, self.replication_factor, self.app_id,
            self.worker_instance_id, self.session_timeout_s, self.max_poll_interval_s if self.rebalance_timeout_s is None else self.rebalance_timeout_s,
            self.batch_max, self.batch_within_s, self.producer_compression, self.max_message_bytes, self.topic_retention_ms)

    @property
    def clickhouse(self) -> ClickHouseSettings:
        return ClickHouseSettings(self.resolved_clickhouse_dsn, self.clickhouse_password, self.clickhouse_database,
                                  self.clickhouse_compression, self.sink_mode, self.sink_retry_for_s,
                                  self.rollup_interval_s, self.migration_lock_wait_s)

    @property
    def web(self) -> WebSettings:
        return WebSettings(self.web_host, self.web_port, self.web_token, self.web_allowed_hosts, self.metrics_port)

    @property
    def alerting(self) -> AlertSettings:
        return AlertSettings(self.alerts, self.alert_rules, self.alertmanager_url, self.alert_webhook_url,
                             self.alert_resend_s, self.alert_retry_max_s, self.alert_min_firing_s)

    @property
    def attribution(self) -> PipelineConfig:
        return self.pipeline_config()

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix, self.source_topics, self.dlq_topic, self.unrouted_topic, self.rekeyed_topic,
                      self.rows_topic, self.alerts_topic, self.changelog_topic)

    def from_flags(self, flags: dict[str, str]) -> Settings:
        """Note which settings came from which command-line flag (``source``)."""
        self._flags = dict(flags)
        return self

    def source(self, name: str) -> str:
        """Where a setting came from, for messages: the flag the user typed, else its variable."""
        return self._flags.get(name) or f"GMV_{name.upper()}"

    def pipeline_config(self) -> PipelineConfig:
        """The numbers the pure core works with (``gmv.streams.core``)."""
        return PipelineConfig(
            partitions=self.partitions, source_topics=self.source_topics, rekeyed_topic=self.rekeyed_topic,
            unrouted_topic=self.unrouted_topic, engaged_ms=self.engaged_ms, lookback_ms=_ms(self.lookback),
            half_life_ms=_ms(self.half_life), attribution_delay_ms=_ms(self.attribution_delay),
            dedup_horizon_ms=_ms(self.dedup_horizon), weights_retention_ms=_ms(self.weights_retention),
            orphan_refund_hold_ms=_ms(self.orphan_refund_hold), orphan_review_hold_ms=_ms(self.orphan_review_hold),
            cs_unanswered_after_ms=_ms(self.cs_unanswered_after), max_future_skew_ms=_ms(self.max_future_skew),
            max_message_bytes=self.max_message_bytes, max_batch_events=self.max_batch_events)

    @property
    def data_path(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_clickhouse_dsn(self) -> str:
        return self.clickhouse_dsn or f"chdb://{self.data_path / 'clickhouse'}"

    @property
    def producer_compression(self) -> str | None:
        """``compression_type`` for kafka-python / aiokafka producers."""
        return None if self.kafka_compression == "none" else self.kafka_compression

    @property
    def topic_retention_ms(self) -> int | None:
        """Retention the pipeline sets on the topics it creates: the embedded broker's only."""
        return int(self.embedded_retention.total_seconds() * 1000) if self.embedded_kafka else None

    @property
    def embedded_kafka(self) -> bool:
        return not self.kafka_bootstrap_servers

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def source_topics(self) -> dict[str, str]:
        """Source topic name -> the event_type it carries."""
        return {
            **{self.topic(name): event_type for event_type, name in TOPIC_NAMES.items()},
        }

    @property
    def dlq_topic(self) -> str:
        return self.topic("dlq")

    @property
    def unrouted_topic(self) -> str:
        """Where `gmv run` puts lines it cannot route (invalid JSON, unknown event_type), to be dead-lettered."""
        return self.topic("unrouted")

    @property
    def rekeyed_topic(self) -> str:
        """Events a producer keyed otherwise than by user_id, forwarded to their user's partition."""
        return self.topic("rekeyed")

    @property
    def rows_topic(self) -> str:
        """``sink_mode=topic``: encoded rows on their way to the one ClickHouse writer (1 partition)."""
        return self.topic("rows")

    @property
    def alerts_topic(self) -> str:
        """Alert state changes, key alert_id (``gmv.alerts.model``)."""
        return self.topic("alerts")

    @property
    def changelog_topic(self) -> str:
        """Compacted topic holding the workers' state journal (partition p = source partition p)."""
        return self.topic(f"{self.app_id}-state-changelog")
