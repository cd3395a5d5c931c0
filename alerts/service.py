"""Wiring: an ``AlertEvaluator`` for a worker, with the receivers the settings name."""

from __future__ import annotations

import asyncio

from gmv.alerts.delivery import (
    AlertmanagerReceiver,
    CallableReceiver,
    Outlet,
    Receiver,
    WebhookReceiver,
)
from gmv.alerts.evaluator import AlertEvaluator
from gmv.alerts.exceptions import DeliveryError
from gmv.alerts.model import Alert
from gmv.alerts.rules import AlertConfig, load_config
from gmv.alerts.store import AlertStore
from gmv.sinks.clickhouse import connect
from gmv.streams.settings import Settings
from gmv.streams.worker import GmvWorker


def load_rules(settings: Settings) -> AlertConfig:
    """The effective rules; a bad file raises ``RulesError`` (naming the file and the field)."""
    return load_config(settings.alert_rules)


def evidence_target(s: Settings) -> tuple[str, ...]:
    """The ``gmv sql`` flags that name the data a worker judges: an evidence command printed in one
    directory or shell must not answer for another data dir or server."""
    if s.clickhouse_dsn is None:
        where: tuple[str, ...] = ("--data-dir", str(s.data_path))
    else:
        where = ("--clickhouse-dsn", s.clickhouse_dsn)  # user@host: the password stays in the environment
    return (*where, "--database", s.clickhouse_database)


def attach_alerts(worker: GmvWorker, config: AlertConfig, pipeline_rules: bool = True) -> AlertEvaluator:
    """An evaluator hosted by ``worker`` (which must own ClickHouse), delivering to the table, the
    topic, and Alertmanager / a webhook when the settings name them."""
    s = worker.settings
    store = AlertStore(lambda: connect(s.resolved_clickhouse_dsn, s.clickhouse_password), s.clickhouse_database)

    async def to_table(alerts: list[Alert]) -> None:
        await asyncio.to_thread(store.write, alerts)

    async def to_topic(alerts: list[Alert]) -> None:
        producer = worker.outbox.producer
        if producer is None:
            raise DeliveryError("the worker's producer is not running", True)
        for a in alerts:
            key, value = a.topic_message()
            await producer.send_and_wait(s.alerts_topic, value=value, key=key)

    dashboard = f"http://{s.web_host}:{worker.web_port or 6066}/dashboard/"
    receivers: list[Receiver] = [CallableReceiver(f"ClickHouse {s.clickhouse_database}.alerts", to_table),
                                 CallableReceiver(f"topic {s.alerts_topic}", to_topic)]
    if s.alertmanager_url:
        receivers.append(AlertmanagerReceiver(s.alertmanager_url, dashboard, s.alert_resend_s,
                                             min_firing_s=s.alert_min_firing_s))
    if s.alert_webhook_url is not None:
        hook = WebhookReceiver(s.alert_webhook_url.get_secret_value(), dashboard)
        hook.name = f"webhook {hook.shown_url}"
        receivers.append(hook)
    outlets = [Outlet(r, max_backoff_s=s.alert_retry_max_s) for r in receivers]
    evaluator = AlertEvaluator(config, lambda: worker.status(extra=False), store, outlets, pipeline_rules,
                               evidence_target(s))
    worker.host_task("the alert evaluator", evaluator.run)
    worker.reporters["alerts"] = evaluator.report
    return evaluator
