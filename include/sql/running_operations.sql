-- Progress of BACKUP/RESTORE/DBCC on a database, seen from a second connection.
SELECT
    r.session_id,
    r.command,
    r.percent_complete,
    r.estimated_completion_time,
    r.start_time
FROM sys.dm_exec_requests AS r
WHERE r.database_id = DB_ID(%(database)s)
  AND r.command IN (N'BACKUP DATABASE', N'BACKUP LOG', N'RESTORE DATABASE', N'RESTORE LOG', N'DBCC TABLE CHECK');
