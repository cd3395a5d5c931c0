"""The pure core of the stream job: decoding, routing, partition state and journal, attribution,
refund outcomes, the batch processor and its typed rows. No Kafka, no ClickHouse, no faust, no
sockets, threads or clock reads of its own (``tests/unit/test_layout.py`` checks the imports)."""
