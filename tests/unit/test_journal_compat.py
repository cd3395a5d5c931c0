"""The changelog format does not drift, and its first format still loads.

- A changelog of the first format (one entry per batch, captured at fcc3ea5) migrates into the same
  state its own code rebuilt, and re-emits rows of the same tables in the same numbers.
- Today's code, fed the same story, writes the same changelog bytes (format 2: a record per key, the
  ``seen`` and ``touch`` records by the bucket), rows, dead letters and counters as when
  ``journal_v2_buckets.json.gz`` was captured, and the same rows as the code that wrote every record
  under its own key (``journal_v2.json.gz``, 5d39b92); a fresh processor rebuilds the same state from
  either changelog (but for the touches ``journal_v2.json.gz`` expired a ``dedup_horizon`` sooner) and
  re-emits the same rows.

``journal_story.py`` tells the story and how the fixtures were captured."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import datetime

import pytest

from tests.unit.journal_story import (
    FIXTURE,
    FIXTURE_BUCKETS,
    FIXTURE_V2,
    PARTITIONS,
    reload,
    run_story,
    story,
    writers_ranked,
)


def _load(path) -> dict:
    return json.loads(gzip.decompress(path.read_bytes()))


@pytest.fixture(scope="module")
def v1() -> dict:
    return _load(FIXTURE)


@pytest.fixture(scope="module")
def v2() -> dict:
    return _load(FIXTURE_V2)


@pytest.fixture(scope="module")
def buckets() -> dict:
    return _load(FIXTURE_BUCKETS)


def _journal(doc: dict) -> list[tuple[str, bytes | None]]:
    return [(k, None if v is None else v.encode()) for k, v in doc["journal"]]


def _sorted_state(state: dict) -> dict:
    """The first format's state dump (each map in insertion order) in key order, as a store keeps it."""
    out = {}
    for name, value in state.items():
        if name == "entries":
            continue
        if name == "touches" or name == "conversations":
            value = sorted([k, sorted(v)] for k, v in value)
        elif isinstance(value, list):
            value = sorted(value)
        out[name] = value
    return out


def test_a_changelog_of_the_first_format_migrates_into_the_state_its_own_code_rebuilt(v1):
    rebuilt = reload(_journal(v1), datetime.fromisoformat(v1["reloaded_at"]))
    for p in map(str, range(PARTITIONS)):
        want, got = v1["reloaded"][p], json.loads(json.dumps(rebuilt[p]))
        want_state = _sorted_state(want["state"])
        assert set(got["state"]) == set(want_state)
        for name in want_state:
            assert got["state"][name] == want_state[name], (p, name)
        assert (got["rows"], got["dead_letters"]) == (want["rows"], want["dead_letters"]), p


def test_a_migrated_partition_tombstones_every_key_of_the_first_format_and_writes_format_2_only(v1):
    from gmv.streams.core.journal import is_current
    from gmv.streams.core.processor import BatchProcessor
    from tests.unit.journal_story import CONFIG

    journal = _journal(v1)
    proc = BatchProcessor(CONFIG)
    out = proc.load(0, [kv for kv in journal if kv[0].startswith("0|")], datetime.fromisoformat(v1["reloaded_at"]))
    old_live = {k for k, v in journal if k.startswith("0|")}
    tombstoned = {k for k, v in out.journal_puts if v is None and not is_current(k)}
    assert tombstoned == old_live
    assert all(is_current(k) for k, v in out.journal_puts if v is not None)
    # the migrated records, loaded as format 2 by another processor, give the same state
    again = BatchProcessor(CONFIG)
    again.load(0, [kv for kv in out.journal_puts if is_current(kv[0])], datetime.fromisoformat(v1["reloaded_at"]))
    from tests.unit.journal_story import dump
    assert dump(again.partition_state(0)) == dump(proc.partition_state(0))


def test_the_same_story_writes_the_same_changelog_bytes_rows_dead_letters_and_counters(v2, buckets):
    journal, digests, row_digests = run_story(story())
    journal = writers_ranked(journal)
    want = _journal(buckets)
    assert len(journal) == len(want)
    for i, (g, w) in enumerate(zip(journal, want, strict=True)):
        assert g == w, i
    assert digests == buckets["digests"]
    assert row_digests == buckets["row_digests"] == v2["row_digests"]  # writing by the bucket changed no row
    assert len(journal) < len(_journal(v2))


