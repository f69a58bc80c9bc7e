-- Every row of one table, for the opt-in deep validation (the caller hashes them as they stream in).
-- Every name is quoted with QUOTENAME. SELECT * returns text, ntext, image and xml columns too, which
-- BINARY_CHECKSUM ignores.
DECLARE @db sysname = %(database)s;
DECLARE @schema sysname = %(schema)s;
DECLARE @table sysname = %(table)s;
DECLARE @sql nvarchar(max) = N'SELECT * FROM ' + QUOTENAME(@db) + N'.' + QUOTENAME(@schema) + N'.' + QUOTENAME(@table);
EXEC (@sql);
