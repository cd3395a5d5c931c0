"""SPEC §7 formulas and turns on hand-computed cases; reviews judged against their orders (pure core)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from gmv.schemas.times import shanghai_day, shanghai_midnight
from gmv.schemas.trust import (
    CsMessage,
    ScoreInputs,
    buyer_turns,
    product_score,
    seller_score,
    shop_score,
    smooth,
)
from gmv.sinks.scores import days_to_refresh
from gmv.streams.core.config import PipelineConfig
from gmv.streams.core.decode import DeadLetter, SourceMessage
from gmv.streams.core.processor import BatchProcessor
from gmv.streams.core.routing import partition_for_key

HOUR = 3_600_000


def test_smoothing_starts_a_subject_without_reviews_at_four():
    assert smooth(0, 0) == 4.0
    assert smooth(5, 1) == pytest.approx(45 / 11)  # one 5-star review moves it a little
    assert smooth(500, 100) == pytest.approx(540 / 110)  # many reviews dominate the prior


def test_qrr_penalises_quality_refunds_and_the_score_is_clamped():
    # 2 reviews (5 and 4), 10 paid orders, 1 quality-refunded: 49/12 - 10 × 0.1 = 3.0833...
    assert product_score(ScoreInputs(reviews=2, product_rating_sum=9, paid_orders=10,
                                     quality_refunded_orders=1)).score == pytest.approx(49 / 12 - 1)
    assert product_score(ScoreInputs(paid_orders=0, quality_refunded_orders=0)).qrr == 0  # no orders: qrr 0
    assert product_score(ScoreInputs(paid_orders=2, quality_refunded_orders=1)).score == 0.0  # 4 - 5 < 0
    assert product_score(ScoreInputs(reviews=1000, product_rating_sum=5000)).score <= 5.0


def test_seller_score_averages_product_and_service_ratings():
    s = seller_score(ScoreInputs(reviews=2, product_rating_sum=9, service_rating_sum=6, paid_orders=4))
    assert s.rating_sum == 7.5 and s.score == pytest.approx((40 + 7.5) / 12)


def test_shop_score_weighs_product_service_and_logistics():
    i = ScoreInputs(reviews=3, product_rating_sum=11, service_rating_sum=12, logistics_rating_sum=12,
                    paid_orders=7, quality_refunded_orders=1, turns=5, fast_turns=1, within_3min_turns=3)
    s = shop_score(i)
    p = (40 + 11) / 13 - 10 / 7
    service = 0.5 * 52 / 13 + 0.5 * 5 * (0.2 + 0.6) / 2
    assert (s.product_part, s.service_part, s.logistics_part) == pytest.approx((p, service, 52 / 13))
    assert s.score == pytest.approx(0.4 * p + 0.3 * service + 0.3 * 4.0)
    assert any("turns = 5" in line for line in s.explain(i))


def test_a_shop_without_turns_counts_as_answering_fast():
    s = shop_score(ScoreInputs())
    assert (s.fast, s.within_3min) == (1.0, 1.0)
    assert s.score == pytest.approx(0.4 * 4 + 0.3 * (0.5 * 4 + 2.5) + 0.3 * 4)


def _msgs(*spec: tuple[int, str]) -> list[CsMessage]:
    return [CsMessage(t, f"m{i}", sender, "S") for i, (t, sender) in enumerate(spec)]


def test_bots_neither_start_nor_answer_a_turn():
    turns = buyer_turns(_msgs((0, "bot"), (1_000, "buyer"), (1_500, "bot"), (2_000, "buyer"), (4_000, "agent")), HOUR)
    assert [(t.start_ms, t.response_ms) for t in turns] == [(1_000, 3_000)]


def test_the_3_second_and_3_minute_edges_are_inclusive():
    turns = buyer_turns(_msgs((0, "buyer"), (3_000, "agent"), (10_000, "buyer"), (13_001, "agent"),
                              (20_000, "buyer"), (200_000, "agent"), (300_000, "buyer"), (480_001, "agent")), HOUR)
    assert [(t.fast, t.within_3min) for t in turns] == [(True, True), (False, True), (False, True), (False, False)]


def test_a_turn_answered_too_late_or_never_is_unanswered():
    turns = buyer_turns(_msgs((0, "buyer"), (HOUR, "agent"), (2 * HOUR, "buyer"), (3 * HOUR + 1, "agent"),
                              (4 * HOUR, "buyer")), HOUR)
    assert [t.answered for t in turns] == [True, False, False]  # exactly 1 h still counts as answered
    assert turns[-1].answer_ms is None and turns[-1].response_ms is None


def test_turns_depend_on_event_time_not_arrival_order():
    messages = _msgs((0, "buyer"), (500, "buyer"), (2_000, "agent"), (9_000, "buyer"), (9_100, "bot"), (12_000, "agent"))
    assert buyer_turns(reversed(messages), HOUR) == buyer_turns(messages, HOUR)
    assert [t.start_event_id for t in buyer_turns(messages, HOUR)] == ["m0", "m3"]


def test_a_fact_weighs_on_thirty_days_and_no_day_past_the_newest():
    d = date(2026, 11, 20)
    assert days_to_refresh({d - timedelta(days=40)}, None) == [d - timedelta(days=40)]
    days = days_to_refresh({d - timedelta(days=40)}, d)  # the window of d-11 is the last to hold it
    assert days == [d - timedelta(days=40 - k) for k in range(30)]
    # the days between the newest stored score and a new newest day are filled (a quiet day gets rows)
    assert days_to_refresh({d}, d - timedelta(days=3)) == [d - timedelta(days=2), d - timedelta(days=1), d]
    # a day whose turn vanished is refreshed, but never created past the newest day
    assert days_to_refresh(set(), d, {d + timedelta(days=1)}) == []
    assert days_to_refresh(set(), d, {d}) == [d]


def test_days_are_asia_shanghai_days():
    assert shanghai_day(datetime(2026, 11, 19, 16, 0, tzinfo=UTC)) == date(2026, 11, 20)
    assert shanghai_midnight(date(2026, 11, 20)) == datetime(2026, 11, 19, 16, 0, tzinfo=UTC)


# -- reviews through the batch processor ----------------------------------------------------------
CONFIG = PipelineConfig(partitions=4)
T = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
NOW = T + timedelta(minutes=1)


def _msg(topic: str, event: dict, offset: int) -> SourceMessage:
    user = event["user_id"]
    return SourceMessage(f"gmv.{topic}", partition_for_key(user, 4), offset, user.encode(), json.dumps(event).encode(),
                         f"gmv.{topic}:{offset}")


def _order(order: str, user: str) -> dict:
    return {"event_type": "order", "event_id": f"e-{order}", "event_time": T.isoformat(), "order_id": order,
            "user_id": user, "shop_id": "S", "sku_id": "K", "seller_id": "A", "status": "paid", "amount_fen": 100,
            "channel": "live", "channel_id": "L"}


def _review(eid: str, order: str, user: str, minutes: int = 60) -> dict:
    return {"event_type": "review", "event_id": eid, "event_time": (T + timedelta(minutes=minutes)).isoformat(),
            "order_id": order, "user_id": user, "product_rating": 5, "service_rating": 4, "logistics_rating": 3}


def test_a_review_joins_its_paid_order_and_a_second_one_is_dead_lettered():
    proc = BatchProcessor(CONFIG)
    out = proc.process([_msg("orders", _order("O1", "u1"), 0), _msg("reviews", _review("r1", "O1", "u1"), 0),
                        _msg("reviews", _review("r2", "O1", "u1"), 1)], NOW)
    (row,) = out.rows["reviews"]
    assert (row.event_id, row.shop_id, row.sku_id, row.seller_id, row.product_rating) == ("r1", "S", "K", "A", 5)
    assert [(d.event_id, d.reason_code) for d in out.dead_letters] == [("r2", "review_already_given")]
    assert out.counters.summary()["accepted"] == 2


def test_a_review_by_another_user_is_a_mismatch_even_on_another_partition():
    users = [f"x{i}" for i in range(50)]
    other = next(u for u in users if partition_for_key(u, 4) != partition_for_key("u1", 4))
    proc = BatchProcessor(CONFIG)
    out = proc.process([_msg("orders", _order("O1", "u1"), 0), _msg("reviews", _review("r1", "O1", other), 0)], NOW)
    assert [(d.event_id, d.reason_code) for d in out.dead_letters] == [("r1", "review_user_mismatch")]
    assert "which user u1 paid" in out.dead_letters[0].reason


def test_a_review_before_its_order_waits_then_joins_or_becomes_an_orphan():
    proc = BatchProcessor(CONFIG)
    first = proc.process([_msg("reviews", _review("r1", "O1", "u1"), 0),
                          _msg("reviews", _review("r9", "O9", "u1", minutes=61), 1)], NOW)
    assert not first.rows["reviews"] and not first.dead_letters  # both held
    proc.process([_msg("orders", _order("O1", "u1"), 0)], NOW)
    due = proc.attribute_due(NOW, final=True)
    assert [r.event_id for r in due.rows["reviews"]] == ["r1"]
    assert [(d.event_id, d.reason_code) for d in due.dead_letters] == [("r9", "orphan_review")]
    assert isinstance(due.dead_letters[0], DeadLetter) and due.counters.summary()["accepted"] == -1
