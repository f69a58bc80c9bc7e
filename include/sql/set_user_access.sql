-- Freeze (RESTRICTED_USER) or unfreeze (MULTI_USER) a database; open transactions are rolled back.
-- {{ USER_ACCESS }} is one of RESTRICTED_USER, SINGLE_USER, MULTI_USER.
DECLARE @db sysname = %(database)s;
DECLARE @sql nvarchar(max) = N'ALTER DATABASE ' + QUOTENAME(@db) + N' SET {{ USER_ACCESS }} WITH ROLLBACK IMMEDIATE';
EXEC (@sql);
