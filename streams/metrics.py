"""Prometheus metrics of one worker (``GMV_METRICS_PORT``; prometheus-client's own exposition).

Counters that the worker already keeps exactly (events per topic and outcome, rows per table,
ClickHouse write failures) are read at scrape time by a collector, so Prometheus sees the
same numbers as ``/gmv/stats/`` and ``gmv run``, never a second bookkeeping that could drift.
Distributions (batch sizes and times, sink latency) are histograms observed as batches go.

Every metric is per worker: sum them over ``instance`` for the pipeline. Names:

- ``gmv_events_received_total``, ``gmv_events_accepted_total``, ``gmv_events_duplicate_total``,
  ``gmv_events_dead_lettered_total`` {topic}: of stored batches; received = accepted +
  duplicate + dead-lettered, per topic;
- ``gmv_batch_messages``, ``gmv_batch_process_seconds``: messages per processed batch, and the
  time spent processing it (validation, dedup, attribution);
- ``gmv_sink_flush_seconds``: one batch's rows to ClickHouse (all its inserts, retries included);
  ``gmv_sink_rows_total`` {table}: rows written; ``gmv_clickhouse_write_failures_total``: failed
  write attempts (each retried one counts); ``gmv_clickhouse_failing_seconds``: how long writes
  have been failing now (0 while they succeed);
- ``gmv_consumer_lag_messages`` {topic, partition}: messages on an owned partition not yet
  stored; ``gmv_partitions_owned``;
- ``gmv_last_flush_age_seconds``: seconds since a batch was last stored (since start if none);
- ``gmv_attribution_delay_seconds``: wall clock minus the attribution watermark (event time up to
  which every order is attributed); absent until the first order is attributed;
- ``gmv_state_keys`` {domain}: records held per domain (dedup, touches, orders, refunds, reviews,
  conversations, pending); ``gmv_state_memory_bytes``, ``gmv_state_disk_bytes``: what the state takes
  in memory (hot cache and RocksDB's cache) and on disk; ``gmv_state_cache_hit_ratio``;
  ``gmv_state_restore_records`` {source=read|live} and ``gmv_state_restore_seconds``: the last restore.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gmv.streams.status import StatusSource

log = logging.getLogger(__name__)

OUTCOME_METRICS = {"accepted": "accepted", "duplicate": "duplicate", "dead_letter": "dead_lettered"}
BATCH_SIZE_BUCKETS = (1, 10, 100, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000)
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _StatusCollector(Collector):
    """Reads one status snapshot of the worker at each scrape (``gmv.streams.status``)."""

    def __init__(self, status: StatusSource) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        st = self.status()
        received = CounterMetricFamily("gmv_events_received", "Events received, per source topic", labels=["topic"])
        outcomes = {o: CounterMetricFamily(f"gmv_events_{name}", f"Events {name.replace('_', '-')}, per source topic",
                                           labels=["topic"]) for o, name in OUTCOME_METRICS.items()}
        per_topic: dict[str, dict[str, int]] = {}
        for (topic, outcome), n in st.counters.items():
            if outcome in OUTCOME_METRICS:
                per_topic.setdefault(topic, dict.fromkeys(OUTCOME_METRICS, 0))[outcome] += n
        for topic, counts in sorted(per_topic.items()):
            received.add_metric([topic], sum(counts.values()))
            for outcome, n in counts.items():
                outcomes[outcome].add_metric([topic], n)
        yield received
        yield from outcomes.values()

        rows = CounterMetricFamily("gmv_sink_rows", "Rows this worker wrote to its sink (ClickHouse, or the rows "
                                   "topic with sink_mode=topic), per table", labels=["table"])
        for table, n in sorted(st.rows_by_table.items()):
            rows.add_metric([table], n)
        yield rows
        yield CounterMetricFamily("gmv_clickhouse_write_failures", "Failed ClickHouse write attempts (retried "
                                  "ones included)", value=st.write_failures)
        yield GaugeMetricFamily("gmv_clickhouse_failing_seconds", "How long ClickHouse writes have been failing "
                                "(0 while they succeed)", value=st.sink_failing_s or 0.0)

        lag = GaugeMetricFamily("gmv_consumer_lag_messages", "Messages on an owned partition not yet stored",
                                labels=["topic", "partition"])
        for (topic, partition), n in sorted(st.lag_per_partition.items()):
            lag.add_metric([topic, str(partition)], n)
        yield lag
        yield GaugeMetricFamily("gmv_partitions_owned", "Source partitions this worker owns", value=len(st.partitions))
        last = st.last_stored_at or st.started_at
        yield GaugeMetricFamily("gmv_last_flush_age_seconds", "Seconds since a batch was last stored (since start "
                                "if none yet)", value=max(0.0, time.time() - last))
        yield from _state_metrics(st.state)
        if st.rolled_up_to_ms:
            yield GaugeMetricFamily("gmv_attribution_delay_seconds", "Wall clock minus the attribution watermark "
                                    "(event time up to which every order is attributed)",
                                    value=max(0.0, time.time() - st.rolled_up_to_ms / 1000))


def _state_metrics(state: Any) -> Iterator[Metric]:
    if not state:
        return
    keys = GaugeMetricFamily("gmv_state_keys", "Records held in the state stores, per domain (pending: derived "
                             "records whose rows ClickHouse may not hold yet)", labels=["domain"])
    for domain, n in sorted(state["keys"].items()):
        keys.add_metric([domain], n)
    yield keys
    yield GaugeMetricFamily("gmv_state_memory_bytes", "Memory the state takes: the hot cache (estimated) plus "
                            "RocksDB's block cache and memtables", value=state["memory_bytes"])
    yield GaugeMetricFamily("gmv_state_disk_bytes", "Bytes of the state stores' files on local disk",
                            value=state["disk_bytes"])
    if state["cache_hit_ratio"] is not None:
        yield GaugeMetricFamily("gmv_state_cache_hit_ratio", "Reads of cached state answered from memory, since "
                                "start", value=state["cache_hit_ratio"])
    restore = state["restore"]
    records = GaugeMetricFamily("gmv_state_restore_records", "At the last restore: changelog records read (a bucket's each), and "
                                "records live once it ended", labels=["source"])
    records.add_metric(["read"], restore["records_read"])
    records.add_metric(["live"], restore["records_live"])
    yield records
    yield GaugeMetricFamily("gmv_state_restore_seconds", "How long the last restore took",
                            value=restore["seconds"])


class WorkerMetrics:
    """The worker's registry (one per worker, so several workers in one process never collide),
    its histograms, and the HTTP endpoint serving them."""

    def __init__(self, status: StatusSource) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_StatusCollector(status))
        self.batch_messages = Histogram("gmv_batch_messages", "Messages per processed batch",
                                        buckets=BATCH_SIZE_BUCKETS, registry=self.registry)
        self.batch_seconds = Histogram("gmv_batch_process_seconds", "Time processing one batch (validation, "
                                       "dedup, attribution)", buckets=SECONDS_BUCKETS, registry=self.registry)
        self.flush_seconds = Histogram("gmv_sink_flush_seconds", "Time writing one batch's rows to ClickHouse "
                                       "(retries included)", buckets=SECONDS_BUCKETS, registry=self.registry)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def serve(self, host: str, port: int) -> None:
        """Serve ``/metrics`` on ``host:port`` in a thread of its own (it reads, never writes, the
        worker's state)."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        log.info("Prometheus metrics on http://%s:%d/metrics", host, port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
