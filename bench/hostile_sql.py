"""``python -m bench.hostile_sql``: the hostile ad-hoc queries of issue 32 against a consuming demo.

Starts ``gmv demo`` (embedded, the operator's limits from the environment: the defaults unless
``GMV_SQL_*`` are set), waits for ``--warm`` events, then runs each query as an analyst does
(``gmv sql`` in a process of its own) one after another, and prints one JSON line per query:
seconds to end, exit status, the error line, the worker's RSS before and at its peak, and the
consumer lag's peak while it ran (and the 10 s after). Then, for a client ended by Ctrl-C and by
SIGKILL, the seconds from the signal until the engine no longer lists the query (system.processes,
polled every 50 ms). Then stops the demo and prints its reconciliation lines. Not a test: a figure to compare across versions side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from gmv.tools.embedded import free_port

QUERIES = {
    "numbers_1e11": "SELECT count() FROM numbers(100000000000)",
    "group_array_2e9": "SELECT groupArray(number) FROM numbers(2000000000)",
    "system_numbers": "SELECT * FROM system.numbers",
    "cross_join": "SELECT sum(cityHash64(a.event_id, b.event_id)) FROM gmv.events AS a CROSS JOIN gmv.events AS b",
    "kill_query": "KILL QUERY WHERE 1",
}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _stats(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/gmv/stats/", timeout=2) as resp:
            return json.loads(resp.read())
    except OSError:
        return {}


def _engine_sees(port: int, data_dir: Path, needle: str) -> int:
    """How many queries the engine runs whose text holds ``needle`` (asked through the web SQL endpoint)."""
    body = json.dumps({"query": "SELECT count() FROM system.processes WHERE position(query, {n:String}) > 0 "
                                "AND query_id != queryID()", "parameters": {"n": needle}}).encode()
    token = (data_dir / "web-token").read_text().strip()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/gmv/sql/", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return int(resp.read().decode().strip())


def _cancel_seconds(env: dict[str, str], port: int, how: signal.Signals) -> float:
    """Seconds from ``how`` sent to a running `gmv sql` until its query has left the engine."""
    data_dir = Path(env["GMV_DATA_DIR"])
    needle = f"numbers(10000000000{int(how)})"
    client = subprocess.Popen([sys.executable, "-m", "gmv.tools.cli", "sql", f"SELECT count() FROM {needle}"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while _engine_sees(port, data_dir, needle) == 0:
            if time.monotonic() > deadline:
                raise SystemExit("the long query never showed in system.processes")
            time.sleep(0.1)
        client.send_signal(how)
        t0 = time.monotonic()
        while _engine_sees(port, data_dir, needle) and time.monotonic() - t0 < 60:
            time.sleep(0.05)
        return time.monotonic() - t0
    finally:
        client.kill()
        client.wait()


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.hostile_sql", description=__doc__.split("\n\n")[0])
    ap.add_argument("--warm", type=int, default=60_000, help="events stored before the first query (default 60k)")
    ap.add_argument("--only", nargs="*", choices=sorted(QUERIES), help="these queries only")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gmv-hostile-sql-"))
    env = {**os.environ, "GMV_DATA_DIR": str(root / "data")}
    port = free_port()
    out = open(root / "demo.out", "w+")
    demo = subprocess.Popen([sys.executable, "-m", "gmv.tools.cli", "demo", "--web-port", str(port)], env=env,
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while (_stats(port).get("counters") or {}).get("accepted", 0) < a.warm:
            if demo.poll() is not None:
                raise SystemExit(f"the demo exited: {(root / 'demo.out').read_text()[-2000:]}")
            time.sleep(0.5)
        for name in a.only or list(QUERIES):
            before = _rss_mb(demo.pid)
            peak = {"rss": before, "lag": 0}
            done = threading.Event()

            def sample(peak: dict = peak, done: threading.Event = done) -> None:
                while not done.wait(0.05):
                    peak["rss"] = max(peak["rss"], _rss_mb(demo.pid))
                    peak["lag"] = max(peak["lag"], _stats(port).get("lag", 0))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t0 = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", "gmv.tools.cli", "sql", QUERIES[name]], env=env,
                                  capture_output=True, text=True, timeout=600)
            took = time.monotonic() - t0
            time.sleep(10)  # the lag's peak includes the catch-up after the query
            done.set()
            sampler.join()
            print(json.dumps({"query": name, "seconds": round(took, 2), "exit": proc.returncode,
                              "line": proc.stderr.strip()[-300:], "rss_before_mb": round(before),
                              "rss_peak_mb": round(peak["rss"]), "lag_peak": peak["lag"]}), flush=True)
        for how in (signal.SIGINT, signal.SIGKILL):
            print(json.dumps({"cancel": how.name, "seconds_until_gone": round(_cancel_seconds(env, port, how), 2)}),
                  flush=True)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)
            try:
                demo.wait(300)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait()
        out.close()
    for line in (root / "demo.out").read_text().splitlines():
        if line.startswith("reconciliation:"):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
