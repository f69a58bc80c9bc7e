-- Edition-specific features persisted in the database. The DMV is per database, so it runs inside it
-- through that database's sp_executesql.
DECLARE @db sysname = %(database)s;
DECLARE @proc nvarchar(300) = QUOTENAME(@db) + N'.sys.sp_executesql';
EXEC @proc N'SELECT feature_name FROM sys.dm_db_persisted_sku_features';
