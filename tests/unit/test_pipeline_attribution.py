"""The batch processor's attribution timing and co-partitioning, without a broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from gmv.schemas.events import TOPIC_NAMES
from gmv.schemas.times import to_ms
from gmv.streams.core.decode import SourceMessage
from gmv.streams.core.processor import BatchProcessor
from gmv.streams.core.progress import IN_FLIGHT_MS, ReadProgress
from gmv.streams.core.routing import partition_for_key
from gmv.streams.settings import Settings

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
T = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
CONFIG = Settings(partitions=4, attribution_delay=timedelta(seconds=5)).pipeline_config()


def msg(topic: str, doc: dict, offset: int, partition: int | None = None, ts: int = 0) -> SourceMessage:
    p = partition_for_key(doc["user_id"], 4) if partition is None else partition
    return SourceMessage(f"gmv.{topic}", p, offset, doc["user_id"].encode(), json.dumps(doc).encode(),
                         f"gmv.{topic}:{p}:{offset}", 0, ts)


def view(eid: str, t: datetime, user: str = "u1") -> dict:
    return {"event_type": "view", "event_id": eid, "event_time": t.isoformat(), "user_id": user,
            "video_id": f"v-{eid}", "author_id": "s1", "kind": "short_video", "watch_ms": 9000}


def order(eid: str, t: datetime, user: str = "u1") -> dict:
    return {"event_type": "order", "event_id": eid, "event_time": t.isoformat(), "user_id": user,
            "order_id": f"o-{eid}", "shop_id": "p1", "sku_id": "k1", "seller_id": "s1", "status": "paid",
            "amount_fen": 1000, "channel": "live", "channel_id": "L1"}


def paths(result) -> dict[str, str]:
    return {r.event_id: r.path for r in result.credit_rows if r.model == "linear"}


def test_a_touch_arriving_within_the_delay_counts_and_one_after_it_does_not():
    proc = BatchProcessor(CONFIG)
    proc.process([msg("orders", order("o1", T), 0)], NOW)
    assert not proc.attribute_due(NOW + timedelta(seconds=4)).credit_rows  # still waiting
    proc.process([msg("views", view("late", T - timedelta(minutes=5)), 0)], NOW + timedelta(seconds=3))
    done = proc.attribute_due(NOW + timedelta(seconds=5))
    assert paths(done) == {"o1": "short_video>live"}
    # an order already attributed is not revisited by a later touch
    proc.process([msg("views", view("too-late", T - timedelta(minutes=1)), 1)], NOW + timedelta(seconds=6))
    assert not proc.attribute_due(NOW + timedelta(seconds=60)).credit_rows


def test_touches_after_the_order_time_never_count():
    proc = BatchProcessor(CONFIG)
    proc.process([msg("orders", order("o1", T), 0), msg("views", view("after", T + timedelta(seconds=1)), 0)], NOW)
    assert paths(proc.attribute_due(NOW, final=True)) == {"o1": "live"}


def test_a_mis_keyed_event_is_forwarded_to_its_users_partition_not_attributed_there():
    proc = BatchProcessor(CONFIG)
    owner = partition_for_key("u1", 4)
    wrong = (owner + 1) % 4
    out = proc.process([msg("views", view("v1", T - timedelta(hours=1)), 0, partition=wrong)], NOW)
    assert [(r.partition, r.key) for r in out.rekeyed] == [(owner, b"u1")]
    assert out.counters.summary()["rekeyed"] == 1 and out.counters.summary()["received"] == 0
    assert wrong not in proc.partitions or not proc.partitions[wrong].touches
    # the forwarded copy, consumed from the rekeyed topic on the owner partition, counts there
    fwd = SourceMessage("gmv.rekeyed", owner, 0, b"u1", out.rekeyed[0].value, out.rekeyed[0].src)
    again = proc.process([fwd, msg("orders", order("o1", T), 0)], NOW)
    assert again.counters.summary()["accepted"] == 2
    assert paths(proc.attribute_due(NOW, final=True)) == {"o1": "short_video>live"}


def _confirm(proc: BatchProcessor, p: int) -> list[tuple[str, bytes | None]]:
    """The tombstones a mark written now sends for partition ``p`` (ClickHouse holds its rows)."""
    tombstones = []
    for c in proc.marks().get(p, []):
        tombstones += c.journal.confirm(c.pending_ids)[0]
    return tombstones


def test_journal_recovery_re_emits_unconfirmed_attributions_identically():
    proc = BatchProcessor(CONFIG)
    out = proc.process([msg("views", view("v1", T - timedelta(hours=1)), 0), msg("orders", order("o1", T), 0)], NOW)
    out.merge(proc.attribute_due(NOW, final=True))
    proc.commit_journal(out)
    p = partition_for_key("u1", 4)
    journal = [(k, v) for k, v in out.journal_puts if k.startswith(f"{p}/")]
    # a crash after the changelog was written but before ClickHouse took the rows: recovery re-emits them
    fresh = BatchProcessor(CONFIG)
    recovered = fresh.load(p, journal, NOW)
    strip = lambda rows: [r._replace(attributed_at=0) for r in rows]  # noqa: E731 - processing time
    assert strip(recovered.credit_rows) == strip(out.credit_rows)
    # once the mark's tombstones follow them (ClickHouse confirmed), nothing is re-emitted
    assert not BatchProcessor(CONFIG).load(p, [*journal, *_confirm(fresh, p)], NOW).credit_rows


def test_a_mark_confirms_only_the_records_pending_when_it_was_taken():
    """Pipelined batches: batch 2's records are sent before batch 1's mark; that mark must not cover them."""
    proc = BatchProcessor(CONFIG)
    p = partition_for_key("u1", 4)
    b1 = proc.process([msg("orders", order("o1", T), 0)], NOW)
    b1.merge(proc.attribute_due(NOW, final=True))
    proc.commit_journal(b1)
    marks_b1 = proc.marks()
    b2 = proc.process([msg("orders", order("o2", T + timedelta(minutes=1)), 1)], NOW)
    b2.merge(proc.attribute_due(NOW, final=True))
    proc.commit_journal(b2)
    mark_b1 = [t for c in marks_b1[p] for t in c.journal.confirm(c.pending_ids)[0]]
    journal = [(k, v) for k, v in (*b1.journal_puts, *b2.journal_puts) if k.startswith(f"{p}/")]
    reemitted = BatchProcessor(CONFIG).load(p, [*journal, *mark_b1], NOW).credit_rows
    assert {r.order_id for r in reemitted} == {"o-o2"}  # batch 2 not yet confirmed: its rows come back
    mark_b2 = _confirm(proc, p)
    assert not BatchProcessor(CONFIG).load(p, [*journal, *mark_b1, *mark_b2], NOW).credit_rows
    # a later writer's mark confirms what it found pending when it recovered
    later = BatchProcessor(CONFIG)
    later.load(p, journal, NOW)
    assert not BatchProcessor(CONFIG).load(p, [*journal, *_confirm(later, p)], NOW).credit_rows


def test_touch_and_order_records_carry_their_events_deduplication():
    proc = BatchProcessor(CONFIG)
    p = partition_for_key("u1", 4)
    out = proc.process([msg("views", view("v1", T - timedelta(hours=1)), 0), msg("orders", order("o1", T), 1)], NOW)
    proc.commit_journal(out)
    kinds = [k.split("/")[1] for k, _ in out.journal_puts]
    assert "seen" not in kinds  # the touch and the order journal their own event ids
    rebuilt = BatchProcessor(CONFIG)
    rebuilt.load(p, [(k, v) for k, v in out.journal_puts if k.startswith(f"{p}/")], NOW)
    again = rebuilt.process([msg("views", view("v1", T - timedelta(hours=1)), 5),
                             msg("orders", order("o1", T), 6)], NOW)
    assert again.counters.summary()["duplicates"] == 2


def test_a_stalled_worker_waits_to_read_the_stream_again_before_attributing():
    """The delay is for the stream's lateness: after a stall or under lag, every topic of the
    partition must be read past the order's Kafka time + delay (or be caught up)."""
    proc = BatchProcessor(CONFIG)
    progress = ReadProgress(CONFIG.state_topics)
    p = partition_for_key("u1", 4)
    others = {(t, p) for t in ("gmv.live_rooms", "gmv.reviews", "gmv.service", "gmv.rekeyed")}  # quiet: read to their end

    def read(batch: list[SourceMessage], at: datetime) -> None:
        progress.note(batch)
        proc.process(batch, at)

    read([msg("orders", order("o1", T), 0, ts=1_000)], NOW)
    progress.caught_up = set(others)
    later = NOW + timedelta(seconds=40)  # ClickHouse was down for 40 s: nothing was read meanwhile
    assert not proc.attribute_due(later, read_to=progress.read_to).credit_rows
    # orders read far on, but the views topic lags behind: still waiting
    read([msg("orders", order("o9", T + timedelta(hours=1)), 1, ts=51_000)], later)
    assert not proc.attribute_due(later, read_to=progress.read_to).credit_rows
    # views read past the order's time + delay, bringing the touch sent right after the order: it counts
    read([msg("views", view("v1", T - timedelta(minutes=5)), 1, ts=7_000)], later)
    assert paths(proc.attribute_due(later, read_to=progress.read_to))["o1"] == "short_video>live"
    # a partition whose topics are all caught up needs no further read
    read([msg("orders", order("o2", T + timedelta(minutes=1)), 2, ts=60_000)], NOW)
    progress.caught_up = {(t, p) for t in ("gmv.views", "gmv.orders", *(t for t, _ in others))}
    assert "o2" in paths(proc.attribute_due(NOW + timedelta(seconds=6), read_to=progress.read_to))


