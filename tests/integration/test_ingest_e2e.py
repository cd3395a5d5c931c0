"""`gmv run` end to end on the real broker and ClickHouse (SPEC §2, §5, §6)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import uuid

import pytest

from gmv.sinks.readonly import connect_readonly
from gmv.streams.settings import Settings
from gmv.tools.sample import BAD_KINDS, write_sample
from tests.integration.conftest import ROOT, gmv, own_engine, run_counts, sql
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

TABLES = ("events", "ingest_log", "dead_letters", "events_store", "ingest_log_store", "dead_letters_store")


def table_counts(env, db):
    return {t: sql(env, f"SELECT count() AS n FROM {db}.{t}")[0]["n"] for t in TABLES[:3]}


def test_run_counts_add_up_dead_letters_have_reasons_and_a_rerun_changes_nothing(gmv_env, tmp_path):
    db = gmv_env["GMV_CLICKHOUSE_DATABASE"]
    path = tmp_path / "events.jsonl"
    expected = write_sample(path, events=10_000, bad_per_kind=5, duplicates=40)
    assert expected["dead_lettered"] == 5 * len(BAD_KINDS) >= 50

    first = run_counts(gmv_env, path)
    for k in ("received", "accepted", "duplicates", "dead_lettered"):
        assert first[k] == expected[k], (k, first, expected)
    assert first["received"] == first["accepted"] + first["duplicates"] + first["dead_lettered"]

    dead = sql(gmv_env, f"SELECT reason_code, reason, raw, source_topic, source_offset FROM {db}.dead_letters")
    assert len(dead) == expected["dead_lettered"]
    assert all(d["reason"] and d["reason_code"] and d["source_topic"] for d in dead)
    codes = {d["reason_code"] for d in dead}
    assert {"invalid_json", "invalid_event", "unknown_event_type", "too_large", "not_an_object", "empty_batch"} <= codes
    counts = sql(gmv_env, f"SELECT sum(received) r, sum(accepted) a, sum(duplicates) d, sum(dead_lettered) x FROM {db}.ingest_counts")[0]
    assert (int(counts["r"]), int(counts["a"]), int(counts["d"]), int(counts["x"])) == (
        expected["received"], expected["accepted"], expected["duplicates"], expected["dead_lettered"])
    before = table_counts(gmv_env, db)
    assert before["events"] == expected["accepted"]

    # Same file again: a replay, not new data.
    second = run_counts(gmv_env, path)
    assert {k: second[k] for k in expected} == {k: first[k] for k in expected}
    assert table_counts(gmv_env, db) == before


def test_events_keep_each_payload_as_received(gmv_env, tmp_path):
    """A single-event message is stored byte for byte; a producer batch's element as its compact
    JSON (ignored fields, unicode and escapes kept; only whitespace between tokens goes)."""
    db = gmv_env["GMV_CLICKHOUSE_DATABASE"]
    view = {"event_type": "view", "event_time": "2026-11-20T20:00:00.5+08:00", "user_id": "u1", "video_id": "v1",
            "author_id": "a1", "kind": "short_video", "watch_ms": 4000}
    single = ('{ "event_id": "p-single", "note": "tab\\t and \\"quotes\\" 中文 \\u00e9",  '
              + json.dumps(view)[1:])
    element = {**view, "event_id": "p-elem", "extra": {"nested": [1, 2.5, None, True], "s": "{}][\"x"}, "emoji": "😀"}
    batch = json.dumps([element, {**view, "event_id": "p-elem2"}], ensure_ascii=True, indent=1)
    path = tmp_path / "payloads.jsonl"
    path.write_text(single + "\n" + batch.replace("\n", " ") + "\n", encoding="utf-8")
    counts = run_counts(gmv_env, path)
    assert counts["accepted"] == 3
    stored = {r["event_id"]: r["payload"] for r in sql(gmv_env, f"SELECT event_id, payload FROM {db}.events")}
    assert stored["p-single"] == single
    assert json.loads(stored["p-elem"]) == element
    assert stored["p-elem"] == json.dumps(element, ensure_ascii=False, separators=(",", ":"))
    elements = {r["event_id"]: r["element_index"] for r in sql(gmv_env, f"SELECT event_id, element_index FROM {db}.events")}
    assert elements == {"p-single": -1, "p-elem": 0, "p-elem2": 1}


def test_sql_is_read_only(gmv_env, tmp_path):
    db = gmv_env["GMV_CLICKHOUSE_DATABASE"]
    path = tmp_path / "few.jsonl"
    write_sample(path, events=50, bad_per_kind=1)
    run_counts(gmv_env, path)
    proc = gmv(gmv_env, "sql", f"DROP TABLE {db}.dead_letters", check=False)
    assert proc.returncode != 0
    assert "read-only" in proc.stderr and "DROP is not a read" in proc.stderr
    proc = gmv(gmv_env, "sql", f"INSERT INTO {db}.events_store (event_id) VALUES ('x')", check=False)
    assert proc.returncode != 0 and "INSERT is not a read" in proc.stderr
    # the second wall: a write that got past the statement check meets the session's own readonly
    reader = connect_readonly(gmv_env["GMV_CLICKHOUSE_DSN"], None, "lz4", Settings().adhoc_limits)
    try:
        with pytest.raises(Exception, match="READONLY"):
            reader.command(f"INSERT INTO {db}.events_store (event_id) VALUES ('x')")
    finally:
        reader.close()
    assert sql(gmv_env, f"SELECT count() AS n FROM {db}.dead_letters")[0]["n"] == len(BAD_KINDS)
    pretty = gmv(gmv_env, "sql", f"SELECT count() AS n FROM {db}.events", "--format", "pretty").stdout
    assert "50" in pretty


def _fuzz_payloads(rng: random.Random, n: int) -> list[bytes]:
    valid = {"event_type": "view", "event_id": "f", "event_time": "2026-11-20T12:00:00Z", "user_id": "u",
             "video_id": "v", "author_id": "a", "kind": "short_video", "watch_ms": 10}
    out = []
    for i in range(n):
        r = rng.random()
        if r < 0.25:
            out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))))
        elif r < 0.5:
            doc = json.dumps({**valid, "event_id": f"f{i}"})
            cut = rng.randrange(1, len(doc))
            out.append(doc[:cut].encode())  # truncated JSON
        elif r < 0.7:
            doc = dict(valid, event_id=f"f{i}")
            key = rng.choice(list(doc))
            doc[key] = rng.choice([None, 1.5, -7, "", [], {}, "x" * 300, True, "NaN"])
            if key == "event_id" and doc[key] == "NaN":
                doc[key] = f"NaN-{i}"  # still a valid id, but distinct: the fuzz sends no duplicates
            out.append(json.dumps(doc).encode())
        elif r < 0.8:
            out.append(b"[" * rng.randrange(1, 3000) + b"]" * rng.randrange(0, 3000))
        else:
            out.append(json.dumps({**valid, "event_id": f"valid-{i}"}).encode())  # valid ones, still counted
    return out


def test_fuzz_random_bytes_and_malformed_json_are_all_accounted_for(gmv_env, tmp_path):
    """Raw bytes straight into the source topics (not through a file), then a drain."""
    from kafka import KafkaProducer

    db = gmv_env["GMV_CLICKHOUSE_DATABASE"]
    prefix = gmv_env["GMV_TOPIC_PREFIX"]
    # topics are created by the first gmv command
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    run_counts(gmv_env, empty)
    rng = random.Random(1234)
    payloads = _fuzz_payloads(rng, 1500)
    producer = KafkaProducer(bootstrap_servers=gmv_env["GMV_KAFKA_BOOTSTRAP_SERVERS"])
    topics = [f"{prefix}views", f"{prefix}orders", f"{prefix}live_rooms"]
    valid_on_views = 0
    for p in payloads:
        topic = rng.choice(topics)
        untouched = b'"event_id": "valid-' in p
        valid_on_views += untouched and topic == topics[0]
        producer.send(topic, value=p, key=rng.choice([None, b"u", b"\xff"]))
    producer.send(topics[0], key=b"u", value=None)  # a tombstone: no value at all
    producer.flush()
    producer.close()
    counts = run_counts(gmv_env, empty)
    assert counts["received"] == counts["accepted"] + counts["duplicates"] + counts["dead_lettered"]
    assert counts["received"] >= len(payloads) + 1  # every message yields at least one outcome
    assert counts["duplicates"] == 0  # every event_id in the fuzz is distinct
    assert valid_on_views > 50 and counts["accepted"] >= valid_on_views  # no valid event is lost
    assert counts["dead_lettered"] >= len(payloads) + 1 - counts["accepted"]
    logged = sql(gmv_env, f"SELECT count() AS n FROM {db}.ingest_log")[0]["n"]
    assert logged == counts["received"]


def test_worker_serves_read_only_sql_while_it_owns_clickhouse(gmv_env, tmp_path):
    if not gmv_env["GMV_CLICKHOUSE_DSN"].startswith("chdb://"):
        pytest.skip("forwarding applies to the embedded engine only")
    gmv_env = own_engine(gmv_env, tmp_path / "data")  # the worker process opens the engine
    db = gmv_env["GMV_CLICKHOUSE_DATABASE"]
    path = tmp_path / "few.jsonl"
    write_sample(path, events=30, bad_per_kind=0)
    run_counts(gmv_env, path)
    port = str(20000 + random.randrange(20000))
    worker = subprocess.Popen([sys.executable, "-m", "gmv.tools.cli", "worker", "--web-port", port],
                              env=gmv_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def answered() -> subprocess.CompletedProcess | None:
            assert worker.poll() is None, worker.stderr.read()
            if not _answers(f"http://127.0.0.1:{port}/gmv/stats/"):
                return None
            done = gmv(gmv_env, "sql", f"SELECT count() AS n FROM {db}.events", "--format", "json", check=False,
                       process=True)  # `gmv sql` in a process of its own, as a user runs it
            return done if done.returncode == 0 else None

        proc = wait_for(answered, 60, "the worker to serve SQL", poll_s=0.5)
        assert json.loads(proc.stdout)[0]["n"] == 30
        refused = gmv(gmv_env, "sql", f"DROP TABLE {db}.events", check=False, process=True)
        assert refused.returncode != 0 and "DROP is not a read" in refused.stderr
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(60)
    assert worker.returncode == 0, worker.stderr.read()


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_embedded_default_starts_and_stops_its_own_broker(tmp_path):
    """The README path: no settings but a data dir; nothing left running afterwards."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GMV_")}
    env["GMV_DATA_DIR"] = str(tmp_path / "gmv")
    path = tmp_path / "few.jsonl"
    expected = write_sample(path, events=200, bad_per_kind=1)
    counts = run_counts(env, path)
    assert counts["received"] == expected["received"] and counts["dead_lettered"] == expected["dead_lettered"]
    left = subprocess.run(["pgrep", "-f", f"--data-dir {tmp_path / 'gmv'}"], capture_output=True, text=True)
    assert left.stdout.strip() == "", "the embedded broker was left running"


