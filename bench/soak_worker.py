"""The soak benchmark's processes (``bench/soak.py``): the ``gmv worker`` it runs and asks, and the feed thread."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gmv.schemas.events import TOPIC_NAMES
from gmv.tools.embedded import free_port
from gmv.tools.soak_events import PARTITIONS, SoakFeed, batched


class SoakError(RuntimeError):
    """The soak cannot go on (one line saying why and where to look)."""


def say(msg: str) -> None:
    print(f"[soak] {msg}", file=sys.stderr, flush=True)


class Worker:
    """One ``gmv worker`` process on the soak's data dir (its log beside it)."""

    def __init__(self, root: Path, bootstrap: str, cache_mb: int | None, more: dict[str, str] | None = None) -> None:
        self.root = root
        self.web_port, self.metrics_port = free_port(), free_port()
        self.token = secrets.token_urlsafe(16)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GMV_")}
        self.env.update({
            "GMV_DATA_DIR": str(root), "GMV_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "GMV_CLICKHOUSE_DSN": f"chdb://{root / 'clickhouse'}", "GMV_WEB_PORT": str(self.web_port),
            "GMV_METRICS_PORT": str(self.metrics_port), "GMV_WEB_TOKEN": self.token, "GMV_APP_ID": "soak",
            "GMV_WORKER_INSTANCE_ID": "soak-0", "GMV_PARTITIONS": str(PARTITIONS),
            "GMV_LOG_LEVEL": "INFO",  # the restore line is logged at INFO
        })
        if cache_mb is not None:
            self.env["GMV_STATE_CACHE_MB"] = str(cache_mb)
        self.env.update(more or {})
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.log_path = root / "worker-0.log"

    def spawn(self) -> float:
        """Start the worker; returns the monotonic time of the spawn."""
        self.starts += 1
        self.log_path = self.root / f"worker-{self.starts}.log"
        with open(self.log_path, "wb") as log:
            t = time.monotonic()
            self.proc = subprocess.Popen([sys.executable, "-m", "gmv.tools.cli", "worker"], cwd=self.root, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return t

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise SoakError(f"the worker exited on its own with {self.proc.returncode}; see {self.log_path}: "
                            f"{self.log_tail()}")

    def log_tail(self, lines: int = 3) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        return ""

    def stop(self, wait_s: float = 120.0) -> float:
        """SIGINT, a bounded wait, then SIGKILL; returns seconds to exit."""
        proc, self.proc = self.proc, None
        if proc is None:
            return 0.0
        t = time.monotonic()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                say(f"the worker did not stop within {wait_s:.0f}s of SIGINT: killed")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        return time.monotonic() - t

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def _get(self, path: str, timeout: float = 5.0) -> bytes | None:
        port = self.metrics_port if path == "/metrics" else self.web_port
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
                return r.read()
        except (OSError, urllib.error.URLError):
            return None  # not up yet, or busy: the caller asks again

    def stats(self) -> dict[str, Any] | None:
        body = self._get("/gmv/stats/")
        return json.loads(body) if body else None

    def metrics(self) -> str | None:
        body = self._get("/metrics")
        return body.decode() if body else None

    def sql(self, query: str, parameters: dict[str, Any] | None = None, timeout: float = 30.0) -> str | None:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.web_port}/gmv/sql/", method="POST",
            data=json.dumps({"query": query, "format": "tsv", "parameters": parameters or {}}).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.read().decode()
        except (OSError, urllib.error.URLError):
            return None


class Feeder(threading.Thread):
    """Produces the soak's producer batches, never more than ``ahead`` events past what the worker consumed."""

    def __init__(self, bootstrap: str, feed: SoakFeed, consumed: Callable[[], int], ahead: int) -> None:
        super().__init__(name="soak-feeder", daemon=True)
        self.bootstrap, self.feed, self.consumed, self.ahead = bootstrap, feed, consumed, ahead
        self.produced = 0
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            producer = kafka_producer(self.bootstrap)
            try:
                for et, partition, value, n in batched(self.feed.events()):
                    if self.produced - self.consumed() > self.ahead:
                        producer.flush()
                        while self.produced - self.consumed() > self.ahead and not self.stopping.is_set():
                            time.sleep(0.05)
                    if self.stopping.is_set():
                        return
                    producer.send(f"gmv.{TOPIC_NAMES[et]}", value=value, partition=partition)
                    self.produced += n
                producer.flush()
            finally:
                producer.close()
        except BaseException as e:  # reported by the main thread, which owns the processes
            self.error = e


def kafka_producer(bootstrap: str):
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=1024 * 1024,
                         max_request_size=4 * 1024 * 1024, acks="all", compression_type="lz4")