def _invariants_hold(ps) -> None:
    assert dict(ps.unattributed.items()) == {eid: o for eid, o in ps.orders.items() if eid not in ps.attrs}
    assert dict(ps.unsettled.items()) == {eid: r for eid, r in ps.refunds.items() if eid not in ps.outcomes}
    by_order: dict[str, set[str]] = {}
    for eid, r in ps.refunds.items():
        by_order.setdefault(r.order_id, set()).add(eid)
    assert dict(ps.refunds_of.items()) == by_order
    assert dict(ps.unjudged.items()) == {eid: r for eid, r in ps.reviews.items() if eid not in ps.review_outcomes}
    applied = {r.order_id: eid for eid, r in ps.reviews.items() if ps.review_outcomes.get(eid) == "applied"}
    assert dict(ps.reviewed.items()) == applied


def test_pending_indexes_follow_the_state_through_batches_expiry_and_recovery():
    """unattributed / unsettled / refunds_of are kept beside the maps (per-batch work follows what
    is pending, not the 90 days retained): they must equal what the maps say, always."""
    from gmv.tools.simulator import SCENARIOS, World

    # Short horizons: expiry passes (throttled to a tenth of the shortest) run many times.
    s = Settings(partitions=4, attribution_delay=timedelta(seconds=5), dedup_horizon=timedelta(hours=2),
                 lookback=timedelta(hours=3), weights_retention=timedelta(hours=4),
                 orphan_refund_hold=timedelta(minutes=30))
    world = World(SCENARIOS["mixed"].scaled(2), 5, datetime(2026, 11, 1, 16, 0, tzinfo=UTC))
    proc, journal, offset = BatchProcessor(s.pipeline_config()), [], 0
    batch: list[SourceMessage] = []
    expired = 0
    for n, m in enumerate(world.messages()):
        if m.key is None:
            continue
        topic = TOPIC_NAMES[m.topic_type]
        p = partition_for_key(m.key, 4)
        batch.append(SourceMessage(f"gmv.{topic}", p, offset, m.key.encode(), m.value, f"gmv.{topic}:{p}:{offset}"))
        offset += 1
        if len(batch) == 500 or n >= 12_000:
            out = proc.process(batch, NOW)
            out.merge(proc.attribute_due(NOW + timedelta(minutes=1)))
            proc.commit_journal(out)
            for staged in out.staged:
                staged.persist(None)
            journal += out.journal_puts
            expired += sum(1 for k, v in out.journal_puts if v is None and "/pending/" not in k)
            batch = []
            for ps in proc.partitions.values():
                _invariants_hold(ps)
        if n >= 12_000:
            break
    assert expired > 0 and any(ps.attrs for ps in proc.partitions.values())
    assert any(ps.outcomes for ps in proc.partitions.values())
    # recovery from the journal (puts and deletes in order) rebuilds the same indexes
    for p, ps in proc.partitions.items():
        fresh = BatchProcessor(s.pipeline_config())
        fresh.load(p, [(k, v) for k, v in journal if k.startswith(f"{p}/")], NOW)
        again = fresh.partition_state(p)
        _invariants_hold(again)
        assert set(again.unattributed.keys()) == set(ps.unattributed.keys())
        assert set(again.unsettled.keys()) == set(ps.unsettled.keys())
        assert set(again.unjudged.keys()) == set(ps.unjudged.keys())
        assert dict(again.reviewed.items()) == dict(ps.reviewed.items())
        assert {c: set(m) for c, m in again.conversations.items()} == {c: set(m) for c, m in ps.conversations.items()}


