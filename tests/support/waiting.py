"""Waiting for a condition, never for a fixed time: tests synchronise on what they observe."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout_s: float, what: str, poll_s: float = 0.1) -> T:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout_s``.
    The timeout is a bound against hanging, not a measurement: no test asserts a timing."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(poll_s)


def worker_stats(port: int) -> dict | None:
    """A worker's ``/gmv/stats/`` on loopback, or None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/gmv/stats/", timeout=2) as resp:
            return json.loads(resp.read())
    except OSError:
        return None
