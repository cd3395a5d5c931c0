"""Delivery to a real Alertmanager (API v2) and a plain webhook: firing, re-sent, resolved; a
receiver that is down gets what it missed once it is back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gmv.alerts.delivery import AlertmanagerReceiver, Outlet, WebhookReceiver
from gmv.alerts.model import Alert, Evidence
from gmv.tools.embedded import free_port
from tests.support.alertmanager import Alertmanager, WebhookRecorder
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def _alert(subject: str) -> Alert:
    t = datetime(2026, 11, 20, 2, 12, tzinfo=UTC)
    return Alert("live_no_orders", "critical", "live", subject, 0, 1, t, t + timedelta(minutes=10), "event",
                 datetime.now(UTC), f"live {subject}: no paid order", Evidence("SELECT 1"), (("shop_id", "s1"),))


@pytest.fixture
def recorder():
    rec = WebhookRecorder().start()
    yield rec
    rec.stop()


@pytest.fixture
def alertmanager(tmp_path: Path, recorder: WebhookRecorder):
    am = Alertmanager(tmp_path / "am", recorder.url("/am")).start()
    yield am
    am.stop()


def test_alertmanager_shows_a_firing_alert_and_notifies_firing_then_resolved(alertmanager, recorder):
    alert = _alert("L1")

    async def go() -> None:
        out = Outlet(AlertmanagerReceiver(alertmanager.url, "http://127.0.0.1:6066/dashboard/", resend_s=1.0))
        out.put([alert])
        assert await out.attempt()
        held = await asyncio.to_thread(wait_for, lambda: [a for a in alertmanager.alerts()
                                                          if a["labels"].get("alert_id") == alert.alert_id],
                                       20, "Alertmanager to hold the alert")
        assert held[0]["labels"]["alertname"] == "live_no_orders" and held[0]["labels"]["shop_id"] == "s1"
        assert held[0]["annotations"]["summary"] == "live L1: no paid order"
        assert held[0]["generatorURL"] == "http://127.0.0.1:6066/dashboard/"
        await asyncio.to_thread(wait_for, lambda: recorder.alerts("/am"), 20, "Alertmanager's firing notification")
        await asyncio.sleep(1.1)
        assert await out.attempt() and out.delivered == 2  # re-sent while firing, as Alertmanager expects
        out.put([alert.resolved(datetime.now(UTC), alert.window_end)])
        assert await out.attempt()
        await out.receiver.close()

    asyncio.run(go())
    notes = wait_for(lambda: [a for a in recorder.alerts("/am") if a["status"] == "resolved"], 20,
                     "Alertmanager's resolved notification")
    assert notes[0]["labels"]["alert_id"] == alert.alert_id
    assert [a["status"] for a in recorder.alerts("/am")][0] == "firing"
    assert not [a for a in alertmanager.alerts() if a["labels"].get("alert_id") == alert.alert_id]


def test_an_incident_that_fires_and_resolves_in_one_evaluation_pages_on_call(alertmanager, recorder):
    """Both changes reach the outlet before it sends anything (a worker catching up judged the whole
    incident at once): Alertmanager must still notify its receivers of it as firing, then resolved."""
    alert = _alert("L9")
    now = datetime.now(UTC)

    async def go() -> None:
        out = Outlet(AlertmanagerReceiver(alertmanager.url, "http://127.0.0.1/", resend_s=30.0, min_firing_s=3.0))
        out.put([alert])
        out.put([alert.resolved(now, alert.window_end)])  # latest state only: the firing one is replaced
        assert await out.attempt() and not out.queued
        await out.receiver.close()

    asyncio.run(go())
    notes = wait_for(lambda: [a for a in recorder.alerts("/am") if a["labels"]["alert_id"] == alert.alert_id], 20,
                     "Alertmanager's firing notification")
    assert notes[0]["status"] == "firing"
    resolved = wait_for(lambda: [a for a in recorder.alerts("/am") if a["labels"]["alert_id"] == alert.alert_id
                                 and a["status"] == "resolved"], 30, "Alertmanager to resolve it by itself")
    assert resolved  # it stayed firing for min_firing_s, then Alertmanager resolved it: paged, then cleared


def test_receivers_that_are_down_get_every_change_once_they_are_back(tmp_path: Path):
    hook = WebhookRecorder()  # not started: connection refused
    am_hook = WebhookRecorder().start()
    am = Alertmanager(tmp_path / "am", am_hook.url("/am"), port=free_port())  # not started yet
    firing, resolved = _alert("L1"), _alert("L2")
    resolved_change = resolved.resolved(datetime.now(UTC), resolved.window_end)

    async def go() -> None:
        to_am = Outlet(AlertmanagerReceiver(am.url, "http://127.0.0.1/", resend_s=30.0, timeout_s=1.0,
                                            min_firing_s=3.0), max_backoff_s=0.5)
        to_hook = Outlet(WebhookReceiver(hook.url("/hook"), "http://127.0.0.1/", timeout_s=1.0), max_backoff_s=0.5)
        for out in (to_am, to_hook):
            out.put([firing, resolved])
            out.put([resolved_change])
            assert not await out.attempt() and out.queued  # down: kept, nothing lost
        hook.start()
        await asyncio.to_thread(am.start)
        assert await to_hook.flush(20) and await to_am.flush(20)
        for out in (to_am, to_hook):
            await out.receiver.close()

    try:
        asyncio.run(go())
        got = [(a["labels"]["subject_id"], a["status"]) for a in hook.alerts("/hook")]
        assert sorted(got) == [("L1", "firing"), ("L2", "firing"), ("L2", "resolved")]  # every change, once
        assert got.index(("L2", "firing")) < got.index(("L2", "resolved"))  # in order
        assert wait_for(lambda: [a for a in am.alerts() if a["labels"]["subject_id"] == "L1"], 20,
                        "Alertmanager to hold the firing alert")
        # L2 fired and resolved while Alertmanager was down: it still pages for it, then resolves it
        paged = wait_for(lambda: [a["status"] for a in am_hook.alerts("/am") if a["labels"]["subject_id"] == "L2"],
                         20, "Alertmanager's notification of L2")
        assert paged[0] == "firing"
        wait_for(lambda: "resolved" in [a["status"] for a in am_hook.alerts("/am") if a["labels"]["subject_id"] == "L2"],
                 30, "Alertmanager to resolve L2 once its minimum firing time passed")
    finally:
        hook.stop()
        am.stop()
        am_hook.stop()
