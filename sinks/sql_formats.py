"""What ``--format`` names mean, the same in every command and on the web SQL endpoint: ``json`` is
one JSON document (the rows as an array of objects: ``jq '.[]'``, ``json.load``), ``jsonl`` one
JSON object per line (streams, ``jq -c``, appending files).

The engine is asked for ``jsonl`` (ClickHouse's JSONEachRow) either way; ``json`` is those lines
made one array here, without parsing them (a result is already under the operator's byte cap).
"""

from __future__ import annotations

import json
from typing import Any

JSON_HELP = "json (one JSON document: an array of objects, one per row), jsonl (one JSON object per line)"


def engine_format(fmt: str) -> str:
    """The format to ask the engine for: ``json`` is made from its ``jsonl``."""
    return "jsonl" if fmt == "json" else fmt


def as_requested(fmt: str, out: bytes) -> bytes:
    """The engine's answer (in ``engine_format(fmt)``) as ``fmt`` means it."""
    if fmt != "json":
        return out
    rows = [line for line in out.split(b"\n") if line.strip()]
    return b"[" + b",\n".join(rows) + b"]\n"


def dump(document: list[dict[str, Any]] | dict[str, Any], fmt: str) -> str:
    """What a command prints for ``--format json`` (one document: the list, or the one object) or
    ``jsonl`` (each object on a line of its own); newline-terminated, empty for no rows in jsonl."""
    if fmt == "json":
        return json.dumps(document, ensure_ascii=False, indent=1) + "\n"
    rows = document if isinstance(document, list) else [document]
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