def test_a_topic_is_caught_up_only_once_every_record_the_consumer_returned_is_processed():
    """A fetch is processed in pieces: the consumer's position reaches the high watermark as soon as
    it returns a partition's records, before the piece holding them is processed."""
    progress = ReadProgress(CONFIG.state_topics)
    key = ("gmv.orders", 0)
    returned = [msg("orders", order(f"o{i}", T), i) for i in range(3)]
    progress.returned_by_consumer(returned)
    assert progress.is_caught_up(("gmv.views", 0), high=0, position=0, processed=0)  # an empty topic
    assert not progress.is_caught_up(key, high=3, position=3, processed=0)  # returned, not processed yet
    assert not progress.is_caught_up(key, high=3, position=3, processed=2)
    assert progress.is_caught_up(key, high=3, position=3, processed=3)
    assert not progress.is_caught_up(key, high=None, position=3, processed=3)  # nothing known of the topic
    # what a piece held counts as read; what waits in a later piece does not
    progress.note(returned[:1])
    assert progress.read_ts == {key: returned[0].timestamp_ms}
    progress.forget({0})
    assert progress.is_caught_up(key, high=3, position=3, processed=0)  # another owner's now


def test_the_watermark_waits_for_a_topic_still_reading_its_backlog_though_another_read_ahead():
    """A replay or a catch-up reads the views topic far ahead of the orders of the same partition: the
    minutes the views reached are not complete while unread orders may fall in them (the alert rules
    judged live rooms without their orders, and paged)."""
    proc = BatchProcessor(CONFIG)
    progress = ReadProgress(CONFIG.state_topics)
    p = partition_for_key("u1", 4)
    batch = [msg("orders", order("o1", T), 0, ts=1_000), msg("views", view("v1", T + timedelta(hours=5)), 0)]
    progress.note(batch)
    proc.process(batch, NOW)
    proc.attribute_due(NOW + timedelta(seconds=6), final=True)
    quiet = {(t, p) for t in ("gmv.live_rooms", "gmv.reviews", "gmv.service", "gmv.rekeyed")}
    progress.caught_up = quiet | {("gmv.views", p)}  # the orders topic still has a backlog
    assert proc.attribution_watermark_ms(progress.reading({p})) == int(T.timestamp() * 1000)
    progress.caught_up = quiet | {("gmv.views", p), ("gmv.orders", p)}
    assert proc.attribution_watermark_ms(progress.reading({p})) == int((T + timedelta(hours=5)).timestamp() * 1000)