def test_an_idle_consumer_waits_between_empty_fetches(backend):
    """The embedded broker answers an empty fetch at once; without the client-side wait an idle
    consumer re-fetches in a tight loop (thousands of requests a second, measured ~70% of a core)."""
    import asyncio

    from aiokafka import AIOKafkaConsumer
    from aiokafka.client import AIOKafkaClient

    from gmv.streams.kafka_compat import EMPTY_FETCH_PAUSE_S, install_aiokafka_tuning
    from gmv.tools.embedded import ensure_topics

    bootstrap = backend.env["GMV_KAFKA_BOOTSTRAP_SERVERS"]
    topic = f"idle-{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, {topic: 2})
    install_aiokafka_tuning()
    fetches = 0
    original = AIOKafkaClient.send

    async def counting_send(self, node_id, request, *a, **k):
        nonlocal fetches
        fetches += type(request).__name__.startswith("FetchRequest")
        return await original(self, node_id, request, *a, **k)

    async def idle_for(seconds: float) -> None:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="latest")
        await consumer.start()
        try:
            await consumer.getmany(timeout_ms=int(seconds * 1000))
        finally:
            await consumer.stop()

    AIOKafkaClient.send = counting_send
    try:
        asyncio.run(idle_for(2.0))
    finally:
        AIOKafkaClient.send = original
    # at most one fetch per pause (a broker that holds fetches itself needs fewer), plus slack
    assert 0 < fetches <= 2.0 / EMPTY_FETCH_PAUSE_S + 10


