"""One pipeline measurement in a fresh worker process, as a deployed worker runs.

``python -m bench.worker_run BOOTSTRAP BROKER_PID PREFIX DSN EVENTS [PROFILE] [ALERTS]`` runs
``bench.phases.pipeline`` over the prefix's pre-produced topics and prints one JSON
line. A process of its own keeps each figure clear of the bench's other phases (their
heap, their ClickHouse merges still running); its ClickHouse data path is its own,
since the embedded engine opens a path from one process only.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from bench.phases import bench_settings, pipeline
from gmv.sinks.clickhouse import connect


def main() -> int:
    bootstrap, broker_pid, prefix, dsn, events = sys.argv[1:6]
    profile = Path(sys.argv[6]) if len(sys.argv) > 6 and sys.argv[6] else None
    alerts = sys.argv[7] if len(sys.argv) > 7 else "off"
    client = connect(dsn)
    settings = bench_settings(bootstrap, dsn, prefix)
    result = asyncio.run(pipeline(settings, bootstrap, client, int(broker_pid) or None, int(events), profile,
                                  alerts))
    client.close()
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