def review(eid: str, order_id: str, t: datetime, user: str = "u1") -> dict:
    return {"event_type": "review", "event_id": eid, "event_time": t.isoformat(), "order_id": order_id,
            "user_id": user, "product_rating": 5, "service_rating": 4, "logistics_rating": 3}


def test_a_review_is_no_orphan_while_its_order_may_still_be_on_its_way_to_a_caught_up_topic():
    """A story in compressed time (the demo's, a replay) passes a review's hour of hold in a moment:
    the orders topic, caught up at its last look, may still get the order sent just before the review."""
    p = partition_for_key("u1", 4)
    everything = {(t, p) for t in CONFIG.state_topics}

    def reviews_read() -> tuple[BatchProcessor, ReadProgress]:
        """Two reviews (sent at 100.0 and 100.2 s) and the partition's event time 3 h past them: their
        hold has run out; every topic looked caught up at 101 s."""
        proc, progress = BatchProcessor(CONFIG), ReadProgress(CONFIG.state_topics)
        batch = [msg("reviews", review("r1", "o-o1", T + timedelta(minutes=1)), 0, ts=100_000),
                 msg("reviews", review("r2", "o-never", T + timedelta(minutes=1)), 1, ts=100_200),
                 msg("views", view("v9", T + timedelta(hours=3)), 0, ts=100_300)]
        progress.note(batch)
        proc.process(batch, NOW)
        progress.caught_up, progress.polled_ms = set(everything), dict.fromkeys(everything, 101_000)
        return proc, progress

    proc, progress = reviews_read()
    assert proc.attribute_due(NOW, read_to=progress.read_to).dead_letters  # caught up read as "all of it"
    proc, progress = reviews_read()
    held = proc.attribute_due(NOW, read_to=progress.read_to, read_past=progress.read_past)
    assert not held.dead_letters and not held.rows["reviews"]  # both wait: the last look was too soon
    # the order, sent at 99.9 s, reached the broker after that look
    order_read = [msg("orders", order("o1", T), 0, ts=99_900)]
    progress.note(order_read)
    proc.process(order_read, NOW)
    # a look IN_FLIGHT_MS after both reviews were sent
    progress.polled_ms = dict.fromkeys(everything, 100_200 + IN_FLIGHT_MS)
    out = proc.attribute_due(NOW + timedelta(seconds=6), read_to=progress.read_to, read_past=progress.read_past)
    assert [r.event_id for r in out.rows["reviews"]] == ["r1"]
    assert [(d.event_id, d.reason_code) for d in out.dead_letters] == [("r2", "orphan_review")]


