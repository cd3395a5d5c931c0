"""ClickHouse sink and schema."""
