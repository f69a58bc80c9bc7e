-- Log written since the last log backup (SQL Server 2016 SP2 and later): the size the next log backup
-- will have, measured without taking it.
DECLARE @db sysname = %(database)s;
SELECT CAST(ls.log_since_last_log_backup_mb * 1048576 AS bigint) AS log_bytes
FROM sys.dm_db_log_stats(DB_ID(@db)) AS ls;
