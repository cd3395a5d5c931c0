"""The migrations are frozen files that load in order (row types against their tables: test_catalogue.py)."""

from __future__ import annotations

import hashlib
from importlib import resources

from gmv.sinks.migrations import LATEST, MIGRATIONS

# The migrations as they shipped. A released migration is never edited (an old install would
# never see the change, and the upgrade test would rebuild a schema nobody has): add a new file.
SHIPPED = {
    "0001_ingest.sql": "972bbecf9b12e062e279426cf58cacd6ba14a408f2fc147d99d9bd35a304f9f2",
    "0002_attribution.sql": "956e5722ca45f0e3c4dd6b35a05f75c620ad49321b9903277a82528fe15ed70f",
    "0003_events_log.sql": "e0677a327e7b83fdd84486ee77fa9320ff5cc061ca8f33320a038916cd4bb5c3",
    "0004_alerts.sql": "a0b7000522e2e810b97847fad901df517512c7957517d956cd4dc9df0174a908",
    "0005_trust_scores.sql": "e0049733667b01fd1c3a79dc104ab269355773339468c8ffd7c1aa1c7d45acf1",
    "0006_dimensions_and_cookbook.sql": "cfdf29aad20e2bddb5ff2b99652e0e42c59dda02d7c8d556c16840232227b12e",
    "0007_catalogue_comments.sql": "1fca660904d13a4b8e99df05470963de8a7e7bf59ac4d9331c829ec8dc40ae1d",
    "0008_markov.sql": "685ca9b5fe8ee7e962ef3fb28ed879bcab7ac2f3a661daed34e5463adb36656f",
}


def test_released_migrations_are_unchanged():
    files = {f.name: f for f in resources.files("gmv.sinks.migrations").iterdir() if f.name.endswith(".sql")}
    for name, digest in SHIPPED.items():
        assert hashlib.sha256(files[name].read_bytes()).hexdigest() == digest, f"{name} was edited after release"


def test_migrations_run_one_to_latest_and_name_their_database_by_placeholder():
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))
    for m in MIGRATIONS:
        statements = m.statements("analytics")
        assert statements and m.description
        assert all("`analytics`." in s and "{db}" not in s for s in statements)
