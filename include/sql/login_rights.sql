-- What the connection's login may do on one database, for every statement the migration runs there
-- (BACKUP DATABASE/LOG, ALTER DATABASE for the freeze and its undo, DBCC CHECKDB, RESTORE HEADERONLY).
-- It runs inside the database, so a login without access to it fails here (916), as it would later.
DECLARE @db sysname = %(database)s;
DECLARE @proc nvarchar(300) = QUOTENAME(@db) + N'.sys.sp_executesql';
EXEC @proc N'SELECT
    SUSER_SNAME() AS login_name,
    USER_NAME() AS user_name,
    IS_SRVROLEMEMBER(N''sysadmin'') AS is_sysadmin,
    IS_SRVROLEMEMBER(N''dbcreator'') AS is_dbcreator,
    IS_ROLEMEMBER(N''db_owner'') AS is_db_owner,
    HAS_PERMS_BY_NAME(DB_NAME(), N''DATABASE'', N''BACKUP DATABASE'') AS can_backup_database,
    HAS_PERMS_BY_NAME(DB_NAME(), N''DATABASE'', N''BACKUP LOG'') AS can_backup_log,
    HAS_PERMS_BY_NAME(DB_NAME(), N''DATABASE'', N''ALTER'') AS can_alter,
    HAS_PERMS_BY_NAME(NULL, NULL, N''CREATE ANY DATABASE'') AS can_create_database,
    (SELECT CASE WHEN d.owner_sid = SUSER_SID() THEN 1 ELSE 0 END
       FROM sys.databases AS d WHERE d.name = DB_NAME()) AS is_owner';
