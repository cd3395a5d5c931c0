"""The settings each part of the worker needs, grouped and frozen (``Settings.kafka``, ``.clickhouse``,
``.web``, ``.alerting``; ``.attribution`` is the pure core's ``PipelineConfig``).

A part takes its group, not the whole ``Settings`` of ~50 fields: the consumer cannot read the web
token, and a setting's defaults live in one place (``gmv.streams.settings``). Groups are built from
settings that are already resolved (the web token generated, the partition count adopted from
existing topics: ``gmv.tools.runtime``), and never change afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic name the pipeline uses."""

    prefix: str
    sources: dict[str, str]  # source topic -> the event_type it carries
    dlq: str
    unrouted: str  # lines `gmv run` could not route, to be dead-lettered
    rekeyed: str  # events keyed otherwise than by user_id, forwarded to their user's partition
    rows: str  # sink_mode=topic: encoded rows on their way to the one ClickHouse writer (1 partition)
    alerts: str  # alert state changes, key alert_id
    changelog: str  # the workers' state journal (partition p = source partition p), compacted

    @property
    def consumed(self) -> list[str]:
        """What the ingest loop consumes: the sources, unrouted lines and forwards."""
        return [*self.sources, self.unrouted, self.rekeyed]


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    bootstrap_servers: str | None  # None: the embedded broker under data_path
    topics: Topics
    partitions: int
    replication_factor: int
    app_id: str  # the ingest loop's consumer group
    worker_instance_id: str  # static member id; '' = dynamic membership
    session_timeout_s: float
    max_poll_interval_s: float  # the longest the loop may go without reading before it leaves the group
    batch_max: int
    batch_within_s: float
    compression: str | None  # for kafka-python / aiokafka producers (None = none)
    max_message_bytes: int
    retention_ms: int | None  # set on the topics the pipeline creates (embedded broker only)


@dataclass(frozen=True, slots=True)
class ClickHouseSettings:
    dsn: str  # chdb:///abs/path or http(s)://
    password: SecretStr | None
    database: str
    compression: str
    sink_mode: str  # direct | topic
    retry_for_s: float
    rollup_interval_s: float
    migration_lock_wait_s: float

    @property
    def embedded_path(self) -> Path | None:
        return Path(self.dsn.removeprefix("chdb://")) if self.dsn.startswith("chdb://") else None


@dataclass(frozen=True, slots=True)
class WebSettings:
    host: str
    port: int  # 0: the command picks
    token: SecretStr | None
    allowed_hosts: str
    metrics_port: int  # 0: off


@dataclass(frozen=True, slots=True)
class AlertSettings:
    enabled: bool
    rules_file: Path | None
    alertmanager_url: str | None
    webhook_url: SecretStr | None
    resend_s: float
    retry_max_s: float
    min_firing_s: float
