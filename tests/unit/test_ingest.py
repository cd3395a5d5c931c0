"""Edge validation, de-duplication and the batch processor, without a broker."""

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gmv.streams.core.config import PipelineConfig
from gmv.streams.core.decode import Accepted, DeadLetter, MessageDecoder, SourceMessage
from gmv.streams.core.processor import BatchProcessor
from gmv.streams.core.state import Horizons, PartitionState

NOW = datetime(2026, 11, 25, tzinfo=UTC)
TOPICS = {"gmv.views": "view", "gmv.live_rooms": "live_room", "gmv.orders": "order"}


def view(i, **kw):
    return {"event_type": "view", "event_id": f"e{i}", "event_time": "2026-11-20T12:00:00Z", "user_id": "u1",
            "video_id": "v", "author_id": "a", "kind": "short_video", "watch_ms": 4000, **kw}


def msg(value, topic="gmv.views", offset=0, partition=0, src=None):
    raw = value if isinstance(value, bytes) or value is None else json.dumps(value).encode()
    return SourceMessage(topic, partition, offset, b"u1", raw, src or f"{topic}:{partition}:{offset}")


def decoder():
    return MessageDecoder(TOPICS, 1024 * 1024, 1000, 86_400_000)


def test_bad_messages_get_actionable_reasons():
    d = decoder()
    cases = {
        b"{not json": "invalid_json",
        b"": "empty_message",
        b"\xff\xfe{}": "invalid_json",
        b'"a string"': "not_an_object",
        b"[]": "empty_batch",
        json.dumps(view(1, event_type="click")).encode(): "unknown_event_type",
        json.dumps({k: v for k, v in view(1).items() if k != "event_type"}).encode(): "missing_event_type",
        json.dumps(view(1, watch_ms="x")).encode(): "invalid_event",
        b"x" * (1024 * 1024 + 1): "too_large",
        json.dumps(view(1)).replace("4000", "NaN").encode(): "invalid_json",  # NaN is not a JSON number
        b"[" * 5000 + b"]" * 5000: "invalid_json",
    }
    for raw, code in cases.items():
        out = d.decode(msg(raw), NOW)
        assert len(out) == 1 and isinstance(out[0], DeadLetter), raw[:30]
        assert out[0].reason_code == code, (raw[:30], out[0].reason)
        assert out[0].reason


def test_wrong_topic_and_future_time_are_dead_lettered():
    d = decoder()
    (dl,) = d.decode(msg(view(1), topic="gmv.orders"), NOW)
    assert dl.reason_code == "wrong_topic" and "gmv.orders" in dl.reason
    future = view(2, event_time=(NOW + timedelta(days=3)).isoformat())
    (dl,) = d.decode(msg(future), NOW)
    assert dl.reason_code == "future_event_time"


def test_a_bad_element_of_a_producer_batch_is_dead_lettered_alone():
    batch = [view(1), view(2, watch_ms=-3), view(3)]
    out = decoder().decode(msg(batch), NOW)
    assert [type(o) for o in out] == [Accepted, DeadLetter, Accepted]
    assert out[1].index == 1 and out[1].src.endswith("#1") and "element 1" in out[1].reason
    assert json.loads(out[1].raw)["watch_ms"] == -3


def test_oversized_batches_are_rejected_whole():
    out = MessageDecoder(TOPICS, 1024 * 1024, 2, 10**9).decode(msg([view(1), view(2), view(3)]), NOW)
    assert len(out) == 1 and out[0].reason_code == "batch_too_large"


def test_dedup_distinguishes_replay_from_duplicate_and_expires_by_event_time():
    ps = PartitionState(0, Horizons(1000, 1000, 1000))
    assert ps.classify("a", "src1") == "new"
    ps.journal_seen("a", "src1", 10)  # (an event with a touch, order or refund record is journalled by that)
    assert ps.classify("a", "src1") == "replay"
    assert ps.classify("a", "src2") == "duplicate"
    ps.advance(10)
    puts, staged = ps.commit_batch()
    staged.persist(len(puts))
    bucket = f"0/bucket/seen/000000000000099/1.{ps.journal.writer}"
    assert [k for k, _ in puts] == [bucket]  # one changelog message per bucket of event time
    # rebuilt from the changelog: same verdicts
    again = PartitionState(0, Horizons(1000, 1000, 1000))
    again.load(puts)
    assert again.classify("a", "src2") == "duplicate"
    # event time moves past the horizon: the record expires, with a tombstone (the wall clock plays no part)
    again.advance(5000)
    again.classify("b", "src3")
    expired, _ = again.commit_batch()
    assert expired == [(bucket, None)]
    assert again.classify("a", "src9") == "new"


def test_processor_counts_add_up_and_replays_give_identical_rows():
    proc = BatchProcessor(PipelineConfig(partitions=1))
    msgs = [msg(view(1), offset=0), msg(view(1), offset=1), msg(b"{bad", offset=2),
            msg([view(2), {"event_type": "view"}], offset=3)]
    out = proc.process(msgs, NOW)
    c = out.counters.summary()
    assert c == {"received": 5, "accepted": 2, "duplicates": 1, "dead_lettered": 2, "rekeyed": 0}
    assert len(out.rows["events"]) == 2 and len(out.rows["dead_letters"]) == 2
    # duplicate + 2 dead letters; each accepted event's log row is derived in ClickHouse from events
    assert len(out.rows["ingest_log"]) == 3
    assert out.next_offsets == {("gmv.views", 0): 4}
    # the same messages again (a crash before the offset commit): the same outcomes and rows
    proc.commit_journal(out)
    assert out.journal_puts
    again = proc.process(msgs, NOW)
    assert again.counters.summary() == c
    assert again.rows == out.rows
    proc.commit_journal(again)
    assert not again.journal_puts  # nothing new to remember


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode),
                          st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                                       lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                                       max_leaves=20).map(lambda o: json.dumps(o).encode())),
                min_size=1, max_size=20))
def test_fuzz_never_raises_and_accounts_for_every_message(raws):
    proc = BatchProcessor(PipelineConfig(partitions=1))
    out = proc.process([msg(r, offset=i) for i, r in enumerate(raws)], NOW)
    c = out.counters.summary()
    assert c["received"] == c["accepted"] + c["duplicates"] + c["dead_lettered"]
    assert c["received"] >= len(raws) - sum(1 for r in raws if r.strip().startswith(b"[") and len(json.loads(r) if _is_json(r) else [0]) == 0)
    assert len(out.rows["ingest_log"]) + len(out.rows["events"]) == c["received"]


def _is_json(raw):
    try:
        json.loads(raw)
        return True
    except ValueError:
        return False


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=40).map(str.encode))
def test_murmur2_matches_kafka_python(data):
    from kafka.partitioner.default import murmur2 as reference

    from gmv.streams.core.routing import murmur2

    assert murmur2(data) == reference(data)


def test_journal_entries_round_trip_even_with_strings_rust_refuses():
    from gmv.streams.core.codec import _decode, _encode

    doc = {"k": "seen", "t": 5, "r": [["e1", "src:0:1#2"], ["中文", "x\ud800y"]]}
    assert _decode(_encode(doc)) == doc
    plain = {"k": "seen", "t": 5, "r": [["e1", "src"]]}
    assert _encode(plain) == b'{"k":"seen","t":5,"r":[["e1","src"]]}'
