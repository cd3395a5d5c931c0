"""The tools around the stream job (``gmv.tools``): the ``gmv`` command, ``demo``, ``run``, ``explain``,
the simulator, the embedded broker and ClickHouse, and test-data generators."""
