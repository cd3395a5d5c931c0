"""`gmv demo`'s and `gmv reconcile`'s alert comparison (tools/reconcile.py), on canned truths."""

from __future__ import annotations

from gmv.tools.reconcile import AlertReconciliation

EXPECTED = [
    {"rule": "live_no_orders", "subject_kind": "live", "subject_id": "L1", "clock": "event"},
    {"rule": "dead_letter_rate", "subject_kind": "pipeline", "subject_id": "view", "clock": "wall"},
    {"rule": "consumer_lag", "subject_kind": "pipeline", "subject_id": "", "clock": "wall", "pause_s": 10.0},
]
ALL_FIRED = [("live_no_orders", "L1", "event"), ("dead_letter_rate", "gmv.views", "wall"),
             ("consumer_lag", "worker-0", "wall")]


def of(fired, lag_max_age_s=None) -> AlertReconciliation:
    return AlertReconciliation.of(EXPECTED, fired, "gmv.", "worker-0", lag_max_age_s)


def test_every_expected_alert_fired_once_is_a_match_with_subjects_named_as_gmv_alerts_names_them():
    assert of(ALL_FIRED).mismatches() == []
    assert "alerts MATCH: 3 expected" in of(ALL_FIRED).line()


def test_an_expected_alert_that_did_not_fire_is_a_mismatch():
    got = of(ALL_FIRED[1:])
    assert got.mismatches() == ["live_no_orders L1: expected, not fired"]
    assert "MISMATCH in 1 alerts" in got.line()


def test_an_event_time_alert_of_a_planned_rule_on_another_subject_is_a_mismatch():
    got = of([*ALL_FIRED, ("live_no_orders", "L2", "event")])
    assert got.mismatches() == ["live_no_orders L2: fired, not expected"]


def test_alerts_of_rules_the_story_plans_no_incident_for_are_listed_not_compared():
    got = of([*ALL_FIRED, ("refund_spike", "shop9", "event"), ("flush_age", "worker-0", "wall")])
    assert got.mismatches() == []
    assert got.unexpected(compared=False) == ["refund_spike shop9: fired, not expected",
                                              "flush_age worker-0: fired, not expected"]
    assert got.line().endswith("5 in gmv.alerts, 2 of them not compared (wall-clock alerts, or of rules the story "
                               "plans no incident for; noted above)")


def test_a_pause_no_longer_than_the_lag_rules_max_age_is_not_expected_to_fire_it():
    short = of(ALL_FIRED[:2], lag_max_age_s=30.0)  # paused 10 s; the rule waits for data 30 s old
    assert short.mismatches() == []
    assert short.waived and "paused 10 s" in short.waived[0] and "30 s" in short.waived[0]
    assert "2 expected" in short.line()
    longer = of(ALL_FIRED[:2], lag_max_age_s=4.0)  # paused 10 s; the rule fires on data 4 s old
    assert longer.mismatches() == ["consumer_lag worker-0: expected, not fired"] and not longer.waived


def _stored(*alerts: tuple[str, str, int]):
    """A stand-in for ClickHouse holding these event-time alerts (rule, subject, window end in ms)."""
    def sql(query: str, params: dict) -> bytes:
        if "FROM {db:Identifier}.alerts" not in query:
            return b""
        return "".join(f"{rule}\tshop\t{subject}\tevent\t{end}\n" for rule, subject, end in alerts).encode()
    return sql


def test_a_story_that_builds_its_baselines_first_compares_alerts_from_its_judged_days_on():
    from gmv.tools.reconcile import reconcile

    truth = {"scenario": "routines", "seed": 1, "net_by_model_stage": {}, "alerts_judged_from_ms": 1_000,
             "expected_alerts": [{"rule": "refund_spike", "subject_kind": "shop", "subject_id": "shop1",
                                  "clock": "event"}]}
    learning = ("refund_spike", "shop1", 500)  # the morning batch paged while its history was short
    incident = ("refund_spike", "shop1", 2_000)
    got = reconcile(_stored(learning, incident), "gmv", truth).alerts
    assert got is not None and got.mismatches() == []
    assert "1 in gmv.alerts from the story's judged days (1 before" in got.line()
    routine_pages = reconcile(_stored(learning, incident, ("refund_spike", "shop1", 3_000)), "gmv", truth).alerts
    assert routine_pages is not None and "MISMATCH" in routine_pages.line()
