"""A real Alertmanager on a loopback port, and a webhook receiver the test runs on loopback.

Alertmanager is Debian's ``prometheus-alertmanager`` (``.ci/run`` installs it). Its config
routes every alert, grouped by ``alert_id``, to ``WebhookRecorder`` with ``send_resolved``,
and waits one second before a group's first notification.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gmv.tools.embedded import free_port
from tests.support.daemons import LoopbackDaemon


class WebhookRecorder:
    """Records each JSON body POSTed to it, by path. ``start``/``stop`` may be called more than once."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> WebhookRecorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
                with recorder._lock:
                    recorder.bodies.append((self.path, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def alerts(self, path: str) -> list[dict[str, Any]]:
        """Every alert of every webhook payload POSTed to ``path``, with the payload's status."""
        with self._lock:
            return [{**a, "payload_status": body["status"]} for p, body in self.bodies if p == path
                    for a in body["alerts"]]


class Alertmanager(LoopbackDaemon):
    """``prometheus-alertmanager`` on 127.0.0.1, its state in ``workdir``; ``stop`` always ends it."""

    binaries = ("prometheus-alertmanager", "alertmanager")
    package = "prometheus-alertmanager"

    def __init__(self, workdir: Path, webhook_url: str, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.webhook_url = webhook_url

    def start(self) -> Alertmanager:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "alertmanager.yml"
        config.write_text(
            "route:\n  receiver: test\n  group_by: ['alert_id']\n  group_wait: 1s\n  group_interval: 1s\n"
            "  repeat_interval: 1h\nreceivers:\n- name: test\n  webhook_configs:\n"
            f"  - url: '{self.webhook_url}'\n    send_resolved: true\n")
        self.launch([f"--config.file={config}", f"--storage.path={self.workdir / 'data'}",
                     f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=", "--log.level=warn"],
                    "Alertmanager")
        return self

    def alerts(self) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: the alerts it holds as firing."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as resp:
            return json.loads(resp.read())

    def received(self, status: str) -> float:
        """Alerts of a status it has taken in (its own ``alertmanager_alerts_received_total``)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("alertmanager_alerts_received_total") and f'status="{status}"' in line)
