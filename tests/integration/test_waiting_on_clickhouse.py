"""A worker that waits long on ClickHouse keeps its partitions.

While a batch waits for ClickHouse (an outage the sink rides out, a refresh of a big day holding the
embedded engine), the ingest loop does not read. aiokafka takes a loop that has not read for
``max_poll_interval`` for a dead one: it drops its generation and rejoins under a new member id
~20 s later, and the next start of each partition re-emits what was unconfirmed. The soak lost its
group four times in 3M events that way at the old 20 s. The loop may now wait
``GMV_MAX_POLL_INTERVAL_S`` (300 s); a worker that stops is still noticed by the session timeout.
"""

from __future__ import annotations

import os
import signal

import pytest

from gmv.tools.sample import write_sample
from tests.integration.conftest import fresh_env, own_engine, sql
from tests.support.faulty_worker import committed, group_members, start_faulty_worker
from tests.support.producing import produce_events
from tests.support.waiting import wait_for, worker_stats

pytestmark = pytest.mark.integration

OLD_POLL_INTERVAL_S = 20.0  # the default before: a wait this long cost the worker its membership


def test_a_batch_that_waits_longer_than_the_old_poll_interval_for_clickhouse_keeps_the_group_membership(
        backend, tmp_path):
    env = own_engine(fresh_env(backend), tmp_path / "data")
    env["GMV_SINK_RETRY_FOR_S"] = "600"  # the sink rides the outage out
    events, first, second = tmp_path / "events.jsonl", tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    expected = write_sample(events, events=2000, bad_per_kind=0)
    lines = events.read_text().splitlines(keepends=True)
    first.write_text("".join(lines[:1000]))
    second.write_text("".join(lines[1000:]))
    down = tmp_path / "clickhouse-down"
    worker, port = start_faulty_worker(env, down)
    try:
        members = group_members(env)
        assert len(members) == 1, members
        down.touch()
        bootstrap, prefix = env["GMV_KAFKA_BOOTSTRAP_SERVERS"], env["GMV_TOPIC_PREFIX"]
        produce_events(bootstrap, prefix, first)
        wait_for(lambda: ((worker_stats(port) or {}).get("sink_failing_s") or 0) > 1, 60, "the first write to fail")
        produce_events(bootstrap, prefix, second)  # its batch waits for the first one's write: reading stops
        wait_for(lambda: ((worker_stats(port) or {}).get("sink_failing_s") or 0) > OLD_POLL_INTERVAL_S + 5, 120,
                 "ClickHouse writes to fail for longer than the old poll interval")
        down.unlink()
        wait_for(lambda: committed(env) == expected["received"], 120, "every event stored and committed")
        assert group_members(env) == members  # never dropped, never rejoined under a new id
        assert (worker_stats(port) or {}).get("partitions") == [0, 1, 2, 3]
        os.killpg(worker.pid, signal.SIGINT)
        out, err = worker.communicate(timeout=90)  # a bound against hanging, not a timing measurement
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    assert worker.returncode == 0, err[-2000:]
    # The operator is told why reading stopped, and nothing about a lost membership.
    assert "reading waited" in err and "GMV_MAX_POLL_INTERVAL_S" in err, err[-2000:]
    assert "offset commit failed" not in err and "left consumer group" not in err, err[-2000:]
    db = env["GMV_CLICKHOUSE_DATABASE"]
    assert sql(env, f"SELECT count() AS n FROM {db}.events")[0]["n"] == expected["accepted"]
