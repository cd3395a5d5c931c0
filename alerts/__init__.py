"""Ops alerting (SPEC §8): rules as configuration, an evaluator in the worker, delivery.

- ``rules``: the rules file (TOML) and its defaults; ``exceptions``: the package's errors;
- ``conditions``: each rule's condition and the fire-once / resolve logic (pure);
- ``model``: an alert, its ``gmv.alerts`` row and its receiver shapes (pure);
- ``store``: what is read from and written to ClickHouse;
- ``delivery``: the receivers (table, topic, Alertmanager, webhook) with retries;
- ``judging``: the business and pipeline judges, inputs in, alert changes out (pure);
- ``evaluator``: the task in the worker that feeds the judges and delivers; ``service``: wiring it to a worker.
"""
