-- User tables of a database, for validation. Runs inside the database through its sp_executesql.
DECLARE @db sysname = %(database)s;
DECLARE @proc nvarchar(300) = QUOTENAME(@db) + N'.sys.sp_executesql';
EXEC @proc N'SELECT s.name AS schema_name, t.name AS table_name
FROM sys.tables AS t
JOIN sys.schemas AS s ON s.schema_id = t.schema_id
WHERE t.is_ms_shipped = 0
ORDER BY s.name, t.name';
