"""Alert identity and rows, the receiver shapes, and the outlets' queue, retries and re-sends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from gmv.alerts.delivery import Outlet, Receiver
from gmv.alerts.exceptions import DeliveryError
from gmv.alerts.model import (
    Alert,
    Evidence,
    alert_id,
    webhook_payload,
)
from gmv.schemas.catalogue import ALERTS

T0 = datetime(2026, 11, 20, 2, 12, tzinfo=UTC)


def _alert(subject: str = "L1", resolved: bool = False) -> Alert:
    a = Alert("live_no_orders", "critical", "live", subject, 0, 1, T0, T0 + timedelta(minutes=10), "event",
              datetime(2026, 11, 30, 12, 0, tzinfo=UTC), "no paid order",
              Evidence("SELECT 1 WHERE x = {live_id:String}", {"live_id": subject}), (("shop_id", "s1"),))
    return a.resolved(datetime(2026, 11, 30, 12, 5, tzinfo=UTC), T0 + timedelta(minutes=20)) if resolved else a


def test_the_alert_id_is_rule_subject_and_window_and_survives_resolving():
    a = _alert()
    assert a.alert_id == alert_id("live_no_orders", "live", "L1", a.window_start, a.window_end)
    assert a.resolved(T0, T0).alert_id == a.alert_id
    assert _alert("L2").alert_id != a.alert_id


def test_a_resolved_row_outranks_any_firing_row_of_the_same_alert():
    later_firing = _alert().row(datetime(2090, 1, 1, tzinfo=UTC))
    resolved = _alert(resolved=True).row(datetime(2026, 11, 30, tzinfo=UTC))
    assert resolved.version > later_firing.version
    assert resolved.state == "resolved" and later_firing.resolved_at is None


def test_the_alert_row_is_the_catalogues_alerts_columns_in_order():
    row = _alert(resolved=True).row(T0)
    assert list(row._fields) == ALERTS.column_names  # the migrations build exactly these (test_schema_migrations)
    assert row.state == "resolved" and row.query.startswith("gmv sql ") and row.resolved_at is not None


def test_the_query_is_a_gmv_sql_command_with_values_as_parameters():
    cmd = _alert("L'7").evidence.command()
    assert cmd.startswith("gmv sql ") and "--param 'live_id=L'\"'\"'7'" in cmd
    assert "L'7" not in Evidence("SELECT 1 WHERE x = {live_id:String}").sql


def test_alertmanager_gets_labels_annotations_and_an_end_ahead_while_firing():
    now = datetime(2026, 11, 30, 12, 1, tzinfo=UTC)
    firing = _alert().alertmanager(now, timedelta(minutes=4), "http://w/dashboard/")
    assert firing["labels"]["alertname"] == "live_no_orders" and firing["labels"]["shop_id"] == "s1"
    assert firing["labels"]["alert_id"] == _alert().alert_id
    assert firing["endsAt"] == "2026-11-30T12:05:00.000Z" and firing["startsAt"] == "2026-11-30T12:00:00.000Z"
    assert "gmv sql" in firing["annotations"]["query"] and firing["generatorURL"] == "http://w/dashboard/"
    resolved = _alert(resolved=True).alertmanager(now, timedelta(minutes=4), "http://w/")
    assert resolved["endsAt"] == "2026-11-30T12:05:00.000Z"


def test_the_webhook_payload_is_alertmanagers_shape():
    body = webhook_payload([_alert("L1", True), _alert("L2", True)], "gmv", "http://w/")
    assert body["version"] == "4" and body["status"] == "resolved"
    assert body["commonLabels"]["alertname"] == "live_no_orders" and "subject_id" not in body["commonLabels"]
    assert [a["labels"]["subject_id"] for a in body["alerts"]] == ["L1", "L2"]
    assert {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"} <= set(body["alerts"][0])


class _Flaky(Receiver):
    name = "flaky"

    def __init__(self, fail: int, retriable: bool = True, resend_s: float | None = None,
                 latest_only: bool = False) -> None:
        self.fail = fail
        self.latest_only = latest_only
        self.retriable = retriable
        self.resend_s = resend_s
        self.got: list[list[str]] = []

    async def deliver(self, alerts: list[Alert]) -> None:
        if self.fail > 0:
            self.fail -= 1
            raise DeliveryError("down", self.retriable)
        self.got.append([f"{a.subject_id}:{a.state}" for a in alerts])


@pytest.mark.parametrize(("latest_only", "delivered"), [
    (False, ["L1:firing", "L1:resolved", "L2:firing"]),  # a webhook, the topic: every change, in order
    (True, ["L1:resolved", "L2:firing"]),  # Alertmanager: an alert's latest state replaces the queued one
])
def test_what_a_receiver_did_not_take_stays_queued_and_goes_when_it_is_back(latest_only: bool, delivered: list):
    async def go() -> tuple[_Flaky, Outlet]:
        r = _Flaky(fail=2, latest_only=latest_only)
        out = Outlet(r, max_backoff_s=0.01)
        out.put([_alert("L1")])
        assert not await out.attempt() and out.queued  # down: kept
        out.put([_alert("L1", resolved=True), _alert("L2")])
        await out.flush(5.0)
        return r, out

    r, out = asyncio.run(go())
    assert r.got == [delivered] and not out.queued and out.failures == 2


def test_a_payload_the_receiver_rejects_is_dropped_not_retried_forever():
    async def go() -> Outlet:
        out = Outlet(_Flaky(fail=1, retriable=False))
        out.put([_alert()])
        assert not await out.attempt()
        return out

    assert not asyncio.run(go()).queued


def test_firing_alerts_are_re_sent_until_resolved():
    async def go() -> _Flaky:
        r = _Flaky(fail=0, resend_s=0.0)
        out = Outlet(r)
        out.put([_alert("L1")])
        await out.attempt()
        await out.attempt()  # nothing new, but L1 still fires: sent again
        out.put([_alert("L1", resolved=True)])
        await out.attempt()
        await out.attempt()  # resolved and delivered: not sent again
        return r

    assert asyncio.run(go()).got == [["L1:firing"], ["L1:firing"], ["L1:resolved"]]


def test_alert_times_count_whole_milliseconds_exactly_as_clickhouse_stores_them():
    from gmv.alerts.model import _ms

    base = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    base_ms = 1_796_040_000_000
    for ms in range(0, 100_000, 7):
        t = base + timedelta(milliseconds=ms)
        assert _ms(t) == base_ms + ms
        assert _ms(t + timedelta(microseconds=999)) == base_ms + ms  # sub-millisecond is dropped, as stored


def test_an_alert_alertmanager_never_had_firing_goes_as_firing_for_min_firing_s_then_ends():
    from gmv.alerts.delivery import AlertmanagerReceiver

    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    am = AlertmanagerReceiver("http://127.0.0.1:9", "http://dash/", resend_s=60.0, min_firing_s=90.0)
    fired_and_resolved = _alert().resolved(now - timedelta(seconds=5), _alert().window_end)
    [body] = am.payload([fired_and_resolved], now)
    assert body["endsAt"] == "2026-11-30T12:01:30.000Z"  # firing at Alertmanager until now + 90 s: it pages
    am.announced.add(fired_and_resolved.alert_id)  # Alertmanager had it firing: the resolution is plain
    [body] = am.payload([fired_and_resolved], now)
    assert body["endsAt"] == "2026-11-30T11:59:55.000Z"
