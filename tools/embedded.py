"""Embedded infrastructure: the noida-db Kafka-protocol broker, topic creation, ClickHouse ownership.

The broker runs as a child process under ``<data_dir>/kafka`` on a loopback
port. A second gmv process on the same data dir (``gmv sql``, ``gmv run``
while a demo runs) reuses the running broker found in ``broker.json`` instead
of starting another. Stopping is SIGINT, a wait, then SIGKILL: noida-db can
take over 5 s to exit and must never be left running.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from gmv.schemas.errors import ConfigurationError, ServiceUnavailable
from gmv.streams.changelog import COMPACTION_CONFIGS
from gmv.tools.children import die_with_parent

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortBusy(ConfigurationError):
    """A port the settings name is taken by another program."""


def require_free_port(host: str, port: int, setting: str) -> None:
    """Raise ``PortBusy`` (one line naming the port and the setting) unless ``host:port`` can be bound,
    as the worker's web or metrics server will bind it (address reuse on, as aiohttp does)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            why = "is in use" if e.errno == errno.EADDRINUSE else f"cannot be bound ({e.strerror})"
            raise PortBusy(f"port {port} on {host} {why} ({setting}); stop what holds it (another gmv worker or "
                           f"demo?) or set {setting} to a free port") from None


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def noida_binary() -> str:
    """The broker binary itself (not the Python wrapper, which would not pass our SIGINT on)."""
    try:
        import noida_db

        binary = Path(noida_db.__file__).parent / "noida-db"
        if binary.exists():
            return str(binary)
    except ImportError:
        pass
    here = Path(sys.executable).parent / "noida-db"
    if here.exists():
        return str(here)
    found = shutil.which("noida-db")
    if not found:
        raise ServiceUnavailable(
            "the embedded Kafka broker needs the 'noida-db' package: pip install noida-db "
            "(or set GMV_KAFKA_BOOTSTRAP_SERVERS to use your own Kafka)"
        )
    return found


class EmbeddedKafka:
    """A noida-db broker under ``<data_dir>/kafka`` (started, or reused if already running)."""

    def __init__(self, data_dir: Path, port: int = 0) -> None:
        self.dir = data_dir / "kafka"
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.log_file: IO | None = None
        self.reused = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def _info(self) -> Path:
        return self.dir / "broker.json"

    def start(self, timeout: float = 60.0) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.dir / "start.lock"):
            running = self._running()
            if running:
                self.port, self.reused = running, True
                return self.bootstrap
            self.port = self.port or free_port()
            self.log_file = open(self.dir / "noida.log", "ab")
            self.proc = subprocess.Popen(
                [noida_binary(), "start", "--data-dir", str(self.dir / "data"), "--host", "127.0.0.1",
                 "--only", "kafka", "--kafka-port", str(self.port)],
                stdout=self.log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in the terminal reaches us, and we stop it in order
                preexec_fn=die_with_parent(signal.SIGINT),  # and a SIGKILLed parent takes it along
            )
            deadline = time.monotonic() + timeout
            while not _kafka_answers(self.bootstrap):
                if self.proc.poll() is not None:
                    raise ServiceUnavailable(
                        f"the embedded Kafka broker exited with code {self.proc.returncode}; "
                        f"see {self.dir / 'noida.log'}"
                    )
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServiceUnavailable(f"the embedded Kafka broker did not answer on {self.bootstrap} "
                                       f"within {timeout:.0f}s; see {self.dir / 'noida.log'}")
                time.sleep(0.2)
            self._info.write_text(json.dumps({"pid": self.proc.pid, "port": self.port}))
            return self.bootstrap

    def _running(self) -> int | None:
        try:
            info = json.loads(self._info.read_text())
        except (OSError, ValueError):
            return None
        if pid_alive(info.get("pid", -1)) and _kafka_answers(f"127.0.0.1:{info['port']}"):
            return int(info["port"])
        return None

    def stop(self, wait: float = 15.0) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)  # its own session: signal the whole group
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        with contextlib.suppress(OSError):
            self._info.unlink()
        if self.log_file:
            self.log_file.close()

    def __enter__(self) -> EmbeddedKafka:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _kafka_answers(bootstrap: str) -> bool:
    host, port = bootstrap.rsplit(":", 1)
    if not port_open(host, int(port)):
        return False
    try:
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            admin.list_topics()
        finally:
            admin.close()
        return True
    except Exception:
        return False


def existing_partitions(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """Partition counts of those of ``topics`` that exist."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="gmv-admin")
    try:
        present = [t for t in topics if t in set(admin.list_topics())]
        if not present:
            return {}
        return {(d.get("topic") or d.get("name")): len(d["partitions"]) for d in admin.describe_topics(present)}
    finally:
        admin.close()


def ensure_topics(bootstrap: str, partitions: dict[str, int], replication: int = 1,
                  compacted: frozenset[str] = frozenset(), retention_ms: int | None = None) -> None:
    """Create missing topics with their partition counts (``compacted`` ones with cleanup.policy=compact;
    the others, given ``retention_ms``, keep messages that long: segments roll every quarter of it,
    as retention drops whole segments)."""
    kept = {"retention.ms": str(retention_ms), "segment.ms": str(max(60_000, retention_ms // 4))} \
        if retention_ms else {}
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="gmv-admin")
    try:
        existing = set(admin.list_topics())
        # Existing topics first: a mismatch stops here, before any topic is created.
        present = [name for name in partitions if name in existing]
        for desc in admin.describe_topics(present) if present else ():
            name = desc.get("topic") or desc.get("name")
            have = len(desc["partitions"])
            if have != partitions[name]:
                raise ServiceUnavailable(
                    f"topic {name} has {have} partitions but the pipeline is configured for "
                    f"{partitions[name]}; set GMV_PARTITIONS={have} or recreate the topic"
                )
        missing = [NewTopic(name, n, replication,
                            topic_configs=dict(COMPACTION_CONFIGS) if name in compacted else kept)
                   for name, n in partitions.items() if name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
        deadline = time.monotonic() + 30
        while set(partitions) - set(admin.list_topics()):
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"topics not visible after creation: {sorted(set(partitions) - set(admin.list_topics()))}")
            time.sleep(0.2)
    finally:
        admin.close()


@contextlib.contextmanager
def _file_lock(path: Path):
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class ClickHouseOwnership:
    """The one process that opens an embedded (chdb) data path holds this lock.

    chdb opens a data path from one process only. The owner records its web
    port, so ``gmv sql`` in another process asks the owner, read-only, over
    loopback instead of opening the data path itself.
    """

    def __init__(self, chdb_path: Path) -> None:
        self.path = chdb_path
        self.lock_path = chdb_path.parent / f"{chdb_path.name}.lock"
        self.info_path = chdb_path.parent / f"{chdb_path.name}.owner.json"
        self._fh: IO | None = None

    def try_acquire(self) -> bool:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.lock_path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        self._fh = fh
        return True

    def advertise(self, web_port: int) -> None:
        self.info_path.write_text(json.dumps({"pid": os.getpid(), "web_port": web_port}))

    def owner(self) -> dict | None:
        try:
            return json.loads(self.info_path.read_text())
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self.info_path.unlink()
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
