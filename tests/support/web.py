"""Calling a worker's web endpoints as its users do: with the bearer token (``GMV_WEB_TOKEN``, or
the one the worker generated into its data dir) and a loopback Host."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any


def web_token(env: dict[str, str]) -> str:
    return env.get("GMV_WEB_TOKEN") or (Path(env["GMV_DATA_DIR"]) / "web-token").read_text().strip()


def get_json(port: int, path: str, env: dict[str, str], timeout: float = 60) -> Any:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 headers={"Authorization": f"Bearer {web_token(env)}"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def printed_dashboard_link(log: str) -> str:
    """The dashboard link a `gmv demo` or `gmv worker` printed at start (it carries the token)."""
    found = re.search(r"dashboard on (http://\S+)", log)
    assert found, f"no dashboard link printed:\n{log[-2000:]}"
    return found.group(1)