@pytest.mark.parametrize("fixture", ["v2", "buckets"])
def test_a_changelog_of_format_2_rebuilds_the_same_state_and_re_emits_the_same_rows(fixture, request):
    doc = request.getfixturevalue(fixture)
    rebuilt = reload(_journal(doc), datetime.fromisoformat(doc["reloaded_at"]))
    assert json.loads(json.dumps(rebuilt)) == doc["reloaded"]


def test_a_changelog_written_a_record_per_key_or_by_the_bucket_rebuilds_the_same_state(v2, buckets):
    """The same, but for the touches (and their events' de-duplication) that ``v2`` expired
    ``dedup_horizon`` sooner: it was written before a touch waited that long for a late order."""
    def held(doc: dict, name: str) -> set[str]:
        return {json.dumps(x) for p in doc.values() for x in _flat(p["state"][name])}

    for name in ("touches", "seen"):
        assert held(v2["reloaded"], name) < held(buckets["reloaded"], name)
    assert _without_touches(v2["reloaded"]) == _without_touches(buckets["reloaded"])


def _without_touches(reloaded: dict) -> dict:
    return {p: {**doc, "state": {k: v for k, v in doc["state"].items() if k not in ("touches", "seen")}}
            for p, doc in reloaded.items()}


def _flat(entries: list) -> list:
    """A user's touches as (user, touch) pairs; other entries as they are."""
    return [[e[0], t] for e in entries for t in e[1]] if entries and isinstance(entries[0][1], list) else entries


def test_an_applied_review_or_settled_refund_never_comes_back_as_an_orphan_when_its_records_expire():
    """Format 1 could expire an outcome's batch entry before its review's (or refund's) entry: the review
    was held again and, its order gone, dead-lettered as an orphan hours after it was applied (4 times in
    this story). Records now expire one by one, the event's before its outcome's."""
    from gmv.streams.core.processor import BatchProcessor
    from tests.unit.journal_story import CONFIG

    proc = BatchProcessor(CONFIG)
    outcomes: Counter[str] = Counter()
    forwarded = []
    for now, msgs in story():
        out = proc.process([*forwarded, *msgs], now)
        out.merge(proc.attribute_due(now))
        proc.commit_journal(out)
        for staged in out.staged:
            staged.persist(None)
        outcomes.update(r.event_id for r in out.rows["reviews"])
        outcomes.update(r.event_id for r in out.rows["refunds"])
        outcomes.update(d.event_id for d in out.dead_letters if d.reason_code in ("orphan_review", "orphan_refund"))
        forwarded = []
    assert sum(outcomes.values()) > 20
    assert [eid for eid, n in outcomes.items() if n > 1] == []


def test_a_migrated_changelog_read_whole_again_re_emits_its_pending_records_and_does_not_migrate_twice(v1):
    """A partition restored onto an empty store after its migration: the old keys' tombstones are still in
    the log; the format-2 records' pending ones must come back, not a second migration."""
    from gmv.streams.core.processor import BatchProcessor
    from tests.unit.journal_story import CONFIG

    now = datetime.fromisoformat(v1["reloaded_at"])
    old = [kv for kv in _journal(v1) if kv[0].startswith("0|")]
    migrated = BatchProcessor(CONFIG).load(0, old, now)
    assert migrated.credit_rows or migrated.dead_letters  # the first format left records unconfirmed
    again = BatchProcessor(CONFIG).load(0, [*old, *migrated.journal_puts], now)
    assert not [k for k, v in again.journal_puts if v is not None]  # nothing made again
    rows = lambda out: sorted(repr(r._replace(attributed_at=0)) for r in out.credit_rows)  # noqa: E731
    assert rows(again) == rows(migrated)


def test_records_expire_after_a_horizon_changes_the_width_of_the_expiry_buckets(tmp_path):
    from gmv.streams.core.state import Horizons, PartitionState
    from gmv.streams.state.stores import StateStores

    stores = StateStores(tmp_path / "state")
    ps = PartitionState(0, Horizons(60_000, 60_000, 60_000), store=stores.open(0))  # buckets of 6 s
    ps.classify("a", "src1")
    ps.journal_seen("a", "src1", 10_000)
    ps.advance(10_000)
    ps.commit_batch()[1].persist(1)
    stores.close(0)
    later = PartitionState(0, Horizons(50_000, 50_000, 50_000), store=stores.open(0))  # buckets of 5 s
    later.advance(200_000)
    expired, _ = later.commit_batch()
    assert expired == [(f"0/bucket/seen/000000000011999/1.{ps.journal.writer}", None)]
    assert later.journal.counts["seen"] == 0


