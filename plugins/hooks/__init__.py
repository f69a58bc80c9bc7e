"""Thin hooks, one per service: SQL Server (:mod:`hooks.mssql`), OSS (:mod:`hooks.oss`) and RDS
(:mod:`hooks.rds`).

Import the hook modules directly (``from hooks.rds import RdsMigrationHook``); this package file stays
empty of imports so that loading one hook does not pull in the other services' SDKs.
"""
