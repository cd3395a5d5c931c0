"""The worker's state stores, driven through ``gmv run`` as a user runs it (each run a process of its own,
on a data dir of its own): a restart reads only the changelog past what its store holds; a worker on an
empty disk restores from the compacted changelog, live records only; a changelog of the first format
migrates once; and a crash at each point of a batch's commit restarts to the same rows."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from gmv.streams.faults import EXIT_CODE, POINTS
from gmv.tools.sample import write_sample
from tests.integration.conftest import (
    fresh_env,
    gmv,
    gmv_batch,
    own_engine,
    parse_run_json,
    sql,
    sql_rows,
)
from tests.integration.test_crash_rerun import SNAPSHOTS
from tests.support.waiting import wait_for
from tests.unit.journal_story import FIXTURE

pytestmark = pytest.mark.integration

RESTORED = re.compile(r"restored state of partitions \[[\d, ]+\]: (\d+) changelog records read, (\d+) live")


def _env(backend, data_dir: Path, **extra: str) -> dict[str, str]:
    env = own_engine(fresh_env(backend), data_dir)
    env.update({"GMV_LOG_LEVEL": "INFO", **extra})
    return env


def _run(env: dict[str, str], path: Path, check: bool = True):
    return gmv(env, "run", "--events", str(path), "--json", "--quiet", process=True, check=check, timeout=600)


def _restored(stderr: str) -> tuple[int, int]:
    """(changelog records read, records live) of the run's restore line."""
    found = RESTORED.findall(stderr)
    assert found, f"no restore line in:\n{stderr[-3000:]}"
    read, live = found[-1]
    return int(read), int(live)


def _changelog(env: dict[str, str]) -> str:
    return f"{env['GMV_TOPIC_PREFIX']}{env['GMV_APP_ID']}-state-changelog"


def _views(path: Path, n: int, tag: str, minute: int = 0) -> Path:
    """``n`` engaged views of new users and event ids (a small second input), from 05:<minute>. Before
    05:07 they are within the sample's hour (04:00-05:07): the watermark stays, nothing more expires."""
    events = [{"event_type": "view", "event_id": f"{tag}-{i}",
               "event_time": f"2026-11-20T05:{(minute + i) % 60:02d}:00Z",
               "user_id": f"{tag}-u{i}", "video_id": "v1", "author_id": "a1", "kind": "short_video",
               "watch_ms": 9000} for i in range(n)]
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_a_restart_on_the_same_disk_reads_only_what_its_store_does_not_hold(backend, tmp_path):
    env = _env(backend, tmp_path / "data")
    write_sample(tmp_path / "a.jsonl", events=4_000, bad_per_kind=1, duplicates=20)
    first = _run(env, tmp_path / "a.jsonl")
    assert _restored(first.stderr) == (0, 0)  # a first start: nothing to read
    again = _run(env, _views(tmp_path / "b.jsonl", 20, "b"))
    read, live = _restored(again.stderr)
    # the 4,000 events' records are live, and the store held every changelog record at the stop
    assert live > 3_000 and read == 0, (read, live)
    counts = parse_run_json(again.stdout)
    assert counts["received"] == counts["accepted"] == 20
    # an empty local store (a new machine): the whole changelog is read back, and the state is the same
    shutil.rmtree(tmp_path / "data" / "state")
    c = tmp_path / "c.jsonl"  # b's events again, after a new one (another file: other sources)
    c.write_text(_views(tmp_path / "new.jsonl", 1, "c").read_text() + (tmp_path / "b.jsonl").read_text())
    third = _run(env, c)
    read_all, live_all = _restored(third.stderr)
    assert live_all == live + 20 and read_all >= live_all
    counts = parse_run_json(third.stdout)
    assert (counts["accepted"], counts["duplicates"]) == (1, 20)  # b's ids were restored as seen


def test_a_worker_on_an_empty_disk_reads_live_records_only_once_the_changelog_is_compacted(backend, tmp_path):
    # Short horizons: de-duplication ids expire as the sample's hour goes by. The changelog topic made first
    # with segments that roll every second, so compaction runs within the test.
    env = _env(backend, tmp_path / "data", GMV_DEDUP_HORIZON="10m", GMV_LOOKBACK="10m", GMV_WEIGHTS_RETENTION="15m")
    admin = KafkaAdminClient(bootstrap_servers=env["GMV_KAFKA_BOOTSTRAP_SERVERS"])
    try:
        admin.create_topics([NewTopic(_changelog(env), 4, 1, topic_configs={
            "cleanup.policy": "compact", "segment.ms": "1000", "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": "1000"})])
    finally:
        admin.close()
    write_sample(tmp_path / "a.jsonl", events=4_000, bad_per_kind=0)
    _run(env, tmp_path / "a.jsonl")
    # later events: the watermark moves past the horizons of most of the sample, whose records expire
    _run(env, _views(tmp_path / "b.jsonl", 5, "b", minute=7))
    shutil.rmtree(tmp_path / "data" / "state")
    runs: list[tuple[int, int]] = []

    def compacted() -> tuple[int, int] | None:
        """A restart on an empty store (each one adds an event, which rolls a segment more)."""
        run = _run(env, _views(tmp_path / f"c{len(runs)}.jsonl", 1, f"c{len(runs)}", minute=7))
        shutil.rmtree(tmp_path / "data" / "state")
        runs.append(_restored(run.stderr))
        read, live = runs[-1]
        return runs[-1] if read <= live * 1.5 else None

    read, live = wait_for(compacted, 180, "a restore that reads live records only", poll_s=2)
    assert live > 300, runs
    # compaction is what made it so: the changelog took many more records than are live
    consumer = KafkaConsumer(bootstrap_servers=env["GMV_KAFKA_BOOTSTRAP_SERVERS"])
    try:
        ends = consumer.end_offsets([TopicPartition(_changelog(env), p) for p in range(4)])
    finally:
        consumer.close()
    assert sum(ends.values()) > live * 1.5 > read, (ends, runs)


