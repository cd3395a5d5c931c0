"""The soak benchmark's pure parts (tools/soak_events.py, tools/soak_readings.py): its events are valid and dense,
and what it reads off a worker (RSS, the restore line, the state metrics) is parsed right."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from gmv.schemas.events import EVENT_ADAPTER, OrderEvent, ReviewEvent
from gmv.streams.core.routing import partition_for_key
from gmv.tools.soak_events import PARTITIONS, SoakFeed, batched, one_view
from gmv.tools.soak_readings import (
    descendants,
    du_bytes,
    restore_lines,
    state_figures,
    summarise,
    vmrss_bytes,
    worker_env,
)

NOW_MS = 1_796_000_000_000
N = 30_000


@pytest.fixture(scope="module")
def generated() -> tuple[SoakFeed, list]:
    feed = SoakFeed(N, NOW_MS, seed=7)
    return feed, list(feed.events())


def test_every_soak_event_is_valid_and_sits_on_its_users_partition(generated):
    _, events = generated
    assert len(events) == N
    for ev in events:
        parsed = EVENT_ADAPTER.validate_json(ev.value)
        assert parsed.event_type == ev.event_type
        assert ev.partition == partition_for_key(parsed.partition_key, PARTITIONS)


def test_soak_event_ids_are_unique(generated):
    _, events = generated
    ids = [json.loads(ev.value)["event_id"] for ev in events]
    assert len(set(ids)) == N


def test_soak_event_times_are_dense_within_the_span_and_rise_with_the_stream(generated):
    feed, events = generated
    times = [json.loads(ev.value)["event_time"] for ev in events]
    assert min(times) >= NOW_MS - feed.span_ms and max(times) < NOW_MS
    assert times == sorted(times)


def test_soak_mix_is_mostly_views_with_about_three_percent_paid_orders(generated):
    feed, events = generated
    kinds = Counter(ev.event_type for ev in events)
    assert kinds["view"] > 0.7 * N
    assert 0.025 * N < feed.counts["order"] < 0.035 * N
    assert all(feed.counts[k] > 0 for k in ("enter", "leave", "refund", "review", "cs_message"))
    engaged = sum(1 for ev in events if ev.event_type == "view" and json.loads(ev.value)["watch_ms"] >= 3000)
    assert 0.5 < engaged / kinds["view"] < 0.7
    users = {json.loads(ev.value).get("user_id") for ev in events}
    assert len(users) > N / 20  # many users, not a few hot ones


def test_soak_refunds_and_reviews_follow_a_paid_order_of_the_same_user_and_never_refund_more(generated):
    _, events = generated
    paid: dict[str, OrderEvent] = {}
    refunded: Counter[str] = Counter()
    reviews = 0
    for ev in events:
        e = EVENT_ADAPTER.validate_json(ev.value)
        if isinstance(e, OrderEvent) and e.status == "paid":
            paid[e.order_id] = e
        elif isinstance(e, OrderEvent):
            order = paid[e.order_id]  # an earlier paid order
            assert e.user_id == order.user_id
            refunded[e.order_id] += e.refund_fen or 0
            assert refunded[e.order_id] <= (order.amount_fen or 0)
        elif isinstance(e, ReviewEvent):
            assert paid[e.order_id].user_id == e.user_id
            reviews += 1
    assert refunded and reviews


def test_soak_producer_batches_hold_one_topic_and_partition_and_every_event_once(generated):
    _, events = generated
    seen = 0
    for et, partition, value, n in batched(iter(events), per_message=1000):
        arr = json.loads(value)
        assert len(arr) == n <= 1000 and len(value) <= 1024 * 1024
        assert {e["event_type"] for e in arr} == {et}
        assert {partition_for_key(e["user_id"], PARTITIONS) for e in arr} == {partition}
        seen += n
    assert seen == N


def test_a_restart_marker_is_a_valid_engaged_view_with_the_id_given():
    ev = one_view("soak-restart-1-ab", NOW_MS)
    e = EVENT_ADAPTER.validate_json(ev.value)
    assert (e.event_type, e.event_id, e.watch_ms >= 3000) == ("view", "soak-restart-1-ab", True)
    assert ev.partition == partition_for_key("u-restart", PARTITIONS)


def test_a_soak_of_no_events_is_refused():
    with pytest.raises(ValueError, match="at least one event"):
        SoakFeed(0, NOW_MS)


def test_restore_lines_of_the_journal_worker_and_of_the_state_store_are_both_read():
    log = "\n".join([
        "2026-12-07 14:49:27,173 INFO gmv.streams.loop: recovered state of partitions [0, 1, 2, 3] (0 journal records) in 0.00s",
        "2026-12-07 14:49:35,448 INFO gmv.streams.loop: recovered state of partitions [2] (1,527 journal records) in 0.30s",
        "2026-12-07 15:00:00,000 INFO gmv.streams.recovery: restored state of partitions [0, 1]: 12345 changelog "
        "records read, 2000 live, in 4.25s",
        "2026-12-07 15:00:01,000 INFO gmv.streams.recovery: restored state of partitions [3]: 7 changelog records read, "
        "7 live, in 0.01s",
        "an unrelated line: state of partitions [9] (5 records) in 1s",
    ])
    lines = restore_lines(log)
    assert [(x.partitions, x.records, x.seconds, x.form) for x in lines] == [
        ((0, 1, 2, 3), 0, 0.0, "journal"), ((2,), 1527, 0.30, "journal"),
        ((0, 1), 12345, 4.25, "changelog"), ((3,), 7, 0.01, "changelog")]


def test_vmrss_is_read_in_bytes_and_a_zombie_has_none():
    status = "Name:\tpython\nState:\tS (sleeping)\nVmPeak:\t 2000000 kB\nVmRSS:\t  654321 kB\nRssAnon:\t 600000 kB\n"
    assert vmrss_bytes(status) == 654321 * 1024
    assert vmrss_bytes("Name:\tpython\nState:\tZ (zombie)\n") is None


def test_a_process_tree_is_the_root_and_everything_below_it():
    parents = {10: 1, 11: 10, 12: 11, 13: 10, 20: 1, 21: 20}
    assert sorted(descendants(10, parents)) == [10, 11, 12, 13]


METRICS_AFTER = """\
# HELP gmv_state_keys State keys per domain
# TYPE gmv_state_keys gauge
gmv_state_keys{domain="dedup"} 1000.0
gmv_state_keys{domain="touches"} 600.0
gmv_state_keys{domain="orders"} 30.0
gmv_state_keys{domain="pending"} 0.0
# TYPE gmv_state_memory_bytes gauge
gmv_state_memory_bytes 6.7108864e+07
# TYPE gmv_state_disk_bytes gauge
gmv_state_disk_bytes 163000.0
# TYPE gmv_state_cache_hit_ratio gauge
gmv_state_cache_hit_ratio 0.93
# TYPE gmv_state_restore_records gauge
gmv_state_restore_records{source="live"} 1630.0
gmv_state_restore_records{source="read"} 2000.0
# TYPE gmv_state_restore_seconds gauge
gmv_state_restore_seconds 1.5
# TYPE gmv_partitions_owned gauge
gmv_partitions_owned 4.0
"""


def test_state_metrics_are_read_with_bytes_per_retained_key():
    f = state_figures(METRICS_AFTER)
    assert f["state_keys"] == 1630
    assert f["state_keys_by_domain"] == {"dedup": 1000, "orders": 30, "pending": 0, "touches": 600}
    assert (f["state_memory_bytes"], f["state_disk_bytes"], f["bytes_per_key"]) == (67108864, 163000, 100.0)
    assert (f["cache_hit_ratio"], f["restore_seconds"]) == (0.93, 1.5)
    assert (f["restore_records_live"], f["restore_records_read"]) == (1630, 2000)


def test_a_worker_without_state_metrics_gives_none_for_each():
    today = "# TYPE gmv_partitions_owned gauge\ngmv_partitions_owned 4.0\n"
    f = state_figures(today)
    assert f["state_keys"] is None and f["bytes_per_key"] is None and f["restore_records_read"] is None
    assert set(f.values()) == {None}


def test_disk_use_counts_the_blocks_of_every_file_below_and_none_for_no_folder(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"x" * 10_000)
    (tmp_path / "g").write_bytes(b"y" * 5_000)
    used = du_bytes(tmp_path)
    assert used is not None and used >= 15_000
    assert du_bytes(tmp_path / "missing") is None


def test_worker_settings_pass_through_unless_malformed_or_the_soaks_own():
    assert worker_env(["GMV_LOOKBACK=5m", "GMV_DEDUP_HORIZON=5m"]) == {"GMV_LOOKBACK": "5m", "GMV_DEDUP_HORIZON": "5m"}
    with pytest.raises(ValueError, match="GMV_NAME=VALUE"):
        worker_env(["LOOKBACK=5m"])
    with pytest.raises(ValueError, match="GMV_NAME=VALUE"):
        worker_env(["GMV_LOOKBACK"])
    with pytest.raises(ValueError, match="sets it itself"):
        worker_env(["GMV_DATA_DIR=/tmp/x"])
    with pytest.raises(ValueError, match="--cache-mb"):
        worker_env(["GMV_STATE_CACHE_MB=64"])


def _step(consumed: int, rss: float, **kw) -> dict:
    return {"figure": "soak_step", "events_consumed": consumed, "worker_rss_mb": rss, "events_per_s_overall": 30_000,
            "bytes_per_key": kw.get("bytes_per_key")}


def test_the_summary_gives_rss_growth_per_million_events_and_both_restarts():
    lines = [_step(2_000_000, 900.0), _step(10_000_000, 1_000.0), _step(20_000_000, 1_100.0, bytes_per_key=88.5),
             {"figure": "soak_restart", "restart": "same_data_dir", "spawn_to_new_event_stored_s": 3.2},
             {"figure": "soak_restart", "restart": "empty_local_store", "spawn_to_new_event_stored_s": 41.0}]
    s = summarise(lines)
    assert (s["rss_mb_first_step"], s["rss_mb_last_step"], s["rss_mb_per_million_events"]) == (900.0, 1_100.0, 11.1)
    assert (s["events"], s["bytes_per_key"]) == (20_000_000, 88.5)
    assert (s["restart_same_dir_s"], s["restore_empty_store_s"]) == (3.2, 41.0)


def test_the_summary_of_a_soak_stopped_before_any_step_has_no_figures():
    s = summarise([])
    assert s["events"] is None and s["rss_mb_per_million_events"] is None and s["restart_same_dir_s"] is None