def test_seen_and_touch_records_written_a_record_per_key_still_expire_each_with_its_own_tombstone(v2):
    """A store and changelog of 5d39b92 (a record per key for every kind) go on under today's code: its
    seen and touch records expire by their own keys, beside the buckets written since."""
    from gmv.streams.core.processor import BatchProcessor
    from tests.unit.journal_story import CONFIG

    old = [kv for kv in _journal(v2) if kv[0].startswith("0/")]
    live = {k for k, v in dict(old).items() if v is not None and k.split("/")[1] in ("seen", "touch")}
    assert len(live) > 50
    proc = BatchProcessor(CONFIG)
    proc.load(0, old, datetime.fromisoformat(v2["reloaded_at"]))
    journal = proc.partition_state(0).journal
    assert journal.counts["seen"] + journal.counts["touch"] == len(live)
    proc.attribute_due(datetime.fromisoformat(v2["reloaded_at"]), final=True)  # no order holds touches back
    journal.advance(journal.watermark_ms + 30 * 86_400_000)  # past every horizon
    expired, _ = journal.commit()
    assert {k for k, v in expired if v is None and k.split("/")[1] in ("seen", "touch")} == live
    assert journal.counts["seen"] == journal.counts["touch"] == 0


def test_a_big_bucket_goes_in_several_messages_each_under_the_limit_and_loads_back_whole():
    """A bucket of a big batch with long ids (escaped in JSON) would pass the producer's 1 MiB batch."""
    from gmv.streams.core.journal import BUCKET_BYTES
    from gmv.streams.core.state import Horizons, PartitionState

    ps = PartitionState(0, Horizons(3_600_000, 3_600_000, 3_600_000))
    ids = [f"{i:06d}" + "\x01" * 120 for i in range(3000)]  # each control character is 6 bytes of JSON
    for i, eid in enumerate(ids):
        assert ps.classify(eid, f"gmv.views:0:{i}") == "new"
        ps.journal_seen(eid, f"gmv.views:0:{i}", 1000 + i)
    ps.advance(4000)
    puts, _ = ps.commit_batch()
    assert len(puts) > 8 and len({k for k, _ in puts}) == len(puts)
    assert all(len(v) <= BUCKET_BYTES for _, v in puts)
    again = PartitionState(0, Horizons(3_600_000, 3_600_000, 3_600_000))
    assert again.load(puts) == len(ids)
    assert [again.classify(eid, "elsewhere") for eid in ids] == ["duplicate"] * len(ids)


def test_a_bucket_of_one_users_touches_expires_decoding_them_once(monkeypatch):
    """Dropping a heavy user's touches one by one decoded and encoded the whole list per touch."""
    from gmv.streams.core.attribution import Touch
    from gmv.streams.core.state import Horizons, PartitionState
    from gmv.streams.core.touches import UserTouches

    ps = PartitionState(0, Horizons(60_000, 60_000, 60_000))
    for i in range(300):
        eid = f"v{i}"
        assert ps.classify(eid, f"gmv.views:0:{i}") == "new"
        assert ps.attribution.add_touch("heavy", Touch(1000 + i, eid, "short_video", "a", "c", "", "organic"),
                                        f"gmv.views:0:{i}")
    ps.advance(1300)
    ps.commit_batch()
    assert len(ps.attribution.touches["heavy"]) == 300
    decoded = []
    by_id = UserTouches.by_id
    monkeypatch.setattr(UserTouches, "by_id", lambda self: decoded.append(1) or by_id(self))
    ps.advance(10_000_000)
    expired, _ = ps.commit_batch()
    assert [k.split("/")[1:3] for k, v in expired if v is None] == [["bucket", "touch"]]  # (they carry their ids)
    assert ps.attribution.touches.get("heavy") is None and ps.journal.counts["touch"] == 0
    assert len(decoded) == 1
    assert all(ps.classify(f"v{i}", "again") == "new" for i in range(300))  # their de-duplication went too
