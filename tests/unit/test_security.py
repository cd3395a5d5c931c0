"""Security basics without a process: secrets out of settings output, values parameterised
(the end-to-end checks are in tests/integration/test_security.py)."""

from __future__ import annotations

import re

from gmv.streams.settings import Settings


def test_settings_never_show_the_clickhouse_password():
    s = Settings(clickhouse_password="s3cretpw")
    assert "s3cretpw" not in repr(s) and "s3cretpw" not in str(s.model_dump())


def test_no_value_is_formatted_into_dashboard_or_rollup_sql():
    """Queries carry {name:Type} placeholders only; identifiers are validated settings."""
    from gmv.dashboards import queries
    from gmv.sinks import rollups

    for name in dir(queries):
        q = getattr(queries, name)
        if isinstance(q, str) and q.lstrip().startswith("SELECT"):
            assert "{db:Identifier}" in q
            assert not re.search(r"'\{|\{[a-z_]+\}", q), name  # no str.format slots for values
    from gmv.sinks import levels, markov, scores

    statements = [rollups.GMV_MINUTE_REFRESH, rollups.CONTENT_MINUTE_REFRESH, rollups.FUNNEL_MINUTE_REFRESH,
                  scores.DAILY, markov.DAILY, markov.RESTATE, markov.PATHS,
                  *(sql for sql, _ in levels.level_statements("gmv", set(), set()))]
    for sql in statements:
        assert "{db:Identifier}" in sql and not re.search(r"'\{|\{[a-z_]+\}", sql), sql[:80]
    assert "{minutes:Array(DateTime('UTC'))}" in rollups.GMV_MINUTE_REFRESH


def test_topic_retention_applies_to_the_embedded_broker_only():
    assert Settings(embedded_retention="30m").topic_retention_ms == 30 * 60_000
    assert Settings(kafka_bootstrap_servers="kafka:9092").topic_retention_ms is None


def test_alert_queries_take_every_value_as_a_parameter_and_webhook_urls_stay_secret():
    from gmv.alerts import conditions as c
    from gmv.alerts.rules import AlertConfig

    rules = AlertConfig().rules
    live = c.LiveSeries("L'1", "s1", "a1", enters={m: 50 for m in range(100)}, gmv_fen={m: 10**6 for m in range(60)},
                        orders={m: 5 for m in range(60)})
    shop = c.ShopSeries("s'1", gmv_fen={99: 1}, refund_fen={99: 10**7})
    findings = [c.live_no_orders(rules.live_no_orders, live, 80, "gmv"), c.live_gmv_drop(rules.live_gmv_drop, live, 64, "gmv"),
                c.refund_spike(rules.refund_spike, shop, 99, "gmv")]
    assert all(findings)
    for f in findings:
        assert "'1" not in f.evidence.sql and "{db:Identifier}" in f.evidence.sql
        assert not re.search(r"\{[a-z_]+\}", f.evidence.sql)
    s = Settings(alert_webhook_url="https://hooks.example/T0K3N")
    assert "T0K3N" not in repr(s) and "T0K3N" not in str(s.model_dump())
    from gmv.alerts.delivery import WebhookReceiver

    hook = WebhookReceiver("https://user:pw@hooks.example:8443/services/T0K3N?key=K3Y", "http://w/")
    assert hook.shown_url == "https://hooks.example:8443"  # what its log lines and errors name
