-- Take one of the source server's backup slots for this session, without waiting (slot 1..N).
-- The migration runs at most source.max_concurrent_backups backups at a time on one server, whatever DAG,
-- database or Airflow deployment asks: an application lock in master owned by the session that then
-- runs the BACKUP, so it ends with that session, even when the worker dies.
DECLARE @resource nvarchar(255) = N'mssql_rds_migration_backup_slot_' + CAST(%(slot)s AS nvarchar(10));
DECLARE @result int;
EXEC @result = sp_getapplock @Resource = @resource, @LockMode = N'Exclusive', @LockOwner = N'Session',
    @LockTimeout = 0, @DbPrincipal = N'public';
SELECT @result AS result;
