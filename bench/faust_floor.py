"""The framework floor: a stock faust agent that adds each event into one table.

``python -m bench.faust_floor BOOTSTRAP PREFIX N`` consumes the prefix's source
topics until N messages have been counted, then prints ``RESULT <one JSON line>``.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
import time
import uuid

import faust

from bench.common import PARTITIONS, TOPIC_NAMES


def main() -> None:
    if os.environ.get("FLOOR_LOG"):
        import logging

        logging.basicConfig(level=os.environ["FLOOR_LOG"])
    bootstrap, prefix, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
    datadir = tempfile.mkdtemp(prefix="floor-")  # faust makes <datadir>/v1/tables even in memory
    atexit.register(shutil.rmtree, datadir, True)  # os._exit below skips this; it removes it itself
    app = faust.App(f"floor-{uuid.uuid4().hex[:6]}", broker=f"kafka://{bootstrap}", store="memory://", datadir=datadir,
                    web_enabled=False, topic_partitions=PARTITIONS, topic_disable_leader=True,
                    consumer_auto_offset_reset="earliest", broker_session_timeout=6.0)
    source = app.topic(*[f"{prefix}{t}" for t in TOPIC_NAMES.values()], value_serializer="raw",
                       key_serializer="raw", partitions=PARTITIONS)
    counts = app.Table("counts", default=int, partitions=PARTITIONS)
    state = {"n": 0, "t0": None}

    @app.agent(source)
    async def count(stream):
        async for key, value in stream.items():
            if state["t0"] is None:
                state["t0"] = time.monotonic()
            try:
                doc = json.loads(value)
            except ValueError:  # the simulator's malformed messages: counted, not parsed
                doc = None
            counts[key or b""] += len(doc) if isinstance(doc, list) else 1
            state["n"] += 1
            if state["n"] >= expected:
                seconds = time.monotonic() - state["t0"]
                print("RESULT " + json.dumps({"messages": state["n"], "seconds": round(seconds, 3),
                                              "events_per_s": round(state["n"] / seconds)}), flush=True)
                shutil.rmtree(datadir, ignore_errors=True)
                os._exit(0)  # measured; nothing of this throwaway app needs a graceful stop

    worker = faust.Worker(app, loglevel=os.environ.get("FLOOR_LOG", "WARNING"), quiet=True, redirect_stdouts=False, override_logging=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
