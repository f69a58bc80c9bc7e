-- Set one database option WITH ROLLBACK IMMEDIATE: open transactions are rolled back and their sessions
-- disconnected. {{ OPTION }} is one of RESTRICTED_USER, SINGLE_USER, MULTI_USER, READ_ONLY, READ_WRITE.
DECLARE @db sysname = %(database)s;
DECLARE @sql nvarchar(max) = N'ALTER DATABASE ' + QUOTENAME(@db) + N' SET {{ OPTION }} WITH ROLLBACK IMMEDIATE';
EXEC (@sql);
