-- Rows of every user table from metadata (sys.dm_db_partition_stats: heap or clustered index, all
-- partitions): O(tables), never a scan of the data. Runs inside the database through its sp_executesql.
DECLARE @db sysname = %(database)s;
DECLARE @proc nvarchar(300) = QUOTENAME(@db) + N'.sys.sp_executesql';
EXEC @proc N'SELECT s.name AS schema_name, t.name AS table_name, SUM(ps.row_count) AS row_count
FROM sys.tables AS t
JOIN sys.schemas AS s ON s.schema_id = t.schema_id
JOIN sys.dm_db_partition_stats AS ps ON ps.object_id = t.object_id AND ps.index_id IN (0, 1)
WHERE t.is_ms_shipped = 0
GROUP BY s.name, t.name
ORDER BY s.name, t.name';
