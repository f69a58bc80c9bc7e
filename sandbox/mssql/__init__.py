"""Sandbox SQL Server: a TDS protocol server in front of a simulated SQL engine.

- ``sandbox.mssql.results``: the values the engine emits (result sets, messages, errors).
- ``sandbox.mssql.tds``: TDS packet/token encoding and decoding.
- ``sandbox.mssql.server``: the asyncio server (``serve_instance``, ``ThreadedTdsServer``).
- ``sandbox.mssql.workload``: a write workload against a database (``run_workload``).
- ``sandbox.mssql.engine``: the simulated instances and T-SQL interpreter.
"""