def test_a_changelog_of_the_first_format_migrates_once_and_its_orders_still_take_their_refunds(backend, tmp_path):
    env = _env(backend, tmp_path / "data")
    fixture = json.loads(gzip.decompress(FIXTURE.read_bytes()))
    producer = KafkaProducer(bootstrap_servers=env["GMV_KAFKA_BOOTSTRAP_SERVERS"])
    admin = KafkaAdminClient(bootstrap_servers=env["GMV_KAFKA_BOOTSTRAP_SERVERS"])
    try:
        admin.create_topics([NewTopic(_changelog(env), 4, 1, topic_configs={"cleanup.policy": "compact"})])
        for key, value in fixture["journal"]:  # as the code before 0.31 wrote it
            producer.send(_changelog(env), key=key.encode(), value=None if value is None else value.encode(),
                          partition=int(key.split("|")[0]))
        producer.flush()
    finally:
        producer.close()
        admin.close()
    # a refund of an order the old changelog holds, paid, attributed and not refunded yet
    state = fixture["reloaded"]["1"]["state"]
    attributed, refunded = {e for e, _ in state["attrs"]}, {o for o, _ in state["refunds_of"]}
    order = next(o for e, o in state["orders"] if e in attributed and o[3] not in refunded)
    order_id, user, t_ms = order[3], order[2], order[10]
    refund = {"event_type": "order", "event_id": "late-refund", "event_time": t_ms + 60_000,
              "order_id": order_id, "user_id": user, "status": "refunded", "refund_fen": 100}
    (tmp_path / "r.jsonl").write_text(json.dumps(refund) + "\n")
    first = _run(env, tmp_path / "r.jsonl")
    assert len(re.findall(r"migrated the state changelog from its first format", first.stderr)) == 4
    # (the old state's own held refunds and reviews are decided too, at this run's end of input)
    assert parse_run_json(first.stdout)["received"] == 1
    db = env["GMV_CLICKHOUSE_DATABASE"]
    rows = sql(env, f"SELECT refund_fen, order_id FROM {db}.refunds WHERE event_id = 'late-refund'")
    assert rows == [{"refund_fen": 100, "order_id": order_id}]
    again = _run(env, _views(tmp_path / "b.jsonl", 3, "b"))
    assert "migrated" not in again.stderr


def _snapshots(env: dict[str, str]) -> dict[str, list[dict]]:
    db = env["GMV_CLICKHOUSE_DATABASE"]
    done = gmv_batch(env, *[("sql", q.format(db=db), "--format", "json") for q in SNAPSHOTS.values()])
    return {name: sql_rows(d.stdout) for name, d in zip(SNAPSHOTS, done, strict=True)}


@pytest.fixture(scope="module")
def crash_input(backend, tmp_path_factory) -> tuple[Path, dict[str, list[dict]]]:
    """A sample, and what a run never killed stores of it (credits of every model, markov, scores, turns)."""
    tmp = tmp_path_factory.mktemp("crash-clean")
    path = tmp / "events.jsonl"
    write_sample(path, events=3_000, bad_per_kind=1, duplicates=20)
    clean = _env(backend, tmp / "clean", GMV_BATCH_MAX="250")
    assert parse_run_json(_run(clean, path).stdout)["accepted"] == 3_000
    want = _snapshots(clean)
    assert want["credits"] and want["markov"]
    return path, want


# (after_owed_marks: a worker's, test_owed_refresh.py; this run ends before a fast refresh owes anything)
@pytest.mark.parametrize("point", [p for p in POINTS if p != "after_owed_marks"])
def test_a_crash_at_each_point_of_a_batch_restarts_to_the_same_rows(backend, tmp_path, crash_input, point):
    path, want = crash_input
    env = _env(backend, tmp_path / "crashed", GMV_BATCH_MAX="250", GMV_FAULT_CRASH_AT=f"{point}:3")
    crashed = _run(env, path, check=False)
    assert crashed.returncode == EXIT_CODE, crashed.stderr[-2000:]
    del env["GMV_FAULT_CRASH_AT"]
    rerun = parse_run_json(_run(env, path).stdout)
    assert rerun["received"] == rerun["accepted"] + rerun["duplicates"] + rerun["dead_lettered"]
    assert _snapshots(env) == want
