"""Judge a stored story again from its rollups, in a process of its own (the embedded engine is the
caller's otherwise): ``python -m tests.support.rejudge DSN DATABASE`` prints, as JSON, the alert_id of
every event-time alert a fresh judge fires from the story's first stored minute on, a day at a time
(as a worker catching up judges), with the rules of ``GMV_ALERT_RULES`` or the defaults."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from gmv.alerts.judging import BusinessJudge
from gmv.alerts.rules import load_config
from gmv.alerts.store import AlertStore
from gmv.sinks.clickhouse import connect


def main(dsn: str, database: str) -> None:
    rules = os.environ.get("GMV_ALERT_RULES")
    config = load_config(Path(rules) if rules else None)
    store = AlertStore(lambda: connect(dsn), database)
    lo, hi = store._rows("SELECT toUInt32(min(minute)), toUInt32(max(minute)) FROM {db:Identifier}.gmv_minute", {})[0]
    judge = BusinessJudge(config, database)
    judge.start(int(lo) // 60 - judge.lookback_minutes(), [])
    now, fired = datetime.now(UTC), []
    while (chunk := judge.next_chunk(int(hi) // 60, 24 * 60)) is not None:
        first, end = chunk
        lives, shops = store.series(first - judge.lookback_minutes(), end)
        history = store.history(first, end, judge.history_reach(), judge.seasonal_shifts(),
                                judge.seasonal_subjects(first, end, lives, shops))
        fired += [a.alert_id for a in judge.judge_minutes(first, end, lives, shops, now, history)
                  if a.resolved_at is None]
    store.close()
    print(json.dumps(sorted(fired)))


if __name__ == "__main__":
    main(*sys.argv[1:3])
