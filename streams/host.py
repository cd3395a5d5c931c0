"""faust as the worker's host: its lifecycle, its web server and the tasks beside the ingest loop.

faust's own Kafka consumer and producer are not started (``_HostOnly``): the host joins no
consumer group and holds no connection of its own. The command running the worker owns SIGINT and
SIGTERM (``gmv.tools.signals``), since how to stop depends on what ClickHouse is doing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust
from faust.app.base import BootStrategy

log = logging.getLogger(__name__)


class _HostOnly(BootStrategy):
    """faust without its Kafka consumer, producer, conductor and tables: web views and tasks."""

    enable_kafka = False


class _HostWorker(faust.Worker):
    """faust's worker without its signal handlers (the command owns them) and without its terminal
    spinner, which writes backspaces and a cursor escape (``\\b\\e[?25h``) into the commands' output
    even when it is not a terminal."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None

    def install_signal_handlers(self) -> None:
        return None


class Host:
    """One faust app: ``task`` adds a coroutine that runs until the host stops; ``start`` runs them all."""

    def __init__(self, app_id: str, bootstrap: str, data_path: Path, web_host: str, web_port: int,
                 log_level: str) -> None:
        faust_dir = data_path / "faust"
        faust_dir.mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            f"{app_id}-host", broker=f"kafka://{bootstrap.replace(',', ';kafka://')}", store="memory://",
            # faust makes <datadir>/v1/tables even for the memory store; keep it out of the cwd.
            datadir=str(faust_dir), web_enabled=web_port > 0, web_bind=web_host, web_port=web_port or 6066,
            web_host=web_host,
        )
        self.app.BootStrategy = _HostOnly
        self.app.boot_strategy = _HostOnly(self.app)
        self.web_port = web_port
        self.log_level = log_level
        self._worker: _HostWorker | None = None

    @property
    def should_stop(self) -> bool:
        return bool(self.app.should_stop)

    def task(self, run: Callable[[], Awaitable[None]]) -> None:
        self.app.task(run)

    async def crash(self, e: BaseException) -> None:
        await self.app.crash(e)

    async def start(self) -> asyncio.Task:
        worker = _HostWorker(self.app, loglevel=self.log_level, quiet=True, redirect_stdouts=False,
                             loop=asyncio.get_running_loop(), override_logging=False)
        self._worker = worker
        return asyncio.create_task(worker.start(), name="faust-worker")

    async def stop(self) -> None:
        if self._worker is not None:
            await self._worker.stop()
