-- Row count and checksum aggregate of one table; every name is quoted with QUOTENAME.
DECLARE @db sysname = %(database)s;
DECLARE @schema sysname = %(schema)s;
DECLARE @table sysname = %(table)s;
DECLARE @sql nvarchar(max) = N'SELECT COUNT_BIG(*) AS row_count, CHECKSUM_AGG(BINARY_CHECKSUM(*)) AS checksum FROM '
    + QUOTENAME(@db) + N'.' + QUOTENAME(@schema) + N'.' + QUOTENAME(@table);
EXEC (@sql);
