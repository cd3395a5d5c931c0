"""A ClickHouse outage on demand, for tests and the chaos harness (never in the shipped package).

``python -m tests.support.faulty_clickhouse FAULT_FILE gmv-args...`` runs a ``gmv``
command (``worker``, ``demo``) whose sink writes through ``FaultyClient``: while
FAULT_FILE exists, every write fails the way a stopped server fails a
clickhouse-connect client (``OperationalError``), and the sink backs off and retries
as it would in production. While ``FAULT_FILE.slow`` exists, every ``command`` (the rollup
refreshes' statements, not the inserts) takes the seconds it holds more: a refresh that cannot end
in time.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.exceptions import OperationalError

WRITES = frozenset({"raw_insert", "insert", "command"})


class FaultyClient:
    """Wraps a clickhouse-connect client; its writes fail while ``fault_file`` exists."""

    def __init__(self, client: Any, fault_file: Path) -> None:
        self._client = client
        self._fault_file = fault_file
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in WRITES:
            return attr

        def write(*args: Any, **kwargs: Any) -> Any:
            if name == "command":
                try:  # read, not checked first: the test may remove it meanwhile
                    time.sleep(float(self._fault_file.with_name(self._fault_file.name + ".slow").read_text() or 1))
                except FileNotFoundError:
                    pass
            if self._fault_file.exists():
                self.failures += 1
                raise OperationalError(f"Error HTTPConnectionPool: connection refused (fault injected: "
                                       f"{self._fault_file} exists)")
            return attr(*args, **kwargs)

        return write


def main(argv: list[str]) -> int:
    from gmv.tools.cli import main as gmv

    fault_file = Path(argv[0])
    return gmv(argv[1:], wrap_client=lambda client: FaultyClient(client, fault_file))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
