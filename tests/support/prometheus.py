"""A real Prometheus (Debian's ``prometheus``, which ``.ci/run`` installs) on a loopback port,
scraping targets of the test's choosing every second, with the repository's alert rules."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

from tests.support.daemons import LoopbackDaemon


class Prometheus(LoopbackDaemon):
    binaries = ("prometheus",)
    package = "prometheus"

    def start(self, job: str, targets: list[str], rule_files: list[Path]) -> Prometheus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(json.dumps({  # YAML is a superset of JSON
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}],
        }))
        self.launch([f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                     f"--web.listen-address=127.0.0.1:{self.port}"], "Prometheus", timeout_s=60)
        return self

    def api(self, path: str, **params: str) -> dict:
        """``GET /api/v1/<path>``'s data; raises ``HTTPError`` on a bad query."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]
