"""Debian's Prometheus-family daemons (prometheus, prometheus-alertmanager) on a loopback port:
found on PATH, started with a config of the test's own, ready when ``/-/ready`` answers,
always stopped (terminate, then kill)."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from pathlib import Path

from gmv.tools.embedded import free_port
from tests.support.waiting import wait_for


class LoopbackDaemon:
    """One daemon process on 127.0.0.1, its state and log in ``workdir``."""

    binaries: tuple[str, ...] = ()  # names to look for, in order
    package = ""  # the Debian package that installs it

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        found = next((shutil.which(b) for b in self.binaries if shutil.which(b)), None)
        if found is None:
            raise AssertionError(f"{self.binaries[0]} is not installed: apt-get install {self.package} "
                                 "(.ci/run does it)")
        self.binary = found
        self.port = port or free_port()
        self.workdir = workdir
        self.log = workdir / f"{self.binaries[0]}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self, args: list[str], what: str, timeout_s: float = 30) -> None:
        """Start ``binary args...`` and wait until it is ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([self.binary, *args], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "ab"))  # noqa: SIM115 - the child keeps it
        wait_for(self.ready, timeout_s, f"{what} to be ready", poll_s=0.2)

    def ready(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
