"""Where the rows go (``gmv.sinks``): the batching sink interface, ClickHouse directly or through the
rows topic, the stored tables, frozen migrations and minute rollups."""
