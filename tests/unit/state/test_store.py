"""The state store: what a batch changes is read back at every step of its way to disk, the disk holds
exactly the changelog records below the offset it names, both backends agree, and memory stays within
the budget whatever the number of keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gmv.streams.core.codec import TEXT
from gmv.streams.core.processor import BatchProcessor
from gmv.streams.settings import Settings
from gmv.streams.state.backends import MemoryBackend, RocksBackend, RocksResources
from gmv.streams.state.store import HotCache, PartitionStore, ResidentMap, StoredMap, UncachedMap
from gmv.streams.state.stores import StateStores, StoreLocked
from tests.unit.journal_story import story


def _rocks(path: Path) -> PartitionStore:
    return PartitionStore(0, RocksBackend(path, RocksResources(16 * 1024 * 1024)), HotCache(1024 * 1024))


@pytest.mark.parametrize("map_type", [StoredMap, UncachedMap, ResidentMap])
def test_a_value_is_read_back_while_dirty_while_unwritten_and_once_written(tmp_path, map_type):
    store = _rocks(tmp_path / "s")
    m = map_type(store, "k|", TEXT)
    m["a"] = "1"
    assert m.get("a") == "1" and "a" in m
    staged = store.stage()
    assert m.get("a") == "1"  # on its way: the broker has not acknowledged its changelog records
    staged.persist(7)
    assert m.get("a") == "1" and store.next_offset() == 7
    m.pop("a")
    assert m.get("a") is None and "a" not in m
    store.stage().persist(8)
    store.close()
    again = _rocks(tmp_path / "s")
    assert map_type(again, "k|", TEXT).get("a") is None and again.next_offset() == 8


def test_what_was_staged_but_not_persisted_is_not_on_disk_nor_is_its_offset(tmp_path):
    store = _rocks(tmp_path / "s")
    m = StoredMap(store, "k|", TEXT)
    m["kept"] = "1"
    store.stage().persist(3)
    m["lost"] = "2"
    store.stage()  # a crash before the broker acknowledged the batch's changelog records
    store.close()
    again = _rocks(tmp_path / "s")
    m2 = StoredMap(again, "k|", TEXT)
    assert (m2.get("kept"), m2.get("lost"), again.next_offset()) == ("1", None, 3)


def test_both_backends_hold_and_scan_the_same(tmp_path):
    writes = {b"x|a|%03d" % i: b"%d" % i for i in range(50)} | {b"y|b": b"y"}
    rocks, memory = RocksBackend(tmp_path / "r", RocksResources(8 * 1024 * 1024)), MemoryBackend()
    for backend in (rocks, memory):
        backend.write(writes, {b"x|a|010": None})
    assert list(rocks.scan(b"x|a|", b"x|a|020")) == list(memory.scan(b"x|a|", b"x|a|020"))
    assert len(list(memory.scan(b"x|", b"x|\xff"))) == 49


def test_the_hot_cache_never_holds_more_than_its_budget():
    cache = HotCache(10_000)
    for i in range(5_000):
        cache.put((0, b"%d" % i), "v" * 50, 50)
        assert cache.bytes <= 10_000
    assert 0 < len(cache.entries) < 5_000
    assert cache.get((0, b"4999")) is not None and cache.get((0, b"0")) is None


def test_state_memory_stays_within_the_cache_setting_while_keys_grow(tmp_path):
    """The story's events through a processor whose hot cache is 64 KiB: every state key stays on disk,
    the cache within its budget."""
    stores = StateStores(tmp_path / "state", cache_mb=16)
    stores.cache.cache_bytes = 64 * 1024
    proc = BatchProcessor(Settings(partitions=4).pipeline_config(), stores)
    for now, msgs in story():
        out = proc.process(msgs, now)
        proc.commit_journal(out)
        for staged in out.staged:
            staged.persist(None)
        assert stores.cache.bytes <= 64 * 1024
    keys = sum(sum(ps.journal.counts.values()) for ps in proc.partitions.values())
    assert keys > 1_000 and len(stores.cache.entries) < keys


def test_a_store_another_process_holds_is_refused_with_what_to_do(tmp_path):
    first = StateStores(tmp_path / "state")
    first.open(0)
    with pytest.raises(StoreLocked, match="GMV_STATE_DIR"):
        StateStores(tmp_path / "state").open(0)
    first.close_all()
    StateStores(tmp_path / "state").open(0)  # let go of: taken


def test_the_state_report_counts_keys_per_domain_and_the_last_restore(tmp_path):
    from gmv.streams.recovery import Restore, state_report

    proc = BatchProcessor(Settings(partitions=4).pipeline_config(), StateStores(tmp_path / "state"))
    for now, msgs in story()[:5]:
        out = proc.process(msgs, now)
        proc.commit_journal(out)
        for staged in out.staged:
            staged.persist(None)
    report = state_report(proc, Restore([0, 1], 10, 5, 0.5))
    assert report["keys"]["touches"] > 0 and report["keys"]["dedup"] > 0
    assert report["restore"] == {"partitions": [0, 1], "records_read": 10, "records_live": 5, "seconds": 0.5,
                                 "migrated": 0}
    assert report["disk_bytes"] > 0 and report["memory_bytes"] > 0
    json.dumps(report)  # what /gmv/stats/ serves


def _ticker(db, name: str) -> int:
    line = next(x for x in db.property_value("rocksdb.options-statistics").splitlines() if x.startswith(name + " "))
    return int(line.rsplit(":", 1)[1])


def test_looking_up_an_unseen_id_reads_no_block_from_disk_when_the_store_has_outgrown_its_cache(tmp_path):
    """Index and filter blocks kept in the block cache were evicted by data blocks once a store outgrew
    it, and every lookup of a new event id read a file's whole filter back (360 us a lookup)."""
    import rocksdict

    resources = RocksResources(1024 * 1024)  # far smaller than the store
    opts = resources.options()
    opts.enable_statistics()
    db = rocksdict.Rdict(str(tmp_path / "s"), opts)
    for n in range(6):
        wb = rocksdict.WriteBatch(raw_mode=True)
        for i in range(50_000):
            wb.put(b"d|e-%d-%06d" % (n, i), b"gmv.views:1:%d" % i)
        db.write(wb)
        db.flush()
    for i in range(0, 300_000, 7):  # data blocks through the cache, as reads of touches do
        db.get(b"d|e-%d-%06d" % (i % 6, i // 6))
    before = {t: _ticker(db, t) for t in ("rocksdb.block.cache.filter.miss", "rocksdb.block.cache.index.miss",
                                          "rocksdb.block.cache.data.miss")}
    assert all(db.get(b"d|e-%d-%06dx" % (i % 6, i)) is None for i in range(20_000))  # among the keys
    assert _ticker(db, "rocksdb.block.cache.filter.miss") == before["rocksdb.block.cache.filter.miss"]
    assert _ticker(db, "rocksdb.block.cache.index.miss") == before["rocksdb.block.cache.index.miss"]
    # a filter's false positives (about 1%) read a data block
    assert _ticker(db, "rocksdb.block.cache.data.miss") - before["rocksdb.block.cache.data.miss"] < 20_000 * 0.05
    assert _ticker(db, "rocksdb.bloom.filter.useful") > 0
    db.close()


def test_the_memory_a_store_reports_is_zero_once_a_rebalance_closed_it_under_the_metrics_thread(tmp_path):
    backend = RocksBackend(tmp_path / "s", RocksResources(1024 * 1024))
    backend.write({b"k": b"v"}, {})
    assert backend.index_bytes() >= 0
    backend.close()
    assert backend.index_bytes() == 0
