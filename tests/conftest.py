"""Test tiers: tests/unit need nothing; tests/integration get a broker and ClickHouse from fixtures."""
