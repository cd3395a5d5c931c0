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

import contextlib
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

log = logging.getLogger(__name__)

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


LOCK_TABLE = "schema_migrations_lock"
ALREADY_EXISTS = frozenset({57, 82})  # TABLE_ALREADY_EXISTS, DATABASE_ALREADY_EXISTS


def _ddl_tolerating_a_race(client: Client, sql: str) -> None:
    """An ``IF NOT EXISTS`` statement that another worker may be running at the same moment: on a
    server, the loser of that race can still get "already exists", which is what it wanted."""
    try:
        client.command(sql)
    except DatabaseError as e:
        if getattr(e, "code", None) not in ALREADY_EXISTS:
            raise


def _bookkeeping(client: Client, db: str) -> set[int]:
    """Create the database and ``schema_migrations`` if missing; the versions applied so far."""
    _ddl_tolerating_a_race(
        client, f"CREATE DATABASE IF NOT EXISTS `{db}` COMMENT 'GMV pipeline: attributed GMV, rollups, ingest audit'")
    _ddl_tolerating_a_race(
        client,
        f"CREATE TABLE IF NOT EXISTS `{db}`.`schema_migrations` ("
        "`version` UInt32 COMMENT 'migration number', "
        "`description` String COMMENT 'what the migration created', "
        "`applied_at` DateTime64(3, 'UTC') COMMENT 'when it was applied') "
        "ENGINE = ReplacingMergeTree ORDER BY version COMMENT 'Applied schema migrations'"
    )
    return _applied(client, db)


def _applied(client: Client, db: str) -> set[int]:
    return {row[0] for row in client.query(f"SELECT version FROM `{db}`.`schema_migrations`").result_rows}


@contextlib.contextmanager
def migration_lock(client: Client, db: str, wait_s: float, on_wait: Callable[[str], None]) -> Iterator[None]:
    """Hold ``<db>.schema_migrations_lock`` while migrating: several workers starting at once race
    to create it, ClickHouse lets exactly one ``CREATE TABLE`` (no ``IF NOT EXISTS``) succeed, and
    the others wait until it is dropped. A lock older than ``wait_s`` (its migrator was killed)
    is taken over. The table's one row says who holds it (host, pid, since when)."""
    owner = f"{socket.gethostname()} pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"
    create = (f"CREATE TABLE `{db}`.`{LOCK_TABLE}` (`owner` String COMMENT 'host, pid and time of the migrator') "
              "ENGINE = Memory COMMENT 'Held while one process applies schema migrations (gmv.sinks.migrations)'")
    said = 0.0
    while True:
        try:
            client.command(create)
            client.insert(LOCK_TABLE, [(owner,)], database=db, column_names=["owner"], column_type_names=["String"])
            break
        except DatabaseError as e:
            if getattr(e, "code", None) != 57:
                raise
        held = client.query(
            "SELECT dateDiff('second', metadata_modification_time, now()) FROM system.tables "
            "WHERE database = {db:String} AND name = {name:String}", parameters={"db": db, "name": LOCK_TABLE},
        ).result_rows
        if not held:
            continue  # released between our CREATE and this look: try again at once
        age = int(held[0][0])
        holder = _lock_holder(client, db)
        if age > wait_s:
            on_wait(f"the schema migration lock of {db} (held by {holder}) is {age}s old: taking it over")
            client.command(f"DROP TABLE IF EXISTS `{db}`.`{LOCK_TABLE}`")
            continue
        if time.monotonic() - said >= 10:
            on_wait(f"another process is migrating {db} ({holder}); waiting for it")
            said = time.monotonic()
        time.sleep(0.5)
    try:
        yield
    finally:
        client.command(f"DROP TABLE IF EXISTS `{db}`.`{LOCK_TABLE}`")


def _lock_holder(client: Client, db: str) -> str:
    try:
        rows = client.query(f"SELECT owner FROM `{db}`.`{LOCK_TABLE}`").result_rows
    except DatabaseError:  # dropped meanwhile
        return "released"
    return rows[0][0] if rows else "owner not yet written"


def migrate(client: Client, db: str, upto: int | None = None, lock_wait_s: float = 300.0,
            on_wait: Callable[[str], None] | None = None) -> int:
    """Apply pending migrations (up to ``upto``, default all); idempotent, and safe when several
    workers start at once: one applies them under ``migration_lock``, the others wait and then
    find nothing left to do. Returns the schema version."""
    done = _bookkeeping(client, db)
    if all(m.version in done for m in MIGRATIONS if upto is None or m.version <= upto):
        return max(done, default=0)
    with migration_lock(client, db, lock_wait_s, on_wait or log.warning):
        done = _applied(client, db)  # again: the process that held the lock applied them meanwhile
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
