"""The stream job (``gmv.streams``): the worker, its ingest loop and the pure core (``gmv.streams.core``)."""
