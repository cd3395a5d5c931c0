"""The pure core of the stream job: decoding, routing, the partition state (its journal, and one
module per domain: de-duplication, touches and attribution, refunds, reviews, conversations),
the attribution rules, the batch processor and its typed rows. No Kafka, no ClickHouse, no faust,
no sockets, threads or clock reads of its own (``tests/unit/test_layout.py`` checks the imports)."""