def test_an_order_less_than_the_dedup_horizon_late_finds_a_touch_exactly_lookback_before_it():
    """The partition's newest event is hours past the order (other users' events, read first) and an
    expiry pass runs between the touch and the order: the touch is still there (a batch replay reads
    topics in whatever interleaving its fetches give; what it credits must not depend on it)."""
    proc = BatchProcessor(CONFIG)
    p = partition_for_key("u1", 4)
    others = [u for u in (f"x{i}" for i in range(200)) if partition_for_key(u, 4) == p]
    proc.process([msg("views", view(f"w{i}", T + timedelta(hours=5, minutes=i), user), i)
                  for i, user in enumerate(others[:3])], NOW)
    proc.commit_journal(proc.process([msg("views", view("edge", T - timedelta(days=7)), 10)], NOW))
    # later events of the partition move its watermark on: an expiry pass runs at this batch's commit
    passed = proc.process([msg("views", view("later", T + timedelta(hours=11), others[3]), 11)], NOW)
    proc.commit_journal(passed)
    assert proc.partitions[p].journal._expired_at_ms == to_ms(T + timedelta(hours=11))
    proc.process([msg("orders", order("o1", T), 0)], NOW)
    assert paths(proc.attribute_due(NOW, final=True)) == {"o1": "short_video>live"}


def test_an_order_later_than_lookback_and_the_dedup_horizon_finds_its_touches_expired():
    """The other side of the allowance: a touch is not kept for ever."""
    proc = BatchProcessor(CONFIG)
    proc.commit_journal(proc.process([msg("views", view("old", T - timedelta(days=7)), 0)], NOW))
    proc.commit_journal(proc.process([msg("views", view("next-day", T + timedelta(days=1, minutes=2)), 1)], NOW))
    proc.process([msg("orders", order("o1", T), 0)], NOW)
    assert paths(proc.attribute_due(NOW, final=True)) == {"o1": "live"}
