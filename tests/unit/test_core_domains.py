"""The seams of the pure core's partition state: each event type has one handler, each journal kind
one ``Kind``, each new event exactly one record journalling its de-duplication, the paid-order
index finds what a scan of every partition finds, and the rows the hot loop builds positionally
carry every field where its name says."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import get_args, get_type_hints

import pytest

from gmv.schemas.events import EVENT_TYPES, OrderEvent
from gmv.streams.core import journal
from gmv.streams.core.attribution import Touch
from gmv.streams.core.config import PipelineConfig
from gmv.streams.core.decode import SourceMessage
from gmv.streams.core.dedup import SeenKind
from gmv.streams.core.journal import carried
from gmv.streams.core.kinds import Kind
from gmv.streams.core.processor import BatchProcessor
from gmv.streams.core.routing import partition_for_key
from gmv.streams.core.state import KINDS, Horizons, PartitionState, TouchRecord
from tests.unit.journal_story import story

NOW = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
T = datetime(2026, 11, 20, 4, 0, 0, 123_000, tzinfo=UTC)
T_S = 1_795_147_200.123  # T as a row time


def _msg(topic: str, value: bytes, offset: int = 7, key: bytes = b"u1") -> SourceMessage:
    return SourceMessage(f"gmv.{topic}", 0, offset, key, value, f"gmv.{topic}:0:{offset}", 0, 1_000)


# -- dispatch ----------------------------------------------------------------------------------
def test_every_event_type_and_order_status_has_exactly_one_handler():
    ps = PartitionState(0, Horizons(1000, 1000, 1000))
    assert set(ps.handlers) == set(EVENT_TYPES.values())
    assert set(ps.order_handlers) == set(get_args(OrderEvent.model_fields["status"].annotation))


def test_every_journal_kind_is_handled_by_exactly_one_kind_with_its_documented_record():
    documented = dict(re.findall(r"^``(\w+)``\s+(\w+) —", journal.__doc__ or "", re.M))
    assert set(documented) == set(KINDS) and "/pending/" in (journal.__doc__ or "")
    for name, kind in KINDS.items():
        assert kind.name == name
        assert get_type_hints(kind.decode)["return"].__name__ == documented[name]
    ps = PartitionState(0, Horizons(1000, 1000, 1000))
    assert {name: type(kind) for name, kind in ps.journal.kinds.items()} == KINDS
    with pytest.raises(ValueError, match="handled twice"):
        ps.journal.register(ps.dedup, SeenKind)
    # a derived kind's records make rows, so it re-emits them; the others have none to re-emit
    derived = {name for name, kind in KINDS.items() if kind.derived}
    assert derived == {"attr", "settled", "reviewed", "cs"}
    assert {name for name, kind in KINDS.items() if kind.reemit is not Kind.reemit} == derived


def test_each_new_event_is_journalled_by_exactly_one_record():
    """A new event's own record (touch, order, refund, review, cs) carries its de-duplication, or a
    ``seen`` record does: the handler says which (``Handled.carried``), never both, never neither."""
    proc = BatchProcessor(PipelineConfig(partitions=4))  # horizons of a day: nothing expires in the story
    new: set[str] = set()
    journalled: Counter[str] = Counter()
    carriers = {"seen": 0, "order": 0, "refund": 0, "review": 0, "cs": 0}
    for now, msgs in story():
        out = proc.process(msgs, now)
        new |= {r.event_id for r in out.rows["events"]}
        new |= {d.event_id for d in out.dead_letters if d.reason_code in (
            "order_already_paid", "over_refund", "orphan_refund", "review_user_mismatch", "review_already_given")}
        out.merge(proc.attribute_due(now + timedelta(seconds=6)))
        proc.commit_journal(out)
        for key, value in out.journal_puts:
            for kind, wire in carried(key, value) if value is not None else ():
                if kind == "touch":
                    journalled[TouchRecord(*wire).event_id] += 1
                elif kind in carriers:
                    journalled[wire[0]] += 1
    assert set(journalled) == new
    assert [eid for eid, n in journalled.items() if n != 1] == []


# -- the paid-order index ----------------------------------------------------------------------
def _scan(proc: BatchProcessor, order_id: str):
    for ps in proc.partitions.values():
        order = ps.attribution.paid_order(order_id)
        if order is not None:
            return order
    return None


def test_the_paid_order_index_finds_what_a_scan_of_every_partition_finds():
    proc = BatchProcessor(PipelineConfig(partitions=4))
    journal_kv: list[tuple[str, bytes | None]] = []
    for i, (now, msgs) in enumerate(story()):
        if i == 20:  # a partition reloaded from its changelog (its state replaced, its orders re-indexed)
            proc.load(1, [kv for kv in journal_kv if kv[0].startswith("1/")], now)
        out = proc.process(msgs, now)
        proc.commit_journal(out)
        for staged in out.staged:
            staged.persist(None)
        journal_kv += out.journal_puts
        ids = {o for ps in proc.partitions.values() for o in ps.attribution.order_ids} | {"nowhere"}
        assert {o: proc.find_order(o) for o in ids} == {o: _scan(proc, o) for o in ids}
    # one order_id paid on two partitions: the first partition the processor holds answers
    users = [f"x{i}" for i in range(40)]
    a = users[0]
    b = next(u for u in users if partition_for_key(u, 4) != partition_for_key(a, 4))

    def paid(eid: str, user: str) -> SourceMessage:
        doc = {"event_type": "order", "event_id": eid, "event_time": T.isoformat(), "order_id": "TWICE",
               "user_id": user, "status": "paid", "shop_id": "S", "sku_id": "K", "seller_id": "A",
               "amount_fen": 100, "channel": "live", "channel_id": "L"}
        p = partition_for_key(user, 4)
        return SourceMessage("gmv.orders", p, 9_000, user.encode(), json.dumps(doc).encode(), f"gmv.orders:{p}:{eid}")

    proc = BatchProcessor(PipelineConfig(partitions=4))
    proc.process([paid("pb", b), paid("pa", a)], NOW)
    assert proc.find_order("TWICE") == _scan(proc, "TWICE") and proc.find_order("TWICE").user_id == b
    proc.forget({partition_for_key(b, 4)})
    assert proc.find_order("TWICE") == _scan(proc, "TWICE") and proc.find_order("TWICE").user_id == a


# -- rows built positionally in the hot loop, field by field -------------------------------------
def test_a_view_becomes_an_engaged_event_row_and_a_touch_field_by_field():
    doc = {"event_type": "view", "event_id": "e1", "event_time": "2026-11-20T12:00:00.123+08:00", "user_id": "u1",
           "video_id": "v1", "author_id": "a1", "kind": "clip", "source_live_id": "L1", "watch_ms": 4000,
           "traffic": "private", "shop_id": "p1"}
    raw = json.dumps(doc).encode()
    proc = BatchProcessor(PipelineConfig(partitions=1))
    out = proc.process([_msg("views", raw)], NOW)
    (event,) = out.rows["events"]  # its funnel_events row is ClickHouse's (tests/integration/test_funnel_from_events.py)
    assert set(out.rows) == {"events", "ingest_log", "dead_letters", "attributed_gmv", "refunds", "reviews", "cs_turns"}
    assert event._asdict() == {
        "event_id": "e1", "event_type": "view", "event_time": T_S, "user_id": "u1", "partition_key": "u1",
        "src": "gmv.views:0:7", "source_topic": "gmv.views", "source_partition": 0, "source_offset": 7,
        "element_index": -1, "payload": raw.decode(), "ingested_at": NOW.timestamp(), "engaged": 1}
    proc.commit_journal(out)
    ((_, touch),) = [r for k, v in out.journal_puts for r in carried(k, v) if r[0] == "touch"]
    assert TouchRecord(*touch)._asdict() == {
        "t_ms": 1_795_147_200_123, "event_id": "e1", "stage": "clip", "account_id": "a1", "content_id": "v1",
        "shop_id": "p1", "traffic": "private", "user_id": "u1", "src": "gmv.views:0:7"}
    assert TouchRecord._fields[:len(Touch._fields)] == Touch._fields  # a touch record is built from a Touch


def test_engaged_is_a_view_watched_engaged_ms_or_more_or_a_live_enter_and_only_those_are_touches():
    enter = {"event_type": "live_room", "event_id": "e2", "event_time": 1_795_147_200_123, "live_id": "L1",
             "anchor_id": "a1", "action": "enter", "user_id": "u1", "referrer_kind": "short_video"}
    start = {"event_type": "live_room", "event_id": "e3", "event_time": 1_795_147_200_123, "live_id": "L1",
             "anchor_id": "a1", "action": "start", "shop_id": "p1", "traffic": "private"}
    leave = {**enter, "event_id": "e4", "action": "leave"}
    views = [{"event_type": "view", "event_id": f"v{ms}", "event_time": 1_795_147_200_123, "user_id": "u1",
              "video_id": "v1", "author_id": "a1", "kind": "short_video", "watch_ms": ms} for ms in (2999, 3000)]
    proc = BatchProcessor(PipelineConfig(partitions=1, engaged_ms=3000))
    out = proc.process([_msg("live_rooms", json.dumps(enter).encode(), 1),
                        _msg("live_rooms", json.dumps([start]).encode(), 2, key=b"L1"),
                        _msg("live_rooms", json.dumps(leave).encode(), 3),
                        *(_msg("views", json.dumps(v).encode(), 4 + i) for i, v in enumerate(views))], NOW)
    assert [(r.event_id, r.engaged) for r in out.rows["events"]] == [
        ("e2", 1), ("e3", 0), ("e4", 0), ("v2999", 0), ("v3000", 1)]
    assert sorted(proc.partitions[0].attribution.touches["u1"]) == ["e2", "v3000"]
    # an element of a producer batch: its event row carries the parsed element, and no user
    event = out.rows["events"][1]._asdict()
    assert event == {
        "event_id": "e3", "event_type": "live_room", "event_time": T_S, "user_id": "", "partition_key": "L1",
        "src": "gmv.live_rooms:0:2#0", "source_topic": "gmv.live_rooms", "source_partition": 0, "source_offset": 2,
        "element_index": 0, "payload": start, "ingested_at": NOW.timestamp(), "engaged": 0}


def test_a_bucket_applied_from_its_wire_arrays_leaves_the_state_record_by_record_application_would():
    """``apply_wires`` (a restore's path) against ``apply(decode(wire))``: the same users' touch bytes
    and de-duplication entries, for a user's second touch, a touch seen twice, one carried by a journal
    from before touches carried their event's source (8 fields), and a lone surrogate in an id."""
    wires = [
        [1_000, "e1", "short_video", "a1", "v1", "s1", "public", "u1", "gmv.views:0:1"],
        [2_000, "e2", "live", "a1", "L1", "", "private", "u1", "gmv.live_rooms:0:1"],
        [1_000, "e1", "short_video", "a1", "v1", "s1", "public", "u1", "gmv.views:0:1"],  # seen twice
        [3_000, "e3", "clip", "a2", "c\ud800", "s2", "public", "u2"],  # no source: an older journal
        [4_000, "e\ud800", "clip", "a2", "c1", "s2", "public", "u2", "gmv.views:0:2"],
    ]
    seen = [["x1", "gmv.orders:0:9"], ["e1", "gmv.views:0:7"]]  # e1 is the touch's already
    by_record, by_wire = (PartitionState(0, Horizons(10**9, 10**9, 10**9)) for _ in range(2))
    for name, ws in (("touch", wires), ("seen", seen)):
        kind = by_record.journal.kinds[name]
        for wire in ws:
            kind.apply(kind.decode(wire))
        by_wire.journal.kinds[name].apply_wires(ws)

    def state(ps: PartitionState) -> tuple:
        return ({u: t.raw for u, t in ps.attribution.touches.items()}, dict(ps.dedup.seen.items()))

    assert state(by_wire) == state(by_record)
    touches, dedup = state(by_wire)
    assert set(touches) == {"u1", "u2"} and touches["u1"].count(b'"e1"') == 1
    assert dedup == {"e1": "gmv.views:0:1", "e2": "gmv.live_rooms:0:1", "e\ud800": "gmv.views:0:2",
                     "x1": "gmv.orders:0:9"}
