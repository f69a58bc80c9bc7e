"""Chaos scenarios: whole migrations under real Airflow while faults are injected from a seed.

- ``plan``: the faults of a scenario, drawn from its seed (rates for the stand-ins, one-shot events).
- ``controller``: the thread that fires the one-shot events at their moment (kills, triggerer restart,
  SQL Server and RDS file faults).
- ``checks``: what every scenario must show, from the stand-ins' own records.
- ``scenario``: one scenario end to end (``python -m tools.chaos --seed N``).

The long run over many seeds, with the figures, is ``python -m bench.chaos --seeds N``.
"""
