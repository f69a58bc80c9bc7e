"""Local stand-ins for SQL Server (TDS), OSS (HTTP) and the RDS OpenAPI (Tea RPC).

They speak the real wire protocols so the real drivers and SDKs are exercised in tests.
"""
