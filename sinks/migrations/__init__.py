"""Frozen schema migrations: each one's DDL exactly as it shipped, one ``NNNN_name.sql`` file each.

A migration is never edited once released: an install of any age upgrades by applying
the files it has not applied yet, in order, so the same files rebuild any old schema
exactly (the upgrade test does that). A change to the schema is a new file.

File format: ``-- `` comment lines first (the first says ``migration N: description``),
then SQL statements separated by a line holding only ``;``. ``{db}`` stands for the
database name (a validated identifier: DDL takes no bind parameters). Applied
versions are rows of ``<db>.schema_migrations``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

from clickhouse_connect.driver.client import Client

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_HEADER = re.compile(r"^-- migration (\d+): (.+)$")


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str  # the file's statements, {db} not yet substituted

    def statements(self, db: str) -> list[str]:
        return [s.strip().replace("{db}", db) for s in self.sql.split("\n;\n") if s.strip()]


def load_migrations() -> list[Migration]:
    """Every migration file of this package, in version order."""
    out: list[Migration] = []
    for entry in resources.files(__package__).iterdir():
        match = _NAME.match(entry.name)
        if not match:
            continue
        text = entry.read_text(encoding="utf-8")
        lines = text.splitlines()
        header = _HEADER.match(lines[0]) if lines else None
        if header is None or int(header.group(1)) != int(match.group(1)):
            raise ValueError(f"migration file {entry.name} must start with '-- migration {int(match.group(1))}: ...'")
        body = "\n".join(line for line in lines if not line.startswith("-- "))
        out.append(Migration(int(match.group(1)), header.group(2), body))
    out.sort(key=lambda m: m.version)
    if [m.version for m in out] != list(range(1, len(out) + 1)):
        raise ValueError(f"migration versions must run 1..N without gaps, found {[m.version for m in out]}")
    return out


MIGRATIONS = load_migrations()
LATEST = MIGRATIONS[-1].version


def migrate(client: Client, db: str, upto: int | None = None) -> int:
    """Apply pending migrations (up to ``upto``, default all); idempotent. Returns the schema version."""
    client.command(f"CREATE DATABASE IF NOT EXISTS `{db}` COMMENT 'GMV pipeline: attributed GMV, rollups, ingest audit'")
    client.command(
        f"CREATE TABLE IF NOT EXISTS `{db}`.`schema_migrations` ("
        "`version` UInt32 COMMENT 'migration number', "
        "`description` String COMMENT 'what the migration created', "
        "`applied_at` DateTime64(3, 'UTC') COMMENT 'when it was applied') "
        "ENGINE = ReplacingMergeTree ORDER BY version COMMENT 'Applied schema migrations'"
    )
    done = {row[0] for row in client.query(f"SELECT version FROM `{db}`.`schema_migrations`").result_rows}
    latest = max(done, default=0)
    for m in MIGRATIONS:
        if m.version in done or (upto is not None and m.version > upto):
            continue
        for stmt in m.statements(db):
            client.command(stmt)
        client.insert(
            "schema_migrations", [(m.version, m.description, datetime.now(UTC))], database=db,
            column_names=["version", "description", "applied_at"],
            column_type_names=["UInt32", "String", "DateTime64(3, 'UTC')"],
        )
        latest = m.version
    return latest
