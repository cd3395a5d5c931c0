"""``gmv load-dim KIND FILE``: validate a dimension file whole, then load it in one insert.

Every line is validated first (``gmv.schemas.dimensions``); if any is bad, each bad line is
reported as ``FILE:LINE: field: what is wrong`` and nothing is loaded (exit 1). A good file
goes to ClickHouse as one insert into an unpartitioned table: one part, all or nothing. Rows
replace earlier loads by identity (the latest ``loaded_at`` wins behind the FINAL view).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gmv.schemas.catalogue import DIM_ACCOUNTS, DIM_SKUS, Table
from gmv.schemas.dimensions import DIMENSIONS, AccountBinding, ListedSku
from gmv.schemas.errors import ConfigurationError

TABLES: dict[str, Table] = {"accounts": DIM_ACCOUNTS, "skus": DIM_SKUS}
MAX_REPORTED = 50  # bad lines printed; the count says how many more


class DimensionFileError(ConfigurationError):
    """The file cannot be read as CSV or JSONL at all (not a bad row: a bad file)."""


def _required(kind: str) -> set[str]:
    return {name for name, f in DIMENSIONS[kind].model_fields.items() if f.is_required()}


def check_fields(kind: str, path: Path, fields: Iterable[str], where: str) -> None:
    """One error for a file of the wrong kind or with a wrong header, instead of one per line."""
    have = {f.strip() for f in fields if f}
    missing = _required(kind) - have
    if not missing:
        return
    other = next((k for k in DIMENSIONS if k != kind and not _required(k) - have), None)
    hint = (f"; it looks like a {other} file: gmv load-dim {other} {path}" if other else
            f"; {kind} need {', '.join(sorted(_required(kind)))}")
    raise DimensionFileError(f"{path}: {where} has no {', '.join(sorted(missing))}{hint}")


def _records(path: Path, kind: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, the line's fields) per data line; a string instead of fields is what is wrong."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DimensionFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DimensionFileError(f"{path}: is a folder; give the file") from None
    except UnicodeDecodeError as e:
        raise DimensionFileError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from e
    except OSError as e:
        raise DimensionFileError(f"{path}: cannot read it: {e.strerror or e}") from e
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        first = True
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                yield n, f"not JSON: {e}"
                continue
            if not isinstance(obj, dict):
                yield n, "a JSON object per line is expected"
                continue
            if first:
                check_fields(kind, path, obj, f"line {n}")
                first = False
            yield n, obj
        return
    if path.suffix.lower() != ".csv":
        raise DimensionFileError(f"{path}: name the file .csv (with a header row) or .jsonl (one object per line)")
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames:
        raise DimensionFileError(f"{path}: empty; a CSV file starts with a header row naming the fields")
    check_fields(kind, path, reader.fieldnames, f"the header ({','.join(reader.fieldnames)})")
    for fields in reader:
        line = reader.line_num
        if None in fields:
            yield line, f"{len(fields) - 1 + len(fields[None])} cells for {len(reader.fieldnames)} columns"
            continue
        # An empty cell is a field not given (its default, or "field required").
        yield line, {k.strip(): v for k, v in fields.items() if k is not None and v is not None and v.strip() != ""}


def validate_file(kind: str, path: Path) -> tuple[list[AccountBinding | ListedSku], list[str]]:
    """Every row of the file, or the errors: one ``FILE:LINE: ...`` string per problem."""
    model = DIMENSIONS[kind]
    rows: list[AccountBinding | ListedSku] = []
    errors: list[str] = []
    first_line: dict[tuple[str, ...], int] = {}
    for n, fields in _records(path, kind):
        if isinstance(fields, str):
            errors.append(f"{path}:{n}: {fields}")
            continue
        try:
            row = model.model_validate(fields)
        except ValidationError as e:
            for err in e.errors():
                where = ".".join(str(p) for p in err["loc"]) or "row"
                errors.append(f"{path}:{n}: {where}: {err['msg']}")
            continue
        if (seen := first_line.get(row.identity)) is not None:
            errors.append(f"{path}:{n}: {'/'.join(row.identity)} again (first on line {seen}); keep one")
            continue
        first_line[row.identity] = n
        rows.append(row)
    if not rows and not errors:
        errors.append(f"{path}: no rows")
    return rows, errors


def table_rows(kind: str, rows: list[AccountBinding | ListedSku], loaded_at: datetime) -> list[tuple]:
    table = TABLES[kind]
    return [tuple(getattr(r, c) if c != "loaded_at" else loaded_at for c in table.column_names) for r in rows]


def insert_rows(client: Any, db: str, kind: str, rows: list[AccountBinding | ListedSku]) -> None:
    """One insert of the whole file's rows (an unpartitioned table: one part, all or nothing)."""
    table = TABLES[kind]
    client.insert(table.store, table_rows(kind, rows, datetime.now(UTC)), database=db,
                  column_names=table.column_names, column_type_names=table.column_types)


def main(settings: Any, kind: str, path: Path) -> int:
    from gmv.tools.runtime import Runtime

    try:
        rows, errors = validate_file(kind, path)
    except DimensionFileError as e:
        print(f"gmv load-dim: {e}", file=sys.stderr)
        return 1
    if errors:
        for line in errors[:MAX_REPORTED]:
            print(line, file=sys.stderr)
        more = f" ({len(errors) - MAX_REPORTED} more not shown)" if len(errors) > MAX_REPORTED else ""
        print(f"gmv load-dim: {len(errors)} bad line(s){more}; nothing was loaded. Fix them and run it again.",
              file=sys.stderr)
        return 1
    runtime = Runtime(settings)
    try:
        insert_rows(runtime.open_clickhouse(), settings.clickhouse_database, kind, rows)
    finally:
        runtime.close()
    print(f"gmv load-dim: loaded {len(rows)} {kind} row(s) from {path} into "
          f"{settings.clickhouse_database}.{TABLES[kind].name}")
    return 0