def test_topics_created_with_a_retention_keep_it_and_the_changelog_stays_compacted(backend):
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    from gmv.tools.embedded import ensure_topics

    bootstrap = backend.env["GMV_KAFKA_BOOTSTRAP_SERVERS"]
    tag = uuid.uuid4().hex[:8]
    source, changelog = f"ret-{tag}.views", f"ret-{tag}.changelog"
    ensure_topics(bootstrap, {source: 2, changelog: 2}, compacted=frozenset({changelog}), retention_ms=1_800_000)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in (source, changelog)])
    finally:
        admin.close()
    configs = {t: {k: v["value"] for k, v in c.items()} for t, c in described["topic"].items()}
    assert configs[source]["retention.ms"] == "1800000" and configs[source]["segment.ms"] == "450000"
    assert configs[changelog]["cleanup.policy"] == "compact"
    assert configs[changelog].get("retention.ms") != "1800000"


def test_source_topics_a_producer_created_first_set_the_partition_count(gmv_env, tmp_path):
    """A producer that writes before any gmv process runs gets the broker's default partition
    count: the pipeline follows those topics instead of refusing them."""
    from gmv.tools.embedded import ensure_topics, existing_partitions
    from tests.support.producing import produce_events

    prefix, bootstrap = gmv_env["GMV_TOPIC_PREFIX"], gmv_env["GMV_KAFKA_BOOTSTRAP_SERVERS"]
    sources = [f"{prefix}views", f"{prefix}live_rooms", f"{prefix}orders"]
    ensure_topics(bootstrap, dict.fromkeys(sources, 1))  # as a broker's auto-create would
    path = tmp_path / "few.jsonl"
    expected = write_sample(path, events=300, bad_per_kind=0)
    assert produce_events(bootstrap, prefix, path) == expected["received"]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    proc = gmv(gmv_env, "run", "--events", str(empty), "--json", "--quiet")
    assert "using GMV_PARTITIONS=1" in proc.stderr
    counts = json.loads(proc.stdout[proc.stdout.rindex('{"lines"'):].splitlines()[0])
    assert counts["received"] == expected["received"] and counts["accepted"] == expected["accepted"]
    derived = existing_partitions(bootstrap, [f"{prefix}rekeyed", f"{prefix}{gmv_env['GMV_APP_ID']}-state-changelog"])
    assert derived and set(derived.values()) == {1}
